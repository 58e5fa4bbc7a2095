//! `GET /workflows`: the most recent workflows, newest first by their newest step, with their
//! state, progress and steps by state, in keyset pages (`before=<job id>`).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use oban_core::admin::{WorkflowState, WorkflowSummary};
use oban_core::JobState;
use serde::Deserialize;

use super::{segment, with_query};
use crate::app::App;
use crate::format;
use crate::guard::Ctx;
use crate::layout;
use crate::reply;

/// Workflows per page unless `limit` says otherwise.
const PAGE: u32 = 30;
/// The most workflows a page shows.
const MAX_PAGE: u32 = 200;

/// The query parameters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    /// The keyset cursor: only workflows whose newest step has a smaller id.
    before: Option<i64>,
    limit: Option<u32>,
}

/// `GET /workflows`.
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Query(params): Query<Params>,
) -> Response {
    let limit = params.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let mut workflows = match app.admin().workflows(params.before, limit + 1).await {
        Ok(workflows) => workflows,
        Err(error) => return reply::failed(&ctx, &error),
    };
    let older = (workflows.len() > limit as usize).then(|| {
        workflows.truncate(limit as usize);
        workflows.last().map(|w| w.last_job_id)
    });
    let link = |before: Option<i64>| {
        let before = before.map(|id| id.to_string()).unwrap_or_default();
        let limit = params.limit.map(|l| l.to_string()).unwrap_or_default();
        ctx.url(&with_query(
            "/workflows",
            &[("before", &before), ("limit", &limit)],
        ))
    };
    let body = html! {
        h1 { "Workflows" }
        div.panel #workflows data-live {
            @if workflows.is_empty() {
                (layout::empty("No workflow."))
            } @else {
                (table(&ctx, &workflows))
            }
            nav.pager {
                @if params.before.is_some() { a href=(link(None)) { "← Newest" } }
                @if let Some(Some(id)) = older { a rel="next" href=(link(Some(id))) { "Older →" } }
            }
        }
    };
    layout::page(
        &ctx,
        "Workflows",
        "workflows",
        app.config.refresh.as_secs(),
        body,
    )
    .into_response()
}

/// A table of workflows (also the sub-workflows of a workflow's page).
pub(crate) fn table(ctx: &Ctx, workflows: &[WorkflowSummary]) -> Markup {
    let now = Utc::now();
    html! {
        table.workflows {
            thead { tr {
                th { "Workflow" } th { "State" } th.num { "Done" } th { "Steps by state" } th { "Started" } th { "Finished" }
            } }
            tbody {
                @for workflow in workflows {
                    tr data-workflow=(workflow.id) {
                        td {
                            a href=(ctx.url(&format!("/workflows/{}", segment(&workflow.id)))) {
                                @match &workflow.name { Some(name) => (name), None => span.mono { (workflow.id) } }
                            }
                            @if workflow.name.is_some() { br; span.muted.mono { (workflow.id) } }
                            @if let Some(parent) = &workflow.sup_workflow_id {
                                br; span.muted { "sub-workflow of " a href=(ctx.url(&format!("/workflows/{}", segment(parent)))) { (parent) } }
                            }
                        }
                        td { (state_badge(workflow.state)) }
                        td.num { (workflow.counts.completed) "/" (workflow.total) }
                        td { (counts(workflow)) }
                        td.when { (at(workflow.started_at, now)) }
                        td.when { (at(workflow.finished_at, now)) }
                    }
                }
            }
        }
    }
}

/// A workflow's state as a badge, coloured like the job state it resembles.
pub(crate) fn state_badge(state: WorkflowState) -> Markup {
    html! { span class=(format!("badge wf-{}", state.as_str())) { (state.as_str()) } }
}

/// The non-zero counts as small badges: `3 completed`.
pub(crate) fn counts(workflow: &WorkflowSummary) -> Markup {
    html! {
        span.counts {
            @for state in JobState::ALL {
                @let n = workflow.counts.get(state);
                @if n > 0 {
                    span class=(format!("badge state-{state}")) { (format::count(n)) " " (state) } " "
                }
            }
        }
    }
}

fn at(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    match at {
        Some(at) => html! { span title=(format::timestamp(at)) { (format::relative(at, now)) } },
        None => html! { span.muted { "—" } },
    }
}
