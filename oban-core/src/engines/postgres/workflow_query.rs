//! The operator's reads of workflows ([`crate::admin`]): recent workflow steps, steps tallied by
//! workflow and state, sub-workflows; and the retry of a workflow's failed steps.
//!
//! Every condition on a workflow is `meta ? 'workflow_id' AND meta->>'workflow_id' ..`: the
//! workflow indexes (migration 008) are partial on `meta ? 'workflow_id'`, and the planner takes
//! a partial index only for a condition that implies its predicate.

use chrono::NaiveDateTime;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;

use super::prefix::qualify;
use super::row::{keep_uniq_key, utc};
use crate::engine::WorkflowTally;
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::prefix::Prefix;

/// See [`Engine::workflow_recent_steps`](crate::engine::Engine::workflow_recent_steps).
pub(super) async fn recent_steps(
    pool: &PgPool,
    prefix: Prefix,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<(i64, String)>> {
    const SQL: &str = "SELECT j.id, j.meta->>'workflow_id' FROM oban_jobs j
         WHERE j.meta ? 'workflow_id' AND j.meta->>'workflow_id' IS NOT NULL
           AND ($1::int8 IS NULL OR j.id < $1)
         ORDER BY j.id DESC LIMIT $2";
    let rows = sqlx::query(qualify(prefix, SQL))
        .bind(before)
        .bind(i64::from(limit))
        .try_map(|row: PgRow| Ok((row.try_get(0)?, row.try_get(1)?)))
        .fetch_all(pool)
        .await?;
    Ok(rows)
}

/// See [`Engine::workflow_tally`](crate::engine::Engine::workflow_tally).
pub(super) async fn tally(
    pool: &PgPool,
    prefix: Prefix,
    workflow_ids: &[String],
) -> Result<Vec<WorkflowTally>> {
    const SQL: &str =
        "SELECT j.meta->>'workflow_id', j.state::text, count(*), min(j.id), max(j.id),
                max(j.meta->>'workflow_name'), max(j.meta->>'sup_workflow_id'),
                min(j.inserted_at), min(j.attempted_at),
                max(CASE j.state::text WHEN 'completed' THEN j.completed_at
                                       WHEN 'cancelled' THEN j.cancelled_at
                                       WHEN 'discarded' THEN j.discarded_at END)
         FROM oban_jobs j
         WHERE j.meta ? 'workflow_id' AND j.meta->>'workflow_id' = ANY($1)
         GROUP BY 1, 2";
    if workflow_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(qualify(prefix, SQL))
        .bind(workflow_ids)
        .fetch_all(pool)
        .await?;
    let mut tallies = Vec::with_capacity(rows.len());
    for row in &rows {
        let state: String = row.try_get(1)?;
        let state = state
            .parse::<JobState>()
            .map_err(|e| Error::InvalidJob(e.to_string()))?;
        let count: i64 = row.try_get(2)?;
        let mut tally = WorkflowTally::new(
            row.try_get(0)?,
            state,
            count.max(0) as u64,
            row.try_get(3)?,
            row.try_get(4)?,
            utc(row.try_get::<NaiveDateTime, _>(7)?),
        );
        tally.name = row.try_get(5)?;
        tally.sup_workflow_id = row.try_get(6)?;
        tally.attempted_at = row.try_get::<Option<NaiveDateTime>, _>(8)?.map(utc);
        tally.finished_at = row.try_get::<Option<NaiveDateTime>, _>(9)?.map(utc);
        tallies.push(tally);
    }
    Ok(tallies)
}

/// See [`Engine::workflow_subs`](crate::engine::Engine::workflow_subs): `rows` rows of the
/// primary key from `from_id`, whatever they hold.
pub(super) async fn subs(
    pool: &PgPool,
    prefix: Prefix,
    workflow_id: &str,
    from_id: i64,
    rows: u32,
) -> Result<Vec<String>> {
    const SQL: &str = "SELECT r.w FROM (
           SELECT j.id, j.meta->>'workflow_id' AS w, j.meta->>'sup_workflow_id' AS s
           FROM oban_jobs j WHERE j.id >= $2 ORDER BY j.id LIMIT $3) r
         WHERE r.s = $1 AND r.w IS NOT NULL
         GROUP BY r.w ORDER BY min(r.id)";
    let subs = sqlx::query(qualify(prefix, SQL))
        .bind(workflow_id)
        .bind(from_id)
        .bind(i64::from(rows))
        .try_map(|row: PgRow| row.try_get::<String, _>(0))
        .fetch_all(pool)
        .await?;
    Ok(subs)
}

/// See [`Engine::workflow_suspend_failed`](crate::engine::Engine::workflow_suspend_failed).
pub(super) async fn suspend_failed(
    pool: &PgPool,
    prefix: Prefix,
    workflow_ids: &[String],
) -> Result<u64> {
    const SQL: &str = concat!(
        "UPDATE oban_jobs j SET state = 'suspended',
           max_attempts = greatest(j.max_attempts, j.attempt + 1),
           completed_at = NULL, discarded_at = NULL, cancelled_at = NULL, ",
        keep_uniq_key!("'suspended'"),
        " WHERE j.meta ? 'workflow_id' AND j.meta->>'workflow_id' = ANY($1)
           AND j.state IN ('cancelled', 'discarded')"
    );
    if workflow_ids.is_empty() {
        return Ok(0);
    }
    let result = sqlx::query(qualify(prefix, SQL))
        .bind(workflow_ids)
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}
