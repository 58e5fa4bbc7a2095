//! Workflows as the operator sees them: the most recent ones ([`Admin::workflows`]), one with
//! its steps and sub-workflows ([`Admin::workflow`], drawn by [`WorkflowStatus::to_mermaid`]),
//! and cancelling or retrying one ([`Admin::cancel_workflow`], [`Admin::retry_workflow`]).
//!
//! Everything is read from the stored layout of workflows (the steps' `meta`: `workflow_id`,
//! `workflow_name`, `name`, `deps`, `sup_workflow_id`, `sub_name`), as Elixir Oban Pro writes it
//! too. One step's file: `step.rs`; the graph: `mermaid.rs` and `layers.rs`.
//!
//! # A workflow's state
//!
//! [`WorkflowState`] is decided from its steps' states, in this order:
//!
//! 1. `running`: some step is available, scheduled, executing or retryable (it will run, or is);
//! 2. `suspended`: nothing runs, and some step is suspended: it waits for dependencies that
//!    nothing in this workflow will finish (a step of another workflow, or a release that has
//!    not happened yet);
//! 3. `completed`: every step completed;
//! 4. `discarded`: every step finished, and some was discarded (the failure at the root of the
//!    cancellations that usually follow it);
//! 5. `cancelled`: every step finished, some cancelled, none discarded.
//!
//! # What each call costs
//!
//! [`Admin::workflows`] walks the workflow steps newest first (the primary key from its end,
//! [`Engine::workflow_recent_steps`](crate::engine::Engine::workflow_recent_steps), 1,000 rows a
//! statement) until it has found `limit` workflows, then counts those workflows' steps through
//! the workflow index ([`Engine::workflow_tally`](crate::engine::Engine::workflow_tally)): it
//! reads the steps of the workflows it lists, never the whole table. [`Admin::workflow`] reads
//! the workflow's steps through the index (at most [`MAX_STEPS`]), and finds its sub-workflows
//! among the workflows its steps depend on and in the 1,000 rows after its first step.

mod layers;
mod mermaid;
mod step;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Admin, JobQuery};
use crate::engine::WorkflowTally;
use crate::error::Result;
use crate::filter::JobFilter;
use crate::job::JobState;

pub use layers::{Layers, Node, Source};
pub use step::{StepDep, WorkflowStep};

/// The most steps [`Admin::workflow`] reads of one workflow.
pub const MAX_STEPS: u32 = 10_000;

/// How many job rows after a workflow's first step are searched for its sub-workflows, besides
/// those its steps depend on.
const SUB_WINDOW: u32 = 1_000;

/// How deep sub-workflows of sub-workflows are read.
const MAX_DEPTH: usize = 4;

/// How many rows one step of the walk of [`Admin::workflows`] reads.
const WALK_BATCH: u32 = 1_000;

/// How many unfinished steps one statement of [`Admin::cancel_workflow`] cancels.
const CANCEL_BATCH: u32 = 1_000;

/// Where a workflow is, from its steps' states (see the module's docs for the rules). JSON: a
/// lowercase string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum WorkflowState {
    /// Some step is available, scheduled, executing or retryable.
    Running,
    /// Nothing runs; some step waits (suspended) for dependencies.
    Suspended,
    /// Every step completed.
    Completed,
    /// Every step finished and some was cancelled, none discarded.
    Cancelled,
    /// Every step finished and some was discarded.
    Discarded,
}

