//! Runs one attempt of a job and turns whatever happened into an [`Ack`].

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::deferral::{self, Unrunnable};
use crate::engine::Ack;
use crate::events::{queue_time, Events, JobOutcome};
use crate::job::{Job, JobState};
use crate::measure::jobs as measure;
use crate::queue::span;
use crate::recorded;
use crate::registry::Registry;
use crate::state::StateMap;
use crate::worker::{JobError, Outcome, WorkerOptions};

/// How an attempt ended, before it is mapped to a state.
#[derive(Debug)]
pub(crate) enum Finished {
    /// The worker returned.
    Returned(Result<Outcome, JobError>),
    /// The worker panicked, with this message.
    Panicked(String),
    /// The attempt ran past its timeout.
    TimedOut(Duration),
    /// The args do not fit the worker: retrying cannot help.
    Undecodable(String),
    /// This node cannot run the job's worker (another node may): deferred, see
    /// [`deferral`](crate::deferral).
    Unrunnable(Unrunnable),
}

/// Runs `job` to the end (or its timeout) and returns the ack to record.
pub(crate) async fn execute(
    job: Job,
    registry: Arc<Registry>,
    state: Arc<StateMap>,
    node: Arc<str>,
    events: Events,
) -> Ack {
    let span = span::job_span(&job);
    let fields = span.clone();
    async move {
        let started = Instant::now();
        let started_at = chrono::Utc::now();
        span::record_start(&fields, queue_time(&job, started_at));
        events.job_start(&job, started_at);
        let job = Arc::new(job);
        // A panic anywhere on the attempt's path (decoding the args, the worker, a custom backoff,
        // building the ack) is a failed attempt like any other: caught here, it spends the
        // attempt and is recorded in `errors`, so the job never stays `executing` under a live
        // producer, nor comes back without spending attempts.
        let ack = match AssertUnwindSafe(attempt(&job, &registry, state, &node))
            .catch_unwind()
            .await
        {
            Ok(ack) => ack,
            Err(panic) => to_ack(
                &job,
                Finished::Panicked(panic_message(&*panic)),
                &WorkerOptions::new(),
                &node,
            ),
        };
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        let error = ack
            .error
            .as_ref()
            .and_then(|e| e.get("error"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match ack.state {
            JobState::Completed => tracing::debug!(elapsed_ms, "job completed"),
            JobState::Scheduled if deferral::is_deferral(&ack) => {
                tracing::warn!(error, "job deferred: this node cannot run its worker");
            }
            JobState::Scheduled => tracing::debug!(elapsed_ms, "job snoozed"),
            JobState::Retryable => tracing::warn!(elapsed_ms, error, "job failed, will retry"),
            JobState::Discarded => tracing::error!(elapsed_ms, error, "job discarded"),
            JobState::Cancelled => tracing::info!(elapsed_ms, error, "job cancelled"),
            _ => {}
        }
        if let Some(outcome) = job_outcome(&ack) {
            let failed = matches!(outcome, JobOutcome::Retryable | JobOutcome::Discarded);
            span::record_end(&fields, outcome, elapsed, failed.then_some(error));
            let error = ack.error.is_some().then_some(error);
            // Recorded before the event, so a subscriber that sees the stop sees it counted.
            measure::job_stop(&job, outcome, elapsed, queue_time(&job, started_at));
            events.job_stop(&job, started_at, elapsed, outcome, error);
        }
        ack
    }
    .instrument(span)
    .await
}

/// The outcome an event reports for `ack`; `None` for states an attempt never ends in.
fn job_outcome(ack: &Ack) -> Option<JobOutcome> {
    Some(match ack.state {
        JobState::Completed => JobOutcome::Completed,
        JobState::Scheduled if deferral::is_deferral(ack) => JobOutcome::Deferred,
        JobState::Scheduled => JobOutcome::Snoozed,
        JobState::Retryable => JobOutcome::Retryable,
        JobState::Discarded => JobOutcome::Discarded,
        JobState::Cancelled => JobOutcome::Cancelled,
        _ => return None,
    })
}

/// Decodes the args, runs the worker under its timeout and maps the end to an ack; panics in the
/// worker's body are caught here, any other panic by [`execute`].
async fn attempt(job: &Arc<Job>, registry: &Registry, state: Arc<StateMap>, node: &str) -> Ack {
    let registration = registry.get(&job.worker).copied();
    let (finished, options) = match registration {
        None => (
            Finished::Unrunnable(Unrunnable::UnknownWorker),
            WorkerOptions::new(),
        ),
        Some(registration) => {
            let options = registration.options();
            let missing = registration.missing_state(&state);
            let finished = if !missing.is_empty() {
                Finished::Unrunnable(Unrunnable::MissingState(missing))
            } else {
                match (registration.run)(Arc::clone(job), state) {
                    Err(message) => Finished::Undecodable(message),
                    Ok(future) => {
                        let guarded = AssertUnwindSafe(future).catch_unwind();
                        let outcome = match options.timeout {
                            Some(limit) => tokio::time::timeout(limit, guarded)
                                .await
                                .map_err(|_| limit),
                            None => Ok(guarded.await),
                        };
                        match outcome {
                            Ok(Ok(result)) => Finished::Returned(result),
                            Ok(Err(panic)) => Finished::Panicked(panic_message(&*panic)),
                            Err(limit) => Finished::TimedOut(limit),
                        }
                    }
                }
            };
            (finished, options)
        }
    };
    to_ack(job, finished, &options, node)
}

/// Maps how an attempt ended to the job's next state, as DESIGN.md section 3 tabulates, in a
/// form every engine can store ([`Ack::storable`]: NULs in the error replaced, the delay of a
/// snooze or a backoff clamped to [`Ack::MAX_DELAY`]). `options` are the worker's (its backoff
/// and record limit), or the defaults when no worker ran.
pub(crate) fn to_ack(job: &Job, finished: Finished, options: &WorkerOptions, node: &str) -> Ack {
    outcome(job, finished, options, node).storable()
}

fn outcome(job: &Job, finished: Finished, options: &WorkerOptions, node: &str) -> Ack {
    let mut ack = Ack {
        id: job.id,
        attempted_at: attempt_stamp(job),
        state: JobState::Completed,
        schedule_in: None,
        give_back_attempt: false,
        error: None,
        meta: None,
    };
    let failure = match finished {
        Finished::Returned(Ok(Outcome::Complete)) => return ack,
        // Completed with the value recorded, unless its encoding is over the worker's limit:
        // then a failed attempt saying so.
        Finished::Returned(Ok(Outcome::Record(value))) => {
            match recorded::meta_for(&value, options.record_limit) {
                Ok(meta) => {
                    ack.meta = Some(meta);
                    return ack;
                }
                Err(message) => message,
            }
        }
        Finished::Returned(Ok(Outcome::Snooze(delay))) => {
            let snoozed = job.meta.get("snoozed").and_then(Value::as_i64).unwrap_or(0) + 1;
            ack.state = JobState::Scheduled;
            ack.schedule_in = Some(delay);
            ack.give_back_attempt = true;
            ack.meta = Some(json!({ "snoozed": snoozed }));
            return ack;
        }
        Finished::Returned(Ok(Outcome::Discard(reason))) => {
            ack.state = JobState::Discarded;
            ack.error = Some(error_entry(job, &format!("discarded: {reason}")));
            return ack;
        }
        Finished::Returned(Ok(Outcome::Cancel(reason))) => {
            ack.state = JobState::Cancelled;
            ack.error = Some(error_entry(job, &format!("cancelled: {reason}")));
            return ack;
        }
        Finished::Undecodable(message) => {
            ack.state = JobState::Discarded;
            ack.error = Some(error_entry(job, &message));
            return ack;
        }
        Finished::Returned(Err(error)) => error.message().to_owned(),
        Finished::Panicked(message) => format!("panicked: {message}"),
        Finished::TimedOut(limit) => format!("timed out after {limit:?}"),
        Finished::Unrunnable(why) => match deferral::defer(job, &why, node) {
            Ok(deferred) => return deferred,
            Err(failure) => failure,
        },
    };
    if job.is_last_attempt() {
        ack.state = JobState::Discarded;
        ack.error = Some(error_entry(job, &failure));
    } else {
        ack.state = JobState::Retryable;
        let (delay, failure) = retry_delay(job, options.backoff, failure);
        ack.schedule_in = Some(delay);
        ack.error = Some(error_entry(job, &failure));
    }
    ack
}

/// The delay before the next attempt. A custom backoff that panics must not lose the attempt's
/// outcome: the default backoff is used instead, and the panic joins the recorded failure.
fn retry_delay(job: &Job, backoff: Backoff, failure: String) -> (Duration, String) {
    match std::panic::catch_unwind(AssertUnwindSafe(|| backoff.delay_for(job))) {
        Ok(delay) => (delay, failure),
        Err(panic) => (
            Backoff::Default.delay_for(job),
            format!(
                "{failure}; the worker's backoff panicked ({}), so the default backoff was used",
                panic_message(&*panic)
            ),
        ),
    }
}

/// The time the job's current attempt was claimed, as stored: acks are guarded on it, so that an
/// ack never overwrites a later attempt (rescued or retried meanwhile).
pub(crate) fn attempt_stamp(job: &Job) -> chrono::NaiveDateTime {
    job.attempted_at
        .map(|at| at.naive_utc())
        .unwrap_or_default()
}

/// The ack for a job fetched as its node stopped, never started: available again, attempt
/// given back, nothing recorded against it.
pub(crate) fn released(job: &Job) -> Ack {
    Ack {
        id: job.id,
        attempted_at: attempt_stamp(job),
        state: JobState::Available,
        schedule_in: Some(Duration::ZERO),
        give_back_attempt: true,
        error: None,
        meta: None,
    }
    .storable()
}

/// The ack for an attempt cut short by shutdown: runnable again, attempt given back.
pub(crate) fn interrupted(
    id: i64,
    attempt: i32,
    attempted_at: chrono::NaiveDateTime,
    node: &str,
) -> Ack {
    Ack {
        id,
        attempted_at,
        state: JobState::Available,
        schedule_in: Some(Duration::ZERO),
        give_back_attempt: true,
        error: Some(json!({
            "attempt": attempt,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "error": format!("interrupted: node `{node}` shut down before the attempt finished"),
        })),
        meta: None,
    }
    .storable()
}

/// The ack for an attempt whose task panicked outside the executor's own guard: a failed
/// attempt, retried with the default backoff or discarded when it was the last.
pub(crate) fn panicked(
    id: i64,
    attempt: i32,
    max_attempts: i32,
    attempted_at: chrono::NaiveDateTime,
    message: &str,
) -> Ack {
    let last = attempt >= max_attempts;
    let delay = Backoff::Default.delay(
        u32::try_from(attempt.max(1)).unwrap_or(1),
        u32::try_from(max_attempts.max(1)).unwrap_or(1),
    );
    Ack {
        id,
        attempted_at,
        state: if last {
            JobState::Discarded
        } else {
            JobState::Retryable
        },
        schedule_in: (!last).then_some(delay),
        give_back_attempt: false,
        error: Some(json!({
            "attempt": attempt,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "error": format!("panicked: {message}"),
        })),
        meta: None,
    }
    .storable()
}

/// The ack for an attempt stopped on request (a cancel of a running job).
pub(crate) fn killed(id: i64, attempt: i32, attempted_at: chrono::NaiveDateTime) -> Ack {
    Ack {
        id,
        attempted_at,
        state: JobState::Cancelled,
        schedule_in: None,
        give_back_attempt: false,
        error: Some(json!({
            "attempt": attempt,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "error": "cancelled while running",
        })),
        meta: None,
    }
    .storable()
}

fn error_entry(job: &Job, message: &str) -> Value {
    json!({
        "attempt": job.attempt,
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "error": message,
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
