//! Every action, a POST under the thing it acts on. By the time a handler runs, the guard has
//! checked full access and the CSRF token (`guard.rs`); each handler calls the
//! [`Admin`](oban_core::admin::Admin), as the `oban` CLI does, and answers with
//! [`reply::done`].
//!
//! - `POST /queues/{name}/pause`, `/resume` (field `node` for one node, else every node) and
//!   `/scale` (field `limit`, optional `node`);
//! - `POST /queues/{name}/limits` (fields `global`, `global_by`, `rate`, `period` in seconds,
//!   `rate_by`; an empty field is no such limit; partitions as `worker`, `args:tenant_id`,
//!   `worker+args:KEY`) replaces the queue's limits across the fleet, `/limits/clear` removes
//!   them;
//! - `POST /jobs/{id}/retry`, `/cancel`, `/delete`;
//! - `POST /jobs/retry`, `/jobs/cancel`, `/jobs/delete` for the selected jobs (fields `ids`);
//! - `POST /workflows/{id}/cancel` and `/retry` (with its sub-workflows).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use oban_core::admin::{Admin, JobQuery};
use oban_core::limits::{GlobalLimit, Limits, Partition, RateLimit};
use oban_core::JobFilter;

use crate::app::App;
use crate::guard::{Ctx, Fields};
use crate::reply;

/// The most jobs one selection may name (a page of the jobs list is far fewer).
const MAX_SELECTED: usize = 1_000;

/// What to do with jobs.
#[derive(Clone, Copy)]
enum JobAction {
    Retry,
    Cancel,
    Delete,
}

impl JobAction {
    fn past(self) -> &'static str {
        match self {
            JobAction::Retry => "retried",
            JobAction::Cancel => "cancelled",
            JobAction::Delete => "deleted",
        }
    }

    /// Why a job may not have changed.
    fn unless(self) -> &'static str {
        match self {
            JobAction::Retry => "jobs that are executing or already available are not retried",
            JobAction::Cancel => "finished jobs cannot be cancelled",
            JobAction::Delete => "executing jobs are not deleted: cancel them first",
        }
    }

    async fn run(self, admin: &Admin, query: &JobQuery, batch: u32) -> oban_core::Result<u64> {
        let mut progress = |_done: u64| {};
        match self {
            JobAction::Retry => admin.retry(query, batch, &mut progress).await,
            JobAction::Cancel => admin.cancel(query, batch, &mut progress).await,
            JobAction::Delete => admin.delete(query, batch, &mut progress).await,
        }
    }
}

/// `POST /jobs/{id}/retry`.
pub(crate) async fn retry_job(
    state: State<Arc<App>>,
    ctx: Extension<Ctx>,
    fields: Extension<Fields>,
    id: Path<i64>,
) -> Response {
    one_job(JobAction::Retry, state, ctx, fields, id).await
}

/// `POST /jobs/{id}/cancel`.
pub(crate) async fn cancel_job(
    state: State<Arc<App>>,
    ctx: Extension<Ctx>,
    fields: Extension<Fields>,
    id: Path<i64>,
) -> Response {
    one_job(JobAction::Cancel, state, ctx, fields, id).await
}

/// `POST /jobs/{id}/delete`.
pub(crate) async fn delete_job(
    state: State<Arc<App>>,
    ctx: Extension<Ctx>,
    fields: Extension<Fields>,
    id: Path<i64>,
) -> Response {
    one_job(JobAction::Delete, state, ctx, fields, id).await
}

async fn one_job(
    action: JobAction,
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Extension(fields): Extension<Fields>,
    Path(id): Path<i64>,
) -> Response {
    let query = JobQuery::new(JobFilter::id(id));
    match action.run(app.admin(), &query, app.config.batch).await {
        Ok(count) => {
            let message = if count == 1 {
                format!("Job {id} {}.", action.past())
            } else {
                format!(
                    "Job {id} was not {}: {} (or it no longer exists).",
                    action.past(),
                    action.unless()
                )
            };
            reply::done(
                &ctx,
                fields.get("back"),
                &format!("/jobs/{id}"),
                &message,
                Some(count),
            )
        }
        Err(error) => reply::failed(&ctx, &error),
    }
}

/// `POST /jobs/retry`.
pub(crate) async fn retry_jobs(
    state: State<Arc<App>>,
    ctx: Extension<Ctx>,
    fields: Extension<Fields>,
) -> Response {
    selected(JobAction::Retry, state, ctx, fields).await
}

