//! The claim: available jobs of a queue moved to `executing`, under the write lock.

use serde_json::Value;

use super::insert::keep_uniq_key;
use super::row::{job_from_row, now, ts, JOB_COLUMNS};
use super::SqliteEngine;
use crate::error::Result;
use crate::job::Job;

/// See [`Engine::job_fetch_available`](crate::engine::Engine::job_fetch_available); SQLite scans
/// from the head (one writer at a time and a small table keep that cheap), so there is no cursor.
pub(super) async fn fetch_available(
    engine: &SqliteEngine,
    queue: &str,
    demand: u32,
    attempted_by: &[String],
) -> Result<Vec<Job>> {
    if demand == 0 {
        return Ok(Vec::new());
    }
    let sql = format!(
        concat!(
            "UPDATE oban_jobs AS j
             SET state = 'executing', attempt = j.attempt + 1, attempted_at = ?3, attempted_by = ?4, ",
            keep_uniq_key!("'executing'"),
            " WHERE j.id IN (
               SELECT id FROM oban_jobs
               WHERE state = 'available' AND queue = ?1
               ORDER BY priority, scheduled_at, id
               LIMIT ?2)
             RETURNING {}"
        ),
        JOB_COLUMNS
    );
    let write = engine.hub.write.lock().await;
    let rows = sqlx::query(&sql)
        .bind(queue)
        .bind(i64::from(demand))
        .bind(ts(now()))
        .bind(Value::from(attempted_by).to_string())
        .fetch_all(&engine.pool)
        .await?;
    drop(write);
    let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
    jobs.sort_by_key(|job| (job.priority, job.scheduled_at, job.id));
    Ok(jobs)
}
