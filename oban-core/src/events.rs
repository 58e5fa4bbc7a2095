//! Events a running node emits: jobs starting and stopping, inserts, leadership, the notifier
//! and maintenance passes, in the spirit of Elixir Oban's `[:oban, :job, :start | :stop |
//! :exception]` telemetry.
//!
//! Subscribe with [`Builder::events`](crate::Builder::events) (before `start`, so you also see
//! what happens while the node starts, such as its first election) or
//! [`Oban::events`](crate::Oban::events) (from then on). Each call returns a
//! [`tokio::sync::broadcast::Receiver`] of its own; every receiver sees every event.
//!
//! ```no_run
//! # async fn example() -> oban_core::Result<()> {
//! use oban_core::{Event, JobOutcome, Oban};
//! use tokio::sync::broadcast::error::RecvError;
//!
//! let oban = Oban::builder().queue("default", 10).start().await?;
//! let mut events = oban.events();
//! tokio::spawn(async move {
//!     loop {
//!         match events.recv().await {
//!             Ok(Event::JobStop(stop)) if stop.outcome == JobOutcome::Discarded => {
//!                 eprintln!("job {} ({}) discarded: {:?}", stop.job.id, stop.job.worker, stop.error);
//!             }
//!             Ok(_) => {}
//!             // This receiver fell behind: the oldest `missed` events were dropped for it.
//!             Err(RecvError::Lagged(missed)) => eprintln!("missed {missed} events"),
//!             Err(RecvError::Closed) => break,
//!         }
//!     }
//! });
//! # Ok(())
//! # }
//! ```
//!
//! # Costs and guarantees
//!
//! Emitting never waits: events go into a bounded ring buffer of [`BUFFER`] events. A receiver that reads too slowly, or never, does not slow or block any job; it loses
//! the oldest events it has not read and its next `recv` returns
//! [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged) with how many it
//! missed, then continues with the oldest event still held. With no receiver, an event is not
//! even built: emitting costs one uncontended lock of the channel to count its receivers (tens
//! of nanoseconds, against a database round trip per job). Drop a receiver you no longer read:
//! while it exists, every event is built and kept for it.
//!
//! Events are a view of what this node did, not a durable log: a subscriber that starts late,
//! lags, or runs on another node does not see them. The job table is the record.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::job::Job;

/// Something a node did. New kinds may be added: match with a `_` arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// An attempt of a job began on this node.
    JobStart(JobStart),
    /// An attempt ended, however it ended. A failed attempt (an error, a panic, a timeout) is a
    /// stop whose [`JobStop::error`] is set: its outcome, [`JobOutcome::Retryable`] or
    /// [`JobOutcome::Discarded`], says whether the job will run again. Elixir Oban's `:exception`
    /// event is this one with an error.
    JobStop(JobStop),
    /// Jobs were inserted through this node ([`Oban::insert_all`](crate::Oban::insert_all) and
    /// what calls it). Inserts through a pool or your own transaction do not pass through a node
    /// and emit nothing.
    JobsInserted {
        /// Rows written (a unique job that met an existing one is not counted).
        count: usize,
        /// The queues they went to, each once, in order of first appearance.
        queues: Vec<String>,
    },
    /// This node became the leader: it runs the lifeline, cron and, when it also holds the
    /// leadership shared with Elixir Oban, the stager and pruner.
    LeadershipGained,
    /// This node stopped being the leader (another node won an election, or it resigned while
    /// shutting down).
    LeadershipLost,
    /// The node listens for notifications (PostgreSQL `LISTEN`, or SQLite's in-process
    /// notifier); emitted while it starts.
    NotifierConnected,
    /// The notification connection dropped. It reconnects on its own; meanwhile every queue is
    /// woken to fetch, so nothing waits for a notification it missed.
    NotifierLost,
    /// The stager made scheduled and retryable jobs that came due available, in these queues.
    Staged {
        /// The queues that received jobs.
        queues: Vec<String>,
    },
    /// The lifeline made jobs left `executing` by a dead producer runnable again.
    Rescued {
        /// Jobs rescued in this pass.
        count: u64,
    },
    /// The pruner deleted finished jobs older than its age.
    Pruned {
        /// Jobs deleted in this pass.
        count: u64,
    },
    /// The cron scheduler inserted the jobs due.
    CronInserted {
        /// Jobs inserted in this pass.
        count: usize,
    },
}

