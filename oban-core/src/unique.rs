//! Unique jobs: which jobs count as duplicates of each other, enforced by the database.
//!
//! # Design
//!
//! Oban's open-source engine checks for a duplicate with a read before the write, so two
//! concurrent inserts can both win. Here the database decides:
//!
//! - A unique job stores a **key** in `oban_jobs.uniq_key`: a SHA-256 of the canonical JSON of
//!   the compared fields (`worker`, `queue`, the chosen `keys` of `args` and `meta`, or all of
//!   them). A partial unique index, `oban_jobs_uniq_key_index ON (uniq_key) WHERE uniq_key IS NOT
//!   NULL`, lets at most one row hold a key. Jobs without unique options store `NULL` and cost
//!   nothing.
//! - **States**: the job records its unique states (`meta.uniq_states`); every statement that
//!   changes a job's state clears the key when the new state is outside that group, so a job that
//!   e.g. completed under `Incomplete` no longer blocks a new one.
//! - **Period**: the window slides exactly (no time buckets). In the inserting transaction, first
//!   a key held by a job whose timestamp (`inserted_at` or `scheduled_at`) is older than `now -
//!   period` is released, then the row is inserted with `ON CONFLICT DO NOTHING`. Two inserters
//!   racing for one key serialise on the index entry: the second waits for the first to commit or
//!   roll back, then either inserts or sees the winner. No interleaving inserts two duplicates.
//! - A **conflict** is not an error: `insert` returns the existing job with
//!   [`Job::conflict`](crate::Job::conflict) set, after applying any `replace` rules to it.
//! - `insert_all` is unique too: against the table, and within the batch (the first of equal
//!   jobs is inserted, the others report a conflict with it).
//!
//! Inserts run at `READ COMMITTED` (PostgreSQL's default); the conflict lookup needs to see the
//! winner's committed row.
//!
//! Unique inserts need what [`crate::migrate()`] adds (`uniq_key` and its index): on a schema
//! another implementation installed and this runtime never migrated they fail with
//! [`Error::NotMigrated`](crate::Error::NotMigrated), which says to run it. Inserts without
//! unique options need no migration.
//!
//! # Alongside Elixir and Python Oban
//!
//! Each implementation enforces its own unique jobs; what one sees of the others':
//!
//! - **This runtime sees only keys.** A duplicate is a row holding the same `uniq_key`, and only
//!   unique jobs inserted here have one. Jobs Elixir or Python nodes insert never block a unique
//!   job inserted here, whatever their fields.
//! - **Elixir Oban (open-source engine) sees rows.** Before inserting a unique job it queries
//!   `oban_jobs` for a row in its states and period with equal `worker` and `queue` and equal
//!   `args` (or containing the chosen keys), so it does see jobs inserted here, with two limits:
//!   the worker name must be the one the Elixir worker has, and a check on all of `meta`
//!   (`fields: [:meta]` without `keys`) never matches a unique job inserted here, whose `meta`
//!   also holds `uniq_states` (the states in which it keeps its key). Its check takes an advisory
//!   lock of its own, which inserts here do not take, so the two can race: a duplicate across
//!   implementations is possible, never within this runtime.
//! - **Python Oban (0.7) has no unique jobs.** It inserts every job it is given.
//! - **Only this runtime maintains keys.** An Elixir or Python node that works a unique job
//!   inserted here moves it through its states without touching `uniq_key`, so the job keeps
//!   the key it had when claimed: with unique states that end before the job does
//!   (`Incomplete`, `Scheduled`), it goes on blocking duplicates after it finished, until its
//!   period ends (forever with `infinite()`). Work such jobs on nodes of this runtime.

use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::job::JobState;
use crate::new_job::NewJob;

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

impl UniqueStates {
    /// The states of the group.
    pub const fn states(self) -> &'static [JobState] {
        match self {
            UniqueStates::Successful => &[
                JobState::Available,
                JobState::Scheduled,
                JobState::Suspended,
                JobState::Executing,
                JobState::Retryable,
                JobState::Completed,
            ],
            UniqueStates::Incomplete => &[
                JobState::Available,
                JobState::Scheduled,
                JobState::Suspended,
                JobState::Executing,
                JobState::Retryable,
            ],
            UniqueStates::Scheduled => &[JobState::Scheduled],
            UniqueStates::All => &JobState::ALL,
        }
    }
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

/// A field of an existing duplicate that an insert may overwrite (Oban's `replace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplaceField {
    /// The args.
    Args,
    /// `max_attempts`.
    MaxAttempts,
    /// The meta (the unique bookkeeping keys are kept).
    Meta,
    /// The priority.
    Priority,
    /// The queue.
    Queue,
    /// `scheduled_at`.
    ScheduledAt,
    /// The tags.
    Tags,
}

