//! [`FetchCursor`]: where a producer's last full batch ended.

use crate::job::Job;

/// A position in a queue's fetch order (`priority, scheduled_at, id`): where a producer's last
/// full batch ended.
///
/// Fetched jobs leave dead entries at the head of the queue's index until a vacuum removes
/// them, and a scan from the head walks all of them, so without a cursor every fetch of a busy
/// queue costs more than the one before (measured: 0.86 ms for 50 jobs on a fresh table, 1.63 ms
/// six seconds later). Starting after the cursor skips them.
///
/// ```
/// use oban_core::engine::FetchCursor;
///
/// let at = chrono::Utc::now().naive_utc();
/// let first = FetchCursor { priority: 0, scheduled_at: at, id: 7 };
/// let later = FetchCursor { priority: 0, scheduled_at: at, id: 8 };
/// assert!(first < later, "ordered as the queue is fetched");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FetchCursor {
    /// The job's priority.
    pub priority: i32,
    /// The job's `scheduled_at` (UTC).
    pub scheduled_at: chrono::NaiveDateTime,
    /// The job's id.
    pub id: i64,
}

impl FetchCursor {
    /// The position of `job`.
    pub fn of(job: &Job) -> Self {
        Self {
            priority: job.priority,
            scheduled_at: job.scheduled_at.naive_utc(),
            id: job.id,
        }
    }
}
