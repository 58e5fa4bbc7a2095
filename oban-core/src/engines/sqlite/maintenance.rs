//! The leader's passes over the job table: staging due jobs, rescuing orphans, pruning.

use std::time::Duration;

use super::insert::keep_uniq_key;
use super::row::{minus, now, ts};
use super::SqliteEngine;
use crate::error::Result;

/// See [`Engine::job_stage_due`](crate::engine::Engine::job_stage_due).
pub(super) async fn stage_due(engine: &SqliteEngine, limit: u32) -> Result<Vec<String>> {
    let _write = engine.hub.write.lock().await;
    let staged: Vec<String> = sqlx::query_scalar(concat!(
        "UPDATE oban_jobs AS j SET state = 'available', ",
        keep_uniq_key!("'available'"),
        " WHERE j.id IN (
            SELECT id FROM oban_jobs INDEXED BY oban_jobs_staging_idx
            WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= ?1
            ORDER BY scheduled_at, id
            LIMIT ?2)
          RETURNING queue"
    ))
    .bind(ts(now()))
    .bind(i64::from(limit))
    .fetch_all(&engine.pool)
    .await?;
    let mut queues: Vec<String> = Vec::new();
    for queue in staged {
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    Ok(queues)
}

/// See [`Engine::job_rescue_orphaned`](crate::engine::Engine::job_rescue_orphaned).
pub(super) async fn rescue_orphaned(
    engine: &SqliteEngine,
    stale_after: Duration,
    unknown_after: Duration,
) -> Result<u64> {
    // The rules of the PostgreSQL engine: a silent producer of this runtime, a live producer
    // whose last snapshot came after the claim and does not hold the job (`queue/held.rs`), a
    // producer named in `attempted_by` that has no row.
    // Executing jobs are found through the state index; each is looked up in its producer's
    // snapshot, at most `limit` running plus `limit` claimed-ahead ids.
    let _write = engine.hub.write.lock().await;
    let now = now();
    let result = sqlx::query(concat!(
        "UPDATE oban_jobs AS j SET
           state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END, ",
        keep_uniq_key!(
            "CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END"
        ),
        ",
           discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN ?1 ELSE j.discarded_at END,
           meta = json_set(j.meta,
             '$.rescued', coalesce(j.meta->>'rescued', 0) + 1,
             '$.rescued_from', json(coalesce(j.attempted_by, 'null')))
         WHERE j.state = 'executing' AND j.id IN (
           SELECT o.id FROM oban_jobs AS o
           LEFT JOIN oban_producers AS p ON p.uuid = o.attempted_by->>1
           WHERE o.state = 'executing'
             AND ((p.uuid IS NOT NULL
                   AND (p.meta->>'runtime' = 'rust' OR json_type(p.meta, '$.held') IS NOT NULL)
                   AND p.updated_at < ?2)
               OR (p.uuid IS NOT NULL AND json_type(p.meta, '$.held_at') = 'text'
                   AND o.attempted_at < p.meta->>'held_at'
                   AND NOT EXISTS (SELECT 1 FROM json_each(p.meta, '$.held') AS h WHERE h.value = o.id))
               OR (p.uuid IS NULL AND json_array_length(o.attempted_by) >= 2
                   AND o.attempted_at < ?3)))"
    ))
    .bind(ts(now))
    .bind(ts(minus(now, stale_after)))
    .bind(ts(minus(now, unknown_after)))
    .execute(&engine.pool)
    .await?;
    // Producers silent for three times the threshold, with nothing left to rescue, are gone.
    sqlx::query(
        "DELETE FROM oban_producers
         WHERE updated_at < ?1
           AND (meta->>'runtime' = 'rust' OR json_type(meta, '$.held') IS NOT NULL)
           AND NOT EXISTS (SELECT 1 FROM oban_jobs AS j
                           WHERE j.state = 'executing' AND j.attempted_by->>1 = oban_producers.uuid)",
    )
    .bind(ts(minus(now, stale_after.saturating_mul(3))))
    .execute(&engine.pool)
    .await?;
    Ok(result.rows_affected())
}

/// See [`Engine::job_prune`](crate::engine::Engine::job_prune).
pub(super) async fn prune(engine: &SqliteEngine, max_age: Duration, limit: u32) -> Result<u64> {
    let _write = engine.hub.write.lock().await;
    let result = sqlx::query(
        "WITH doomed AS (
           SELECT id FROM (SELECT id FROM oban_jobs INDEXED BY oban_jobs_completed_at_idx WHERE state = 'completed' AND completed_at < ?1 LIMIT ?2)
           UNION ALL
           SELECT id FROM (SELECT id FROM oban_jobs INDEXED BY oban_jobs_cancelled_at_idx WHERE state = 'cancelled' AND cancelled_at < ?1 LIMIT ?2)
           UNION ALL
           SELECT id FROM (SELECT id FROM oban_jobs INDEXED BY oban_jobs_discarded_at_idx WHERE state = 'discarded' AND discarded_at < ?1 LIMIT ?2)
         )
         DELETE FROM oban_jobs WHERE id IN (
           SELECT d.id FROM doomed d JOIN oban_jobs j ON j.id = d.id
           -- A workflow's finished steps stay while steps of it or of its parent wait (see
           -- PostgreSQL's prune).
           WHERE json_extract(j.meta, '$.workflow_id') IS NULL OR NOT EXISTS (
             SELECT 1 FROM oban_jobs s
             WHERE s.state = 'suspended'
               AND json_extract(s.meta, '$.workflow_id') IN
                   (json_extract(j.meta, '$.workflow_id'), json_extract(j.meta, '$.sup_workflow_id')))
           ORDER BY d.id LIMIT ?2)",
    )
    .bind(ts(minus(now(), max_age)))
    .bind(i64::from(limit))
    .execute(&engine.pool)
    .await?;
    Ok(result.rows_affected())
}
