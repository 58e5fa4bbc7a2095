//! Flow control across the fleet: a queue's **global limit** (jobs running at once on every node
//! together) and **rate limit** (job starts per period on every node together), each optionally
//! split into [`Partition`]s that each get the whole limit.
//!
//! A queue's limits are one row in the database (`oban_rust_queue_limits`), written by
//! [`Builder::queue_limits`](crate::Builder::queue_limits) when a node starts (the last node to
//! start wins, as a rolling deploy expects) and by
//! [`Oban::set_queue_limits`](crate::Oban::set_queue_limits) at run time. Every fetch of a limited
//! queue, on every node, locks that row, counts what runs and what started, and claims only what
//! fits, in one transaction; so the limits hold while nodes join, leave or crash, and a change
//! applies to the next fetch of every node. The local limit of [`Builder::queue`](crate::Builder::queue) still bounds
//! each node.
//!
//! # Global limits
//! Running means `executing` in the database. A node that dies holding jobs keeps their slots
//! until the lifeline rescues them: within the rescue age after its last heartbeat plus one
//! rescue interval (60 s + 5 s by default; see
//! [`Builder::rescue`](crate::Builder::rescue)). A limited queue claims no jobs ahead
//! of its free slots: a job claimed ahead would hold a global slot without running.
//!
//! # Rate limits
//! At most `allowed` starts in any window of `period`, on every node together: a sliding window,
//! kept exact by counting starts in buckets of a sixtieth of the period and counting a bucket
//! while any part of it lies in the window. So the limit is never exceeded, and a saturated
//! queue starts at least `allowed` jobs per period and a sixtieth (about 98 % of the limit;
//! measured over 70 s at 600 per 60 s: at most 600 in any 60 s window, 98.5 % of the limit).
//! A start is a claim: a job released back unrun (a paused queue, a node stopping) still counted.
//!
//! # Partitions and fairness
//! With a [`Partition`], each partition (each worker, or each value of up to four args keys) has
//! the whole limit of its own. A fetch walks the queue's available jobs in their usual order
//! (priority, scheduled time, id), each partition taking as many jobs as it has room for (at
//! most the fetch's demand); a partition with more jobs than that is saturated, and the walk
//! passes over the rest of its jobs, as it passes over those of partitions that are full. From
//! what it found (twice the demand), the fetch takes in rounds, the least used partitions first:
//! a job's round is what its partition already uses (jobs running for a global limit, starts in
//! the window for a rate limit) plus its rank among the partition's jobs found, ties in the
//! queue's order. So a partition with a huge backlog at the head of the queue gets its room and
//! no more, whether its limit fills or not, and while it runs more than the partitions behind
//! it, they come first. Passing over costs a read of each job passed over: on PostgreSQL one to
//! two microseconds a job (a claim behind 100,000 waiting jobs of one full partition took
//! 0.1-0.2 s on a shared 2-core machine, against 4 ms without them and 1.4 ms for the plain
//! claim). A spent job the walk finds (no attempt left) is discarded, not run, and the fetch goes
//! on for the room it took.
//!
//! # Cost
//! A limited queue's fetches take turns on its row and claim nothing ahead, and a job's slot is
//! free once its completion is written (an ack of a limited queue is written at once, without the
//! completer's 5 ms window) and the nodes are told. Measured with three nodes of local limit 20
//! (`examples/limits_bench.rs`, see `docs/flow_control.md`): jobs that sleep 20 ms ran at 0.93 x
//! the throughput of local limits alone under a global limit of 60, and at 1.0 x under a global
//! limit per `tenant_id` over 1,000 keys; no-op jobs, which local limits run at about 20,000 a
//! second, ran at 0.34-0.42 x and 0.23-0.30 x: for jobs that take no time, the turns on the row
//! are the bound.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use oban_core::limits::{GlobalLimit, Limits, Partition, RateLimit};
//!
//! # async fn run() -> oban_core::Result<()> {
//! let oban = oban_core::Oban::builder()
//!     .database("postgres://localhost/app")
//!     // at most 10 calls to the provider at once, across every node
//!     .queue("provider", 10)
//!     .queue_limits("provider", Limits::new().global(GlobalLimit::new(10)))
//!     // at most 100 emails a minute per tenant, and 5 at once per tenant
//!     .queue("emails", 20)
//!     .queue_limits(
//!         "emails",
//!         Limits::new()
//!             .global(GlobalLimit::new(5).partitioned(Partition::args(["tenant_id"])))
//!             .rate(RateLimit::new(100, Duration::from_secs(60)).partitioned(Partition::args(["tenant_id"]))),
//!     )
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```

pub(crate) mod heartbeat;
mod partition;
pub(crate) mod store;
mod text;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use partition::Partition;

/// A queue's fleet-wide limits: none, a global limit, a rate limit, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Jobs running at once on every node together.
    pub global: Option<GlobalLimit>,
    /// Job starts per period on every node together.
    pub rate: Option<RateLimit>,
}

impl Limits {
    /// No limits (a queue limited only by each node's own limit).
    pub fn new() -> Self {
        Self::default()
    }

    /// With a global limit.
    pub fn global(mut self, limit: GlobalLimit) -> Self {
        self.global = Some(limit);
        self
    }

    /// With a rate limit.
    pub fn rate(mut self, limit: RateLimit) -> Self {
        self.rate = Some(limit);
        self
    }

    /// Whether there is no limit at all.
    pub fn is_empty(&self) -> bool {
        self.global.is_none() && self.rate.is_none()
    }

    /// Checks the limits for `queue`; the error says what to change.
    pub fn check(&self, queue: &str) -> Result<()> {
        if let Some(global) = &self.global {
            if global.allowed == 0 {
                return Err(Error::Config(format!(
                    "queue `{queue}`: a global limit of 0 would run nothing; pause the queue instead"
                )));
            }
            global.partition.check(queue)?;
        }
        if let Some(rate) = &self.rate {
            if rate.allowed == 0 {
                return Err(Error::Config(format!(
                    "queue `{queue}`: a rate limit of 0 starts would run nothing; pause the queue instead"
                )));
            }
            if rate.period < RateLimit::MIN_PERIOD || rate.period > RateLimit::MAX_PERIOD {
                return Err(Error::Config(format!(
                    "queue `{queue}`: a rate limit period of {:?} is out of bounds; use 1 s to 1 day",
                    rate.period
                )));
            }
            rate.partition.check(queue)?;
        }
        Ok(())
    }
}

/// At most `allowed` jobs of a queue running at once across every node (per partition, with
/// one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalLimit {
    /// Jobs running at once.
    pub allowed: u32,
    /// How the queue's jobs are split, each part with the whole limit.
    #[serde(default)]
    pub partition: Partition,
}

impl GlobalLimit {
    /// At most `allowed` running at once, over the whole queue.
    ///
    /// ```
    /// use oban_core::limits::{GlobalLimit, Partition};
    /// let per_tenant = GlobalLimit::new(3).partitioned(Partition::args(["tenant_id"]));
    /// assert_eq!(per_tenant.allowed, 3);
    /// ```
    pub fn new(allowed: u32) -> Self {
        Self {
            allowed,
            partition: Partition::None,
        }
    }

    /// Each partition gets the whole limit.
    pub fn partitioned(mut self, partition: Partition) -> Self {
        self.partition = partition;
        self
    }
}

