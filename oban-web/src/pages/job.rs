//! `GET /jobs/{id}`: one job's facts, args and meta, its error history and a timeline of its
//! states; retry, cancel and delete for full access.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use oban_core::{Job, JobState};

use super::with_query;
use crate::app::App;
use crate::format;
use crate::guard::Ctx;
use crate::layout::{self, back_field, csrf_field, json_block, state_badge};
use crate::reply;

/// `GET /jobs/{id}`.
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<i64>,
) -> Response {
    let job = match app.admin().job(id).await {
        Ok(Some(job)) => job,
        Ok(None) => return reply::not_found(&ctx, &format!("job {id}")),
        Err(error) => return reply::failed(&ctx, &error),
    };
    let now = Utc::now();
    let title = format!("Job {} · {}", job.id, job.worker);
    let body = html! {
        div #job data-live {
            h1 { "Job " (job.id) " " span.muted { (job.worker) } " " (state_badge(job.state)) }
            @if ctx.access.can_act() { (actions(&ctx, &job)) }
            div.grid2 {
                section.panel {
                    h2 { "Details" }
                    (facts(&ctx, &job, now))
                }
                section.panel {
                    h2 { "Timeline" }
                    (timeline(&job, now))
                }
            }
            section.panel {
                h2 { "Args" }
                (json_block(&job.args))
            }
            @match oban_core::recorded::decode_meta(&job.meta) {
                Ok(Some(value)) => section.panel #recorded {
                    h2 { "Recorded result" }
                    (json_block(&value))
                },
                Ok(None) => {},
                Err(error) => section.panel #recorded {
                    h2 { "Recorded result" }
                    p.reason { (error.to_string()) }
                },
            }
            section.panel {
                h2 { "Meta" }
                (json_block(&job.meta))
            }
            section.panel #errors {
                h2 { "Errors (" (job.errors.len()) ")" }
                @if job.errors.is_empty() {
                    (layout::empty("No attempt has failed."))
                } @else {
                    @for error in job.errors.iter().rev() {
                        div.attempt {
                            p {
                                strong { "Attempt " (error.attempt) } " · "
                                @match error_time(&error.at) {
                                    Some(at) => span.muted title=(error.at) { (format::timestamp(at)) " · " (format::relative(at, now)) },
                                    None => span.muted { (error.at) },
                                }
                            }
                            pre.error { (error.error) }
                        }
                    }
                }
            }
        }
    };
    layout::page(&ctx, &title, "jobs", app.config.refresh.as_secs(), body).into_response()
}

fn facts(ctx: &Ctx, job: &Job, now: DateTime<Utc>) -> Markup {
    let at = |t: Option<DateTime<Utc>>| match t {
        Some(t) => html! { span title=(format::timestamp(t)) { (format::relative(t, now)) } },
        None => html! { span.muted { "—" } },
    };
    html! {
        dl.facts {
            dt { "Queue" } dd { a href=(ctx.url(&with_query("/jobs", &[("queue", &job.queue)]))) { (job.queue) } }
            dt { "Worker" } dd { a href=(ctx.url(&with_query("/jobs", &[("worker", &job.worker)]))) { (job.worker) } }
            dt { "State" } dd { (state_badge(job.state)) }
            dt { "Attempt" } dd { (job.attempt) " of " (job.max_attempts) }
            dt { "Priority" } dd { (job.priority) }
            dt { "Tags" } dd {
                @if job.tags.is_empty() { span.muted { "none" } }
                @for tag in &job.tags { a.badge href=(ctx.url(&with_query("/jobs", &[("tag", tag)]))) { (tag) } " " }
            }
            @if let Some(workflow) = job.meta.get("workflow_id").and_then(|w| w.as_str()) {
                dt { "Workflow" } dd {
                    a #workflow-link href=(ctx.url(&format!("/workflows/{}", super::segment(workflow)))) {
                        @match job.meta.get("workflow_name").and_then(|n| n.as_str()) { Some(name) => (name), None => (workflow) }
                    }
                    @if let Some(step) = job.meta.get("name").and_then(|n| n.as_str()) { span.muted { " · step " (step) } }
                }
            }
            @if let Some(sequence) = job.meta.get("sequence").and_then(|k| k.as_str()) {
                dt { "Sequence" } dd #sequence {
                    span.mono { (sequence) }
                    @if job.meta.get("sequence_hold").is_some() { span.muted { " · holds it when discarded or cancelled" } }
                }
            }
            dt { "Attempted by" } dd.mono { @if job.attempted_by.is_empty() { span.muted { "—" } } @else { (job.attempted_by.join(" · ")) } }
            dt { "Inserted" } dd { (at(Some(job.inserted_at))) }
            dt { "Scheduled" } dd { (at(Some(job.scheduled_at))) }
            dt { "Attempted" } dd { (at(job.attempted_at)) }
            @if job.completed_at.is_some() { dt { "Completed" } dd { (at(job.completed_at)) } }
            @if job.discarded_at.is_some() { dt { "Discarded" } dd { (at(job.discarded_at)) } }
            @if job.cancelled_at.is_some() { dt { "Cancelled" } dd { (at(job.cancelled_at)) } }
        }
    }
}