/// The key that identifies `job` among its duplicates: SHA-256 (hex) of the canonical JSON of
/// the compared fields. Keys missing from a job's args or meta are simply absent, so two jobs
/// that both lack a key agree on it.
pub(crate) fn unique_key(job: &NewJob, options: &UniqueOptions) -> String {
    let pick = |value: &Value| -> Value {
        match value {
            Value::Object(map) if !options.keys.is_empty() => Value::Object(
                options
                    .keys
                    .iter()
                    .filter_map(|k| map.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                    .collect(),
            ),
            other => other.clone(),
        }
    };
    let mut parts = Map::new();
    for field in options.fields {
        let (name, value) = match field {
            UniqueField::Args => ("args", pick(&job.args)),
            UniqueField::Meta => ("meta", pick(&job.meta)),
            UniqueField::Queue => ("queue", Value::from(job.queue.as_str())),
            UniqueField::Worker => ("worker", Value::from(job.worker.as_str())),
        };
        parts.insert(name.to_owned(), value);
    }
    canonical_hash(&Value::Object(parts))
}

/// SHA-256 (hex) of `value`'s canonical JSON ([`write_canonical`]).
pub(crate) fn canonical_hash(value: &Value) -> String {
    let mut canonical = Vec::new();
    write_canonical(value, &mut canonical);
    hex::encode(Sha256::digest(&canonical))
}

/// Writes `value` as compact JSON with every object's keys in byte order, at every depth.
///
/// The order is built here rather than taken from the map: serde_json's `Map` iterates in
/// insertion order when any crate in the build enables its `preserve_order` feature, and the
/// key must not change with that. The output is byte for byte what serde_json writes for a
/// sorted map (its default), so keys stored before this function existed still match.
pub(crate) fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("a string serialises");
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("a JSON scalar serialises"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(job: &NewJob, options: UniqueOptions) -> String {
        unique_key(job, &options)
    }

    #[test]
    fn key_ignores_key_order_and_unchosen_fields() {
        let a = NewJob::new("W", json!({"a": 1, "b": 2})).queue("q1");
        let b = NewJob::new("W", json!({"b": 2, "a": 1})).queue("q1");
        assert_eq!(key(&a, UniqueOptions::new()), key(&b, UniqueOptions::new()));
        let other_queue = NewJob::new("W", json!({"a": 1, "b": 2})).queue("q2");
        assert_ne!(
            key(&a, UniqueOptions::new()),
            key(&other_queue, UniqueOptions::new())
        );
        let args_only = UniqueOptions::new().fields(&[UniqueField::Args]);
        assert_eq!(key(&a, args_only), key(&other_queue, args_only));
    }

    #[test]
    fn keys_pick_a_subset_and_missing_keys_agree() {
        let opts = UniqueOptions::new().keys(&["id"]);
        let a = NewJob::new("W", json!({"id": 1, "note": "x"}));
        let b = NewJob::new("W", json!({"id": 1, "note": "y"}));
        let c = NewJob::new("W", json!({"id": 2, "note": "x"}));
        assert_eq!(key(&a, opts), key(&b, opts));
        assert_ne!(key(&a, opts), key(&c, opts));
        let none1 = NewJob::new("W", json!({"note": "x"}));
        let none2 = NewJob::new("W", json!({"other": 3}));
        assert_eq!(key(&none1, opts), key(&none2, opts));
    }

    /// Keys computed by the code before `write_canonical` (serde_json's sorted map), which every
    /// stored unique job carries: they must not change.
    #[test]
    fn keys_match_the_stored_test_vectors() {
        let report = NewJob::new(
            "MyApp.Workers.Report",
            json!({"customer": {"name": "Zoë \"Z\"", "id": 42, "tags": ["b", "a"], "nested": {"z": null, "a": [1.5, -3, 18446744073709551615u64, 1e20]}}, "B": true, "a": "\n\t/\u{1}", "é": 0, "10": 1, "9": 2}),
        )
        .queue("reports")
        .meta("trace", "x")
        .meta("cron_at", "2026-01-01T00:00:00+00:00");
        assert_eq!(
            key(&report, UniqueOptions::new()),
            "43af56792ea74f78b1e4c4f85d87ba68e5afd5b414f9259fed283d9a6096f744"
        );
        let picked = NewJob::new(
            "W",
            json!({"id": 7, "z": {"y": 1, "x": 2}, "note": "ignored"}),
        )
        .meta("cron_name", "W")
        .meta("cron_at", "t");
        let options = UniqueOptions::new()
            .fields(&[UniqueField::Worker, UniqueField::Meta, UniqueField::Args])
            .keys(&["z", "id", "cron_name", "cron_at"]);
        assert_eq!(
            key(&picked, options),
            "4191e00f7f798273f778a5affd26229607e26d48d6f3580c7381f3f5e8bd1dbf"
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = json!({"b": [{"d": 1, "c": 2}], "a": {"y": null, "x": "é"}});
        let mut out = Vec::new();
        write_canonical(&value, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"x":"é","y":null},"b":[{"c":2,"d":1}]}"#
        );
    }
}
