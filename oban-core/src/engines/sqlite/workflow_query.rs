//! The operator's reads of workflows ([`crate::admin`]): recent workflow steps, steps tallied by
//! workflow and state, sub-workflows; and the retry of a workflow's failed steps.
//!
//! A workflow is compared as `json_extract(meta, '$.workflow_id')`, the expression the workflow index
//! (migration 003) is built on; values read back are cast to text, since it returns a JSON
//! number as an SQL number.

use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::insert::keep_uniq_key;
use super::row::{parse_ts, utc};
use super::SqliteEngine;
use crate::engine::WorkflowTally;
use crate::error::{Error, Result};
use crate::job::JobState;

/// See [`Engine::workflow_recent_steps`](crate::engine::Engine::workflow_recent_steps). The
/// bound is inclusive from `before - 1`, so that every page is a range on the rowid.
pub(super) async fn recent_steps(
    engine: &SqliteEngine,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<(i64, String)>> {
    let start = match before {
        None => i64::MAX,
        Some(i64::MIN) => return Ok(Vec::new()),
        Some(before) => before - 1,
    };
    let rows = sqlx::query(
        "SELECT id, CAST(json_extract(meta, '$.workflow_id') AS TEXT) FROM oban_jobs
         WHERE json_extract(meta, '$.workflow_id') IS NOT NULL AND id <= ?1
         ORDER BY id DESC LIMIT ?2",
    )
    .bind(start)
    .bind(i64::from(limit))
    .try_map(|row: SqliteRow| Ok((row.try_get(0)?, row.try_get(1)?)))
    .fetch_all(&engine.pool)
    .await?;
    Ok(rows)
}

/// See [`Engine::workflow_tally`](crate::engine::Engine::workflow_tally).
pub(super) async fn tally(
    engine: &SqliteEngine,
    workflow_ids: &[String],
) -> Result<Vec<WorkflowTally>> {
    if workflow_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT CAST(json_extract(meta, '$.workflow_id') AS TEXT), state, count(*), min(id), max(id),
                max(CAST(meta ->> 'workflow_name' AS TEXT)),
                max(CAST(json_extract(meta, '$.sup_workflow_id') AS TEXT)),
                min(inserted_at), min(attempted_at),
                max(CASE state WHEN 'completed' THEN completed_at
                               WHEN 'cancelled' THEN cancelled_at
                               WHEN 'discarded' THEN discarded_at END)
         FROM oban_jobs
         WHERE json_extract(meta, '$.workflow_id') IN (SELECT value FROM json_each(?1))
         GROUP BY 1, 2",
    )
    .bind(Value::from(workflow_ids).to_string())
    .fetch_all(&engine.pool)
    .await?;
    let time = |row: &SqliteRow, i: usize| -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let text: Option<String> = row.try_get(i)?;
        text.as_deref()
            .map(parse_ts)
            .transpose()
            .map(|at| at.map(utc))
    };
    let mut tallies = Vec::with_capacity(rows.len());
    for row in &rows {
        let state: String = row.try_get(1)?;
        let state = state
            .parse::<JobState>()
            .map_err(|e| Error::InvalidJob(e.to_string()))?;
        let count: i64 = row.try_get(2)?;
        let inserted_at =
            time(row, 7)?.ok_or_else(|| Error::InvalidJob("a job without inserted_at".into()))?;
        let mut tally = WorkflowTally::new(
            row.try_get(0)?,
            state,
            count.max(0) as u64,
            row.try_get(3)?,
            row.try_get(4)?,
            inserted_at,
        );
        tally.name = row.try_get(5)?;
        tally.sup_workflow_id = row.try_get(6)?;
        tally.attempted_at = time(row, 8)?;
        tally.finished_at = time(row, 9)?;
        tallies.push(tally);
    }
    Ok(tallies)
}

/// See [`Engine::workflow_subs`](crate::engine::Engine::workflow_subs).
pub(super) async fn subs(
    engine: &SqliteEngine,
    workflow_id: &str,
    from_id: i64,
    rows: u32,
) -> Result<Vec<String>> {
    let subs = sqlx::query(
        "SELECT r.w FROM (
           SELECT id, CAST(json_extract(meta, '$.workflow_id') AS TEXT) AS w,
                  CAST(json_extract(meta, '$.sup_workflow_id') AS TEXT) AS s
           FROM oban_jobs WHERE id >= ?2 ORDER BY id LIMIT ?3) AS r
         WHERE r.s = ?1 AND r.w IS NOT NULL
         GROUP BY r.w ORDER BY min(r.id)",
    )
    .bind(workflow_id)
    .bind(from_id)
    .bind(i64::from(rows))
    .try_map(|row: SqliteRow| row.try_get::<String, _>(0))
    .fetch_all(&engine.pool)
    .await?;
    Ok(subs)
}

/// See [`Engine::workflow_suspend_failed`](crate::engine::Engine::workflow_suspend_failed).
pub(super) async fn suspend_failed(engine: &SqliteEngine, workflow_ids: &[String]) -> Result<u64> {
    if workflow_ids.is_empty() {
        return Ok(0);
    }
    let ids = Value::from(workflow_ids).to_string();
    engine
        .write_tx(move |conn| {
            Box::pin(async move {
                let result = sqlx::query(concat!(
                    "UPDATE oban_jobs AS j SET state = 'suspended',
                       max_attempts = max(j.max_attempts, j.attempt + 1),
                       completed_at = NULL, discarded_at = NULL, cancelled_at = NULL, ",
                    keep_uniq_key!("'suspended'"),
                    " WHERE json_extract(j.meta, '$.workflow_id') IN (SELECT value FROM json_each(?1))
                       AND j.state IN ('cancelled', 'discarded')"
                ))
                .bind(ids)
                .execute(&mut *conn)
                .await?;
                Ok(result.rows_affected())
            })
        })
        .await
}
