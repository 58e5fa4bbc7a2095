//! `GET /`: jobs by state across every queue, the last hour's throughput and latencies, the
//! workers failing most, and a line per queue.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use oban_core::admin::{FailingWorker, QueueOverview};
use oban_core::JobState;

use super::{state_total, with_query, Load};
use crate::app::App;
use crate::format;
use crate::guard::Ctx;
use crate::layout;
use crate::reply;

/// The window of the failing workers.
const HOUR: Duration = Duration::from_secs(3600);

/// `GET /`.
pub(crate) async fn page(State(app): State<Arc<App>>, Extension(ctx): Extension<Ctx>) -> Response {
    let admin = app.admin();
    let (queues, failing) = match tokio::try_join!(
        admin.queues_counting(crate::app::EXACT_UP_TO),
        admin.failing(HOUR, 1)
    ) {
        Ok(both) => both,
        Err(error) => return reply::failed(&ctx, &error),
    };
    let body = html! {
        h1 { "Overview" @if let Some(node) = &app.source.node { " " span.muted { "· node " (node) } } }
        div #totals data-live { (totals(&ctx, &queues)) }
        (charts(&app))
        div.grid2 {
            section.panel #failing data-live {
                h2 { "Failing in the last hour" }
                (failing_table(&ctx, &failing))
            }
            section.panel #queue-summary data-live {
                h2 { a href=(ctx.url("/queues")) { "Queues" } }
                (queue_summary(&ctx, &queues))
            }
        }
    };
    layout::page(
        &ctx,
        "Overview",
        "overview",
        app.config.refresh.as_secs(),
        body,
    )
    .into_response()
}

fn totals(ctx: &Ctx, queues: &[QueueOverview]) -> Markup {
    html! {
        div.tiles {
            @for state in JobState::ALL {
                @let (count, estimated) = state_total(queues, state);
                a.tile href=(ctx.url(&with_query("/jobs", &[("state", state.as_str())]))) data-state=(state.as_str()) {
                    div.label { (state.as_str()) }
                    div.value { @if estimated { "~" } (format::count(count)) }
                }
            }
        }
    }
}

fn failing_table(ctx: &Ctx, failing: &[FailingWorker]) -> Markup {
    if failing.is_empty() {
        return layout::empty("No job failed in the last hour.");
    }
    html! {
        table {
            thead { tr { th { "Worker and its most frequent error" } th { "Queue" } th.num { "Retryable" } th.num { "Discarded" } } }
            tbody {
                @for worker in failing.iter().take(10) {
                    tr {
                        td {
                            a href=(ctx.url(&with_query("/jobs", &[("worker", &worker.worker), ("state", "retryable")]))) { (worker.worker) }
                            // Its first line: the rest is on the jobs' pages.
                            @if let Some(error) = worker.errors.first() {
                                div.error-text title=(error.message) { (format::clip(error.message.lines().next().unwrap_or_default(), 120)) }
                            }
                        }
                        td { (worker.queue) }
                        td.num { (format::count(worker.retryable)) }
                        td.num { (format::count(worker.discarded)) }
                    }
                }
            }
        }
    }
}

fn queue_summary(ctx: &Ctx, queues: &[QueueOverview]) -> Markup {
    if queues.is_empty() {
        return layout::empty("No queue yet.");
    }
    html! {
        table {
            thead { tr { th { "Queue" } th.num { "Running / limit" } th.num { "Available" } th { "Oldest waiting" } } }
            tbody {
                @for queue in queues {
                    @let load = Load::of(queue);
                    tr {
                        td {
                            a href=(ctx.url(&with_query("/jobs", &[("queue", &queue.queue)]))) { (queue.queue) }
                            @if load.paused { " " span.badge.paused { "paused" } }
                        }
                        td.num {
                            (load.running) " / " (load.limit)
                        }
                        td.num { (format::count(queue.count(JobState::Available))) }
                        td { @match queue.oldest_available { Some(age) => (format::duration(age)), None => span.muted { "—" } } }
                    }
                }
            }
        }
    }
}

/// The last hour's throughput and latencies, from the node's job events (see `charts/`).
fn charts(app: &App) -> Markup {
    html! {
        section.panel #charts data-live {
            @match &app.source.recorder {
                Some(recorder) => {
                    @let snapshot = recorder.snapshot();
                    h2 { "Last hour on this node" }
                    (crate::throughput_chart(&snapshot))
                    (crate::latency_table(&snapshot))
                    p.note { "Kept in memory from this node's job events since it started (other nodes keep their own): completed jobs are pruned from the table and no index serves \"finished in the last hour\", so the table is never scanned for these." }
                }
                None => {
                    h2 { "Last hour" }
                    p.note { "Charts are kept in memory from a node's job events: mount the dashboard in a running node (`oban_web::router(&oban, ..)`) to see them." }
                }
            }
        }
    }
}
