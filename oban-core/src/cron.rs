//! Periodic jobs: standard cron expressions, each with its own time zone.
//!
//! Only the leader inserts cron jobs. Each due minute of each entry becomes one job whose unique
//! key is the entry's name and that minute, so the database refuses a second insert for the same
//! minute even when two nodes both believed they led for a moment. An entry's name is its worker,
//! expression and time zone; entries that share those (one worker on one schedule with other
//! args or another queue) each add a fingerprint of their job to it, so each inserts its own job.
//! A node that becomes leader looks back over a short window (`catch_up`) and inserts what its
//! predecessor missed, which the same key makes safe. An entry whose expression never matches
//! (February 30th) is accepted with a warning at start.
//!
//! Matching is on the wall clock of the entry's time zone, as in Elixir Oban: on the night clocks
//! go forward, a time that does not exist (02:30 in New York on the second Sunday of March) does
//! not run; on the night they go back, a time that happens twice (01:30 on the first Sunday of
//! November) runs twice.
//!
//! ```
//! use oban_core::cron::CronEntry;
//! use oban_core::NewJob;
//! use serde_json::json;
//!
//! let nightly = CronEntry::new("0 3 * * *", NewJob::new("Reports.Nightly", json!({})))
//!     .unwrap()
//!     .timezone("Europe/Paris")
//!     .unwrap();
//! assert_eq!(nightly.name(), "Reports.Nightly 0 3 * * * Europe/Paris");
//! assert!(CronEntry::new("61 * * * *", NewJob::new("W", json!({}))).is_err());
//! ```

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use chrono_tz::Tz;
use oban_cron::{CronError, Schedule};
use serde_json::Value;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::new_job::NewJob;
use crate::unique::{UniqueField, UniqueOptions, UniqueStates};

/// One periodic job: an expression, a time zone and the job to insert.
#[derive(Debug, Clone)]
pub struct CronEntry {
    expression: String,
    schedule: Schedule,
    timezone: Tz,
    job: NewJob,
    /// Set when other entries share this one's worker, expression and time zone: a fingerprint
    /// of the job that tells them apart.
    variant: Option<String>,
}

impl CronEntry {
    /// An entry in UTC. `expression` has five fields (minute, hour, day of month, month, day of
    /// week) with ranges (`1-5`), steps (`*/15`), lists (`1,15`) and names (`JAN`, `MON`), or is a
    /// nickname: `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`,
    /// `@reboot`.
    ///
    /// # Errors
    /// An expression that does not parse, with the parser's reason.
    pub fn new(expression: &str, job: NewJob) -> Result<Self> {
        let expression = expression.trim().to_owned();
        let schedule = parse(&expression)?;
        Ok(Self {
            expression,
            schedule,
            timezone: Tz::UTC,
            job,
            variant: None,
        })
    }

    /// Evaluates the expression in this IANA time zone (`"America/New_York"`).
    ///
    /// # Errors
    /// A name that is not in the time zone database.
    pub fn timezone(mut self, timezone: &str) -> Result<Self> {
        self.timezone = Tz::from_str(timezone).map_err(|_| {
            Error::Config(format!(
                "unknown time zone `{timezone}` for cron entry `{}`: use an IANA name such as `Europe/Paris`",
                self.expression
            ))
        })?;
        Ok(self)
    }

    /// The entry's identity: worker, expression and time zone, stored in its jobs' `cron_name`.
    /// In a [`CronScheduler`] where other entries share these (the same worker and schedule with
    /// other args or another queue), each of them adds ` #` and a fingerprint of its job (8 hex
    /// digits) so that each inserts its own job every minute.
    pub fn name(&self) -> String {
        let base = self.base_name();
        match &self.variant {
            Some(variant) => format!("{base} #{variant}"),
            None => base,
        }
    }

    fn base_name(&self) -> String {
        format!(
            "{} {} {}",
            self.job.worker,
            self.expression,
            self.timezone.name()
        )
    }

