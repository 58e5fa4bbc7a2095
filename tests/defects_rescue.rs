//! Issue 15, defect 3: a claim commits before its rows reach the producer, so a job lost on the
//! way stayed `executing` under a live, heartbeating producer for the node's lifetime; and a
//! panic outside the worker's body (args decoding, a custom backoff) left the job executing, or
//! repeating without spending attempts. Each case runs on PostgreSQL and SQLite.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use oban::{
    Backoff, Job, JobBuilder, JobContext, JobError, JobFilter, JobState, Nodes, Outcome, Worker,
    WorkerOptions,
};
use serde::{Deserialize, Deserializer, Serialize};

use common::wait;
use harness::{Db, Kind};

/// Completes, counting its executions by job id.
#[derive(Debug, Serialize, Deserialize)]
struct Counted {
    run: String,
}

fn executions() -> &'static Mutex<HashMap<(String, i64), u32>> {
    static RUNS: OnceLock<Mutex<HashMap<(String, i64), u32>>> = OnceLock::new();
    RUNS.get_or_init(Default::default)
}

impl Worker for Counted {
    const NAME: &'static str = "Defects.Counted";

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        let key = (self.run, ctx.job().id);
        *executions().lock().unwrap().entry(key).or_insert(0) += 1;
        Ok(Outcome::Complete)
    }
}

fn panicking_backoff(_job: &Job) -> Duration {
    panic!("the backoff blew up")
}

/// Fails, and its backoff panics.
#[derive(Debug, Serialize, Deserialize)]
struct BadBackoff {}

impl Worker for BadBackoff {
    const NAME: &'static str = "Defects.BadBackoff";

    fn options() -> WorkerOptions {
        WorkerOptions::new().backoff(Backoff::Custom(panicking_backoff))
    }

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("the work failed"))
    }
}

/// Args whose decoding panics.
#[derive(Debug, Serialize)]
struct BadArgs {}

impl<'de> Deserialize<'de> for BadArgs {
    fn deserialize<D: Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
        panic!("decoding blew up")
    }
}

impl Worker for BadArgs {
    const NAME: &'static str = "Defects.BadArgs";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

fn node(db: &Db, queue: &str, limit: u32, every: Duration) -> oban::Builder {
    db.builder("rescue-node")
        .queue(queue, limit)
        .register::<Counted>()
        .register::<BadBackoff>()
        .register::<BadArgs>()
        .heartbeat_interval(every)
        .rescue(every, Duration::from_secs(60))
}

/// A job claimed for a live producer that never receives it (as when the rows are lost in
/// transit) comes back and completes while the node lives on.
///
/// The claim is the test's alone: it is made in the name of queue `lost`'s producer for a job of
/// queue `parked`, which no producer runs until the rescue. (Pausing `lost` instead left a
/// window: a fetch already in flight when the pause arrived could claim the job first.)
async fn a_job_claimed_but_never_received_is_rescued_while_its_node_lives(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "lost", 2, Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let producer = wait::poll(
        "the producer's heartbeat",
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            let producers = db.engine.producer_list(Some("lost")).await.unwrap();
            producers.into_iter().next().ok_or_else(String::new)
        },
    )
    .await;
    let job = db
        .insert(
            JobBuilder::new(Counted {
                run: format!("lost-{kind:?}"),
            })
            .queue("parked")
            .build()
            .unwrap(),
        )
        .await;
    let by = [producer.node.clone(), producer.uuid.to_string()];
    let claimed = db
        .engine
        .job_fetch_available("parked", 1, &by, None)
        .await
        .unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "the job is claimed in the live producer's name"
    );

    let rescued = wait::wait_for_job_state(
        &*db.engine,
        job.id,
        JobState::Available,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(rescued.meta["rescued"], 1);
    oban.start_queue("parked", 1, Nodes::Local).await.unwrap();
    let done = wait::wait_for_job_state(
        &*db.engine,
        job.id,
        JobState::Completed,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(done.attempt, 2, "the lost claim counts as an attempt");
    oban.shutdown(Duration::from_secs(1)).await;
}

/// A live node running many short jobs, heartbeating and rescuing every 10 ms, so that
/// snapshots and rescues fall between claims and their arrival again and again: nothing it
/// claimed is rescued, and no job runs twice.
async fn a_job_whose_claim_is_in_flight_is_not_rescued(kind: Kind) {
    let db = Db::new(kind).await;
    let run = format!("busy-{kind:?}");
    let oban = node(&db, "busy", 10, Duration::from_millis(10))
        .start()
        .await
        .unwrap();
    let count = 600;
    let jobs: Vec<_> = (0..count)
        .map(|_| {
            JobBuilder::new(Counted { run: run.clone() })
                .queue("busy")
                .build()
                .unwrap()
        })
        .collect();
    db.insert_via_pool(jobs).await;
    db.wait_for_count(
        JobFilter::new().state(JobState::Completed),
        count,
        Duration::from_secs(20),
    )
    .await;
    let rescued = db
        .jobs(JobFilter::new())
        .await
        .into_iter()
        .filter(|job| job.meta.get("rescued").is_some() || job.attempt != 1)
        .count();
    assert_eq!(rescued, 0, "no job of a live producer was rescued");
    let mine: Vec<u32> = executions()
        .lock()
        .unwrap()
        .iter()
        .filter(|((r, _), _)| *r == run)
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(mine.len(), count);
    assert!(mine.iter().all(|n| *n == 1), "a job ran twice");
    oban.shutdown(Duration::from_secs(1)).await;
}

/// A custom backoff that panics: the attempt is spent and recorded, the default backoff used.
async fn a_panic_in_a_custom_backoff_spends_the_attempt(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "default", 2, Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let job = JobBuilder::new(BadBackoff {})
        .max_attempts(3)
        .insert(&oban)
        .await
        .unwrap();
    let failed = wait::wait_for_job_state(
        &*db.engine,
        job.id,
        JobState::Retryable,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(failed.attempt, 1);
    let error = &failed.errors[0].error;
    assert!(error.contains("the work failed"), "{error}");
    assert!(error.contains("the backoff blew up"), "{error}");
    oban.shutdown(Duration::from_secs(1)).await;
}

/// Args whose decoding panics: a failed attempt, discarded on the last one, the panic recorded.
async fn a_panic_while_decoding_args_spends_the_attempt(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "default", 2, Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let job = JobBuilder::new(BadArgs {})
        .max_attempts(1)
        .insert(&oban)
        .await
        .unwrap();
    let failed = wait::wait_for_job_state(
        &*db.engine,
        job.id,
        JobState::Discarded,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(failed.attempt, 1);
    let error = &failed.errors[0].error;
    assert!(error.contains("decoding blew up"), "{error}");
    // The node is unharmed: the queue keeps running jobs.
    let next = JobBuilder::new(Counted {
        run: format!("after-{kind:?}"),
    })
    .insert(&oban)
    .await
    .unwrap();
    wait::wait_for_job_state(
        &*db.engine,
        next.id,
        JobState::Completed,
        Duration::from_secs(5),
    )
    .await;
    oban.shutdown(Duration::from_secs(1)).await;
}

macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Postgres).await })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Sqlite).await })*
        }
    };
}

