//! `retry`, `cancel`, `delete`, `replay` and `prune`: count, ask, then change in batches.
//!
//! `--json` prints a [`Report`]:
//!
//! ```json
//! {"operation": "retry", "matched": 120, "dry_run": false, "changed": 120}
//! ```
//!
//! `matched` is how many jobs the filter matched when counted (before asking; `null` for
//! `prune`, which does not count ahead), `changed` how many the operation changed (0 on a dry
//! run; it may differ from `matched` when jobs moved in between). Nothing matched: the report
//! with `matched: 0` (for `prune`, `changed: 0`), exit code 3.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use oban_core::admin::{Admin, JobQuery};
use oban_core::{JobFilter, JobState};
use serde::Serialize;

use crate::cli::{Bulk, Command, Confirm, FilterArgs};
use crate::confirm;
use crate::exit::{Error, Result, Status};
use crate::output::Output;
use crate::parse::human_duration;

/// What a change command did, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// `retry`, `cancel`, `delete`, `replay` or `prune`.
    pub(crate) operation: &'static str,
    /// Jobs the filter matched when counted; `null` for `prune`, which cannot count ahead.
    pub(crate) matched: Option<u64>,
    /// Whether only counted.
    pub(crate) dry_run: bool,
    /// Jobs changed.
    pub(crate) changed: u64,
}

/// A bulk operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Retry,
    Cancel,
    Delete,
    Replay,
    Prune,
}

impl Operation {
    /// The command's name.
    fn name(self) -> &'static str {
        match self {
            Operation::Retry => "retry",
            Operation::Cancel => "cancel",
            Operation::Delete => "delete",
            Operation::Replay => "replay",
            Operation::Prune => "prune",
        }
    }

    /// The states of the jobs it changes: counting within them counts what it will change.
    fn acts_on(self) -> &'static [JobState] {
        use JobState::*;
        match self {
            Operation::Retry => &[
                Scheduled, Suspended, Retryable, Completed, Discarded, Cancelled,
            ],
            Operation::Cancel => &[Available, Scheduled, Suspended, Executing, Retryable],
            Operation::Delete => &[
                Available, Scheduled, Suspended, Retryable, Completed, Discarded, Cancelled,
            ],
            Operation::Replay => &[Discarded, Cancelled],
            Operation::Prune => &[Completed, Cancelled, Discarded],
        }
    }
}

/// A bulk command checked before connecting: its operation, query and confirmation.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    operation: Operation,
    query: JobQuery,
    older_than: Duration,
    confirm: Confirm,
}

impl Plan {
    /// The plan of a bulk command (`None` for the others), or the usage mistake in it.
    pub(crate) fn check(command: &Command) -> Result<Option<Plan>> {
        let (operation, bulk) = match command {
            Command::Retry(bulk) => (Operation::Retry, bulk),
            Command::Cancel(bulk) => (Operation::Cancel, bulk),
            Command::Delete(bulk) => (Operation::Delete, bulk),
            Command::Replay(bulk) => (Operation::Replay, bulk),
            Command::Prune {
                older_than,
                confirm,
            } => {
                return Ok(Some(Plan {
                    operation: Operation::Prune,
                    query: JobQuery::default(),
                    older_than: *older_than,
                    confirm: *confirm,
                }))
            }
            _ => return Ok(None),
        };
        Ok(Some(Plan {
            operation,
            query: bulk_query(operation, bulk)?,
            older_than: Duration::ZERO,
            confirm: bulk.confirm,
        }))
    }
}

/// The query a bulk command runs: its filter, within the states the operation changes.
fn bulk_query(operation: Operation, bulk: &Bulk) -> Result<JobQuery> {
    let name = operation.name();
    if bulk.filter.is_empty() && !bulk.all {
        return Err(Error::usage(format!(
            "{name} needs a filter (--state, --queue, --worker, --tag, --args, --meta, --since, --id, --workflow) \
             or --all to mean every job"
        )));
    }
    if bulk.all && !bulk.filter.is_empty() {
        return Err(Error::usage(format!(
            "{name}: --all means every job; leave it out to use the filter"
        )));
    }
    let acts_on = operation.acts_on();
    let states: Vec<JobState> = if bulk.filter.states.is_empty() {
        acts_on.to_vec()
    } else {
        let (kept, refused): (Vec<JobState>, Vec<JobState>) = bulk
            .filter
            .states
            .iter()
            .partition(|state| acts_on.contains(state));
        if !refused.is_empty() {
            return Err(Error::usage(format!(
                "{name} does not change {} jobs; it changes {}",
                names(&refused),
                names(acts_on)
            )));
        }
        kept
    };
    let filter = FilterArgs {
        states,
        ..bulk.filter.clone()
    };
    Ok(filter.query(None))
}

