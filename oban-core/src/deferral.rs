//! Jobs a node claims but cannot run: their worker is not linked into this node (a rolling
//! deploy: an old node claims a job of a worker only the new release has), or a `State<T>` the
//! worker needs was not given to this node's builder.
//!
//! Such a job is **deferred** rather than failed: the attempt the claim took is given back
//! (`attempt - 1`, as a snooze does), the job is `scheduled` a short while later, the deferrals
//! are counted in the job's `meta` under [`META_KEY`], and an entry in `errors` says which node
//! could not run it and why. The delay doubles from 1 s and stays at [`MAX_DELAY`] (a minute),
//! so a node that knows the worker, once one runs the queue, gets the job within about a minute.
//!
//! After [`MAX_DEFERRALS`] deferrals (about an hour of them, [`total_delay`]) the job is failed
//! as any other failed attempt: retried with the worker's default backoff and discarded once
//! its attempts are spent, so a misspelt worker name still surfaces as a discarded job.
//!
//! ```
//! use std::time::Duration;
//! use oban_core::deferral::{delay, total_delay, MAX_DEFERRALS};
//!
//! assert_eq!(delay(1), Duration::from_secs(1));
//! assert_eq!(delay(4), Duration::from_secs(8));
//! assert_eq!(delay(MAX_DEFERRALS), Duration::from_secs(60));
//! assert!(total_delay() > Duration::from_secs(55 * 60));
//! ```
//!
//! Elixir and Python Oban treat an unknown worker as a failed attempt; a snooze there gives the
//! attempt back and counts `meta.snoozed`, as deferrals do here under their own key (a worker's
//! own snooze count is left alone).

use std::time::Duration;

use serde_json::{json, Value};

use crate::engine::Ack;
use crate::job::{Job, JobState};

/// The `meta` key counting a job's deferrals (an integer).
pub const META_KEY: &str = "worker_deferrals";

/// How many times a job is deferred before a node that cannot run it fails it as usual.
pub const MAX_DEFERRALS: i64 = 64;

