//! What the charts show: a [`Recorder`](super::Recorder)'s last hour, read at one instant.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A node's last hour of job stops, as [`Recorder::snapshot`](super::Recorder::snapshot) reads
/// it: what [`throughput_chart`](super::throughput_chart) and
/// [`latency_table`](super::latency_table) draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The node whose events were recorded ([`Recorder::attach`](super::Recorder::attach));
    /// `None` for a [`Recorder::new`](super::Recorder::new).
    pub node: Option<String>,
    /// The last 60 whole minutes and the current one, oldest first: always 61, empty minutes
    /// included, so the chart's time axis does not depend on the traffic.
    pub minutes: Vec<Minute>,
    /// Queue and execution times per queue over those minutes, by queue name, for the queues
    /// that had jobs; queues beyond [`Recorder::MAX_QUEUES`](super::Recorder::MAX_QUEUES)
    /// are counted together last, as [`Recorder::OTHER`](super::Recorder::OTHER).
    pub queues: Vec<QueueTimes>,
    /// Events the recorder missed over those minutes because it fell behind the node's event
    /// channel: the counts above are that much short.
    pub missed: u64,
}

impl Snapshot {
    /// Whether no job stopped in the hour.
    ///
    /// ```
    /// let snapshot = oban_web::Recorder::new().snapshot();
    /// assert!(snapshot.is_empty());
    /// assert_eq!(snapshot.minutes.len(), 61);
    /// ```
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty() && self.minutes.iter().all(|m| m.total() == 0)
    }
}

/// The job stops of one minute (UTC), by what they led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minute {
    /// The minute's first instant.
    pub start: DateTime<Utc>,
    /// Attempts that succeeded.
    pub completed: u64,
    /// Attempts that failed: retryable (they will run again) and discarded (they will not).
    pub failed: u64,
    /// Attempts where the job cancelled itself.
    pub cancelled: u64,
}

impl Minute {
    /// Completed, failed and cancelled attempts together.
    pub fn total(&self) -> u64 {
        self.completed + self.failed + self.cancelled
    }
}

/// How long one queue's jobs waited and ran over the hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTimes {
    /// The queue's name.
    pub queue: String,
    /// Attempts that ran (every outcome but a deferral, which runs no worker).
    pub jobs: u64,
    /// From the time a job was due (its `scheduled_at`) to the start of its attempt.
    pub queue_time: Percentiles,
    /// How long attempts ran.
    pub duration: Percentiles,
}

/// Percentiles of a set of times, each within about 3% of the exact value (the precision of
/// the histograms they come from); zero when there were none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percentiles {
    /// Half the times were at most this.
    pub p50: Duration,
    /// 95% of the times were at most this.
    pub p95: Duration,
    /// 99% of the times were at most this.
    pub p99: Duration,
}
