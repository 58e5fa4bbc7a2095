//! `GET /workflows/{id}`: one workflow: its facts, its graph laid out in layers by dependency
//! depth (an inline SVG drawn here, no script), every step with a link to its job, its
//! sub-workflows, and its Mermaid text; cancel and retry for full access.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped};
use oban_core::admin::{Node, WorkflowStatus};
use oban_core::JobState;

use super::segment;
use super::workflows::{counts, state_badge};
use crate::app::App;
use crate::format;
use crate::guard::Ctx;
use crate::layout::{self, back_field, csrf_field};
use crate::reply;

/// The most boxes the graph draws; a bigger workflow shows its table and Mermaid text only.
const MAX_BOXES: usize = 300;
/// A box's size and the gaps between boxes and layers, in the drawing's units (pixels).
const BOX_W: usize = 170;
const BOX_H: usize = 44;
const GAP_X: usize = 24;
const GAP_Y: usize = 56;
const PAD: usize = 12;
/// The characters of a name a box shows.
const NAME_CHARS: usize = 22;

/// `GET /workflows/{id}`.
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    let status = match app.admin().workflow(&id).await {
        Ok(Some(status)) => status,
        Ok(None) => return reply::not_found(&ctx, &format!("workflow {id}")),
        Err(error) => return reply::failed(&ctx, &error),
    };
    let summary = &status.summary;
    let title = match &summary.name {
        Some(name) => format!("Workflow {name}"),
        None => format!("Workflow {}", summary.id),
    };
    let now = Utc::now();
    let body = html! {
        div #workflow data-live {
            h1 { (title) " " (state_badge(summary.state)) }
            @if ctx.access.can_act() { (actions(&ctx, &status)) }
            section.panel {
                h2 { "Details" }
                (facts(&ctx, &status, now))
            }
            section.panel #graph {
                h2 { "Graph" }
                (graph(&ctx, &status))
            }
            section.panel #steps {
                h2 { "Steps (" (status.steps.len()) ")" }
                (steps(&ctx, &status))
            }
            @if !status.sub_workflows.is_empty() {
                section.panel #sub-workflows {
                    h2 { "Sub-workflows (" (status.sub_workflows.len()) ")" }
                    @let subs: Vec<_> = status.sub_workflows.iter().map(|s| s.summary.clone()).collect();
                    (super::workflows::table(&ctx, &subs))
                }
            }
            section.panel #mermaid {
                details {
                    summary { "Mermaid" }
                    p.note { "Paste into any Mermaid renderer; " code { "oban workflow ID --mermaid" } " prints the same." }
                    pre.json { (status.to_mermaid()) }
                }
            }
        }
    };
    layout::page(
        &ctx,
        &title,
        "workflows",
        app.config.refresh.as_secs(),
        body,
    )
    .into_response()
}

fn facts(ctx: &Ctx, status: &WorkflowStatus, now: DateTime<Utc>) -> Markup {
    let summary = &status.summary;
    let at = |t: Option<DateTime<Utc>>| match t {
        Some(t) => html! { span title=(format::timestamp(t)) { (format::relative(t, now)) } },
        None => html! { span.muted { "—" } },
    };
    html! {
        dl.facts {
            dt { "ID" } dd.mono { (summary.id) }
            @if let Some(name) = &summary.name { dt { "Name" } dd { (name) } }
            @if let Some(parent) = &summary.sup_workflow_id {
                dt { "Sub-workflow of" }
                dd { a href=(ctx.url(&format!("/workflows/{}", segment(parent)))) { (parent) }
                     @if let Some(sub_name) = &status.sub_name { span.muted { " as " (sub_name) } } }
            }
            dt { "State" } dd { (state_badge(summary.state)) }
            dt { "Steps" } dd { (summary.counts.completed) " of " (summary.total) " completed " (counts(summary)) }
            dt { "Inserted" } dd { (at(Some(summary.inserted_at))) }
            dt { "Started" } dd { (at(summary.started_at)) }
            dt { "Finished" } dd { (at(summary.finished_at)) }
        }
    }
}

