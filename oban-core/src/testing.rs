//! Test helpers, Oban.Testing's counterpart: run a worker without a queue, assert what was
//! enqueued, and drain a queue in the test's own task.
//!
//! ```no_run
//! # use oban_core::{JobContext, JobError, Outcome, Worker};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct SendReceipt { order_id: i64 }
//! # impl Worker for SendReceipt { const NAME: &'static str = "SendReceipt";
//! #   async fn perform(self, _: JobContext) -> Result<Outcome, JobError> { Ok(Outcome::Complete) } }
//! # async fn demo(oban: oban_core::Oban) {
//! use oban_core::testing::{self, Enqueued};
//! use serde_json::json;
//!
//! // The worker alone: args go through JSON exactly as from the table.
//! assert_eq!(testing::perform_job(SendReceipt { order_id: 1 }).await, Ok(Outcome::Complete));
//!
//! // What the code under test enqueued (an Oban started with `.testing(Testing::Manual)`).
//! testing::assert_enqueued(&oban, Enqueued::worker::<SendReceipt>().args(json!({"order_id": 1}))).await;
//!
//! // Run it, here and now.
//! let result = testing::drain_queue(&oban, testing::Drain::queue("default")).await.unwrap();
//! assert_eq!(result.completed, 1);
//! # }
//! ```

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::deferral;
use crate::engine::Ack;
use crate::error::Result;
use crate::events::Events;
use crate::filter::JobFilter;
use crate::job::{Job, JobState};
use crate::node::Oban;
use crate::queue::executor;
use crate::registry::{Registry, WorkerRegistration};
use crate::state::StateMap;
use crate::worker::{JobError, Outcome, Worker};

/// How an `Oban` built for tests runs jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Testing {
    /// Jobs are inserted and never run by queues: assert on them, or [`drain_queue`] them.
    Manual,
    /// Jobs run as they are inserted through the `Oban` handle, in the caller's task, without
    /// touching a database; the insert returns the job in its final state.
    Inline,
}

/// Runs one attempt of worker `W` with `args`, as a queue would (args round-tripped through
/// JSON, attempt 1), without a database or a queue.
pub async fn perform_job<W: Worker>(args: W) -> Result<Outcome, JobError> {
    Perform::new(args).run().await
}

/// [`perform_job`] with state, attempt or meta set.
///
/// ```no_run
/// # use oban_core::{JobContext, JobError, Outcome, Worker, State};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Charge { cents: i64 }
/// # struct Gateway;
/// # impl Worker for Charge { const NAME: &'static str = "Charge";
/// #   async fn perform(self, _: JobContext) -> Result<Outcome, JobError> { Ok(Outcome::Complete) } }
/// # async fn demo() {
/// use oban_core::testing::Perform;
/// let outcome = Perform::new(Charge { cents: 500 }).state(Gateway).attempt(3).run().await;
/// # let _ = outcome; }
/// ```
#[must_use = "call `.run().await`"]
pub struct Perform<W> {
    args: W,
    state: StateMap,
    attempt: i32,
    meta: Map<String, Value>,
}

impl<W: Worker> Perform<W> {
    /// An attempt of `W` with `args`.
    pub fn new(args: W) -> Self {
        Self {
            args,
            state: StateMap::new(),
            attempt: 1,
            meta: Map::new(),
        }
    }

    /// Provides a `State<T>` value.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Runs as this attempt (default 1).
    pub fn attempt(mut self, attempt: i32) -> Self {
        self.attempt = attempt.max(1);
        self
    }