on_both_engines!(
    a_job_claimed_but_never_received_is_rescued_while_its_node_lives,
    a_job_whose_claim_is_in_flight_is_not_rescued,
    a_panic_in_a_custom_backoff_spends_the_attempt,
    a_panic_while_decoding_args_spends_the_attempt,
);

/// The figure for the defaults: how long a claim lost in a live producer's name stays
/// `executing` with the default heartbeat and rescue intervals. Run on demand:
/// `cargo test --test defects_rescue -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "measures the default intervals, about 10 s"]
async fn measure_the_rescue_of_a_lost_claim_with_default_settings() {
    let db = Db::new(Kind::Postgres).await;
    let oban = db
        .builder("measure")
        .queue("lost", 2)
        .register::<Counted>()
        .start()
        .await
        .unwrap();
    oban.pause_queue("lost", Nodes::Local).await.unwrap();
    let producer = wait::poll(
        "the paused producer's heartbeat",
        Duration::from_secs(5),
        Duration::from_millis(20),
        async || {
            let producers = db.engine.producer_list(Some("lost")).await.unwrap();
            producers
                .into_iter()
                .find(|p| p.meta["paused"] == true)
                .ok_or_else(String::new)
        },
    )
    .await;
    let job = db
        .insert(
            JobBuilder::new(Counted {
                run: "measure".into(),
            })
            .queue("lost")
            .build()
            .unwrap(),
        )
        .await;
    let by = [producer.node.clone(), producer.uuid.to_string()];
    let claimed_at = std::time::Instant::now();
    db.engine
        .job_fetch_available("lost", 1, &by, None)
        .await
        .unwrap();
    wait::poll(
        "the rescue",
        Duration::from_secs(30),
        Duration::from_millis(10),
        async || match db.job(job.id).await.state {
            JobState::Available => Ok(()),
            state => Err(format!("{state:?}")),
        },
    )
    .await;
    println!(
        "lost claim rescued {:?} after it committed (defaults)",
        claimed_at.elapsed()
    );
    oban.shutdown(Duration::from_secs(1)).await;
}
