//! Queue depths: how many jobs each queue holds in each state, and how long the oldest available
//! job of each queue has waited, as [`Engine::job_count_depths`](super::Engine::job_count_depths)
//! reports them for the depth gauges (see [`crate::measure`]).

use std::time::Duration;

use crate::job::JobState;

/// How many jobs of one queue are in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: JobState,
    /// How many jobs: counted when [`exact`](Self::exact), else the planner's estimate.
    pub count: u64,
    /// Whether `count` was counted row by row. An engine counts up to the bound it was given
    /// and may estimate beyond it (PostgreSQL does, see `engines/postgres/depth.rs`).
    pub exact: bool,
}

/// The depth of every queue present in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// One entry per (queue, state) the engine found, in no particular order. A pair that is
    /// missing holds no job (or, for states an engine does not count on large tables, is not
    /// reported: see the engine's docs).
    pub counts: Vec<StateCount>,
    /// For each queue with available jobs: how long its oldest available job has been due
    /// (`now - scheduled_at` on the database's clock, zero for one due in the future).
    pub oldest_available: Vec<(String, Duration)>,
}

impl QueueDepths {
    /// The count of `state` in `queue`, if reported.
    pub fn count(&self, queue: &str, state: JobState) -> Option<u64> {
        self.counts
            .iter()
            .find(|c| c.queue == queue && c.state == state)
            .map(|c| c.count)
    }
}
