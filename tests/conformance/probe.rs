//! The worker the node behaviours run, and a node builder with short intervals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oban::{Backoff, JobContext, JobError, Outcome, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};

use crate::harness::Db;
use crate::helpers::ms;

/// A worker whose behaviour is chosen by its args.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub(crate) enum Probe {
    Ok,
    Fail { times: i32 },
    Sleep { ms: u64 },
    Discard,
    Cancel,
    Snooze { ms: u64 },
    Count,
}

/// Attempts that ran to their end, by job id; and attempts that began.
#[derive(Default)]
pub(crate) struct Runs {
    pub(crate) by_job: Mutex<HashMap<i64, u32>>,
    pub(crate) finished: AtomicUsize,
    pub(crate) started: AtomicUsize,
}

impl Worker for Probe {
    const NAME: &'static str = "Conformance.Probe";

    fn options() -> WorkerOptions {
        WorkerOptions::new()
            .max_attempts(3)
            .backoff(Backoff::Constant(ms(100)))
    }

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        let job = ctx.job();
        if let Some(runs) = ctx.try_state::<Arc<Runs>>() {
            runs.started.fetch_add(1, Ordering::SeqCst);
        }
        let outcome = match self {
            Probe::Ok => Ok(Outcome::Complete),
            Probe::Fail { times } if job.attempt <= times => {
                Err(JobError::new(format!("failure #{}", job.attempt)))
            }
            Probe::Fail { .. } => Ok(Outcome::Complete),
            Probe::Sleep { ms } => {
                // The job's work: a job that takes time.
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Outcome::Complete)
            }
            Probe::Discard => Ok(Outcome::Discard("bad address".into())),
            Probe::Cancel => Ok(Outcome::Cancel("withdrawn".into())),
            Probe::Snooze { ms } => {
                if job.meta.get("snoozed").is_none() {
                    Ok(Outcome::Snooze(Duration::from_millis(ms)))
                } else {
                    Ok(Outcome::Complete)
                }
            }
            Probe::Count => Ok(Outcome::Complete),
        };
        if let Some(runs) = ctx.try_state::<Arc<Runs>>() {
            *runs.by_job.lock().unwrap().entry(job.id).or_default() += 1;
            runs.finished.fetch_add(1, Ordering::SeqCst);
        }
        outcome
    }
}

pub(crate) fn node(db: &Db, name: &str) -> oban::Builder {
    db.builder(name)
        .register::<Probe>()
        .poll_interval(ms(50))
        .stage_interval(ms(50))
        .heartbeat_interval(ms(200))
        .leader_ttl(ms(900))
}
