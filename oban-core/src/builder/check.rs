//! The checks `start` runs before it touches the database: workers and their state, queues,
//! cron entries, the reindex schedule, and every interval and duration; and the node's default
//! name.
//!
//! Durations are checked so that none panics a task (`tokio::time::interval` panics on zero, and
//! `Instant + Duration` on overflow), spins, or makes the node misbehave (a heartbeat as slow as
//! the rescue age gets live jobs rescued and run twice). Ages that may mean "forever"
//! (`rescue(.., after)`, `prune(max_age, ..)`) accept `Duration::MAX` and are capped at
//! [`FOREVER`](crate::clock::FOREVER).

use std::collections::HashSet;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Builder;
use crate::clock;
use crate::cron::CronEntry;
use crate::error::{Error, Result};
use crate::new_job::NewJob;
use crate::prefix::Prefix;
use crate::registry::Registry;
use crate::testing::Testing;

/// The shortest interval accepted: the timer's resolution. Zero would panic the task's timer.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The longest interval accepted (a year): timers add their interval to the current time, which
/// must not overflow. Services that can be turned off say how.
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The shortest leader TTL: renewed every third of it, with a statement each time.
const MIN_LEADER_TTL: Duration = Duration::from_millis(300);

/// The longest leader TTL: a leader that stops without resigning is replaced only after it.
const MAX_LEADER_TTL: Duration = Duration::from_secs(24 * 3600);

/// The longest dispatch cooldown: freed slots stay idle for up to this long.
const MAX_DISPATCH_COOLDOWN: Duration = Duration::from_secs(60);

/// When the reindexer runs: a parsed UTC cron schedule.
pub(super) type Schedule = Box<dyn Fn(DateTime<Utc>) -> bool + Send + Sync>;

/// What `start` works out from the configuration before it touches the database.
pub(super) struct Checked {
    pub(super) registry: Registry,
    pub(super) cron: Vec<CronEntry>,
    pub(super) reindex_due: Option<Schedule>,
}

impl Builder {
    /// Every check that needs no database, in the order their errors are reported: workers and
    /// their state, queues, cron entries, the reindex schedule, the schema prefix (see
    /// [`Prefix::new`]), intervals and durations. Ages
    /// longer than [`FOREVER`](clock::FOREVER) are capped at it.
    pub(super) fn check_config(&mut self) -> Result<Checked> {
        let registry = self.build_registry()?;
        self.check_queues()?;
        let cron = self.build_cron(&registry)?;
        let reindex_due = self
            .reindex
            .as_deref()
            .map(crate::cron::utc_schedule)
            .transpose()?
            .map(|due| Box::new(due) as Schedule);
        self.schema = Prefix::new(&self.prefix)?;
        self.check_durations()?;
        self.rescue_after = clock::age(self.rescue_after);
        self.rescue_unknown_after = clock::age(self.rescue_unknown_after);
        self.prune_max_age = self.prune_max_age.map(clock::age);
        Ok(Checked {
            registry,
            cron,
            reindex_due,
        })
    }

    /// The `#[worker]`s linked in plus those registered by hand; the workers this node runs have
    /// their state: those of its queues, every worker in inline testing mode (it runs each job
    /// as it is inserted), none in manual testing mode (`drain_queue` names missing state).
    fn build_registry(&mut self) -> Result<Registry> {
        let mut registry = Registry::discover()?;
        for registration in mem::take(&mut self.manual) {
            registry.add(registration)?;
        }
        match self.testing {
            Some(Testing::Inline) => registry.check_state(&self.state)?,
            Some(Testing::Manual) => {}
            None => registry.check_state_of(&self.state, |queue| {
                self.queues.iter().any(|(q, _)| q == queue)
            })?,
        }
        Ok(registry)
    }

    /// Queue names of 1 to 127 characters, limits of at least 1, no queue twice.
    fn check_queues(&self) -> Result<()> {
        let mut seen = HashSet::new();
        for (queue, limit) in &self.queues {
            if queue.is_empty() || queue.chars().count() >= 128 {
                return Err(Error::Config(format!(
                    "queue name `{queue}` must be 1 to 127 characters"
                )));
            }
            if *limit == 0 {
                return Err(Error::Config(format!(
                    "queue `{queue}` has limit 0; give it at least 1"
                )));
            }
            if !seen.insert(queue.clone()) {
                return Err(Error::Config(format!("queue `{queue}` is declared twice")));
            }
        }
        let mut limited = HashSet::new();
        for (queue, limits) in &self.limits {
            if !seen.contains(queue) {
                return Err(Error::Config(format!(
                    "queue_limits names queue `{queue}`, which this node does not run; declare it with .queue(\"{queue}\", limit) or set its limits with Oban::set_queue_limits"
                )));
            }
            if !limited.insert(queue.clone()) {
                return Err(Error::Config(format!(
                    "queue `{queue}` has queue_limits twice"
                )));
            }
            limits.check(queue)?;
        }
        Ok(())
    }

    /// The builder's cron entries, then those of `#[worker(cron = ..)]`.
    fn build_cron(&mut self, registry: &Registry) -> Result<Vec<CronEntry>> {
        let mut cron: Vec<CronEntry> = mem::take(&mut self.cron)
            .into_iter()
            .collect::<Result<_>>()?;
        for registration in registry.iter() {
            for (expression, timezone) in registration.cron() {
                let options = registration.options();
                let mut job = NewJob::new(registration.name(), serde_json::json!({}))
                    .queue(options.queue)
                    .priority(options.priority)
                    .max_attempts(options.max_attempts);
                job.tags = options.tags.iter().map(|t| (*t).to_owned()).collect();
                cron.push(CronEntry::new(expression, job)?.timezone(timezone)?);
            }
        }
        for entry in cron.iter().filter(|entry| entry.never_fires()) {
            tracing::warn!(
                cron = %entry.name(),
                "this cron entry never fires: no date matches its expression (a day that does not exist in its month?); check the day-of-month and month fields"
            );
        }
        Ok(cron)
    }

