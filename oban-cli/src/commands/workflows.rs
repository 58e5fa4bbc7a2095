//! `workflows` (the most recent workflows) and `workflow ID` (one workflow: its steps and
//! sub-workflows, its Mermaid graph, cancelling or retrying it).
//!
//! `--json`: `workflows` prints an array of `oban_core::admin::WorkflowSummary`:
//!
//! ```json
//! [{"id": "0192..", "name": "nightly-etl", "state": "running",
//!   "counts": {"available": 1, "scheduled": 0, "suspended": 2, "executing": 1, "retryable": 0,
//!              "completed": 3, "discarded": 0, "cancelled": 0},
//!   "total": 7, "sup_workflow_id": null, "inserted_at": "2026-12-04T03:22:18.123456Z",
//!   "started_at": "2026-12-04T03:22:18.5Z", "finished_at": null, "last_job_id": 4210}]
//! ```
//!
//! `state` is `running`, `suspended`, `completed`, `cancelled` or `discarded`; the next page is
//! `--before <last_job_id of the last one>`. `workflow ID` prints an
//! `oban_core::admin::WorkflowStatus`: `{"summary": {..as above..}, "sub_name": null, "steps":
//! [{"job_id", "name", "worker", "queue", "state", "deps" (as stored: `"name"` or `[workflow_id,
//! name]`, `[workflow_id, "*"]`), "attempt", "max_attempts", "ignore_cancelled",
//! "ignore_discarded", "ignore_deleted", "inserted_at", "scheduled_at", "attempted_at",
//! "finished_at", "last_error"}], "sub_workflows": [..each a status..]}`; no such workflow:
//! `null`, exit 3. `--cancel` and `--retry` print
//! `{"operation": "cancel", "workflow": "0192..", "matched": 3, "dry_run": false, "changed": 3,
//! "released": null}` (`released`: for `--retry`, the steps the release then made runnable or
//! cancelled again); nothing to change: `matched: 0`, exit 3.

use chrono::Utc;
use comfy_table::Cell;
use oban_core::admin::{Admin, JobQuery, WorkflowState, WorkflowStatus, WorkflowSummary};
use oban_core::{JobFilter, JobState};
use serde::Serialize;

use crate::cli::WorkflowArgs;
use crate::confirm;
use crate::exit::{Error, Result, Status};
use crate::output::Output;

use super::jobs::{first_line, relative};

/// What `workflow ID --cancel` or `--retry` did, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
struct Report {
    /// `cancel` or `retry`.
    operation: &'static str,
    /// The workflow.
    workflow: String,
    /// Steps the change applies to when counted (unfinished ones for a cancel; cancelled and
    /// discarded ones for a retry), sub-workflows included.
    matched: u64,
    /// Whether only counted.
    dry_run: bool,
    /// Steps changed.
    changed: u64,
    /// For a retry: steps the release then changed.
    released: Option<u64>,
}

/// Lists the most recent workflows.
pub(crate) async fn list(
    admin: &Admin,
    out: Output,
    before: Option<i64>,
    limit: u32,
) -> Result<Status> {
    let workflows = admin.workflows(before, limit).await?;
    let status = if workflows.is_empty() {
        Status::NothingMatched
    } else {
        Status::Done
    };
    if out.json {
        out.json(&workflows)?;
        return Ok(status);
    }
    if workflows.is_empty() {
        println!("no workflow");
        return Ok(status);
    }
    let now = Utc::now();
    let mut table = out.table([
        "id", "name", "state", "steps", "by state", "started", "finished",
    ]);
    for workflow in &workflows {
        let mut name = workflow.name.clone().unwrap_or_default();
        if let Some(parent) = &workflow.sup_workflow_id {
            name = format!("{name} (sub of {parent})").trim_start().to_owned();
        }
        table.add_row(vec![
            Cell::new(&workflow.id),
            Cell::new(name),
            state_cell(out, workflow.state),
            Cell::new(format!("{}/{}", workflow.counts.completed, workflow.total)),
            Cell::new(by_state(workflow)),
            Cell::new(
                workflow
                    .started_at
                    .map(|at| relative(at, now))
                    .unwrap_or_default(),
            ),
            Cell::new(
                workflow
                    .finished_at
                    .map(|at| relative(at, now))
                    .unwrap_or_default(),
            ),
        ]);
    }
    println!("{table}");
    if let Some(last) = workflows
        .last()
        .filter(|_| workflows.len() == limit as usize)
    {
        println!("more: --before {}", last.last_job_id);
    }
    Ok(status)
}

/// One workflow, or its graph, or a change to it.
pub(crate) async fn show(admin: &Admin, out: Output, args: &WorkflowArgs) -> Result<Status> {
    let status = admin.workflow(&args.id).await?;
    if args.cancel || args.retry {
        return change(admin, out, args, status).await;
    }
    let Some(status) = status else {
        if out.json {
            out.json(&serde_json::Value::Null)?;
        } else {
            println!("no workflow {}", args.id);
        }
        return Ok(Status::NothingMatched);
    };
    if args.mermaid {
        print!("{}", status.to_mermaid());
    } else if out.json {
        out.json(&status)?;
    } else {
        print_status(out, &status, 0);
    }
    Ok(Status::Done)
}