impl WorkflowState {
    /// The state's name (`"running"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Running => "running",
            WorkflowState::Suspended => "suspended",
            WorkflowState::Completed => "completed",
            WorkflowState::Cancelled => "cancelled",
            WorkflowState::Discarded => "discarded",
        }
    }

    /// The state of steps counted by `counts` (`None` when there is none).
    ///
    /// ```
    /// use oban_core::admin::{WorkflowCounts, WorkflowState};
    /// use oban_core::JobState;
    ///
    /// let mut counts = WorkflowCounts::default();
    /// counts.add(JobState::Completed, 2);
    /// counts.add(JobState::Suspended, 1);
    /// assert_eq!(WorkflowState::of(&counts), Some(WorkflowState::Suspended));
    /// counts.add(JobState::Executing, 1);
    /// assert_eq!(WorkflowState::of(&counts), Some(WorkflowState::Running));
    /// ```
    pub fn of(counts: &WorkflowCounts) -> Option<Self> {
        Some(if counts.total() == 0 {
            return None;
        } else if counts.available + counts.scheduled + counts.executing + counts.retryable > 0 {
            WorkflowState::Running
        } else if counts.suspended > 0 {
            WorkflowState::Suspended
        } else if counts.completed == counts.total() {
            WorkflowState::Completed
        } else if counts.discarded > 0 {
            WorkflowState::Discarded
        } else {
            WorkflowState::Cancelled
        })
    }

    /// Whether no step will run again (completed, cancelled, discarded).
    pub const fn is_finished(self) -> bool {
        matches!(
            self,
            WorkflowState::Completed | WorkflowState::Cancelled | WorkflowState::Discarded
        )
    }
}

impl std::fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workflow's steps by state. JSON: one key per state, `{"available": 0, .., "cancelled": 1}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkflowCounts {
    /// Available steps.
    pub available: u64,
    /// Scheduled steps.
    pub scheduled: u64,
    /// Suspended steps (waiting for their dependencies).
    pub suspended: u64,
    /// Executing steps.
    pub executing: u64,
    /// Retryable steps.
    pub retryable: u64,
    /// Completed steps.
    pub completed: u64,
    /// Discarded steps.
    pub discarded: u64,
    /// Cancelled steps.
    pub cancelled: u64,
}

impl WorkflowCounts {
    /// How many steps are in `state`.
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Available => self.available,
            JobState::Scheduled => self.scheduled,
            JobState::Suspended => self.suspended,
            JobState::Executing => self.executing,
            JobState::Retryable => self.retryable,
            JobState::Completed => self.completed,
            JobState::Discarded => self.discarded,
            JobState::Cancelled => self.cancelled,
        }
    }

    /// Counts `n` more steps in `state`.
    pub fn add(&mut self, state: JobState, n: u64) {
        let count = match state {
            JobState::Available => &mut self.available,
            JobState::Scheduled => &mut self.scheduled,
            JobState::Suspended => &mut self.suspended,
            JobState::Executing => &mut self.executing,
            JobState::Retryable => &mut self.retryable,
            JobState::Completed => &mut self.completed,
            JobState::Discarded => &mut self.discarded,
            JobState::Cancelled => &mut self.cancelled,
        };
        *count += n;
    }

    /// Every step.
    pub fn total(&self) -> u64 {
        JobState::ALL.iter().map(|s| self.get(*s)).sum()
    }
}

/// One workflow in a list: its name, its steps by state, its times.
///
/// JSON: `{"id": "0192..", "name": "nightly-etl", "state": "running", "counts": {..}, "total": 5,
/// "sup_workflow_id": null, "inserted_at": "..", "started_at": "..", "finished_at": null,
/// "last_job_id": 4210}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WorkflowSummary {
    /// The workflow's id (`meta.workflow_id`).
    pub id: String,
    /// Its name for humans (`meta.workflow_name`), when it has one.
    pub name: Option<String>,
    /// Where it is (see the module's docs).
    pub state: WorkflowState,
    /// Its steps by state.
    pub counts: WorkflowCounts,
    /// How many steps it has.
    pub total: u64,
    /// The workflow it is a sub-workflow of (`meta.sup_workflow_id`), if any.
    pub sup_workflow_id: Option<String>,
    /// When its first step was inserted (RFC 3339).
    pub inserted_at: DateTime<Utc>,
    /// When a step was first attempted, if one was.
    pub started_at: Option<DateTime<Utc>>,
    /// When its last step finished, once every step has (`null` while one has not).
    pub finished_at: Option<DateTime<Utc>>,
    /// The highest job id among its steps: its place in the list, and the `before` of the next
    /// page of [`Admin::workflows`].
    pub last_job_id: i64,
}

