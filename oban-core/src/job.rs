//! A job row: [`Job`] and its [`JobState`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A job as stored in `oban_jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Job {
    /// Primary key.
    pub id: i64,
    /// Where the job is in its lifecycle.
    pub state: JobState,
    /// The queue that runs it.
    pub queue: String,
    /// The stored worker name ([`Worker::NAME`](crate::Worker::NAME)).
    pub worker: String,
    /// The worker's arguments, as JSON.
    pub args: Value,
    /// Free-form metadata (`snoozed` counts snoozes).
    pub meta: Value,
    /// Tags, for filtering and display.
    pub tags: Vec<String>,
    /// One entry per failed attempt, oldest first.
    pub errors: Vec<AttemptError>,
    /// Attempts made so far, the running one included.
    pub attempt: i32,
    /// Attempts allowed before the job is discarded.
    pub max_attempts: i32,
    /// 0 is the highest priority, 9 the lowest.
    pub priority: i32,
    /// `[node, producer]` of the last attempt.
    pub attempted_by: Vec<String>,
    /// When the job was inserted.
    pub inserted_at: DateTime<Utc>,
    /// When the job may run (next).
    pub scheduled_at: DateTime<Utc>,
    /// When the last attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When the job completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// When the job was discarded.
    pub discarded_at: Option<DateTime<Utc>>,
    /// When the job was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Set on the job an insert returns when a unique duplicate already existed: this is that
    /// existing job, and nothing new was inserted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub conflict: bool,
}

impl Job {
    /// Whether this attempt is the last one allowed.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// The job's arguments decoded into `T`.
    pub fn decode_args<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.args)
    }

    /// The result this job recorded ([`Outcome::Record`](crate::Outcome::Record), or a
    /// `#[worker]` fn returning `Result<T, E>`), decoded into `T`; `None` while it has recorded
    /// nothing. Results recorded by Elixir Oban Pro and Python Oban read the same way (see
    /// [`crate::recorded`] for how terms map to JSON).
    ///
    /// ```
    /// # fn demo(job: oban_core::Job) -> oban_core::Result<()> {
    /// #[derive(serde::Deserialize)]
    /// struct Export { rows: u64, file: String }
    ///
    /// if let Some(export) = job.recorded::<Export>()? {
    ///     println!("{} rows in {}", export.rows, export.file);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Recorded`](crate::Error::Recorded) when `meta.return` is not a recorded value or
    /// does not fit `T` (the message names the job and what serde expected).
    pub fn recorded<T: serde::de::DeserializeOwned>(&self) -> crate::Result<Option<T>> {
        let Some(value) = crate::recorded::decode_meta(&self.meta)? else {
            return Ok(None);
        };
        T::deserialize(value).map(Some).map_err(|e| {
            crate::Error::Recorded(format!(
                "job {}'s recorded result does not fit {}: {e}",
                self.id,
                std::any::type_name::<T>()
            ))
        })
    }
}

/// A stored JSON list of strings (tags, `attempted_by`) read leniently: a non-string item keeps
/// its JSON text, anything but a list reads as empty.
pub(crate) fn strings_from_json(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One failed attempt, as kept in the job's `errors` (Oban's format: `at`, `attempt`, `error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt that failed.
    pub attempt: i32,
    /// When it failed (UTC, ISO 8601).
    pub at: String,
    /// What went wrong.
    pub error: String,
}

impl AttemptError {
    /// Reads an `errors` entry leniently: other Oban implementations may add keys or omit some.
    pub fn from_json(value: Value) -> Self {
        let attempt = value.get("attempt").and_then(Value::as_i64).unwrap_or(0);
        AttemptError {
            attempt: i32::try_from(attempt).unwrap_or(0),
            at: value
                .get("at")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            error: match value.get("error") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => value.to_string(),
            },
        }
    }
}

/// Oban's job states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Ready to run now.
    Available,
    /// Waiting for its `scheduled_at`.
    Scheduled,
    /// Held back (by a workflow) until released.
    Suspended,
    /// Running on some node.
    Executing,
    /// Failed, waiting for its next attempt.
    Retryable,
    /// Done.
    Completed,
    /// Given up after failures, or discarded on purpose.
    Discarded,
    /// Cancelled on purpose.
    Cancelled,
}

impl JobState {
    /// Every state, in Oban's order.
    pub const ALL: [JobState; 8] = [
        JobState::Available,
        JobState::Scheduled,
        JobState::Suspended,
        JobState::Executing,
        JobState::Retryable,
        JobState::Completed,
        JobState::Discarded,
        JobState::Cancelled,
    ];

    /// The state's name in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Scheduled => "scheduled",
            JobState::Suspended => "suspended",
            JobState::Executing => "executing",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Discarded => "discarded",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job will not run again on its own (completed, discarded, cancelled).
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Discarded | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// A state name that is not one of Oban's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state `{0}`; expected one of available, scheduled, suspended, executing, retryable, completed, discarded, cancelled")]
pub struct UnknownState(pub String);