/// `--cancel` or `--retry`: count, ask, change.
async fn change(
    admin: &Admin,
    out: Output,
    args: &WorkflowArgs,
    status: Option<WorkflowStatus>,
) -> Result<Status> {
    let operation = if args.cancel { "cancel" } else { "retry" };
    let matched = match &status {
        None => 0,
        Some(status) => count(admin, status, args.cancel).await?,
    };
    let mut report = Report {
        operation,
        workflow: args.id.clone(),
        matched,
        dry_run: args.dry_run,
        changed: 0,
        released: None,
    };
    let which = if args.cancel {
        "unfinished"
    } else {
        "cancelled or discarded"
    };
    if matched == 0 {
        let message = match status {
            None => format!("no workflow {}", args.id),
            Some(_) => format!("{operation}: workflow {} has no {which} step", args.id),
        };
        finish(out, &report, message)?;
        return Ok(Status::NothingMatched);
    }
    let steps = if matched == 1 { "step" } else { "steps" };
    let what = format!("Workflow {}: {matched} {which} {steps}.", args.id);
    if args.dry_run {
        finish(out, &report, format!("{what} Dry run: nothing changed."))?;
        return Ok(Status::Done);
    }
    let question = if args.cancel {
        format!("{what} Cancel them?")
    } else {
        format!("{what} Retry them?")
    };
    if !confirm::ask(&question, args.yes)? {
        return Err(Error::new(format!(
            "{operation}: not confirmed, nothing changed"
        )));
    }
    let message = if args.cancel {
        report.changed = admin.cancel_workflow(&args.id).await?;
        format!("cancelled {} of {matched} {which} {steps}", report.changed)
    } else {
        let retried = admin.retry_workflow(&args.id).await?;
        report.changed = retried.suspended;
        report.released = Some(retried.released);
        format!(
            "{} of {matched} {steps} back to suspended; {} released",
            retried.suspended, retried.released
        )
    };
    finish(out, &report, message)?;
    Ok(Status::Done)
}

/// How many steps of the workflow and its sub-workflows the change would touch.
async fn count(admin: &Admin, status: &WorkflowStatus, cancel: bool) -> Result<u64> {
    let states: &[JobState] = if cancel {
        &[
            JobState::Available,
            JobState::Scheduled,
            JobState::Suspended,
            JobState::Executing,
            JobState::Retryable,
        ]
    } else {
        &[JobState::Cancelled, JobState::Discarded]
    };
    let mut total = 0;
    for id in status.workflow_ids() {
        let mut filter = JobFilter::new().workflow(id);
        for state in states {
            filter = filter.state(*state);
        }
        total += admin.count(&JobQuery::new(filter)).await?;
    }
    Ok(total)
}

fn finish(out: Output, report: &Report, message: String) -> Result<()> {
    if out.json {
        out.json(report)
    } else {
        println!("{message}");
        Ok(())
    }
}

/// The workflow's fields, then its steps, then each sub-workflow the same way.
fn print_status(out: Output, status: &WorkflowStatus, depth: usize) {
    let now = Utc::now();
    let summary = &status.summary;
    let title = if depth == 0 {
        "workflow"
    } else {
        "sub-workflow"
    };
    let mut fields = out.table([title, &summary.id]);
    if let Some(name) = &summary.name {
        fields.add_row(vec!["name", name]);
    }
    if let Some(sub_name) = &status.sub_name {
        fields.add_row(vec!["known as", sub_name]);
    }
    if let Some(parent) = &summary.sup_workflow_id {
        fields.add_row(vec!["sub-workflow of", parent]);
    }
    fields.add_row(vec![Cell::new("state"), state_cell(out, summary.state)]);
    fields.add_row(vec![
        "steps".to_owned(),
        format!("{} ({})", summary.total, by_state(summary)),
    ]);
    fields.add_row(vec![
        "inserted".to_owned(),
        relative(summary.inserted_at, now),
    ]);
    if let Some(at) = summary.started_at {
        fields.add_row(vec!["started".to_owned(), relative(at, now)]);
    }
    if let Some(at) = summary.finished_at {
        fields.add_row(vec!["finished".to_owned(), relative(at, now)]);
    }
    println!("{fields}");

    let mut steps = out.table([
        "job",
        "name",
        "state",
        "worker",
        "queue",
        "deps",
        "attempt",
        "last error",
    ]);
    for step in &status.steps {
        let deps: Vec<String> = step.deps.iter().map(ToString::to_string).collect();
        steps.add_row(vec![
            Cell::new(step.job_id),
            Cell::new(&step.name),
            out.state_cell(step.state),
            Cell::new(&step.worker),
            Cell::new(&step.queue),
            Cell::new(deps.join(", ")),
            Cell::new(format!("{}/{}", step.attempt, step.max_attempts)),
            Cell::new(
                step.last_error
                    .as_deref()
                    .map(|e| first_line(e, 50))
                    .unwrap_or_default(),
            ),
        ]);
    }
    println!("{steps}");
    for sub in &status.sub_workflows {
        print_status(out, sub, depth + 1);
    }
}

/// The non-zero counts: `3 completed, 1 executing`.
fn by_state(summary: &WorkflowSummary) -> String {
    JobState::ALL
        .iter()
        .filter_map(|state| {
            let n = summary.counts.get(*state);
            (n > 0).then(|| format!("{n} {state}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A workflow's state, coloured as `Output::state_cell` colours a job's (colour reaches the
/// terminal only when the table is styled).
fn state_cell(out: Output, state: WorkflowState) -> Cell {
    use comfy_table::Color;
    let _ = out;
    let cell = Cell::new(state.as_str());
    match state {
        WorkflowState::Discarded => cell.fg(Color::Red),
        WorkflowState::Cancelled => cell.fg(Color::Magenta),
        WorkflowState::Running => cell.fg(Color::Cyan),
        WorkflowState::Completed => cell.fg(Color::Green),
        _ => cell,
    }
}