/// When an attempt failed, from its `errors` entry: RFC 3339, or without a zone (UTC) as
/// some writers store it.
fn error_time(at: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .ok()
}

/// One entry of the timeline.
struct Step {
    at: DateTime<Utc>,
    text: String,
    class: &'static str,
}

fn timeline(job: &Job, now: DateTime<Utc>) -> Markup {
    let mut steps = vec![Step {
        at: job.inserted_at,
        text: "inserted".into(),
        class: "",
    }];
    if job.scheduled_at > job.inserted_at + chrono::Duration::milliseconds(1) {
        let (text, class) = if job.scheduled_at > now {
            ("scheduled to run", "future")
        } else {
            ("became available", "")
        };
        steps.push(Step {
            at: job.scheduled_at,
            text: text.into(),
            class,
        });
    }
    for error in &job.errors {
        if let Some(at) = error_time(&error.at) {
            steps.push(Step {
                at,
                text: format!("attempt {} failed", error.attempt),
                class: "bad",
            });
        }
    }
    if let Some(at) = job.attempted_at {
        let text = if job.state == JobState::Executing {
            format!("attempt {} started, running", job.attempt)
        } else {
            format!("attempt {} started", job.attempt)
        };
        steps.push(Step {
            at,
            text,
            class: "",
        });
    }
    for (at, text, class) in [
        (job.completed_at, "completed", ""),
        (job.discarded_at, "discarded", "bad"),
        (job.cancelled_at, "cancelled", "bad"),
    ] {
        if let Some(at) = at {
            steps.push(Step {
                at,
                text: text.into(),
                class,
            });
        }
    }
    steps.sort_by_key(|step| step.at);
    html! {
        ol.timeline {
            @for step in &steps {
                li class=(step.class) {
                    strong { (step.text) } br;
                    span.muted title=(format::timestamp(step.at)) { (format::timestamp(step.at)) " · " (format::relative(step.at, now)) }
                }
            }
        }
    }
}

fn actions(ctx: &Ctx, job: &Job) -> Markup {
    let back = ctx.url(&format!("/jobs/{}", job.id));
    let unfinished = matches!(
        job.state,
        JobState::Available | JobState::Scheduled | JobState::Retryable | JobState::Executing
    );
    let executing = job.state == JobState::Executing;
    html! {
        div.actions.panel {
            @if !executing && job.state != JobState::Available {
                form.inline method="post" action=(ctx.url(&format!("/jobs/{}/retry", job.id))) {
                    (csrf_field(ctx)) (back_field(&back))
                    button.primary type="submit" { "Retry" }
                }
            }
            @if unfinished {
                form.inline method="post" action=(ctx.url(&format!("/jobs/{}/cancel", job.id))) {
                    (csrf_field(ctx)) (back_field(&back))
                    button type="submit" { "Cancel" }
                }
            }
            @if !executing {
                form.inline method="post" action=(ctx.url(&format!("/jobs/{}/delete", job.id))) data-confirm=(format!("Delete job {}? This cannot be undone.", job.id)) {
                    (csrf_field(ctx)) (back_field(&ctx.url("/jobs")))
                    button.danger type="submit" { "Delete" }
                }
            }
        }
    }
}
