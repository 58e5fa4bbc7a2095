//! Claiming ahead against a real PostgreSQL: a queue of fast jobs claims more than its free slots
//! per fetch, a queue of slow jobs never does, and a job claimed but not started goes back to the
//! queue when the queue pauses or the node stops, and never runs once cancelled.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use common::wait;
use common::workers::Nap;
use oban::{JobBuilder, JobContext, JobError, Nodes, Oban, Outcome, Worker};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::Semaphore;

/// Returns at once.
#[derive(Debug, Serialize, Deserialize)]
struct Quick {}

impl Worker for Quick {
    const NAME: &'static str = "Test.Quick";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

/// Records that it started, then waits until its test opens the gate of that name.
#[derive(Debug, Serialize, Deserialize)]
struct Gated {
    gate: String,
}

/// The gates of the tests in this file (they run in parallel in one process), and the jobs that
/// started behind each.
static GATES: LazyLock<Mutex<HashMap<String, Arc<Semaphore>>>> = LazyLock::new(Mutex::default);
static STARTED: LazyLock<Mutex<Vec<(String, i64)>>> = LazyLock::new(Mutex::default);

fn gate(name: &str) -> Arc<Semaphore> {
    let mut gates = GATES.lock().unwrap();
    Arc::clone(
        gates
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(0))),
    )
}

fn started(name: &str) -> Vec<i64> {
    STARTED
        .lock()
        .unwrap()
        .iter()
        .filter(|(gate, _)| gate == name)
        .map(|(_, id)| *id)
        .collect()
}

impl Worker for Gated {
    const NAME: &'static str = "Test.Gated";

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        STARTED
            .lock()
            .unwrap()
            .push((self.gate.clone(), ctx.job().id));
        let _pass = gate(&self.gate).acquire_owned().await;
        Ok(Outcome::Complete)
    }
}

async fn start(pool: &PgPool, limit: u32) -> Oban {
    Oban::builder()
        .pool(pool.clone())
        .queue("default", limit)
        .register::<Quick>()
        .register::<Nap>()
        .register::<Gated>()
        .start()
        .await
        .unwrap()
}

/// The most jobs one fetch claimed: a fetch stamps every job it claims with its transaction's
/// time.
async fn largest_fetch(pool: &PgPool, worker: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM oban_jobs WHERE worker = $1 GROUP BY attempted_at) f",
    )
    .bind(worker)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Runs no-op jobs until the node has timed its jobs and fetches, so that it claims ahead.
async fn warm_up(pool: &PgPool, oban: &Oban, jobs: usize) {
    let quick = (0..jobs)
        .map(|_| JobBuilder::new(Quick {}).build().unwrap())
        .collect();
    oban::insert_all(oban, quick).await.unwrap();
    wait::wait_for_count(
        pool,
        "SELECT count(*) FROM oban_jobs WHERE worker = 'Test.Quick' AND state = 'completed'",
        jobs as i64,
        Duration::from_secs(30),
    )
    .await;
}

/// With the node warmed up at limit 1: job `running` runs behind the gate `name` and job
/// `claimed` is claimed ahead of the next free slot.
async fn one_running_one_claimed(pool: &PgPool, oban: &Oban, name: &str) -> (i64, i64) {
    let jobs = (0..2)
        .map(|_| {
            JobBuilder::new(Gated {
                gate: name.to_owned(),
            })
            .build()
            .unwrap()
        })
        .collect();
    let jobs = oban::insert_all(oban, jobs).await.unwrap();
    let (running, claimed) = (jobs[0].id, jobs[1].id);
    wait::wait_for_state(pool, running, "executing").await;
    wait::wait_for_state(pool, claimed, "executing").await;
    // Claimed in the database is not yet running here: wait for the first job to start.
    wait::wait_until_every(
        format!("job {running} to start"),
        Duration::from_secs(10),
        Duration::from_millis(10),
        async || !started(name).is_empty(),
    )
    .await;
    assert_eq!(
        started(name),
        [running],
        "one slot: only the first job runs"
    );
    (running, claimed)
}