fn names(states: &[JobState]) -> String {
    states
        .iter()
        .map(|state| state.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FilterArgs {
    /// The admin query for these flags, with at most `limit` jobs when listing.
    pub(crate) fn query(&self, limit: Option<u32>) -> JobQuery {
        let mut filter = JobFilter::new();
        if !self.ids.is_empty() {
            filter = JobFilter::ids(self.ids.iter().copied());
        }
        for state in &self.states {
            filter = filter.state(*state);
        }
        for queue in &self.queues {
            filter = filter.queue(queue);
        }
        for worker in &self.workers {
            filter = filter.worker(worker);
        }
        for tag in &self.tags {
            filter = filter.tag(tag);
        }
        if let Some(args) = &self.args {
            filter = filter.args_contain(args.clone());
        }
        if let Some(meta) = &self.meta {
            filter = filter.meta_contain(meta.clone());
        }
        if let Some(workflow) = &self.workflow {
            filter = filter.workflow(workflow);
        }
        let mut query = JobQuery::new(filter);
        if let Some(since) = self.since {
            query = query.since(since);
        }
        if let Some(limit) = limit {
            query = query.limit(u64::from(limit));
        }
        query
    }
}

/// Counts, asks, and carries out the plan.
pub(crate) async fn run(admin: &Admin, out: Output, plan: Plan) -> Result<Status> {
    let name = plan.operation.name();
    // `prune` cannot count ahead: the admin API has no count of the jobs it would prune.
    let matched = match plan.operation {
        Operation::Prune => None,
        _ => Some(admin.count(&plan.query).await?),
    };
    let mut report = Report {
        operation: name,
        matched,
        dry_run: plan.confirm.dry_run,
        changed: 0,
    };
    if matched == Some(0) {
        finish(out, &report, format!("{name}: no job matches"))?;
        return Ok(Status::NothingMatched);
    }
    let what = match matched {
        Some(1) => "1 job matches.".to_owned(),
        Some(n) => format!("{n} jobs match."),
        None => format!(
            "Completed, cancelled and discarded jobs that finished more than {} ago.",
            human_duration(plan.older_than)
        ),
    };
    if plan.confirm.dry_run {
        finish(out, &report, format!("{what} Dry run: nothing changed."))?;
        return Ok(Status::Done);
    }
    let question = format!("{what} {} them?", capitalised(name));
    if !confirm::ask(&question, plan.confirm.yes)? {
        return Err(Error::new(format!(
            "{name}: not confirmed, nothing changed"
        )));
    }
    let bar = progress_bar(out, matched, name);
    let mut progress = |done: u64| bar.set_position(done);
    let batch = plan.confirm.batch;
    let changed = match plan.operation {
        Operation::Retry => admin.retry(&plan.query, batch, &mut progress).await,
        Operation::Cancel => admin.cancel(&plan.query, batch, &mut progress).await,
        Operation::Delete => admin.delete(&plan.query, batch, &mut progress).await,
        Operation::Replay => admin.replay(&plan.query, batch, &mut progress).await,
        Operation::Prune => admin.prune(plan.older_than, batch, &mut progress).await,
    };
    bar.finish_and_clear();
    report.changed = changed?;
    let done = match plan.operation {
        Operation::Retry => "retried",
        Operation::Cancel => "cancelled",
        Operation::Delete => "deleted",
        Operation::Replay => "replayed",
        Operation::Prune => "pruned",
    };
    let of = matched.map_or_else(String::new, |n| format!(" of {n} matching"));
    let jobs = if report.changed == 1 { "job" } else { "jobs" };
    finish(
        out,
        &report,
        format!("{done} {}{of} {jobs}", report.changed),
    )?;
    if matched.is_none() && report.changed == 0 {
        return Ok(Status::NothingMatched);
    }
    Ok(Status::Done)
}

fn finish(out: Output, report: &Report, sentence: String) -> Result<()> {
    if out.json {
        out.json(report)
    } else {
        println!("{sentence}");
        Ok(())
    }
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// A bar on stderr when it is a terminal, hidden otherwise; a counter when the total is not
/// known.
fn progress_bar(out: Output, len: Option<u64>, name: &str) -> ProgressBar {
    if !out.progress {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            ProgressBar::new(len),
            "{msg} [{bar:40}] {pos}/{len} jobs ({per_sec}, {eta} left)",
        ),
        None => (ProgressBar::no_length(), "{msg} {pos} jobs ({per_sec})"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn plan(args: &[&str]) -> Result<Option<Plan>> {
        let cli = Cli::try_parse_from(std::iter::once("oban").chain(args.iter().copied()))
            .expect("parses");
        Plan::check(&cli.command)
    }

    #[test]
    fn a_bulk_command_needs_a_filter_or_all() {
        let err = plan(&["retry"]).expect_err("refused");
        assert_eq!(err.code(), 2);
        assert!(err.to_string().contains("or --all"), "{err}");
        assert!(plan(&["retry", "--all"]).expect("all").is_some());
        assert!(plan(&["retry", "--all", "--queue", "q"]).is_err());
    }

    #[test]
    fn states_an_operation_does_not_change_are_refused_before_it_runs() {
        let err = plan(&["replay", "--state", "retryable"]).expect_err("refused");
        assert_eq!(err.code(), 2);
        assert_eq!(
            err.to_string(),
            "replay does not change retryable jobs; it changes discarded, cancelled"
        );
        let err =
            plan(&["retry", "--state", "executing", "--state", "discarded"]).expect_err("refused");
        assert!(err.to_string().contains("executing"), "{err}");
    }

    #[test]
    fn without_states_the_count_is_of_what_the_operation_changes() {
        let plan = plan(&["replay", "--worker", "W"])
            .expect("ok")
            .expect("plan");
        assert_eq!(
            plan.query.filter.states,
            [JobState::Discarded, JobState::Cancelled]
        );
    }

    #[test]
    fn other_commands_have_no_plan() {
        assert!(plan(&["queues"]).expect("ok").is_none());
    }
}
