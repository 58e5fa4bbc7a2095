//! Choosing jobs for bulk operations: [`JobFilter`].

use serde_json::Value;

use crate::job::JobState;

/// Which jobs a bulk cancel, retry or delete applies to. Every condition given must hold; an
/// empty filter matches every job.
///
/// ```
/// use oban_core::{JobFilter, JobState};
/// use serde_json::json;
///
/// let stuck_receipts = JobFilter::new()
///     .queue("mailers")
///     .worker("SendReceipt")
///     .state(JobState::Retryable)
///     .tag("billing")
///     .args_contain(json!({"template": "receipt"}));
/// # let _ = stuck_receipts;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct JobFilter {
    /// Only these ids.
    pub ids: Option<Vec<i64>>,
    /// Only these queues.
    pub queues: Vec<String>,
    /// Only these workers.
    pub workers: Vec<String>,
    /// Only these states.
    pub states: Vec<JobState>,
    /// Only jobs with all of these tags.
    pub tags: Vec<String>,
    /// Only jobs whose args contain this JSON (PostgreSQL's `@>`).
    pub args: Option<Value>,
    /// Only jobs whose meta contains this JSON.
    pub meta: Option<Value>,
}

impl JobFilter {
    /// Matches every job.
    pub fn new() -> Self {
        Self::default()
    }

    /// Matches the job with this id.
    pub fn id(id: i64) -> Self {
        Self {
            ids: Some(vec![id]),
            ..Self::default()
        }
    }

    /// Matches the jobs with these ids.
    pub fn ids(ids: impl IntoIterator<Item = i64>) -> Self {
        Self {
            ids: Some(ids.into_iter().collect()),
            ..Self::default()
        }
    }

    /// Adds a queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queues.push(queue.into());
        self
    }

    /// Adds a worker name.
    pub fn worker(mut self, worker: impl Into<String>) -> Self {
        self.workers.push(worker.into());
        self
    }

    /// Adds a state.
    pub fn state(mut self, state: JobState) -> Self {
        self.states.push(state);
        self
    }

    /// Requires a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Requires the args to contain `args`.
    pub fn args_contain(mut self, args: Value) -> Self {
        self.args = Some(args);
        self
    }

    /// Requires the meta to contain `meta`.
    pub fn meta_contain(mut self, meta: Value) -> Self {
        self.meta = Some(meta);
        self
    }
}