    /// Every interval between [`MIN_INTERVAL`] and [`MAX_INTERVAL`]; the heartbeat at most half
    /// the rescue age; the leader TTL and the dispatch cooldown within their bounds.
    fn check_durations(&self) -> Result<()> {
        interval(
            "poll_interval",
            self.poll_interval,
            "with notifications, a long poll interval is fine",
        )?;
        interval("stage_interval", self.stage_interval, "")?;
        if self.metrics_interval != Duration::MAX {
            interval(
                "metrics_interval",
                self.metrics_interval,
                "`Duration::MAX` never sets the gauges",
            )?;
        }
        interval("heartbeat_interval", self.heartbeat_interval, "")?;
        interval(
            "rescue(interval, ..)",
            self.rescue_interval,
            "to rescue rarely, give a long `after` instead (`Duration::MAX` never rescues)",
        )?;
        interval(
            "prune(.., interval)",
            self.prune_interval,
            "to keep finished jobs, use `prune(None, ..)`",
        )?;
        if self.rescue_after.is_zero() {
            return Err(Error::Config(
                "`rescue(.., after)` is zero, which would rescue every running job at once: give \
                 the time a node may stay silent before its jobs are rescued (default 60 s; \
                 `Duration::MAX` never rescues)"
                    .into(),
            ));
        }
        if self.heartbeat_interval.saturating_mul(2) > self.rescue_after {
            return Err(Error::Config(format!(
                "`heartbeat_interval` ({:?}) must be at most half the rescue age \
                 `rescue(.., after)` ({:?}), or live jobs would be rescued and run twice: shorten \
                 the heartbeat or lengthen the rescue age",
                self.heartbeat_interval, self.rescue_after
            )));
        }
        if self.leader_ttl < MIN_LEADER_TTL || self.leader_ttl > MAX_LEADER_TTL {
            return Err(Error::Config(format!(
                "`leader_ttl` ({:?}) must be between {MIN_LEADER_TTL:?} (it is renewed every \
                 third of it) and {MAX_LEADER_TTL:?} (a leader that stops without resigning is \
                 replaced only when it runs out)",
                self.leader_ttl
            )));
        }
        if self.dispatch_cooldown > MAX_DISPATCH_COOLDOWN {
            return Err(Error::Config(format!(
                "`dispatch_cooldown` ({:?}) must be at most {MAX_DISPATCH_COOLDOWN:?}: freed slots \
                 stay idle that long while jobs run (default 5 ms)",
                self.dispatch_cooldown
            )));
        }
        Ok(())
    }
}

/// `value` of the option `name` lies between [`MIN_INTERVAL`] and [`MAX_INTERVAL`]; `hint` says
/// what to do instead of a very long one.
fn interval(name: &str, value: Duration, hint: &str) -> Result<()> {
    if value < MIN_INTERVAL {
        return Err(Error::Config(format!(
            "`{name}` ({value:?}) must be at least {MIN_INTERVAL:?}: a zero interval would panic \
             the task that runs it, a shorter one spin"
        )));
    }
    if value > MAX_INTERVAL {
        let hint = if hint.is_empty() {
            String::new()
        } else {
            format!("; {hint}")
        };
        return Err(Error::Config(format!(
            "`{name}` ({value:?}) must be at most a year ({MAX_INTERVAL:?}){hint}"
        )));
    }
    Ok(())
}

/// How many nodes this process named by default so far.
static DEFAULT_NAMES: AtomicU64 = AtomicU64::new(0);

/// The host name and process id, and from the second node in this process on, its number
/// (`host-4242`, `host-4242-2`, ...): every node of a process gets its own name, which
/// leadership and `attempted_by` go by.
pub(super) fn default_node() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "oban".to_owned());
    let pid = std::process::id();
    match DEFAULT_NAMES.fetch_add(1, Ordering::Relaxed) {
        0 => format!("{host}-{pid}"),
        n => format!("{host}-{pid}-{}", n + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_differ_within_a_process() {
        let (a, b) = (default_node(), default_node());
        assert_ne!(a, b);
    }

    #[test]
    fn a_prefix_that_is_not_a_plain_identifier_is_refused() {
        let error = Builder::default()
            .prefix("tenant-a")
            .check_config()
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("`prefix` `tenant-a`"), "{error}");
        let mut builder = Builder::default().prefix("tenant_a");
        assert!(builder.check_config().is_ok());
        assert_eq!(builder.schema.name(), "tenant_a");
    }

    #[test]
    fn the_metrics_interval_is_bounded_and_max_means_never() {
        let error = Builder::default()
            .metrics_interval(Duration::ZERO)
            .check_config()
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("`metrics_interval`"), "{error}");
        assert!(Builder::default()
            .metrics_interval(Duration::MAX)
            .check_config()
            .is_ok());
    }

    #[test]
    fn intervals_are_bounded() {
        assert!(interval("x", Duration::ZERO, "").is_err());
        assert!(interval("x", Duration::MAX, "").is_err());
        assert!(interval("x", MIN_INTERVAL, "").is_ok());
        assert!(interval("x", MAX_INTERVAL, "").is_ok());
    }
}