/// The longest wait between two deferrals.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// How long the `deferral`-th deferral (from 1) waits: 1 s, doubling, at most [`MAX_DELAY`].
pub fn delay(deferral: i64) -> Duration {
    let exponent = u32::try_from(deferral.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    Duration::from_secs(1u64 << exponent).min(MAX_DELAY)
}

/// The sum of every deferral's delay: how long, at least, a job waits for a node that can run it
/// before its attempts are spent (59 minutes).
pub fn total_delay() -> Duration {
    (1..=MAX_DEFERRALS).map(delay).sum()
}

/// Why this node cannot run a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unrunnable {
    /// No worker of the job's name is registered here.
    UnknownWorker,
    /// The worker is registered, but these `State<T>` types were not given to the builder.
    MissingState(Vec<&'static str>),
}

impl Unrunnable {
    /// What is missing, naming the worker and the node.
    fn what(&self, job: &Job, node: &str) -> String {
        match self {
            Unrunnable::UnknownWorker => {
                format!("worker `{}` is not known to node `{node}`", job.worker)
            }
            Unrunnable::MissingState(types) => format!(
                "worker `{}` needs {} that node `{node}` was not given",
                job.worker,
                types
                    .iter()
                    .map(|t| format!("`State<{t}>`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// What to do about it.
    fn remedy(&self, job: &Job) -> String {
        match self {
            Unrunnable::UnknownWorker => format!(
                "register the worker on the nodes running queue `{}` (or fix the job's worker name)",
                job.queue
            ),
            Unrunnable::MissingState(_) => format!(
                "register the values with `Oban::builder().state(value)` on the nodes running queue `{}`",
                job.queue
            ),
        }
    }
}

/// How many times `job` was deferred so far (0 when its meta has no count).
pub(crate) fn deferrals(job: &Job) -> i64 {
    job.meta.get(META_KEY).and_then(Value::as_i64).unwrap_or(0)
}

/// The ack that defers `job`, or, once it was deferred [`MAX_DEFERRALS`] times, the message of
/// the failed attempt to record instead.
pub(crate) fn defer(job: &Job, why: &Unrunnable, node: &str) -> Result<Ack, String> {
    let done = deferrals(job).max(0);
    if done >= MAX_DEFERRALS {
        return Err(format!(
            "{}, and it was deferred {done} times (about {} min) without reaching a node that can \
             run it, so its attempts are now spent; {}",
            why.what(job, node),
            total_delay().as_secs() / 60,
            why.remedy(job)
        ));
    }
    let count = done + 1;
    let wait = delay(count);
    Ok(Ack {
        id: job.id,
        attempted_at: crate::queue::executor::attempt_stamp(job),
        state: JobState::Scheduled,
        schedule_in: Some(wait),
        give_back_attempt: true,
        error: Some(json!({
            "attempt": job.attempt,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "error": format!(
                "{}; deferred without spending an attempt ({count} of {MAX_DEFERRALS}), \
                 next try in {}s; {}",
                why.what(job, node),
                wait.as_secs(),
                why.remedy(job)
            ),
        })),
        meta: Some(json!({ META_KEY: count })),
    })
}

/// Whether `ack` is a deferral (made by [`defer`]).
pub(crate) fn is_deferral(ack: &Ack) -> bool {
    ack.state == JobState::Scheduled
        && ack.error.is_some()
        && ack
            .meta
            .as_ref()
            .is_some_and(|meta| meta.get(META_KEY).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(meta: Value) -> Job {
        let now = chrono::Utc::now();
        Job {
            id: 9,
            state: JobState::Executing,
            queue: "mail".into(),
            worker: "New.Worker".into(),
            args: json!({}),
            meta,
            tags: Vec::new(),
            errors: Vec::new(),
            attempt: 1,
            max_attempts: 1,
            priority: 0,
            attempted_by: vec!["old".into()],
            inserted_at: now,
            scheduled_at: now,
            attempted_at: Some(now),
            completed_at: None,
            discarded_at: None,
            cancelled_at: None,
            conflict: false,
        }
    }

    #[test]
    fn delays_grow_and_stay_bounded_for_about_an_hour() {
        let delays: Vec<u64> = (1..=8).map(|k| delay(k).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(delay(i64::MAX), MAX_DELAY);
        assert_eq!(delay(0), Duration::from_secs(1));
        assert_eq!(delay(-5), Duration::from_secs(1));
        let total = total_delay().as_secs();
        assert!((55 * 60..=65 * 60).contains(&total), "{total}");
    }

    #[test]
    fn a_first_deferral_gives_the_attempt_back_and_counts_one() {
        let ack = defer(&job(json!({})), &Unrunnable::UnknownWorker, "old").unwrap();
        assert_eq!(ack.state, JobState::Scheduled);
        assert!(ack.give_back_attempt);
        assert_eq!(ack.schedule_in, Some(Duration::from_secs(1)));
        assert_eq!(ack.meta, Some(json!({ META_KEY: 1 })));
        let message = ack.error.as_ref().unwrap()["error"].as_str().unwrap();
        assert!(
            message.starts_with(
                "worker `New.Worker` is not known to node `old`; deferred without spending an \
                 attempt (1 of 64)"
            ),
            "{message}"
        );
        assert!(is_deferral(&ack));
    }

    #[test]
    fn the_last_deferral_then_a_failure() {
        let ack = defer(
            &job(json!({ META_KEY: MAX_DEFERRALS - 1, "other": true })),
            &Unrunnable::MissingState(vec!["app::Mailer"]),
            "web",
        )
        .unwrap();
        assert_eq!(ack.meta, Some(json!({ META_KEY: MAX_DEFERRALS })));
        let message = ack.error.as_ref().unwrap()["error"].as_str().unwrap();
        assert!(message.contains("`State<app::Mailer>`"), "{message}");
        assert!(message.contains("(64 of 64)"), "{message}");
        let failure = defer(
            &job(json!({ META_KEY: MAX_DEFERRALS })),
            &Unrunnable::UnknownWorker,
            "old",
        )
        .unwrap_err();
        assert!(failure.contains("deferred 64 times"), "{failure}");
        assert!(failure.contains("queue `mail`"), "{failure}");
    }

    #[test]
    fn a_count_that_is_not_a_number_starts_over() {
        let ack = defer(
            &job(json!({ META_KEY: "many" })),
            &Unrunnable::UnknownWorker,
            "old",
        )
        .unwrap();
        assert_eq!(ack.meta, Some(json!({ META_KEY: 1 })));
    }
}