fn steps(ctx: &Ctx, status: &WorkflowStatus) -> Markup {
    html! {
        table.steps {
            thead { tr {
                th.num { "Job" } th { "Step" } th { "State" } th { "Worker" } th { "Queue" } th { "Depends on" } th.num { "Attempt" } th { "Last error" }
            } }
            tbody {
                @for step in &status.steps {
                    tr data-step=(step.name) {
                        td.num { a href=(ctx.url(&format!("/jobs/{}", step.job_id))) { (step.job_id) } }
                        td { (step.name) }
                        td { (layout::state_badge(step.state)) }
                        td { (step.worker) }
                        td { (step.queue) }
                        td {
                            @for (i, dep) in step.deps.iter().enumerate() {
                                @if i > 0 { ", " }
                                @match dep.workflow_id() {
                                    Some(other) if other != status.summary.id => a href=(ctx.url(&format!("/workflows/{}", segment(other)))) { (dep.to_string()) },
                                    _ => span { (dep.to_string()) },
                                }
                            }
                        }
                        td.num { (step.attempt) "/" (step.max_attempts) }
                        td.error-text { (step.last_error.as_deref().map(|e| format::clip(e, 120)).unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

/// Whether some step of the workflow or of its sub-workflows is in one of `states`.
fn any_in(status: &WorkflowStatus, states: &[JobState]) -> bool {
    states.iter().any(|s| status.summary.counts.get(*s) > 0)
        || status.sub_workflows.iter().any(|sub| any_in(sub, states))
}

fn actions(ctx: &Ctx, status: &WorkflowStatus) -> Markup {
    let path = format!("/workflows/{}", segment(&status.summary.id));
    let back = ctx.url(&path);
    let unfinished = any_in(
        status,
        &[
            JobState::Available,
            JobState::Scheduled,
            JobState::Suspended,
            JobState::Executing,
            JobState::Retryable,
        ],
    );
    let failed = any_in(status, &[JobState::Cancelled, JobState::Discarded]);
    html! {
        @if unfinished || failed {
            div.actions.panel {
                @if failed {
                    form.inline method="post" action=(ctx.url(&format!("{path}/retry"))) {
                        (csrf_field(ctx)) (back_field(&back))
                        button.primary type="submit" { "Retry failed steps" }
                    }
                }
                @if unfinished {
                    form.inline method="post" action=(ctx.url(&format!("{path}/cancel"))) data-confirm="Cancel every unfinished step of this workflow and of its sub-workflows?" {
                        (csrf_field(ctx)) (back_field(&back))
                        button.danger type="submit" { "Cancel workflow" }
                    }
                }
            }
        }
    }
}

/// The workflow drawn in layers by dependency depth: a box per step (a link to its job) and per
/// sub-workflow (a link to its page), an arrow from each dependency to the box that waits.
fn graph(ctx: &Ctx, status: &WorkflowStatus) -> Markup {
    let layers = status.layers();
    let boxes: usize = layers.layers.iter().map(Vec::len).sum();
    if boxes > MAX_BOXES {
        return html! { p.note { "The graph of " (boxes) " steps is not drawn here: see the table below, or the Mermaid text." } };
    }
    let widest = layers.layers.iter().map(Vec::len).max().unwrap_or(0);
    let width = PAD * 2 + widest * BOX_W + widest.saturating_sub(1) * GAP_X;
    let height =
        PAD * 2 + layers.layers.len() * BOX_H + layers.layers.len().saturating_sub(1) * GAP_Y;
    let mut place = std::collections::HashMap::new();
    for (depth, layer) in layers.layers.iter().enumerate() {
        let row = layer.len() * BOX_W + layer.len().saturating_sub(1) * GAP_X;
        let left = PAD + (width - PAD * 2 - row) / 2;
        for (i, node) in layer.iter().enumerate() {
            place.insert(
                *node,
                (left + i * (BOX_W + GAP_X), PAD + depth * (BOX_H + GAP_Y)),
            );
        }
    }
    let mut paths = String::new();
    for (from, to) in &layers.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (place.get(from), place.get(to)) else {
            continue;
        };
        let (x1, y1) = (x1 + BOX_W / 2, y1 + BOX_H);
        let (x2, y2) = (x2 + BOX_W / 2, y2);
        let bend = GAP_Y / 2;
        let _ = write!(
            paths,
            "<path d=\"M{x1} {y1} C{x1} {} {x2} {} {x2} {}\"></path>",
            y1 + bend,
            y2.saturating_sub(bend),
            y2.saturating_sub(2)
        );
    }
    html! {
        div.wf-graph-scroll {
            svg.wf-graph xmlns="http://www.w3.org/2000/svg" role="img" aria-label="The workflow's steps by dependency depth"
                width=(width) height=(height) viewBox=(format!("0 0 {width} {height}")) {
                defs {
                    marker #wf-arrow viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                        path d="M0 0 L10 5 L0 10 z" {}
                    }
                }
                g.wf-edges { (PreEscaped(paths)) }
                @for layer in &layers.layers {
                    @for node in layer {
                        @let (x, y) = place[node];
                        (graph_box(ctx, status, *node, x, y))
                    }
                }
            }
        }
    }
}

fn graph_box(ctx: &Ctx, status: &WorkflowStatus, node: Node, x: usize, y: usize) -> Markup {
    let (href, name, state, class) = match node {
        Node::Step(i) => {
            let step = &status.steps[i];
            (
                format!("/jobs/{}", step.job_id),
                step.name.clone(),
                step.state.as_str(),
                format!("wf-box state-{}", step.state),
            )
        }
        Node::Sub(i) => {
            let sub = &status.sub_workflows[i];
            let name = sub
                .sub_name
                .clone()
                .or_else(|| sub.summary.name.clone())
                .unwrap_or_else(|| sub.summary.id.clone());
            (
                format!("/workflows/{}", segment(&sub.summary.id)),
                name,
                sub.summary.state.as_str(),
                format!("wf-box wf-sub wf-{}", sub.summary.state),
            )
        }
        _ => return html! {},
    };
    html! {
        a class=(class) href=(ctx.url(&href)) {
            title { (name) " · " (state) }
            rect x=(x) y=(y) width=(BOX_W) height=(BOX_H) rx="6" {}
            text.wf-name x=(x + BOX_W / 2) y=(y + 18) text-anchor="middle" { (format::clip(&name, NAME_CHARS)) }
            text.wf-state x=(x + BOX_W / 2) y=(y + 35) text-anchor="middle" {
                @if matches!(node, Node::Sub(_)) { "sub-workflow · " } (state)
            }
        }
    }
}
