//! [`Ack`]: what to record about one finished (or interrupted) attempt.

use std::time::Duration;

use serde_json::Value;

use crate::job::JobState;

/// What to record about one finished (or interrupted) attempt.
///
/// ```
/// use oban_core::engine::Ack;
/// use oban_core::JobState;
///
/// let ack = Ack {
///     id: 42,
///     attempted_at: chrono::Utc::now().naive_utc(),
///     state: JobState::Completed,
///     schedule_in: None,
///     give_back_attempt: false,
///     error: None,
///     meta: None,
/// };
/// assert!(ack.is_plain_completion());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    /// The job.
    pub id: i64,
    /// The `attempted_at` of the attempt, as fetched: the ack only applies while the job is
    /// still `executing` that very attempt, so a job rescued or cancelled meanwhile is left alone.
    pub attempted_at: chrono::NaiveDateTime,
    /// The new state.
    pub state: JobState,
    /// When set, the job runs again this long from now (database clock).
    pub schedule_in: Option<Duration>,
    /// Attempts given back (1 for a snooze or an interrupted attempt).
    pub give_back_attempt: bool,
    /// An entry appended to the job's `errors` (`{"at", "attempt", "error"}`).
    pub error: Option<Value>,
    /// Keys merged into the job's `meta`.
    pub meta: Option<Value>,
}

impl Ack {
    /// Whether this ack only completes the job: no error, meta, schedule or attempt change, so an
    /// engine may record it with a narrower statement.
    pub fn is_plain_completion(&self) -> bool {
        self.state == JobState::Completed
            && self.schedule_in.is_none()
            && !self.give_back_attempt
            && self.error.is_none()
            && self.meta.is_none()
    }
}
