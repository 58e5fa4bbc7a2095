//! `GET /crons`: the cron entries seen in the last week's jobs (whichever node or language
//! inserted them), with their last and next runs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::Utc;
use maud::html;

use super::with_query;
use crate::app::App;
use crate::format;
use crate::guard::Ctx;
use crate::layout;
use crate::reply;

/// How far back jobs are read for cron entries: a weekly entry shows.
const WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// `GET /crons`.
pub(crate) async fn page(State(app): State<Arc<App>>, Extension(ctx): Extension<Ctx>) -> Response {
    let entries = match app.admin().cron(WINDOW).await {
        Ok(entries) => entries,
        Err(error) => return reply::failed(&ctx, &error),
    };
    let now = Utc::now();
    let body = html! {
        h1 { "Crons" }
        div.panel #crons data-live {
            @if entries.is_empty() {
                (layout::empty("No cron entry inserted a job in the last 7 days."))
            } @else {
                table {
                    thead { tr {
                        th { "Worker" } th { "Queue" } th { "Expression" } th { "Time zone" }
                        th { "Last run" } th { "Next run" } th.num { "Jobs (7 days)" }
                    } }
                    tbody {
                        @for entry in &entries {
                            tr {
                                td {
                                    a href=(ctx.url(&with_query("/jobs", &[("worker", &entry.worker), ("queue", &entry.queue)]))) { (entry.worker) }
                                    @if let Some(name) = &entry.name { br; span.note { (name) } }
                                }
                                td { (entry.queue) }
                                td.mono { @match &entry.expression { Some(e) => (e), None => span.muted { "unknown" } } }
                                td { (entry.timezone.as_deref().unwrap_or("UTC")) }
                                td title=(format::timestamp(entry.last_inserted_at)) { (format::relative(entry.last_inserted_at, now)) }
                                td { @match entry.next_run_at {
                                    Some(next) => span title=(format::timestamp(next)) { (format::relative(next, now)) },
                                    None => span.muted { "—" },
                                } }
                                td.num { (format::count(entry.jobs)) }
                            }
                        }
                    }
                }
            }
        }
        p.note { "Entries are read from the meta cron schedulers write on their jobs (this runtime, Elixir and Python Oban alike): an entry appears once it has inserted a job within the last 7 days." }
    };
    layout::page(&ctx, "Crons", "crons", app.config.refresh.as_secs(), body).into_response()
}
