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

/// Moves `column` of the jobs `ids` back by `by`: a case ages rows instead of waiting for the
/// clock, so its margins do not depend on how fast the machine runs.
pub(crate) async fn backdate_jobs(db: &Db, column: &str, ids: &[i64], by: Duration) {
    let keys = ids.iter().map(i64::to_string).collect();
    backdate(db, "oban_jobs", column, "id", keys, by).await;
}

/// Moves the last heartbeat (`updated_at`) of producers `uuids` back by `by`.
pub(crate) async fn backdate_producers(db: &Db, uuids: &[uuid::Uuid], by: Duration) {
    let keys = uuids.iter().map(uuid::Uuid::to_string).collect();
    backdate(db, "oban_producers", "updated_at", "uuid", keys, by).await;
}

async fn backdate(db: &Db, table: &str, column: &str, key: &str, keys: Vec<String>, by: Duration) {
    let millis = i64::try_from(by.as_millis()).expect("a test's duration");
    if let Some(pool) = db.pg_pool() {
        // In the harness's prefix when it has one: the table is found through the search path.
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(db.prefix().name())
            .execute(&mut *tx)
            .await
            .unwrap();
        let sql = format!(
            "UPDATE {table} SET {column} = {column} - $1 * interval '1 millisecond'
             WHERE {key}::text = ANY($2)"
        );
        sqlx::query(&sql)
            .bind(millis)
            .bind(keys)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    } else if let Some(pool) = db.sqlite_pool() {
        // Stored as text, `%Y-%m-%d %H:%M:%S.ffffff`.
        let sql = format!(
            "UPDATE {table}
             SET {column} = strftime('%Y-%m-%d %H:%M:%f000', {column}, (-?1 / 1000.0) || ' seconds')
             WHERE CAST({key} AS TEXT) IN (SELECT value FROM json_each(?2))"
        );
        sqlx::query(&sql)
            .bind(millis)
            .bind(json!(keys).to_string())
            .execute(pool)
            .await
            .unwrap();
    }
}
