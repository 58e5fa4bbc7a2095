//! `GET /jobs`: jobs newest first, by state (with each state's count), filtered by queue,
//! worker, tag, args, inserted time and a free-text search, in keyset pages
//! (`before=<id>`: the page's cost does not grow with how deep it is); selection and bulk
//! retry, cancel and delete for full access.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use oban_core::admin::{JobQuery, QueueOverview};
use oban_core::{Job, JobFilter, JobState};
use serde::Deserialize;

use super::{state_total, with_query};
use crate::app::App;
use crate::format;
use crate::guard::Ctx;
use crate::layout::{self, back_field, csrf_field, state_badge};
use crate::reply;

/// Jobs per page unless `limit` says otherwise.
const PAGE: u64 = 50;
/// The most jobs a page shows.
const MAX_PAGE: u64 = 200;
/// The time ranges offered (the parameter accepts any `<n><s|m|h|d>`).
const RANGES: [(&str, &str); 5] = [
    ("", "any time"),
    ("15m", "last 15 minutes"),
    ("1h", "last hour"),
    ("24h", "last day"),
    ("7d", "last week"),
];

/// The query parameters, as a bookmark or a script writes them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    state: String,
    #[serde(default)]
    queue: String,
    #[serde(default)]
    worker: String,
    #[serde(default)]
    tag: String,
    /// Free text: the id, or part of the worker, the args or the errors.
    #[serde(default)]
    q: String,
    /// JSON the args must contain (`{"order_id": 42}`).
    #[serde(default)]
    args: String,
    /// Inserted within (`15m`, `1h`, `7d`).
    #[serde(default)]
    since: String,
    /// The keyset cursor: only jobs with a smaller id.
    before: Option<i64>,
    limit: Option<u64>,
}

impl Params {
    /// The pairs that reproduce these filters in a link, with `state` replaced.
    fn link(&self, state: &str, before: Option<i64>) -> String {
        let before = before.map(|id| id.to_string()).unwrap_or_default();
        let limit = self.limit.map(|l| l.to_string()).unwrap_or_default();
        with_query(
            "/jobs",
            &[
                ("state", state),
                ("queue", &self.queue),
                ("worker", &self.worker),
                ("tag", &self.tag),
                ("q", &self.q),
                ("args", &self.args),
                ("since", &self.since),
                ("before", &before),
                ("limit", &limit),
            ],
        )
    }

    /// The filter these parameters mean, or what is wrong with them.
    fn filter(&self) -> Result<(JobFilter, Option<Duration>), String> {
        let mut filter = JobFilter::new();
        if !self.state.is_empty() {
            let state = JobState::ALL
                .into_iter()
                .find(|s| s.as_str() == self.state)
                .ok_or_else(|| format!("`{}` is not a job state", self.state))?;
            filter = filter.state(state);
        }
        if !self.queue.trim().is_empty() {
            filter = filter.queue(self.queue.trim());
        }
        if !self.worker.trim().is_empty() {
            filter = filter.worker(self.worker.trim());
        }
        if !self.tag.trim().is_empty() {
            filter = filter.tag(self.tag.trim());
        }
        if !self.args.trim().is_empty() {
            let args: serde_json::Value = serde_json::from_str(self.args.trim()).map_err(|e| {
                format!(
                    "the args filter must be JSON the args contain, like {{\"order_id\": 42}}: {e}"
                )
            })?;
            filter = filter.args_contain(args);
        }
        if !self.q.trim().is_empty() {
            filter = filter.search(self.q.trim());
        }
        let since = match self.since.trim() {
            "" => None,
            text => Some(parse_age(text).ok_or_else(|| {
                format!(
                    "`{text}` is not a time range: write a number and a unit, like 15m, 1h or 7d"
                )
            })?),
        };
        Ok((filter, since))
    }
}

/// `15m` as 15 minutes (units s, m, h, d).
fn parse_age(text: &str) -> Option<Duration> {
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3_600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// `GET /jobs`.
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Query(params): Query<Params>,
) -> Response {
    let (filter, since) = match params.filter() {
        Ok(parsed) => parsed,
        Err(reason) => return reply::problem(&ctx, StatusCode::BAD_REQUEST, &reason),
    };
    let limit = params.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let mut query = JobQuery::new(filter).limit(limit + 1);
    if let Some(since) = since {
        query = query.since(since);
    }
    let admin = app.admin();
    let (queues, mut jobs) = match tokio::try_join!(
        admin.queues_counting(crate::app::EXACT_UP_TO),
        admin.page(&query, params.before)
    ) {
        Ok(both) => both,
        Err(error) => return reply::failed(&ctx, &error),
    };
    let older = (jobs.len() as u64 > limit).then(|| {
        jobs.truncate(limit as usize);
        jobs.last().map(|job| job.id)
    });
    let older = older.flatten();
    let here = ctx.url(&params.link(&params.state, params.before));
    let body = html! {
        h1 { "Jobs" }
        (tabs(&ctx, &params, &queues))
        (filters(&ctx, &params, &queues))
        div.panel #jobs data-live {
            @if jobs.is_empty() {
                (layout::empty("No job matches."))
            } @else {
                @if ctx.access.can_act() { (bulk_bar(&ctx, &here)) }
                (table(&ctx, &jobs))
            }
            nav.pager {
                @if params.before.is_some() { a href=(ctx.url(&params.link(&params.state, None))) { "← Newest" } }
                @if let Some(id) = older { a rel="next" href=(ctx.url(&params.link(&params.state, Some(id)))) { "Older →" } }
            }
        }
    };
    layout::page(&ctx, "Jobs", "jobs", app.config.refresh.as_secs(), body).into_response()
}