    /// What tells this entry's job apart from another entry's on the same schedule: a hash of
    /// everything it inserts but the worker.
    fn fingerprint(&self) -> String {
        let job = &self.job;
        let identity = serde_json::json!({
            "args": job.args,
            "meta": job.meta,
            "queue": job.queue,
            "tags": job.tags,
            "priority": job.priority,
            "max_attempts": job.max_attempts,
        });
        crate::unique::canonical_hash(&identity)[..8].to_owned()
    }

    /// When the entry next runs after `now`, or `None` when it never will: an expression whose
    /// fields never meet (`0 0 30 2 *`, February 30th) or `@reboot`, which runs only when a
    /// scheduler starts.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.schedule {
            Schedule::Reboot => None,
            Schedule::Cron(cron) => cron
                .find_next_occurrence(&now.with_timezone(&self.timezone), false)
                .ok()
                .map(|at| at.with_timezone(&Utc)),
        }
    }

    /// Whether the entry never runs: not `@reboot`, and no time ever matches its expression.
    pub fn never_fires(&self) -> bool {
        matches!(self.schedule, Schedule::Cron(_)) && self.next_after(Utc::now()).is_none()
    }

    /// Whether the entry runs at the start of this UTC minute.
    pub fn is_due(&self, minute: DateTime<Utc>) -> bool {
        match &self.schedule {
            Schedule::Reboot => false,
            Schedule::Cron(cron) => {
                let local = minute.with_timezone(&self.timezone);
                cron.is_time_matching(&local).unwrap_or(false)
            }
        }
    }

    /// The UTC minutes in `(after, until]` at which the entry runs.
    pub fn due_minutes(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut minute = floor_minute(after) + chrono::Duration::minutes(1);
        let mut due = Vec::new();
        while minute <= until {
            if self.is_due(minute) {
                due.push(minute);
            }
            minute += chrono::Duration::minutes(1);
        }
        due
    }

    fn job_for(&self, tag: &str) -> NewJob {
        let mut job = self.job.clone();
        if let Value::Object(meta) = &mut job.meta {
            meta.insert("cron".into(), Value::Bool(true));
            meta.insert("cron_expr".into(), Value::from(self.expression.as_str()));
            meta.insert("cron_tz".into(), Value::from(self.timezone.name()));
            meta.insert("cron_name".into(), Value::from(self.name()));
            meta.insert("cron_at".into(), Value::from(tag));
        }
        job.unique = Some(
            UniqueOptions::new()
                .fields(&[UniqueField::Worker, UniqueField::Meta])
                .keys(&["cron_name", "cron_at"])
                .infinite()
                .states(UniqueStates::All),
        );
        job.replace.clear();
        job
    }
}

/// Reads an expression with the grammar shared with `#[worker(cron = ..)]` (the `oban-cron`
/// crate), in this crate's words.
fn parse(expression: &str) -> Result<Schedule> {
    oban_cron::parse(expression).map_err(|error| match error {
        CronError::FieldCount => Error::Config(format!(
            "cron expression `{expression}` must have five fields (minute hour day-of-month month day-of-week) or be a nickname such as @hourly"
        )),
        error => Error::Config(format!("cron expression `{expression}` is invalid: {error}")),
    })
}

/// A bare schedule in UTC, for the node's own periodic work (reindexing).
pub(crate) fn utc_schedule(
    expression: &str,
) -> Result<impl Fn(DateTime<Utc>) -> bool + Send + Sync + 'static> {
    let schedule = parse(expression.trim())?;
    Ok(move |minute: DateTime<Utc>| match &schedule {
        Schedule::Cron(cron) => cron.is_time_matching(&minute).unwrap_or(false),
        Schedule::Reboot => false,
    })
}

pub(crate) fn floor_minute(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or(at)
}

/// Inserts the jobs of cron entries as minutes pass. Driven by the leader once a minute; tests
/// drive it with their own clock through [`CronScheduler::run_at`].
#[derive(Debug)]
pub struct CronScheduler {
    entries: Vec<CronEntry>,
    catch_up: Duration,
    last: Option<DateTime<Utc>>,
    rebooted: bool,
}

