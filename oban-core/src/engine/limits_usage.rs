//! [`LimitsUsage`]: what a queue's fleet-wide limits count at one moment.

use serde::Serialize;

/// What a queue's [`Limits`](crate::limits::Limits) count now, read by
/// [`Engine::queue_limits_usage`](crate::engine::Engine::queue_limits_usage).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LimitsUsage {
    /// Jobs executing, per partition of the global limit (one entry, `""`, without a
    /// partition), the most first.
    pub running: Vec<PartitionCount>,
    /// Starts in the rate limit's current window, per partition of the rate limit, the most
    /// first.
    pub started: Vec<PartitionCount>,
}

/// A count for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PartitionCount {
    /// The partition as the engine keys it (`""` for the whole queue).
    pub partition: String,
    /// The count.
    pub count: u64,
}

impl PartitionCount {
    /// A count for `partition`.
    pub fn new(partition: impl Into<String>, count: u64) -> Self {
        Self {
            partition: partition.into(),
            count,
        }
    }
}
