//! Unique job options: which jobs count as duplicates of each other.

use std::time::Duration;

/// How long a job blocks duplicates after it was inserted (or scheduled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UniquePeriod {
    /// For this many seconds.
    Seconds(u64),
    /// For as long as the job is in one of the unique states.
    Infinity,
}

/// Which parts of a job make up its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UniqueField {
    /// The args (all of them, or the `keys` chosen).
    Args,
    /// The queue.
    Queue,
    /// The worker name.
    Worker,
    /// The meta (all of it, or the `keys` chosen).
    Meta,
}

/// Named groups of states in which an existing job blocks a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UniqueStates {
    /// Every state but `cancelled` and `discarded` (Oban's default).
    Successful,
    /// Jobs that have not finished: available, scheduled, executing, retryable, suspended.
    Incomplete,
    /// Only `scheduled` jobs.
    Scheduled,
    /// Every state.
    All,
}

/// Which timestamp the period is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UniqueTimestamp {
    /// The insert time (Oban's default).
    InsertedAt,
    /// The time the job is scheduled to run.
    ScheduledAt,
}

/// Uniqueness of a worker's jobs, Oban's options.
///
/// ```
/// use oban_core::{UniqueField, UniqueOptions, UniqueStates};
///
/// let unique = UniqueOptions::new()
///     .period(300)
///     .keys(&["recipient", "template"])
///     .states(UniqueStates::Incomplete);
/// assert_eq!(unique.fields, &[UniqueField::Args, UniqueField::Queue, UniqueField::Worker]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct UniqueOptions {
    /// How long duplicates are blocked (default 60 seconds, as Oban).
    pub period: UniquePeriod,
    /// The parts of the job compared (default args, queue, worker).
    pub fields: &'static [UniqueField],
    /// When not empty, only these keys of args (and meta) are compared.
    pub keys: &'static [&'static str],
    /// States in which an existing job blocks a duplicate (default `Successful`).
    pub states: UniqueStates,
    /// The timestamp the period is measured from (default `InsertedAt`).
    pub timestamp: UniqueTimestamp,
}

impl UniqueOptions {
    /// Oban's defaults: 60 s, args + queue + worker, successful states, insert time.
    pub const fn new() -> Self {
        Self {
            period: UniquePeriod::Seconds(60),
            fields: &[UniqueField::Args, UniqueField::Queue, UniqueField::Worker],
            keys: &[],
            states: UniqueStates::Successful,
            timestamp: UniqueTimestamp::InsertedAt,
        }
    }

    /// Blocks duplicates for `seconds`.
    pub const fn period(mut self, seconds: u64) -> Self {
        self.period = UniquePeriod::Seconds(seconds);
        self
    }

    /// Blocks duplicates for as long as the job is in a unique state.
    pub const fn infinite(mut self) -> Self {
        self.period = UniquePeriod::Infinity;
        self
    }

    /// Sets the compared fields.
    pub const fn fields(mut self, fields: &'static [UniqueField]) -> Self {
        self.fields = fields;
        self
    }

    /// Compares only these args/meta keys.
    pub const fn keys(mut self, keys: &'static [&'static str]) -> Self {
        self.keys = keys;
        self
    }

    /// Sets the states group.
    pub const fn states(mut self, states: UniqueStates) -> Self {
        self.states = states;
        self
    }

    /// Sets the timestamp the period is measured from.
    pub const fn timestamp(mut self, timestamp: UniqueTimestamp) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// The period as a duration, `None` for infinity.
    pub fn period_duration(&self) -> Option<Duration> {
        match self.period {
            UniquePeriod::Seconds(s) => Some(Duration::from_secs(s)),
            UniquePeriod::Infinity => None,
        }
    }
}

impl Default for UniqueOptions {
    fn default() -> Self {
        Self::new()
    }
}
