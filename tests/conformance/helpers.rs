//! Helpers the behaviours share: fetching, acking and finishing jobs through the engine.

use std::time::Duration;

use chrono::{DateTime, Utc};
use oban::engine::Ack;
use oban::{Job, JobFilter, JobState, NewJob, UniqueOptions};
use serde_json::{json, Value};

use crate::harness::Db;

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn attempted_by(producer: &str) -> Vec<String> {
    vec!["conformance".to_owned(), producer.to_owned()]
}

/// Fetches everything available in `queue`.
pub(crate) async fn fetch(db: &Db, queue: &str, demand: u32) -> Vec<Job> {
    db.engine
        .job_fetch_available(queue, demand, &attempted_by("p1"), None)
        .await
        .expect("fetch")
}

pub(crate) fn ack(job: &Job, state: JobState) -> Ack {
    Ack {
        id: job.id,
        attempted_at: job.attempted_at.expect("fetched").naive_utc(),
        state,
        schedule_in: None,
        give_back_attempt: false,
        error: None,
        meta: None,
    }
}

pub(crate) fn error_entry(attempt: i32, message: &str) -> Value {
    json!({"attempt": attempt, "at": Utc::now().to_rfc3339(), "error": message})
}

pub(crate) fn close(a: DateTime<Utc>, b: DateTime<Utc>, within: Duration) -> bool {
    (a - b).abs() <= chrono::Duration::from_std(within).unwrap()
}

pub(crate) fn ids(jobs: &[Job]) -> Vec<i64> {
    jobs.iter().map(|j| j.id).collect()
}

pub(crate) fn unique_job(args: Value, unique: UniqueOptions) -> NewJob {
    NewJob::new("Test.Unique", args).unique(unique)
}

/// Runs `job` through fetch and an ack to `state` (cancelled through `job_cancel_many`).
pub(crate) async fn finish_as(db: &Db, job: &Job, state: JobState) {
    if state == JobState::Cancelled {
        db.engine
            .job_cancel_many(&JobFilter::id(job.id))
            .await
            .unwrap();
        return;
    }
    let fetched = fetch(db, &job.queue, 1).await;
    assert_eq!(ids(&fetched), [job.id], "the job is the one fetched");
    let acked = db
        .engine
        .job_ack_many(&[ack(&fetched[0], state)])
        .await
        .unwrap();
    assert_eq!(acked, [job.id]);
}
