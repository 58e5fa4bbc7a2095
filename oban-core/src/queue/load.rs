//! What a producer is doing right now, readable by its node without asking it: the jobs it runs
//! and its limit, which the node's gauges report (see [`crate::measure`]).

use std::sync::atomic::{AtomicU32, Ordering};

/// A producer's running jobs and limit, updated by the producer as they change.
#[derive(Debug, Default)]
pub(crate) struct QueueLoad {
    executing: AtomicU32,
    limit: AtomicU32,
}

impl QueueLoad {
    /// Records the producer's state (two relaxed stores: the producer calls it on every turn of
    /// its loop).
    pub(crate) fn set(&self, executing: usize, limit: u32) {
        self.executing.store(
            u32::try_from(executing).unwrap_or(u32::MAX),
            Ordering::Relaxed,
        );
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Jobs running on this producer.
    pub(crate) fn executing(&self) -> u32 {
        self.executing.load(Ordering::Relaxed)
    }

    /// The producer's limit.
    pub(crate) fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }
}
