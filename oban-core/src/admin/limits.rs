//! Queue limits across the fleet ([`crate::limits`]): every limited queue with what its limits
//! count now ([`Admin::limits`], [`Admin::queue_limits`]), and changing or clearing them
//! ([`Admin::set_queue_limits`], [`Admin::clear_queue_limits`]) as
//! [`Oban::set_queue_limits`](crate::Oban::set_queue_limits) does: checked, stored, then the
//! `rust_limits` signal to every node.

use serde::Serialize;

use super::Admin;
use crate::engine::LimitsUsage;
use crate::error::Result;
use crate::limits::{store, Limits};

/// One limited queue: its limits and what they count now.
///
/// JSON: `{"queue": "emails", "limits": {"global": {"allowed": 5, "partition": {"fields":
/// ["args"], "keys": ["tenant_id"]}}, "rate": {"allowed": 100, "period_secs": 60, "partition":
/// {"fields": [], "keys": []}}}, "usage": {"running": [{"partition": "\u001f[7]", "count": 5}],
/// "started": [{"partition": "", "count": 57}]}}` (a partition as the engine keys it; `""` for
/// the whole queue; `limits.global` or `limits.rate` is `null` when not set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueLimits {
    /// The queue's name.
    pub queue: String,
    /// Its stored limits.
    pub limits: Limits,
    /// Jobs running per partition of the global limit and starts in the rate limit's window per
    /// partition, the fullest first.
    pub usage: LimitsUsage,
}

impl QueueLimits {
    /// How many partitions' counts the admin reads by default (the fullest first).
    pub const TOP: u32 = 10;

    /// The global limit against what runs, `3/10` or `3/10 by args:tenant_id` (the fullest
    /// partition's count); `None` without a global limit.
    ///
    /// ```
    /// # use oban_core::admin::QueueLimits;
    /// # fn show(limits: &QueueLimits) {
    /// if let Some(global) = limits.global_summary() {
    ///     println!("{}: global {global}", limits.queue);
    /// }
    /// # }
    /// ```
    pub fn global_summary(&self) -> Option<String> {
        let global = self.limits.global.as_ref()?;
        let by = if global.partition.is_partitioned() {
            format!(" by {}", global.partition)
        } else {
            String::new()
        };
        Some(format!(
            "{}/{}{by}",
            self.usage.running_max(),
            global.allowed
        ))
    }

    /// The rate limit against the starts in its window, `57/100 per 60s` or with ` by ..`;
    /// `None` without a rate limit.
    pub fn rate_summary(&self) -> Option<String> {
        let rate = self.limits.rate.as_ref()?;
        let by = if rate.partition.is_partitioned() {
            format!(" by {}", rate.partition)
        } else {
            String::new()
        };
        Some(format!(
            "{}/{} per {}s{by}",
            self.usage.started_max(),
            rate.allowed,
            rate.period.as_secs()
        ))
    }

    /// Both summaries, `global 3/10, rate 57/100 per 60s`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            self.global_summary().map(|text| format!("global {text}")),
            self.rate_summary().map(|text| format!("rate {text}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.join(", ")
    }
}

impl Admin {
    /// Every queue with limits across the fleet, by name, with what they count now (at most
    /// `top` partitions each, the fullest first): one read of the limits, then one read of the
    /// counts per limited queue.
    ///
    /// ```no_run
    /// # async fn demo(admin: oban_core::admin::Admin) -> oban_core::Result<()> {
    /// use oban_core::admin::QueueLimits;
    /// for queue in admin.limits(QueueLimits::TOP).await? {
    ///     println!("{}: {}", queue.queue, queue.summary());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn limits(&self, top: u32) -> Result<Vec<QueueLimits>> {
        Ok(store::read_all(self.engine.as_ref(), top)
            .await?
            .into_iter()
            .map(|(queue, limits, usage)| QueueLimits {
                queue,
                limits,
                usage,
            })
            .collect())
    }

    /// `queue`'s limits and what they count now; `None` when it has none.
    pub async fn queue_limits(&self, queue: &str, top: u32) -> Result<Option<QueueLimits>> {
        Ok(store::read(self.engine.as_ref(), queue, top)
            .await?
            .map(|(limits, usage)| QueueLimits {
                queue: queue.to_owned(),
                limits,
                usage,
            }))
    }

    /// Sets `queue`'s limits across the fleet, replacing any it had (empty limits clear them):
    /// stored at once, so the next fetch of every node obeys them, then the signal that makes
    /// every producer of the queue read them (on SQLite, the nodes of this process only; the
    /// others read them within a heartbeat). Limits set here last until changed again: a node
    /// starting with [`Builder::queue_limits`](crate::Builder::queue_limits) replaces them.
    ///
    /// ```no_run
    /// # async fn demo(admin: oban_core::admin::Admin) -> oban_core::Result<()> {
    /// use std::time::Duration;
    /// use oban_core::limits::{Limits, Partition, RateLimit};
    /// let per_tenant = RateLimit::new(100, Duration::from_secs(60))
    ///     .partitioned(Partition::args(["tenant_id"]));
    /// admin.set_queue_limits("emails", Limits::new().rate(per_tenant)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// An empty queue name; limits that [`Limits::check`] refuses; the database's error; a
    /// notification that could not be sent (the limits are stored then).
    pub async fn set_queue_limits(&self, queue: &str, limits: Limits) -> Result<()> {
        let signal = store::store(self.engine.as_ref(), queue, &limits).await?;
        self.send(signal).await
    }

    /// Removes `queue`'s limits across the fleet: each node's own limit alone bounds it again.
    /// See [`Admin::set_queue_limits`].
    pub async fn clear_queue_limits(&self, queue: &str) -> Result<()> {
        self.set_queue_limits(queue, Limits::new()).await
    }
}
