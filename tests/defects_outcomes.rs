//! Issue 15, defect 1: an outcome the database cannot store must never wedge a node.
//!
//! Before the fix, a worker error holding a NUL character (refused by PostgreSQL's `jsonb`), or a
//! snooze or backoff too long for `interval`/`timestamp`, made the completer retry the same
//! batch forever: every later outcome of the node stayed unrecorded, its jobs `executing` while
//! the node kept heartbeating. Each test runs a node on PostgreSQL and on SQLite.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::time::Duration;

use chrono::Utc;
use oban::engine::Ack;
use oban::{
    Backoff, Job, JobBuilder, JobContext, JobError, JobState, Oban, Outcome, Worker, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use harness::{Db, Kind};

/// How long any job here may take to reach its final state (they take milliseconds).
const LIMIT: Duration = Duration::from_secs(10);

/// Fails with an error message holding a NUL character.
#[derive(Debug, Serialize, Deserialize)]
struct NulError {}

impl Worker for NulError {
    const NAME: &'static str = "Defect.NulError";

    fn options() -> WorkerOptions {
        WorkerOptions::new().max_attempts(5)
    }

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("before\0after"))
    }
}

/// Fails with a plain message.
#[derive(Debug, Serialize, Deserialize)]
struct Fails {}

impl Worker for Fails {
    const NAME: &'static str = "Defect.Fails";

    fn options() -> WorkerOptions {
        WorkerOptions::new().max_attempts(5)
    }

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("plain failure"))
    }
}

/// Completes.
#[derive(Debug, Serialize, Deserialize)]
struct Completes {}

impl Worker for Completes {
    const NAME: &'static str = "Defect.Completes";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

/// Snoozes for `Duration::MAX`.
#[derive(Debug, Serialize, Deserialize)]
struct SnoozesForever {}

impl Worker for SnoozesForever {
    const NAME: &'static str = "Defect.SnoozesForever";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Snooze(Duration::MAX))
    }
}

/// Fails, with a custom backoff of `u64::MAX` seconds.
#[derive(Debug, Serialize, Deserialize)]
struct HugeBackoff {}

fn huge(_job: &Job) -> Duration {
    Duration::from_secs(u64::MAX)
}

impl Worker for HugeBackoff {
    const NAME: &'static str = "Defect.HugeBackoff";

    fn options() -> WorkerOptions {
        WorkerOptions::new()
            .max_attempts(5)
            .backoff(Backoff::Custom(huge))
    }

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("failing, back off for ever"))
    }
}

async fn node(db: &Db) -> Oban {
    db.builder("outcomes")
        .queue("default", 5)
        .register::<NulError>()
        .register::<Fails>()
        .register::<Completes>()
        .register::<SnoozesForever>()
        .register::<HugeBackoff>()
        .start()
        .await
        .expect("start the node")
}

async fn insert<W: Worker>(oban: &Oban, worker: W) -> Job {
    JobBuilder::new(worker).insert(oban).await.expect("insert")
}

/// After the bad outcome, later failures and completions of the same node are recorded.
async fn later_outcomes_are_recorded(db: &Db, oban: &Oban) {
    let failing = insert(oban, Fails {}).await;
    let completing = insert(oban, Completes {}).await;
    let failed = wait_for(db, failing.id, JobState::Retryable).await;
    assert_eq!(
        failed.errors.last().expect("an error").error,
        "plain failure"
    );
    wait_for(db, completing.id, JobState::Completed).await;
}

async fn wait_for(db: &Db, id: i64, state: JobState) -> Job {
    common::wait::wait_for_job_state(&*db.engine, id, state, LIMIT).await
}

async fn a_nul_in_a_worker_error_does_not_stop_the_node_recording_outcomes(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db).await;
    let nul = insert(&oban, NulError {}).await;
    let stored = wait_for(&db, nul.id, JobState::Retryable).await;
    assert_eq!(
        stored.errors.last().expect("an error").error,
        "before\u{FFFD}after",
        "the NUL is stored as U+FFFD"
    );
    later_outcomes_are_recorded(&db, &oban).await;
    oban.shutdown(Duration::from_secs(1)).await;
}