impl WorkflowSummary {
    /// The summary of one workflow's tallies (all of the same workflow; `None` when empty).
    fn from_tallies<'a>(tallies: impl IntoIterator<Item = &'a WorkflowTally>) -> Option<Self> {
        let mut tallies = tallies.into_iter().peekable();
        let first = tallies.peek()?;
        let mut summary = WorkflowSummary {
            id: first.workflow_id.clone(),
            name: None,
            state: WorkflowState::Running,
            counts: WorkflowCounts::default(),
            total: 0,
            sup_workflow_id: None,
            inserted_at: first.inserted_at,
            started_at: None,
            finished_at: None,
            last_job_id: first.last_id,
        };
        let mut finished_at = None;
        for tally in tallies {
            summary.counts.add(tally.state, tally.count);
            summary.name = summary.name.max(tally.name.clone());
            summary.sup_workflow_id = summary.sup_workflow_id.max(tally.sup_workflow_id.clone());
            summary.inserted_at = summary.inserted_at.min(tally.inserted_at);
            summary.started_at = summary
                .started_at
                .into_iter()
                .chain(tally.attempted_at)
                .min();
            finished_at = finished_at.max(tally.finished_at);
            summary.last_job_id = summary.last_job_id.max(tally.last_id);
        }
        summary.total = summary.counts.total();
        summary.state = WorkflowState::of(&summary.counts)?;
        summary.finished_at = finished_at.filter(|_| summary.state.is_finished());
        Some(summary)
    }

    /// The summary of the steps of a workflow read whole.
    fn from_steps(id: &str, jobs: &[crate::job::Job], steps: &[WorkflowStep]) -> Option<Self> {
        let tallies: Vec<WorkflowTally> = jobs
            .iter()
            .zip(steps)
            .map(|(job, step)| {
                let mut tally = WorkflowTally::new(
                    id.to_owned(),
                    step.state,
                    1,
                    step.job_id,
                    step.job_id,
                    step.inserted_at,
                );
                tally.name = step::meta_text(&job.meta, "workflow_name");
                tally.sup_workflow_id = step::meta_text(&job.meta, "sup_workflow_id");
                tally.attempted_at = step.attempted_at;
                tally.finished_at = step.finished_at;
                tally
            })
            .collect();
        Self::from_tallies(&tallies)
    }
}

/// One workflow whole: its summary, every step, and its sub-workflows (each whole in turn).
///
/// JSON: `{"summary": {..}, "sub_name": null, "steps": [..], "sub_workflows": [..]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WorkflowStatus {
    /// Its summary.
    pub summary: WorkflowSummary,
    /// The name its parent knows it by (`meta.sub_name`), for a sub-workflow.
    pub sub_name: Option<String>,
    /// Its steps, in id (insertion) order.
    pub steps: Vec<WorkflowStep>,
    /// Its sub-workflows (steps whose `meta.sup_workflow_id` is this workflow), in the order
    /// they were inserted.
    pub sub_workflows: Vec<WorkflowStatus>,
}

impl WorkflowStatus {
    /// The step named `name`, if any.
    pub fn step(&self, name: &str) -> Option<&WorkflowStep> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The sub-workflow `id`, at any depth.
    pub fn sub_workflow(&self, id: &str) -> Option<&WorkflowStatus> {
        self.sub_workflows.iter().find_map(|sub| {
            if sub.summary.id == id {
                Some(sub)
            } else {
                sub.sub_workflow(id)
            }
        })
    }

    /// This workflow's id and its sub-workflows', at any depth.
    pub fn workflow_ids(&self) -> Vec<String> {
        let mut ids = vec![self.summary.id.clone()];
        for sub in &self.sub_workflows {
            ids.extend(sub.workflow_ids());
        }
        ids
    }
}