    /// Sets a meta key of the job.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.meta.insert(key.into(), value.into());
        self
    }

    /// Runs the attempt; a panic is returned as an error, as a queue records it.
    ///
    /// # Panics
    /// When the args do not survive the JSON round trip (they could not be stored), or a
    /// `State<T>` the worker needs was not given: both are bugs in the test.
    pub async fn run(self) -> Result<Outcome, JobError> {
        let missing: Vec<&str> = W::required_state()
            .iter()
            .filter(|key| !self.state.contains(key))
            .map(|key| key.type_name)
            .collect();
        assert!(
            missing.is_empty(),
            "`{}` needs state the test did not give: {missing:?}; add `.state(value)`",
            W::NAME
        );
        let args = serde_json::to_value(&self.args).expect("the args serialize to JSON");
        let options = W::options();
        let now = Utc::now();
        let job = Job {
            id: 0,
            state: JobState::Executing,
            queue: options.queue.to_owned(),
            worker: W::NAME.to_owned(),
            args,
            meta: Value::Object(self.meta),
            tags: options.tags.iter().map(|t| (*t).to_owned()).collect(),
            errors: Vec::new(),
            attempt: self.attempt,
            max_attempts: i32::from(options.max_attempts).max(self.attempt),
            priority: i32::from(options.priority),
            attempted_by: vec!["test".into()],
            inserted_at: now,
            scheduled_at: now,
            attempted_at: Some(now),
            completed_at: None,
            discarded_at: None,
            cancelled_at: None,
            conflict: false,
        };
        let mut registry = Registry::default();
        registry
            .add(WorkerRegistration::of::<W>())
            .expect("one worker");
        let ack = executor::execute(
            job,
            Arc::new(registry),
            Arc::new(self.state),
            Arc::from("test"),
            Events::default(),
        )
        .await;
        outcome_of(&ack)
    }
}

