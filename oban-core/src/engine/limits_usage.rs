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

    /// The partition as a person reads it: `""` for the whole queue, the worker, the JSON of
    /// the args keys' values (`[7,"eu"]`), or both (`MyWorker [7]`).
    ///
    /// ```
    /// use oban_core::engine::PartitionCount;
    /// assert_eq!(PartitionCount::new("W\u{1f}[7]", 2).label(), "W [7]");
    /// assert_eq!(PartitionCount::new("\u{1f}[7]", 2).label(), "[7]");
    /// assert_eq!(PartitionCount::new("W", 2).label(), "W");
    /// ```
    pub fn label(&self) -> String {
        match self.partition.strip_prefix('\u{1f}') {
            Some(args) => args.to_owned(),
            None => self.partition.replace('\u{1f}', " "),
        }
    }
}

impl LimitsUsage {
    /// Jobs running in the fullest partition of the global limit (the whole queue's without a
    /// partition): what the limit is compared with.
    pub fn running_max(&self) -> u64 {
        self.running.first().map_or(0, |count| count.count)
    }

    /// Starts in the current window in the fullest partition of the rate limit.
    pub fn started_max(&self) -> u64 {
        self.started.first().map_or(0, |count| count.count)
    }
}