/// What [`Admin::retry_workflow`] did. JSON: `{"suspended": 2, "released": 1}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkflowRetry {
    /// Cancelled and discarded steps moved back to `suspended`.
    pub suspended: u64,
    /// Steps the release then changed (made available or scheduled, or cancelled again).
    pub released: u64,
}

impl Admin {
    /// The most recent workflows, at most `limit`, newest first: ordered by their newest step
    /// (highest job id), only those whose newest step is below `before` when it is given. The
    /// next page is asked with the [`last_job_id`](WorkflowSummary::last_job_id) of the last
    /// workflow of this one. Sub-workflows are listed too, each naming its parent
    /// ([`sup_workflow_id`](WorkflowSummary::sup_workflow_id)).
    ///
    /// ```no_run
    /// # async fn demo(admin: oban_core::admin::Admin) -> oban_core::Result<()> {
    /// let first = admin.workflows(None, 20).await?;
    /// for workflow in &first {
    ///     println!("{} {:?} {} of {} done", workflow.id, workflow.name, workflow.counts.completed, workflow.total);
    /// }
    /// if let Some(last) = first.last() {
    ///     let next = admin.workflows(Some(last.last_job_id), 20).await?;
    ///     # let _ = next;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn workflows(&self, before: Option<i64>, limit: u32) -> Result<Vec<WorkflowSummary>> {
        let mut listed = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor = before;
        while listed.len() < limit as usize {
            let rows = self
                .engine
                .workflow_recent_steps(cursor, WALK_BATCH)
                .await?;
            let mut found = Vec::new();
            for (id, workflow) in &rows {
                cursor = Some(*id);
                if seen.insert(workflow.clone()) {
                    found.push(workflow.clone());
                }
            }
            for summary in self.summaries(&found).await? {
                // One whose newest step is at or above `before` was on an earlier page.
                if before.is_none_or(|before| summary.last_job_id < before) {
                    listed.push(summary);
                    if listed.len() == limit as usize {
                        break;
                    }
                }
            }
            if rows.len() < WALK_BATCH as usize {
                break;
            }
        }
        Ok(listed)
    }

    /// One workflow with every step (at most [`MAX_STEPS`]) and its sub-workflows; `None` when no
    /// job has this `workflow_id`.
    ///
    /// ```no_run
    /// # async fn demo(admin: oban_core::admin::Admin) -> oban_core::Result<()> {
    /// if let Some(status) = admin.workflow("0192c6c4-4f2e-7cc8-9d4b-5a4d0e1f2a3b").await? {
    ///     for step in &status.steps {
    ///         println!("{} {} {}", step.job_id, step.name, step.state);
    ///     }
    ///     println!("{}", status.to_mermaid());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn workflow(&self, id: &str) -> Result<Option<WorkflowStatus>> {
        let mut visited = HashSet::new();
        self.status(id, 0, &mut visited).await
    }

    /// Cancels every unfinished step of the workflow and of its sub-workflows, through
    /// [`Admin::cancel`] (so executing steps are stopped on their nodes); returns how many.
    ///
    /// ```no_run
    /// # async fn demo(admin: oban_core::admin::Admin) -> oban_core::Result<()> {
    /// let cancelled = admin.cancel_workflow("0192c6c4-4f2e-7cc8-9d4b-5a4d0e1f2a3b").await?;
    /// # let _ = cancelled;
    /// # Ok(()) }
    /// ```
    pub async fn cancel_workflow(&self, id: &str) -> Result<u64> {
        let mut done = 0;
        for workflow in self.family(id).await? {
            let query = JobQuery::new(JobFilter::new().workflow(workflow));
            done += self.cancel(&query, CANCEL_BATCH, &mut |_| {}).await?;
        }
        Ok(done)
    }

    /// Runs the failed part of a workflow again: its cancelled and discarded steps and those of
    /// its sub-workflows go back to `suspended` (with one more attempt where theirs are spent),
    /// then [`Engine::workflow_release`](crate::engine::Engine::workflow_release) decides again
    /// which of them run now.
    ///
    /// ```no_run
    /// # async fn demo(admin: oban_core::admin::Admin) -> oban_core::Result<()> {
    /// let retried = admin.retry_workflow("0192c6c4-4f2e-7cc8-9d4b-5a4d0e1f2a3b").await?;
    /// println!("{} steps back, {} released", retried.suspended, retried.released);
    /// # Ok(()) }
    /// ```
    pub async fn retry_workflow(&self, id: &str) -> Result<WorkflowRetry> {
        let ids = self.family(id).await?;
        let suspended = self.engine.workflow_suspend_failed(&ids).await?;
        let released = self.engine.workflow_release(&ids).await?;
        Ok(WorkflowRetry {
            suspended,
            released,
        })
    }

    /// The workflow and its sub-workflows at any depth (just `id` when it has no step).
    async fn family(&self, id: &str) -> Result<Vec<String>> {
        Ok(match self.workflow(id).await? {
            Some(status) => status.workflow_ids(),
            None => vec![id.to_owned()],
        })
    }

    /// The summaries of these workflows, in their order (those without steps left out).
    async fn summaries(&self, ids: &[String]) -> Result<Vec<WorkflowSummary>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_id: BTreeMap<&str, Vec<&WorkflowTally>> = BTreeMap::new();
        let tallies = self.engine.workflow_tally(ids).await?;
        for tally in &tallies {
            by_id.entry(&tally.workflow_id).or_default().push(tally);
        }
        Ok(ids
            .iter()
            .filter_map(|id| WorkflowSummary::from_tallies(by_id.remove(id.as_str())?))
            .collect())
    }

    fn status<'a>(
        &'a self,
        id: &'a str,
        depth: usize,
        visited: &'a mut HashSet<String>,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<WorkflowStatus>>> {
        Box::pin(async move {
            if !visited.insert(id.to_owned()) {
                return Ok(None);
            }
            let jobs = self
                .engine
                .job_list(&JobFilter::new().workflow(id), MAX_STEPS)
                .await?;
            let steps: Vec<WorkflowStep> = jobs.iter().map(WorkflowStep::from_job).collect();
            let Some(summary) = WorkflowSummary::from_steps(id, &jobs, &steps) else {
                return Ok(None);
            };
            let sub_name = jobs
                .iter()
                .find_map(|job| step::meta_text(&job.meta, "sub_name"));
            let mut sub_workflows = Vec::new();
            if depth < MAX_DEPTH {
                for sub in self.sub_ids(id, &steps).await? {
                    if let Some(status) = self.status(&sub, depth + 1, visited).await? {
                        sub_workflows.push(status);
                    }
                }
                sub_workflows.sort_by_key(|sub| sub.steps.first().map(|s| s.job_id));
            }
            Ok(Some(WorkflowStatus {
                summary,
                sub_name,
                steps,
                sub_workflows,
            }))
        })
    }

    /// The sub-workflows of `id`: the workflows its steps depend on whose steps name `id` as
    /// their parent, and those found in the rows after its first step.
    async fn sub_ids(&self, id: &str, steps: &[WorkflowStep]) -> Result<Vec<String>> {
        let mut named: Vec<String> = Vec::new();
        for dep in steps.iter().flat_map(|s| &s.deps) {
            if let Some(other) = dep.workflow_id() {
                if other != id && !named.iter().any(|n| n == other) {
                    named.push(other.to_owned());
                }
            }
        }
        let mut subs: Vec<String> = self
            .summaries(&named)
            .await?
            .into_iter()
            .filter(|s| s.sup_workflow_id.as_deref() == Some(id))
            .map(|s| s.id)
            .collect();
        let first = steps.iter().map(|s| s.job_id).min().unwrap_or(0);
        let rows = SUB_WINDOW.saturating_add(u32::try_from(steps.len()).unwrap_or(u32::MAX));
        for sub in self.engine.workflow_subs(id, first, rows).await? {
            if !subs.contains(&sub) {
                subs.push(sub);
            }
        }
        Ok(subs)
    }
}
