//! The leader's passes over the job table: staging due jobs, rescuing orphans, pruning.

use std::time::Duration;

use sqlx::postgres::PgPool;

use super::millis;
use super::prefix::qualify;
use super::row::keep_uniq_key;
use crate::error::Result;
use crate::prefix::Prefix;

/// See [`Engine::job_stage_due`](crate::engine::Engine::job_stage_due).
pub(super) async fn stage_due(pool: &PgPool, prefix: Prefix, limit: u32) -> Result<Vec<String>> {
    const SQL: &str = concat!(
        "WITH due AS (
           SELECT id FROM oban_jobs
           WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= timezone('UTC', now())
           ORDER BY scheduled_at, id
           LIMIT $1
           FOR UPDATE SKIP LOCKED
         ), staged AS (
           UPDATE oban_jobs j SET state = 'available', ",
        keep_uniq_key!("'available'"),
        " FROM due WHERE j.id = due.id RETURNING j.queue
         )
         SELECT DISTINCT queue FROM staged"
    );
    let queues = sqlx::query_scalar(qualify(prefix, SQL))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(queues)
}

/// See [`Engine::job_rescue_orphaned`](crate::engine::Engine::job_rescue_orphaned).
pub(super) async fn rescue_orphaned(
    pool: &PgPool,
    prefix: Prefix,
    stale_after: Duration,
    unknown_after: Duration,
) -> Result<u64> {
    // Three rules: a producer of this runtime stopped heartbeating; a producer of this runtime
    // lives, but its last snapshot (`held`, `held_at`: see `queue/held.rs`) came after the
    // claim and does not hold the job; the job's `attempted_by` names a producer (two entries)
    // that has no row at all. Jobs of Elixir Oban without Pro (`attempted_by` is `[node]`) and
    // of producers with rows of another implementation (Python Oban, Elixir Oban Pro: their
    // heartbeats keep their own pace) are never rescued here: their own lifelines do it. The
    // scan reads executing jobs only, through their partial index (migration 006), and each
    // snapshot once: a hash anti-join, linear in executing jobs plus held ids, whatever the
    // size of the table.
    const RESCUE: &str = concat!(
        "WITH held AS (
           SELECT p.uuid, h.id::bigint AS id
           FROM oban_producers p, jsonb_array_elements_text(p.meta->'held') h(id)
           WHERE jsonb_typeof(p.meta->'held') = 'array'
         ), orphans AS (
           SELECT j.id FROM oban_jobs j
           LEFT JOIN oban_producers p ON p.uuid::text = j.attempted_by[2]
           WHERE j.state = 'executing'
             AND ((p.uuid IS NOT NULL AND (p.meta->>'runtime' = 'rust' OR p.meta ? 'held')
                   AND p.updated_at < timezone('UTC', now()) - $1 * interval '1 millisecond')
               OR (p.uuid IS NOT NULL AND jsonb_typeof(p.meta->'held_at') = 'string'
                   AND j.attempted_at < (p.meta->>'held_at')::timestamp
                   AND NOT EXISTS (SELECT 1 FROM held h WHERE h.uuid = p.uuid AND h.id = j.id))
               OR (p.uuid IS NULL AND cardinality(j.attempted_by) >= 2
                   AND j.attempted_at < timezone('UTC', now()) - $2 * interval '1 millisecond'))
           FOR UPDATE OF j SKIP LOCKED
         )
         UPDATE oban_jobs j SET
           state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END::oban_job_state, ",
        keep_uniq_key!("CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END"),
        ",
           discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN timezone('UTC', now()) ELSE j.discarded_at END,
           meta = coalesce(j.meta, '{}'::jsonb) || jsonb_build_object(
             'rescued', coalesce((j.meta->>'rescued')::int, 0) + 1,
             'rescued_from', to_jsonb(j.attempted_by))
         FROM orphans WHERE j.id = orphans.id"
    );
    let result = sqlx::query(qualify(prefix, RESCUE))
        .bind(millis(stale_after))
        .bind(millis(unknown_after))
        .execute(pool)
        .await?;
    // Producers of this runtime silent for three times the threshold, with nothing left to
    // rescue, are gone.
    const FORGET: &str = "DELETE FROM oban_producers p
         WHERE p.updated_at < timezone('UTC', now()) - 3 * $1 * interval '1 millisecond'
           AND (p.meta->>'runtime' = 'rust' OR p.meta ? 'held')
           AND NOT EXISTS (SELECT 1 FROM oban_jobs j WHERE j.state = 'executing' AND j.attempted_by[2] = p.uuid::text)";
    sqlx::query(qualify(prefix, FORGET))
        .bind(millis(stale_after))
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}

/// See [`Engine::job_prune`](crate::engine::Engine::job_prune).
pub(super) async fn prune(
    pool: &PgPool,
    prefix: Prefix,
    max_age: Duration,
    limit: u32,
) -> Result<u64> {
    const SQL: &str = "WITH cutoff AS (SELECT timezone('UTC', now()) - $1 * interval '1 millisecond' AS at),
         doomed AS (
           (SELECT id FROM oban_jobs, cutoff WHERE state = 'completed' AND completed_at < cutoff.at LIMIT $2)
           UNION ALL
           (SELECT id FROM oban_jobs, cutoff WHERE state = 'cancelled' AND cancelled_at < cutoff.at LIMIT $2)
           UNION ALL
           (SELECT id FROM oban_jobs, cutoff WHERE state = 'discarded' AND discarded_at < cutoff.at LIMIT $2)
         ),
         locked AS (
           SELECT j.id FROM oban_jobs j JOIN doomed USING (id)
           -- A workflow's finished steps stay while steps of it (or of its parent, which may
           -- wait for it as a whole) wait: their check reads them (engines/postgres/workflow.rs).
           WHERE NOT (j.meta ? 'workflow_id' AND EXISTS (
             SELECT 1 FROM oban_jobs s
             WHERE s.state = 'suspended'
               AND s.meta->>'workflow_id' IN (j.meta->>'workflow_id', j.meta->>'sup_workflow_id')))
           ORDER BY j.id LIMIT $2 FOR UPDATE OF j SKIP LOCKED
         )
         DELETE FROM oban_jobs j USING locked WHERE j.id = locked.id";
    let result = sqlx::query(qualify(prefix, SQL))
        .bind(millis(max_age))
        .bind(i64::from(limit))
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}