/// Reads back what an ack says about the attempt.
fn outcome_of(ack: &Ack) -> Result<Outcome, JobError> {
    let message = || {
        ack.error
            .as_ref()
            .and_then(|e| e.get("error"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match ack.state {
        JobState::Completed => match ack.meta.as_ref().map(crate::recorded::decode_meta) {
            Some(Ok(Some(value))) => Ok(Outcome::Record(value)),
            _ => Ok(Outcome::Complete),
        },
        JobState::Scheduled => Ok(Outcome::Snooze(ack.schedule_in.unwrap_or_default())),
        JobState::Cancelled => Ok(Outcome::Cancel(
            message()
                .strip_prefix("cancelled: ")
                .map(str::to_owned)
                .unwrap_or_else(message),
        )),
        JobState::Discarded if message().starts_with("discarded: ") => Ok(Outcome::Discard(
            message().trim_start_matches("discarded: ").to_owned(),
        )),
        _ => Err(JobError::new(message())),
    }
}

/// What to look for among enqueued jobs: worker, queue, args and meta (partial: the job's must
/// contain these), tags, state, and a scheduled time with a tolerance.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Enqueued {
    filter: JobFilter,
    scheduled_at: Option<(DateTime<Utc>, Duration)>,
    wait: Option<Duration>,
}

impl Enqueued {
    /// Any job.
    pub fn any() -> Self {
        Self::default()
    }

    /// Jobs of worker `W`.
    pub fn worker<W: Worker>() -> Self {
        Self::named(W::NAME)
    }

    /// Jobs of the worker stored as `name`.
    pub fn named(name: &str) -> Self {
        Self {
            filter: JobFilter::new().worker(name),
            ..Self::default()
        }
    }

    /// In this queue.
    pub fn queue(mut self, queue: &str) -> Self {
        self.filter = self.filter.queue(queue);
        self
    }

    /// Whose args contain these (a partial match).
    pub fn args(mut self, args: Value) -> Self {
        self.filter = self.filter.args_contain(args);
        self
    }

    /// Whose meta contains these.
    pub fn meta(mut self, meta: Value) -> Self {
        self.filter = self.filter.meta_contain(meta);
        self
    }

    /// With this tag.
    pub fn tag(mut self, tag: &str) -> Self {
        self.filter = self.filter.tag(tag);
        self
    }

    /// In this state (default: any state a job waits in: available, scheduled, retryable).
    pub fn state(mut self, state: JobState) -> Self {
        self.filter = self.filter.state(state);
        self
    }

    /// Scheduled within `tolerance` of `at`.
    pub fn scheduled_at(mut self, at: DateTime<Utc>, tolerance: Duration) -> Self {
        self.scheduled_at = Some((at, tolerance));
        self
    }

    /// Polls up to `limit` for a matching job instead of checking once (for jobs enqueued by
    /// another task).
    pub fn within(mut self, limit: Duration) -> Self {
        self.wait = Some(limit);
        self
    }

    fn matches(&self, job: &Job) -> bool {
        self.scheduled_at.is_none_or(|(at, tolerance)| {
            let tolerance = chrono::Duration::from_std(tolerance).unwrap_or(chrono::Duration::MAX);
            (job.scheduled_at - at).abs() <= tolerance
        })
    }

    fn describe(&self) -> String {
        let f = &self.filter;
        let mut parts = Vec::new();
        if !f.workers.is_empty() {
            parts.push(format!("worker {:?}", f.workers));
        }
        if !f.queues.is_empty() {
            parts.push(format!("queue {:?}", f.queues));
        }
        if let Some(args) = &f.args {
            parts.push(format!("args containing {args}"));
        }
        if let Some(meta) = &f.meta {
            parts.push(format!("meta containing {meta}"));
        }
        if !f.tags.is_empty() {
            parts.push(format!("tags {:?}", f.tags));
        }
        if !f.states.is_empty() {
            parts.push(format!("state {:?}", f.states));
        }
        if let Some((at, tolerance)) = self.scheduled_at {
            parts.push(format!("scheduled at {at} ± {tolerance:?}"));
        }
        if parts.is_empty() {
            "any job".into()
        } else {
            parts.join(", ")
        }
    }

    fn effective_filter(&self) -> JobFilter {
        let mut filter = self.filter.clone();
        if filter.states.is_empty() {
            filter.states = vec![
                JobState::Available,
                JobState::Scheduled,
                JobState::Retryable,
            ];
        }
        filter
    }
}

/// Every enqueued job matching `expected`, oldest first.
pub async fn all_enqueued(oban: &Oban, expected: &Enqueued) -> Result<Vec<Job>> {
    let jobs = oban
        .engine()
        .job_list(&expected.effective_filter(), 10_000)
        .await?;
    Ok(jobs
        .into_iter()
        .filter(|job| expected.matches(job))
        .collect())
}

/// Asserts that a job matching `expected` is enqueued; the panic message lists what was
/// enqueued instead.
///
/// # Panics
/// When no job matches (within the `within` limit, if given).
pub async fn assert_enqueued(oban: &Oban, expected: Enqueued) -> Job {
    let deadline = crate::clock::after(expected.wait.unwrap_or_default());
    loop {
        let found = all_enqueued(oban, &expected)
            .await
            .expect("list enqueued jobs");
        if let Some(job) = found.into_iter().next() {
            return job;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{}", not_found_message(oban, &expected).await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that no job matching `expected` is enqueued (for the whole `within` period, if
/// given).
///
/// # Panics
/// When a job matches; the message shows it.
pub async fn refute_enqueued(oban: &Oban, expected: Enqueued) {
    let deadline = crate::clock::after(expected.wait.unwrap_or_default());
    loop {
        let found = all_enqueued(oban, &expected)
            .await
            .expect("list enqueued jobs");
        if let Some(job) = found.first() {
            panic!(
                "expected no enqueued job with {}, found: {}",
                expected.describe(),
                summary(job)
            );
        }
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn not_found_message(oban: &Oban, expected: &Enqueued) -> String {
    let mut message = format!("expected an enqueued job with {}", expected.describe());
    let waiting = JobFilter {
        states: vec![
            JobState::Available,
            JobState::Scheduled,
            JobState::Retryable,
        ],
        ..JobFilter::default()
    };
    let others = oban
        .engine()
        .job_list(&waiting, 20)
        .await
        .unwrap_or_default();
    if others.is_empty() {
        message.push_str(", but no jobs are enqueued");
    } else {
        message.push_str(", but the enqueued jobs are:");
        for job in &others {
            let _ = write!(message, "\n  {}", summary(job));
        }
    }
    message
}

fn summary(job: &Job) -> String {
    format!(
        "#{} {} queue={} state={} args={} meta={} tags={:?} scheduled_at={}",
        job.id, job.worker, job.queue, job.state, job.args, job.meta, job.tags, job.scheduled_at
    )
}

/// How [`drain_queue`] runs.
#[derive(Debug, Clone)]
#[must_use]
pub struct Drain {
    queue: String,
    with_scheduled: bool,
    with_recursion: bool,
    with_limit: Option<usize>,
    with_safety: bool,
}

impl Drain {
    /// Drains `queue`: its available jobs, once, catching failures.
    pub fn queue(queue: &str) -> Self {
        Self {
            queue: queue.into(),
            with_scheduled: false,
            with_recursion: false,
            with_limit: None,
            with_safety: true,
        }
    }

    /// Also runs scheduled and retryable jobs, whatever their time.
    pub fn with_scheduled(mut self, yes: bool) -> Self {
        self.with_scheduled = yes;
        self
    }

    /// Keeps draining until the queue is empty, running jobs that jobs enqueued (and retries,
    /// with `with_scheduled`).
    pub fn with_recursion(mut self, yes: bool) -> Self {
        self.with_recursion = yes;
        self
    }

    /// Runs at most this many jobs.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.with_limit = Some(limit);
        self
    }

    /// With `false`, the first failure (error, panic, timeout, or a worker this node cannot run)
    /// stops the drain and is returned as an error instead of being recorded as a retry.
    pub fn with_safety(mut self, yes: bool) -> Self {
        self.with_safety = yes;
        self
    }
}

/// How many drained jobs ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainResult {
    /// Completed.
    pub completed: usize,
    /// Failed with attempts left (retryable).
    pub failed: usize,
    /// Discarded (on purpose or out of attempts).
    pub discarded: usize,
    /// Cancelled.
    pub cancelled: usize,
    /// Snoozed, or deferred because this node cannot run the job's worker (not registered, or
    /// its `State<T>` not given; see [`crate::deferral`]).
    pub snoozed: usize,
}

/// Why a drain with `with_safety(false)` stopped.
#[derive(Debug, thiserror::Error)]
#[error("job #{job_id} ({worker}) failed: {message}")]
pub struct DrainError {
    /// The job.
    pub job_id: i64,
    /// Its worker.
    pub worker: String,
    /// What went wrong.
    pub message: String,
    /// What was drained before it.
    pub so_far: DrainResult,
}

/// Runs the jobs of a queue in the calling task and records their outcomes, as a queue would.
/// Use it with an `Oban` in [`Testing::Manual`] mode.
///
/// # Errors
/// A failed job under `with_safety(false)`.
pub async fn drain_queue(
    oban: &Oban,
    options: Drain,
) -> std::result::Result<DrainResult, DrainError> {
    let engine = oban.engine();
    let mut result = DrainResult::default();
    let mut ran = 0usize;
    let attempted_by = vec![oban.node().to_owned(), "drain".to_owned()];
    loop {
        if options.with_scheduled {
            let due = JobFilter::new()
                .queue(&options.queue)
                .state(JobState::Scheduled)
                .state(JobState::Retryable);
            engine
                .job_retry_many(&due)
                .await
                .map_err(|e| drain_error(0, "", e.to_string(), result))?;
        }
        let room = options
            .with_limit
            .map_or(usize::MAX, |limit| limit.saturating_sub(ran));
        if room == 0 {
            return Ok(result);
        }
        let demand = u32::try_from(room).unwrap_or(u32::MAX).min(1_000);
        let jobs = engine
            .job_fetch_available(&options.queue, demand, &attempted_by, None)
            .await
            .map_err(|e| drain_error(0, "", e.to_string(), result))?;
        if jobs.is_empty() {
            return Ok(result);
        }
        for job in jobs {
            ran += 1;
            let (id, worker) = (job.id, job.worker.clone());
            let ack = executor::execute(
                job,
                oban.registry(),
                oban.state(),
                Arc::from(oban.node()),
                oban.event_sender(),
            )
            .await;
            let failure = match ack.state {
                JobState::Retryable | JobState::Discarded => outcome_of(&ack).err(),
                // This node cannot run the worker (unknown, or its state was not given).
                JobState::Scheduled if deferral::is_deferral(&ack) => outcome_of(&Ack {
                    state: JobState::Retryable,
                    ..ack.clone()
                })
                .err(),
                _ => None,
            };
            if let (Some(failure), false) = (&failure, options.with_safety) {
                let message = failure.to_string();
                engine
                    .job_ack_many(&[ack])
                    .await
                    .map_err(|e| drain_error(id, &worker, e.to_string(), result))?;
                return Err(drain_error(id, &worker, message, result));
            }
            match ack.state {
                JobState::Completed => result.completed += 1,
                JobState::Retryable => result.failed += 1,
                JobState::Discarded => result.discarded += 1,
                JobState::Cancelled => result.cancelled += 1,
                JobState::Scheduled => result.snoozed += 1,
                _ => {}
            }
            engine
                .job_ack_many(&[ack])
                .await
                .map_err(|e| drain_error(id, &worker, e.to_string(), result))?;
        }
        if !options.with_recursion {
            return Ok(result);
        }
    }
}

fn drain_error(job_id: i64, worker: &str, message: String, so_far: DrainResult) -> DrainError {
    DrainError {
        job_id,
        worker: worker.to_owned(),
        message,
        so_far,
    }
}