/// `POST /jobs/cancel`.
pub(crate) async fn cancel_jobs(
    state: State<Arc<App>>,
    ctx: Extension<Ctx>,
    fields: Extension<Fields>,
) -> Response {
    selected(JobAction::Cancel, state, ctx, fields).await
}

/// `POST /jobs/delete`.
pub(crate) async fn delete_jobs(
    state: State<Arc<App>>,
    ctx: Extension<Ctx>,
    fields: Extension<Fields>,
) -> Response {
    selected(JobAction::Delete, state, ctx, fields).await
}

async fn selected(
    action: JobAction,
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Extension(fields): Extension<Fields>,
) -> Response {
    let mut ids = Vec::new();
    for raw in fields.all("ids") {
        match raw.trim().parse::<i64>() {
            Ok(id) => ids.push(id),
            Err(_) => {
                return reply::problem(
                    &ctx,
                    StatusCode::BAD_REQUEST,
                    &format!("`{raw}` is not a job id"),
                );
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return reply::problem(
            &ctx,
            StatusCode::BAD_REQUEST,
            "no job was selected: tick the jobs to act on",
        );
    }
    if ids.len() > MAX_SELECTED {
        return reply::problem(
            &ctx,
            StatusCode::BAD_REQUEST,
            &format!("{} jobs were selected, at most {MAX_SELECTED} can be: use the `oban` CLI with a filter for more", ids.len()),
        );
    }
    let selected = ids.len();
    let query = JobQuery::new(JobFilter::ids(ids));
    match action.run(app.admin(), &query, app.config.batch).await {
        Ok(count) => {
            let mut message = format!("{count} of {selected} selected jobs {}.", action.past());
            if count < selected as u64 {
                message.push_str(&format!(" The others were not: {}.", action.unless()));
            }
            reply::done(&ctx, fields.get("back"), "/jobs", &message, Some(count))
        }
        Err(error) => reply::failed(&ctx, &error),
    }
}

/// `POST /workflows/{id}/cancel`: every unfinished step of the workflow and of its
/// sub-workflows.
pub(crate) async fn cancel_workflow(
    state: State<Arc<App>>,
    ctx: Extension<Ctx>,
    fields: Extension<Fields>,
    id: Path<String>,
) -> Response {
    workflow(true, state, ctx, fields, id).await
}

/// `POST /workflows/{id}/retry`: its cancelled and discarded steps back to suspended, then
/// released.
pub(crate) async fn retry_workflow(
    state: State<Arc<App>>,
    ctx: Extension<Ctx>,
    fields: Extension<Fields>,
    id: Path<String>,
) -> Response {
    workflow(false, state, ctx, fields, id).await
}

async fn workflow(
    cancel: bool,
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Extension(fields): Extension<Fields>,
    Path(id): Path<String>,
) -> Response {
    let admin = app.admin();
    match admin.workflow(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return reply::not_found(&ctx, &format!("workflow {id}")),
        Err(error) => return reply::failed(&ctx, &error),
    }
    let steps = |n: u64| if n == 1 { "step" } else { "steps" };
    let (result, message) = if cancel {
        match admin.cancel_workflow(&id).await {
            Ok(n) => (
                Ok(n),
                format!("Cancelled {n} {} of workflow {id}.", steps(n)),
            ),
            Err(error) => (Err(error), String::new()),
        }
    } else {
        match admin.retry_workflow(&id).await {
            Ok(retried) => (
                Ok(retried.suspended),
                format!(
                    "Workflow {id}: {} failed {} back to suspended, {} released.",
                    retried.suspended,
                    steps(retried.suspended),
                    retried.released
                ),
            ),
            Err(error) => (Err(error), String::new()),
        }
    };
    match result {
        Ok(count) => reply::done(
            &ctx,
            fields.get("back"),
            &format!("/workflows/{}", crate::pages::segment(&id)),
            &message,
            Some(count),
        ),
        Err(error) => reply::failed(&ctx, &error),
    }
}

/// What to do with a queue.
#[derive(Clone, Copy)]
enum QueueAction {
    Pause,
    Resume,
    Scale,
}

/// `POST /queues/{name}/pause`.
pub(crate) async fn pause(
    state: State<Arc<App>>,
    ctx: Extension<Ctx>,
    fields: Extension<Fields>,
    name: Path<String>,
) -> Response {
    queue(QueueAction::Pause, state, ctx, fields, name).await
}

/// `POST /queues/{name}/resume`.
pub(crate) async fn resume(
    state: State<Arc<App>>,
    ctx: Extension<Ctx>,
    fields: Extension<Fields>,
    name: Path<String>,
) -> Response {
    queue(QueueAction::Resume, state, ctx, fields, name).await
}

/// `POST /queues/{name}/scale`.
pub(crate) async fn scale(
    state: State<Arc<App>>,
    ctx: Extension<Ctx>,
    fields: Extension<Fields>,
    name: Path<String>,
) -> Response {
    queue(QueueAction::Scale, state, ctx, fields, name).await
}

async fn queue(
    action: QueueAction,
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Extension(fields): Extension<Fields>,
    Path(name): Path<String>,
) -> Response {
    let node = fields.get("node").map(str::trim).filter(|n| !n.is_empty());
    let scope = node.map_or_else(|| "every node".to_owned(), |n| format!("node {n}"));
    let admin = app.admin();
    let (result, message) = match action {
        QueueAction::Pause => (
            admin.pause(&name, node).await,
            format!("Asked {scope} to pause queue {name}."),
        ),
        QueueAction::Resume => (
            admin.resume(&name, node).await,
            format!("Asked {scope} to resume queue {name}."),
        ),
        QueueAction::Scale => {
            let limit = match fields.get("limit").map(str::trim).map(str::parse::<u32>) {
                Some(Ok(limit)) if limit > 0 => limit,
                _ => {
                    return reply::problem(
                        &ctx,
                        StatusCode::BAD_REQUEST,
                        "the limit must be a whole number of at least 1 (pause a queue to stop it)",
                    );
                }
            };
            (
                admin.scale(&name, limit, node).await,
                format!("Asked {scope} to scale queue {name} to {limit}."),
            )
        }
    };
    match result {
        Ok(()) => reply::done(&ctx, fields.get("back"), "/queues", &message, None),
        Err(error) => reply::failed(&ctx, &error),
    }
}

/// `POST /queues/{name}/limits`: replaces the queue's limits across the fleet.
pub(crate) async fn set_limits(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Extension(fields): Extension<Fields>,
    Path(name): Path<String>,
) -> Response {
    let limits = match limits_of(&fields) {
        Ok(limits) => limits,
        Err(why) => return reply::problem(&ctx, StatusCode::BAD_REQUEST, &why),
    };
    if limits.is_empty() {
        return reply::problem(
            &ctx,
            StatusCode::BAD_REQUEST,
            "no limit given: fill in a global limit or a rate (or clear the limits)",
        );
    }
    if let Err(error) = limits.check(&name) {
        return reply::failed(&ctx, &error);
    }
    let message = format!("Set the limits of queue {name} to {limits} on every node.");
    match app.admin().set_queue_limits(&name, limits).await {
        Ok(()) => reply::done(&ctx, fields.get("back"), "/queues", &message, None),
        Err(error) => reply::failed(&ctx, &error),
    }
}

/// `POST /queues/{name}/limits/clear`: removes the queue's limits across the fleet.
pub(crate) async fn clear_limits(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Extension(fields): Extension<Fields>,
    Path(name): Path<String>,
) -> Response {
    match app.admin().clear_queue_limits(&name).await {
        Ok(()) => reply::done(
            &ctx,
            fields.get("back"),
            "/queues",
            &format!("Removed the limits of queue {name} on every node."),
            None,
        ),
        Err(error) => reply::failed(&ctx, &error),
    }
}

/// The limits the form's fields describe; the error says which field is wrong.
fn limits_of(fields: &Fields) -> Result<Limits, String> {
    let field = |key: &str| fields.get(key).map(str::trim).filter(|v| !v.is_empty());
    let number = |key: &str, what: &str| -> Result<Option<u32>, String> {
        field(key)
            .map(|text| match text.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!(
                    "{what} must be a whole number of at least 1 (pause a queue to stop it)"
                )),
            })
            .transpose()
    };
    let partition = |key: &str| -> Result<Partition, String> {
        field(key).map_or(Ok(Partition::None), |text| {
            text.parse::<Partition>().map_err(|error| error.to_string())
        })
    };
    let mut limits = Limits::new();
    if let Some(allowed) = number("global", "the global limit")? {
        limits = limits.global(GlobalLimit::new(allowed).partitioned(partition("global_by")?));
    }
    if let Some(allowed) = number("rate", "the rate limit")? {
        let period = number("period", "the rate limit's period (seconds)")?
            .ok_or("a rate limit needs its period in seconds")?;
        let rate = RateLimit::new(allowed, std::time::Duration::from_secs(u64::from(period)));
        limits = limits.rate(rate.partitioned(partition("rate_by")?));
    }
    Ok(limits)
}