/// One tab per state with its count in the chosen queue (or every queue): the depth counts,
/// exact up to 10,000 per queue and state, estimated beyond.
fn tabs(ctx: &Ctx, params: &Params, queues: &[QueueOverview]) -> Markup {
    let in_scope = |q: &&QueueOverview| params.queue.is_empty() || q.queue == params.queue;
    html! {
        nav.tabs #state-tabs data-live aria-label="States" {
            a href=(ctx.url(&params.link("", None))) aria-current=[params.state.is_empty().then_some("page")] { "all" }
            @for state in JobState::ALL {
                @let (count, estimated) = state_total(queues.iter().filter(in_scope), state);
                a href=(ctx.url(&params.link(state.as_str(), None))) data-state=(state.as_str())
                    aria-current=[(params.state == state.as_str()).then_some("page")] {
                    (state.as_str()) span.n { @if estimated { "~" } (format::count(count)) }
                }
            }
        }
    }
}

fn filters(ctx: &Ctx, params: &Params, queues: &[QueueOverview]) -> Markup {
    html! {
        form.filters.panel #filters method="get" action=(ctx.url("/jobs")) {
            @if !params.state.is_empty() { input type="hidden" name="state" value=(params.state); }
            label { "Queue"
                select name="queue" {
                    option value="" { "every queue" }
                    @for queue in queues {
                        option value=(queue.queue) selected[queue.queue == params.queue] { (queue.queue) }
                    }
                    @if !params.queue.is_empty() && !queues.iter().any(|q| q.queue == params.queue) {
                        option value=(params.queue) selected { (params.queue) }
                    }
                }
            }
            label { "Worker" input type="text" name="worker" value=(params.worker) placeholder="MyApp.Worker"; }
            label { "Tag" input type="text" name="tag" value=(params.tag); }
            label { "Args contain" input type="text" name="args" value=(params.args) placeholder="{\"order_id\": 42}"; }
            label { "Inserted"
                select name="since" {
                    @for (value, label) in RANGES {
                        option value=(value) selected[params.since == value] { (label) }
                    }
                    @if !RANGES.iter().any(|(v, _)| *v == params.since) {
                        option value=(params.since) selected { "last " (params.since) }
                    }
                }
            }
            label { "Search" input type="search" name="q" value=(params.q) placeholder="id, worker, args or error text"; }
            button.primary type="submit" { "Filter" }
            a href=(ctx.url(&with_query("/jobs", &[("state", &params.state)]))) { "Clear" }
        }
    }
}

fn bulk_bar(ctx: &Ctx, here: &str) -> Markup {
    html! {
        form.bulk #bulk method="post" action=(ctx.url("/jobs/retry")) {
            (csrf_field(ctx)) (back_field(here))
            span.muted { "Selected:" }
            button type="submit" formaction=(ctx.url("/jobs/retry")) { "Retry" }
            button type="submit" formaction=(ctx.url("/jobs/cancel")) { "Cancel" }
            button.danger type="submit" formaction=(ctx.url("/jobs/delete")) data-confirm="Delete the selected jobs? This cannot be undone." { "Delete" }
        }
    }
}

fn table(ctx: &Ctx, jobs: &[Job]) -> Markup {
    let now = Utc::now();
    html! {
        table.jobs {
            thead { tr {
                @if ctx.access.can_act() { th { input type="checkbox" data-select-all aria-label="Select every job of this page"; } }
                th.num { "ID" } th { "State" } th { "Worker" } th { "Queue" } th.num { "Attempt" } th { "Args" } th { "When" }
            } }
            tbody {
                @for job in jobs {
                    tr data-job=(job.id) {
                        @if ctx.access.can_act() {
                            td { input type="checkbox" name="ids" value=(job.id) form="bulk" aria-label=(format!("Select job {}", job.id)); }
                        }
                        td.num { a href=(ctx.url(&format!("/jobs/{}", job.id))) { (job.id) } }
                        td { (state_badge(job.state)) }
                        td { (job.worker) }
                        td { (job.queue) }
                        td.num { (job.attempt) "/" (job.max_attempts) }
                        td.args.mono { (format::clip(&job.args.to_string(), 160)) }
                        td.when { (when(job, now)) }
                    }
                }
            }
        }
    }
}

/// The moment that matters for the job's state, relative to now.
fn when(job: &Job, now: DateTime<Utc>) -> Markup {
    let (label, at) = match job.state {
        JobState::Executing => ("started", job.attempted_at),
        JobState::Completed => ("completed", job.completed_at),
        JobState::Discarded => ("discarded", job.discarded_at),
        JobState::Cancelled => ("cancelled", job.cancelled_at),
        JobState::Scheduled | JobState::Retryable => ("runs", Some(job.scheduled_at)),
        _ => ("inserted", Some(job.inserted_at)),
    };
    let at = at.unwrap_or(job.inserted_at);
    html! { span title=(format::timestamp(at)) { span.muted { (label) " " } (format::relative(at, now)) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_with_their_unit() {
        assert_eq!(parse_age("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_age("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("0h"), None);
        assert_eq!(parse_age("h"), None);
        assert_eq!(parse_age("5y"), None);
        assert_eq!(parse_age(""), None);
    }

    #[test]
    fn bad_parameters_say_what_is_expected() {
        let params = Params {
            state: "done".into(),
            ..Params::default()
        };
        assert!(params.filter().unwrap_err().contains("not a job state"));
        let params = Params {
            args: "{oops".into(),
            ..Params::default()
        };
        assert!(params.filter().unwrap_err().contains("JSON"));
    }
}
