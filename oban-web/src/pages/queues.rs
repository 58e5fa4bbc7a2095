//! `GET /queues`: every queue with its depth by state, its oldest waiting job, each node's
//! limit, running jobs and pause, and the queue's limits across the fleet against what they
//! count now (`global 3/10 by args:tenant_id`, `rate 57/100 per 60s`); pause, resume, scale and
//! the limits form (set, clear) for full access.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use oban_core::admin::{NodeQueue, QueueLimits, QueueOverview};
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
                th { "Fleet limits" }
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
            td.limits {
                (limits_summary(queue.limits.as_ref()))
                @if ctx.access.can_act() { (limits_form(ctx, &queue.queue, queue.limits.as_ref())) }
            }
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
            td colspan=(COLUMNS.len() + 2) {}
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

/// The queue's limits against what they count: the fullest partition's count, one line each.
fn limits_summary(limits: Option<&QueueLimits>) -> Markup {
    let Some(limits) = limits else {
        return html! { span.muted { "—" } };
    };
    html! {
        @if let Some(global) = limits.global_summary() {
            div.limit data-limit="global" title="jobs running now in the fullest partition / allowed at once on every node" { "global " (global) }
        }
        @if let Some(rate) = limits.rate_summary() {
            div.limit data-limit="rate" title="starts in the window in the fullest partition / allowed per period on every node" { "rate " (rate) }
        }
    }
}

/// Setting (replacing) or clearing the queue's limits on every node; the fields hold the
/// current limits.
fn limits_form(ctx: &Ctx, queue: &str, limits: Option<&QueueLimits>) -> Markup {
    let base = format!("/queues/{}/limits", segment(queue));
    let stored = limits.map(|l| &l.limits);
    let global = stored.and_then(|l| l.global.as_ref());
    let rate = stored.and_then(|l| l.rate.as_ref());
    let by = |partition: &oban_core::limits::Partition| {
        if partition.is_partitioned() {
            partition.to_string()
        } else {
            String::new()
        }
    };
    html! {
        details.limits-form {
            summary { "Change limits" }
            form.limits method="post" action=(ctx.url(&base)) {
                (csrf_field(ctx)) (back_field(&ctx.url("/queues")))
                label { "Global " input type="number" name="global" min="1" placeholder="none"
                    value=[global.map(|g| g.allowed)] aria-label=(format!("Global limit of {queue}")); }
                label { " by " input type="text" name="global_by" placeholder="worker, args:tenant_id"
                    value=(global.map(|g| by(&g.partition)).unwrap_or_default()) aria-label=(format!("Global limit partition of {queue}")); }
                br;
                label { "Rate " input type="number" name="rate" min="1" placeholder="none"
                    value=[rate.map(|r| r.allowed)] aria-label=(format!("Rate limit of {queue}")); }
                label { " per " input type="number" name="period" min="1" max="86400"
                    value=(rate.map_or(60, |r| r.period.as_secs())) aria-label=(format!("Rate limit period of {queue} in seconds")); " s" }
                label { " by " input type="text" name="rate_by" placeholder="worker, args:tenant_id"
                    value=(rate.map(|r| by(&r.partition)).unwrap_or_default()) aria-label=(format!("Rate limit partition of {queue}")); }
                br;
                button type="submit" data-confirm=(format!("Set the limits of queue {queue} on every node?")) { "Set limits" }
            }
            @if limits.is_some() {
                form.inline method="post" action=(ctx.url(&format!("{base}/clear"))) {
                    (csrf_field(ctx)) (back_field(&ctx.url("/queues")))
                    button type="submit" data-confirm=(format!("Remove the limits of queue {queue} on every node?")) { "Clear limits" }
                }
            }
        }
    }
}