#[tokio::test]
async fn fast_jobs_are_claimed_beyond_the_free_slots() {
    let pool = common::test_pool().await;
    let oban = start(&pool, 5).await;
    warm_up(&pool, &oban, 500).await;
    let largest = largest_fetch(&pool, "Test.Quick").await;
    assert!(
        largest > 5,
        "no fetch claimed more than the 5 slots (largest: {largest})"
    );
    assert!(largest <= 10, "a fetch claimed {largest}, more than 2 x 5");
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn slow_jobs_are_never_claimed_ahead() {
    let pool = common::test_pool().await;
    let oban = start(&pool, 2).await;
    warm_up(&pool, &oban, 100).await;
    let slow = (0..8)
        .map(|_| JobBuilder::new(Nap { ms: 300 }).build().unwrap())
        .collect();
    oban::insert_all(&oban, slow).await.unwrap();
    wait::wait_for_count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE worker = 'Test.Nap' AND state = 'completed'",
        8,
        Duration::from_secs(30),
    )
    .await;
    // The first fetch may still claim ahead on the warm-up's pace. Every later one claims only
    // jobs that start at once: from claim to completion takes one job's 300 ms, where a job held
    // for a slot would take two.
    let held: Vec<(i64, f64)> = sqlx::query_as(
        "SELECT id, extract(epoch FROM completed_at - attempted_at)::float8 FROM oban_jobs
         WHERE worker = 'Test.Nap'
           AND attempted_at > (SELECT min(attempted_at) FROM oban_jobs WHERE worker = 'Test.Nap')
           AND completed_at - attempted_at > interval '450 milliseconds'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        held.is_empty(),
        "slow jobs waited for a slot after their claim (id, seconds): {held:?}"
    );
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn pausing_hands_back_a_job_claimed_ahead() {
    let pool = common::test_pool().await;
    let oban = start(&pool, 1).await;
    warm_up(&pool, &oban, 200).await;
    let (running, claimed) = one_running_one_claimed(&pool, &oban, "pause").await;

    oban.pause_queue("default", Nodes::Local).await.unwrap();
    let back = wait::wait_for_state(&pool, claimed, "available").await;
    assert_eq!(back.attempt, 0, "the claim's attempt is given back");
    assert!(back.errors.is_empty(), "nothing recorded against it");
    assert_eq!(
        common::fetch_job(&pool, running).await.state.as_str(),
        "executing"
    );

    gate("pause").add_permits(2);
    oban.resume_queue("default", Nodes::Local).await.unwrap();
    wait::wait_for_state(&pool, running, "completed").await;
    wait::wait_for_state(&pool, claimed, "completed").await;
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_job_cancelled_while_claimed_ahead_never_starts() {
    let pool = common::test_pool().await;
    let oban = start(&pool, 1).await;
    warm_up(&pool, &oban, 200).await;
    let (running, claimed) = one_running_one_claimed(&pool, &oban, "cancel").await;

    assert!(oban.cancel_job(claimed).await.unwrap());
    gate("cancel").add_permits(2);
    wait::wait_for_state(&pool, running, "completed").await;
    // One more job through the single slot: had the cancelled one been left in line, it would
    // have started before this one.
    let after = JobBuilder::new(Quick {}).insert(&oban).await.unwrap();
    wait::wait_for_state(&pool, after.id, "completed").await;
    assert_eq!(
        started("cancel"),
        [running],
        "the cancelled job never started"
    );
    assert_eq!(
        common::fetch_job(&pool, claimed).await.state.as_str(),
        "cancelled"
    );
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn stopping_hands_back_a_job_claimed_ahead() {
    let pool = common::test_pool().await;
    let oban = start(&pool, 1).await;
    warm_up(&pool, &oban, 200).await;
    let (running, claimed) = one_running_one_claimed(&pool, &oban, "stop").await;

    oban.shutdown(Duration::from_millis(100)).await;
    let back = common::fetch_job(&pool, claimed).await;
    assert_eq!(back.state.as_str(), "available");
    assert_eq!(back.attempt, 0, "the claim's attempt is given back");
    assert!(back.errors.is_empty(), "nothing recorded against it");
    let interrupted = common::fetch_job(&pool, running).await;
    assert_eq!(interrupted.state.as_str(), "available");
    assert_eq!(
        interrupted.errors.len(),
        1,
        "the running job records the interruption"
    );
    assert_eq!(started("stop"), [running]);
}
