//! `GET /queues`: every queue with its depth by state, its oldest waiting job, and each node's
//! limit, running jobs and pause; pause, resume and scale for full access.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use oban_core::admin::{NodeQueue, QueueOverview};
use oban_core::JobState;

use super::{segment, with_query, Load};
use crate::app::App;
use crate::format;
use crate::guard::Ctx;
use crate::layout::{self, back_field, csrf_field};
use crate::reply;

/// The states shown as columns, in lifecycle order.
pub(crate) const COLUMNS: [JobState; 6] = [
    JobState::Available,
    JobState::Scheduled,
    JobState::Executing,
    JobState::Retryable,
    JobState::Discarded,
    JobState::Completed,
];

/// `GET /queues`.
pub(crate) async fn page(State(app): State<Arc<App>>, Extension(ctx): Extension<Ctx>) -> Response {
    let queues = match app.admin().queues_counting(crate::app::EXACT_UP_TO).await {
        Ok(queues) => queues,
        Err(error) => return reply::failed(&ctx, &error),
    };
    let body = html! {
        h1 { "Queues" }
        div.panel #queues data-live {
            @if queues.is_empty() {
                (layout::empty("No queue has jobs or running nodes yet."))
            } @else {
                (table(&ctx, &queues))
            }
        }
        p.note { "Depths are exact up to 10,000 jobs per queue and state; beyond that (marked ~) they are PostgreSQL's estimate. Nodes are as their last heartbeat reported them." }
    };
    layout::page(&ctx, "Queues", "queues", app.config.refresh.as_secs(), body).into_response()
}

fn table(ctx: &Ctx, queues: &[QueueOverview]) -> Markup {
    html! {
        table.queues {
            thead { tr {
                th { "Queue" }
                th { "Nodes" }
                th.num { "Running / limit" }
                @for state in COLUMNS { th.num { (state.as_str()) } }
                th { "Oldest waiting" }
                @if ctx.access.can_act() { th { "Actions" } }
            } }
            tbody {
                @for queue in queues {
                    (queue_row(ctx, queue))
                    @for node in &queue.nodes {
                        (node_row(ctx, &queue.queue, node))
                    }
                }
            }
        }
    }
}

fn queue_row(ctx: &Ctx, queue: &QueueOverview) -> Markup {
    let Load {
        running,
        limit,
        paused,
    } = Load::of(queue);
    let per_node = queue
        .nodes
        .iter()
        .map(|n| u64::from(n.limit))
        .max()
        .unwrap_or(1);
    html! {
        tr.queue data-queue=(queue.queue) {
            td {
                a href=(ctx.url(&with_query("/jobs", &[("queue", &queue.queue)]))) { strong { (queue.queue) } }
                @if paused { " " span.badge.paused { "paused" } }
            }
            td { (queue.nodes.len()) }
            td.num { (running) " / " (limit) }
            @for state in COLUMNS {
                td.num {
                    @let tally = queue.states.iter().find(|s| s.state == state);
                    @match tally {
                        Some(t) => {
                            a href=(ctx.url(&with_query("/jobs", &[("queue", &queue.queue), ("state", state.as_str())]))) {
                                @if !t.exact { "~" } (format::count(t.count))
                            }
                        }
                        None => span.muted { "0" },
                    }
                }
            }
            td { @match queue.oldest_available { Some(age) => (format::duration(age)), None => span.muted { "—" } } }
            @if ctx.access.can_act() {
                td.actions { (controls(ctx, &queue.queue, None, paused, per_node)) }
            }
        }
    }
}

fn node_row(ctx: &Ctx, queue: &str, node: &NodeQueue) -> Markup {
    html! {
        tr.node data-node=(node.node) {
            td { span.muted { "↳ " (node.node) } @if node.paused { " " span.badge.paused { "paused" } } }
            td.muted.note { "heartbeat " (format::duration(node.heartbeat_age)) " ago" }
            td.num { (node.running) " / " (node.limit) }
            td colspan=(COLUMNS.len() + 1) {}
            @if ctx.access.can_act() {
                td.actions { (controls(ctx, queue, Some(&node.node), node.paused, u64::from(node.limit))) }
            }
        }
    }
}

/// Pause or resume, and scale, for a queue on every node (`node` none) or one.
fn controls(ctx: &Ctx, queue: &str, node: Option<&str>, paused: bool, limit: u64) -> Markup {
    let base = format!("/queues/{}", segment(queue));
    let (verb, label) = if paused {
        ("resume", "Resume")
    } else {
        ("pause", "Pause")
    };
    let scope = node.map_or_else(|| "all nodes".to_owned(), |n| format!("node {n}"));
    html! {
        form.inline method="post" action=(ctx.url(&format!("{base}/{verb}"))) {
            (csrf_field(ctx)) (back_field(&ctx.url("/queues")))
            @if let Some(node) = node { input type="hidden" name="node" value=(node); }
            button type="submit" title=(format!("{label} {queue} on {scope}")) { (label) }
        }
        " "
        form.inline method="post" action=(ctx.url(&format!("{base}/scale"))) {
            (csrf_field(ctx)) (back_field(&ctx.url("/queues")))
            @if let Some(node) = node { input type="hidden" name="node" value=(node); }
            input type="number" name="limit" min="1" required value=(limit.max(1)) aria-label=(format!("New limit for {queue} on {scope}"));
            button type="submit" { "Scale" }
        }
    }
}