impl CronScheduler {
    /// A scheduler that, on its first run, also inserts what was due in the `catch_up` before.
    ///
    /// Entries that share a worker, expression and time zone get names of their own (see
    /// [`CronEntry::name`]); entries that are the same in every respect stay one entry, which
    /// inserts one job per minute.
    pub fn new(mut entries: Vec<CronEntry>, catch_up: Duration) -> Self {
        let mut shared_names: HashMap<String, usize> = HashMap::new();
        for entry in &entries {
            *shared_names.entry(entry.base_name()).or_default() += 1;
        }
        for entry in &mut entries {
            entry.variant = (shared_names[&entry.base_name()] > 1).then(|| entry.fingerprint());
        }
        Self {
            entries,
            catch_up,
            last: None,
            rebooted: false,
        }
    }

    /// Forgets where it was, as a node does when it loses leadership: the next run looks back
    /// over `catch_up` again.
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// Inserts every entry's jobs due in the minutes since the last run (or since `now -
    /// catch_up`) up to `now`; `@reboot` entries on the first run. Returns how many jobs were
    /// inserted (duplicates of minutes already inserted by any node are not counted).
    pub async fn run_at(&mut self, engine: &dyn Engine, now: DateTime<Utc>) -> Result<usize> {
        let after = self.last.unwrap_or_else(|| {
            now - chrono::Duration::from_std(self.catch_up).unwrap_or(chrono::Duration::zero())
        });
        let mut jobs = Vec::new();
        for entry in &self.entries {
            match entry.schedule {
                Schedule::Reboot if !self.rebooted => {
                    jobs.push(entry.job_for(&format!("reboot {}", now.to_rfc3339())))
                }
                Schedule::Reboot => {}
                Schedule::Cron(_) => {
                    for minute in entry.due_minutes(after, now) {
                        jobs.push(entry.job_for(&minute.to_rfc3339()));
                    }
                }
            }
        }
        let inserted = if jobs.is_empty() {
            0
        } else {
            engine
                .job_insert_many(jobs)
                .await?
                .iter()
                .filter(|job| !job.conflict)
                .count()
        };
        self.rebooted = true;
        self.last = Some(floor_minute(now).max(after));
        Ok(inserted)
    }
}

