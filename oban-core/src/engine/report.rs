//! What the operator's reports read through the engine ([`crate::admin`]): failures grouped by
//! worker and error, the cron entries seen in recent jobs, and the schema's migrations.

use chrono::{DateTime, Utc};

use crate::job::JobState;

/// Jobs of one worker and queue in one failed state whose last error has one message, as
/// [`Engine::job_failures`](super::Engine::job_failures) groups them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailureCount {
    /// The worker.
    pub worker: String,
    /// The queue.
    pub queue: String,
    /// [`JobState::Retryable`] or [`JobState::Discarded`].
    pub state: JobState,
    /// The `error` of the last entry of the jobs' `errors`, when they have one.
    pub error: Option<String>,
    /// How many jobs.
    pub count: u64,
}

impl FailureCount {
    /// A group (for engines outside this crate).
    pub fn new(
        worker: String,
        queue: String,
        state: JobState,
        error: Option<String>,
        count: u64,
    ) -> Self {
        Self {
            worker,
            queue,
            state,
            error,
            count,
        }
    }

    /// A group from a row of `(worker, queue, state, error, count)` as the engines' grouped
    /// queries return it; `None` for a state this runtime does not know.
    pub(crate) fn from_row(
        (worker, queue, state, error, count): (String, String, String, Option<String>, i64),
    ) -> Option<Self> {
        let state = state.parse::<JobState>().ok()?;
        Some(Self::new(worker, queue, state, error, count.max(0) as u64))
    }
}

/// The jobs one cron entry inserted, as their meta names the entry, grouped by
/// [`Engine::job_cron_seen`](super::Engine::job_cron_seen).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CronSeen {
    /// The worker.
    pub worker: String,
    /// The queue.
    pub queue: String,
    /// `meta.cron_expr`.
    pub expression: Option<String>,
    /// `meta.cron_name` (or `meta.cron` when it is a string).
    pub name: Option<String>,
    /// `meta.cron_tz` (or `meta.tz`, `meta.timezone`).
    pub timezone: Option<String>,
    /// The latest `inserted_at` of these jobs.
    pub last_inserted_at: DateTime<Utc>,
    /// How many jobs.
    pub count: u64,
}

impl CronSeen {
    /// A group (for engines outside this crate).
    pub fn new(
        worker: String,
        queue: String,
        expression: Option<String>,
        name: Option<String>,
        timezone: Option<String>,
        last_inserted_at: DateTime<Utc>,
        count: u64,
    ) -> Self {
        Self {
            worker,
            queue,
            expression,
            name,
            timezone,
            last_inserted_at,
            count,
        }
    }
}

/// The schema steps an engine knows and those recorded as applied in `oban_rust_migrations`,
/// from [`Engine::schema_versions`](super::Engine::schema_versions).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SchemaVersions {
    /// Every step this build can apply: version and description, in order.
    pub known: Vec<(i32, String)>,
    /// The versions recorded as applied (none when the log table does not exist).
    pub applied: Vec<i32>,
}

impl SchemaVersions {
    /// The steps and the applied versions (for engines outside this crate).
    pub fn new(known: Vec<(i32, String)>, applied: Vec<i32>) -> Self {
        Self { known, applied }
    }
}