/// At most `allowed` job starts of a queue in any window of `period`, across every node (per
/// partition, with one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Starts per period.
    pub allowed: u32,
    /// The window, whole seconds from 1 s to a day.
    #[serde(rename = "period_secs", with = "secs")]
    pub period: Duration,
    /// How the queue's jobs are split, each part with the whole limit.
    #[serde(default)]
    pub partition: Partition,
}

impl RateLimit {
    /// The shortest period.
    pub const MIN_PERIOD: Duration = Duration::from_secs(1);
    /// The longest period.
    pub const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);

    /// At most `allowed` starts per `period` (whole seconds: a fraction is dropped).
    ///
    /// ```
    /// use std::time::Duration;
    /// use oban_core::limits::RateLimit;
    /// let limit = RateLimit::new(100, Duration::from_secs(60));
    /// assert_eq!(limit.bucket(), Duration::from_secs(1));
    /// ```
    pub fn new(allowed: u32, period: Duration) -> Self {
        Self {
            allowed,
            period: Duration::from_secs(period.as_secs()),
            partition: Partition::None,
        }
    }

    /// Each partition gets the whole limit.
    pub fn partitioned(mut self, partition: Partition) -> Self {
        self.partition = partition;
        self
    }

    /// The width of the buckets starts are counted in: a sixtieth of the period, at least a
    /// millisecond.
    pub fn bucket(&self) -> Duration {
        (self.period / 60).max(Duration::from_millis(1))
    }
}

/// Durations as whole seconds.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_with_a_message_that_says_what_to_do() {
        let zero = Limits::new().global(GlobalLimit::new(0));
        assert!(zero
            .check("q")
            .unwrap_err()
            .to_string()
            .contains("pause the queue"));
        let wide = Limits::new()
            .global(GlobalLimit::new(1).partitioned(Partition::args(["a", "b", "c", "d", "e"])));
        assert!(wide
            .check("q")
            .unwrap_err()
            .to_string()
            .contains("at most 4"));
        let short = Limits::new().rate(RateLimit::new(5, Duration::from_millis(500)));
        assert!(short
            .check("q")
            .unwrap_err()
            .to_string()
            .contains("1 s to 1 day"));
        let fine = Limits::new()
            .global(GlobalLimit::new(2).partitioned(Partition::Worker))
            .rate(RateLimit::new(5, Duration::from_secs(60)));
        fine.check("q").unwrap();
    }

    #[test]
    fn limits_round_trip_through_json() {
        let limits = Limits::new()
            .global(GlobalLimit::new(2).partitioned(Partition::args(["tenant_id"])))
            .rate(RateLimit::new(5, Duration::from_secs(60)).partitioned(Partition::Worker));
        let json = serde_json::to_value(&limits).unwrap();
        assert_eq!(json["rate"]["period_secs"], 60);
        assert_eq!(serde_json::from_value::<Limits>(json).unwrap(), limits);
    }
}