/// `scheduled_at` is `Ack::MAX_DELAY` (100 years) from about now.
fn assert_clamped(job: &Job, before: chrono::DateTime<Utc>) {
    let max = chrono::Duration::from_std(Ack::MAX_DELAY).expect("fits");
    let after = Utc::now();
    assert!(
        job.scheduled_at >= before + max - chrono::Duration::seconds(1)
            && job.scheduled_at <= after + max + chrono::Duration::seconds(1),
        "job {} scheduled at {}, expected about {}",
        job.id,
        job.scheduled_at,
        after + max
    );
}

async fn a_snooze_or_backoff_too_large_to_store_is_clamped(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db).await;
    let before = Utc::now();
    let snoozing = insert(&oban, SnoozesForever {}).await;
    let backing_off = insert(&oban, HugeBackoff {}).await;
    let snoozed = wait_for(&db, snoozing.id, JobState::Scheduled).await;
    assert_clamped(&snoozed, before);
    assert_eq!(snoozed.attempt, 0, "a snooze gives its attempt back");
    let retrying = wait_for(&db, backing_off.id, JobState::Retryable).await;
    assert_clamped(&retrying, before);
    later_outcomes_are_recorded(&db, &oban).await;
    oban.shutdown(Duration::from_secs(1)).await;
}

/// The engine tells an ack the database refuses for its values (which splitting the batch can
/// isolate) from a lost connection (which retrying can fix).
#[tokio::test]
async fn a_refused_ack_is_told_apart_from_a_lost_connection_on_postgres() {
    let db = Db::new(Kind::Postgres).await;
    let engine = &db.engine;
    let job = db
        .insert(JobBuilder::new(Fails {}).build().expect("build"))
        .await;
    let claimed = engine
        .job_fetch_available("default", 1, &["n".into(), "p".into()], None)
        .await
        .expect("fetch");
    assert_eq!(claimed.len(), 1);
    let ack = Ack {
        id: job.id,
        attempted_at: claimed[0].attempted_at.expect("attempted").naive_utc(),
        state: JobState::Retryable,
        schedule_in: Some(Duration::from_secs(1)),
        give_back_attempt: false,
        error: Some(json!({ "attempt": 1, "error": "a\0b" })),
        meta: None,
    };
    let refused = engine
        .job_ack_many(std::slice::from_ref(&ack))
        .await
        .expect_err("jsonb refuses a NUL");
    assert!(engine.is_data_error(&refused), "{refused}");
    // Made storable, the same ack is taken.
    let acked = engine
        .job_ack_many(&[ack.clone().storable()])
        .await
        .expect("storable ack");
    assert_eq!(acked, vec![job.id]);
    // A pool that cannot reach the database: retryable, not the data's fault.
    db.pg_pool().expect("postgres").close().await;
    let lost = engine.job_ack_many(&[ack]).await.expect_err("closed pool");
    assert!(!engine.is_data_error(&lost), "{lost}");
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn a_nul_in_a_worker_error_does_not_stop_the_node_recording_outcomes() {
        super::a_nul_in_a_worker_error_does_not_stop_the_node_recording_outcomes(Kind::Postgres)
            .await;
    }

    #[tokio::test]
    async fn a_snooze_or_backoff_too_large_to_store_is_clamped() {
        super::a_snooze_or_backoff_too_large_to_store_is_clamped(Kind::Postgres).await;
    }
}

mod sqlite {
    use super::*;

    #[tokio::test]
    async fn a_nul_in_a_worker_error_does_not_stop_the_node_recording_outcomes() {
        super::a_nul_in_a_worker_error_does_not_stop_the_node_recording_outcomes(Kind::Sqlite)
            .await;
    }

    #[tokio::test]
    async fn a_snooze_or_backoff_too_large_to_store_is_clamped() {
        super::a_snooze_or_backoff_too_large_to_store_is_clamped(Kind::Sqlite).await;
    }
}