/// How long until the start of the next minute, plus a little so the minute has begun everywhere.
pub(crate) fn until_next_minute(now: DateTime<Utc>) -> Duration {
    let next = floor_minute(now) + chrono::Duration::minutes(1);
    (next - now).to_std().unwrap_or_default() + Duration::from_millis(50)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expression_that_never_matches_is_told_apart() {
        let entry = |expression: &str| {
            CronEntry::new(expression, NewJob::new("W", serde_json::json!({}))).unwrap()
        };
        assert!(entry("0 0 30 2 *").never_fires(), "February 30th");
        assert!(entry("0 0 31 4 *").never_fires(), "April 31st");
        assert!(!entry("0 0 29 2 *").never_fires(), "leap days come");
        assert!(!entry("*/5 * * * *").never_fires());
        assert!(!entry("@reboot").never_fires(), "runs at start");
        let now = Utc::now();
        assert!(entry("@hourly").next_after(now).unwrap() > now);
    }
    use serde_json::json;

    fn entry(expr: &str) -> CronEntry {
        CronEntry::new(expr, NewJob::new("W", json!({}))).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn entries_sharing_a_schedule_get_names_of_their_own() {
        let single = entry("* * * * *");
        let plain = single.name();
        assert_eq!(plain, "W * * * * * UTC", "a single entry keeps its name");
        let other_args = CronEntry::new("* * * * *", NewJob::new("W", json!({"id": 2}))).unwrap();
        let other_queue =
            CronEntry::new("* * * * *", NewJob::new("W", json!({})).queue("q2")).unwrap();
        let scheduler = CronScheduler::new(
            vec![single, other_args, other_queue, entry("@hourly")],
            Duration::ZERO,
        );
        let names: Vec<String> = scheduler.entries.iter().map(CronEntry::name).collect();
        assert!(names[..3]
            .iter()
            .all(|n| n.starts_with("W * * * * * UTC #")));
        assert_ne!(names[0], names[1]);
        assert_ne!(names[0], names[2]);
        assert_ne!(names[1], names[2]);
        assert_eq!(names[3], "W @hourly UTC");
    }

    #[test]
    fn ranges_steps_lists_and_names() {
        let e = entry("*/15 9-17 * JAN-MAR MON,WED");
        // 2026-01-05 is a Monday.
        assert!(e.is_due(at("2026-01-05T09:15:00Z")));
        assert!(!e.is_due(at("2026-01-05T09:16:00Z")));
        assert!(!e.is_due(at("2026-01-05T18:00:00Z")));
        assert!(!e.is_due(at("2026-01-06T09:15:00Z")), "Tuesday");
        assert!(!e.is_due(at("2026-04-06T09:15:00Z")), "April");
        assert!(entry("0 12 1,15 * *").is_due(at("2026-07-15T12:00:00Z")));
    }

    #[test]
    fn nicknames() {
        assert!(entry("@hourly").is_due(at("2026-07-15T13:00:00Z")));
        assert!(!entry("@hourly").is_due(at("2026-07-15T13:01:00Z")));
        assert!(entry("@daily").is_due(at("2026-07-15T00:00:00Z")));
        assert!(entry("@midnight").is_due(at("2026-07-15T00:00:00Z")));
        assert!(
            entry("@weekly").is_due(at("2026-07-19T00:00:00Z")),
            "a Sunday"
        );
        assert!(entry("@monthly").is_due(at("2026-08-01T00:00:00Z")));
        assert!(entry("@yearly").is_due(at("2027-01-01T00:00:00Z")));
        assert!(entry("@annually").is_due(at("2027-01-01T00:00:00Z")));
        assert!(!entry("@reboot").is_due(at("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in [
            "61 * * * *",
            "* * *",
            "* * * * * * *",
            "@sometimes",
            "*/0 * * * *",
            "* 25 * * *",
            "* * * FOO *",
        ] {
            let err = CronEntry::new(bad, NewJob::new("W", json!({})))
                .unwrap_err()
                .to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
        let err = entry("* * * * *")
            .timezone("Mars/Olympus")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Mars/Olympus"), "{err}");
    }

    #[test]
    fn time_zones_shift_the_schedule() {
        let paris = entry("0 9 * * *").timezone("Europe/Paris").unwrap();
        assert!(paris.is_due(at("2026-01-10T08:00:00Z")), "CET is UTC+1");
        assert!(paris.is_due(at("2026-07-10T07:00:00Z")), "CEST is UTC+2");
        assert!(!paris.is_due(at("2026-07-10T09:00:00Z")));
    }

    #[test]
    fn spring_forward_skips_the_missing_time() {
        // 2026-03-08: New York clocks jump from 02:00 to 03:00.
        let e = entry("30 2 * * *").timezone("America/New_York").unwrap();
        let due = e.due_minutes(at("2026-03-07T12:00:00Z"), at("2026-03-10T12:00:00Z"));
        assert_eq!(
            due,
            vec![at("2026-03-09T06:30:00Z"), at("2026-03-10T06:30:00Z")],
            "no run on the 8th; 02:30 EDT on the 9th and 10th"
        );
        let hourly = entry("0 * * * *").timezone("America/New_York").unwrap();
        assert_eq!(
            hourly
                .due_minutes(at("2026-03-08T04:30:00Z"), at("2026-03-08T08:30:00Z"))
                .len(),
            4,
            "every real hour still runs once"
        );
    }

    #[test]
    fn fall_back_runs_the_repeated_time_twice() {
        // 2026-11-01: New York clocks go back from 02:00 EDT to 01:00 EST.
        let e = entry("30 1 * * *").timezone("America/New_York").unwrap();
        let due = e.due_minutes(at("2026-11-01T00:00:00Z"), at("2026-11-01T12:00:00Z"));
        assert_eq!(
            due,
            vec![at("2026-11-01T05:30:00Z"), at("2026-11-01T06:30:00Z")]
        );
    }
}