/// Which job an event is about, as it was when fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// The job's id.
    pub id: i64,
    /// The worker's name, as stored.
    pub worker: String,
    /// The job's queue.
    pub queue: String,
    /// This attempt's number, from 1.
    pub attempt: i32,
    /// The job's `max_attempts`.
    pub max_attempts: i32,
}

impl JobInfo {
    fn of(job: &Job) -> Self {
        Self {
            id: job.id,
            worker: job.worker.clone(),
            queue: job.queue.clone(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
        }
    }
}

/// An attempt began.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStart {
    /// The job.
    pub job: JobInfo,
    /// When the attempt began on this node.
    pub at: DateTime<Utc>,
    /// How long the job waited: from its `scheduled_at` to this start (zero if it started
    /// early, as a job fetched ahead of a clock skew may).
    pub queue_time: Duration,
}

/// An attempt ended.
///
/// It is emitted as the attempt ends, before its outcome is written (acks are recorded in
/// batches): reading the job at once may still show it `executing`. An attempt aborted while
/// running (by [`Oban::cancel_job`](crate::Oban::cancel_job), or cut short by shutdown) has a
/// start and no stop.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStop {
    /// The job.
    pub job: JobInfo,
    /// What the attempt led to.
    pub outcome: JobOutcome,
    /// How long the attempt ran on this node.
    pub duration: Duration,
    /// How long the job waited before this attempt, as in [`JobStart::queue_time`].
    pub queue_time: Duration,
    /// The failure recorded in the job's `errors` (an error, a panic, a timeout, the reason of
    /// a discard or cancel, why the node deferred it); `None` when it completed or snoozed.
    pub error: Option<String>,
}

/// What an attempt led to, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobOutcome {
    /// It succeeded: `completed`.
    Completed,
    /// It failed and will run again after its backoff: `retryable`.
    Retryable,
    /// It failed for the last time, or discarded itself: `discarded`.
    Discarded,
    /// It cancelled itself: `cancelled`.
    Cancelled,
    /// It asked to run again later without spending an attempt: `scheduled`.
    Snoozed,
    /// This node cannot run its worker (unknown here, or missing state): `scheduled` again for
    /// a node that can, without spending an attempt (see [`deferral`](crate::deferral)).
    Deferred,
}

impl JobOutcome {
    /// The outcome's name in lower case (`"completed"`, `"retryable"`, ...), for labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Retryable => "retryable",
            Self::Discarded => "discarded",
            Self::Cancelled => "cancelled",
            Self::Snoozed => "snoozed",
            Self::Deferred => "deferred",
        }
    }
}

/// Events held for a receiver that has not read them yet; past that, it loses the oldest.
pub const BUFFER: usize = 1024;

/// Where a node sends its [`Event`]s: a cheap handle to a bounded broadcast channel.
#[derive(Clone)]
pub(crate) struct Events {
    sender: Arc<broadcast::Sender<Event>>,
}

impl Events {
    /// A new receiver, seeing every event emitted from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Sends the event `make` builds, without waiting; with no receiver, `make` is not called.
    pub(crate) fn emit(&self, make: impl FnOnce() -> Event) {
        if self.sender.receiver_count() > 0 {
            // An error only means every receiver went away meanwhile.
            let _ = self.sender.send(make());
        }
    }

    pub(crate) fn job_start(&self, job: &Job, at: DateTime<Utc>) {
        self.emit(|| {
            Event::JobStart(JobStart {
                job: JobInfo::of(job),
                at,
                queue_time: queue_time(job, at),
            })
        });
    }

    pub(crate) fn job_stop(
        &self,
        job: &Job,
        started_at: DateTime<Utc>,
        duration: Duration,
        outcome: JobOutcome,
        error: Option<&str>,
    ) {
        self.emit(|| {
            Event::JobStop(JobStop {
                job: JobInfo::of(job),
                outcome,
                duration,
                queue_time: queue_time(job, started_at),
                error: error.map(str::to_owned),
            })
        });
    }
}

impl Default for Events {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(BUFFER);
        Self {
            sender: Arc::new(sender),
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("receivers", &self.sender.receiver_count())
            .finish()
    }
}

/// How long `job` waited for an attempt that started at `started_at`: from its `scheduled_at`,
/// zero if it started early.
pub(crate) fn queue_time(job: &Job, started_at: DateTime<Utc>) -> Duration {
    (started_at - job.scheduled_at).to_std().unwrap_or_default()
}
