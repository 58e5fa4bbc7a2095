//! Workflow steps on SQLite: the checks of `engines/postgres/workflow.rs` in SQLite's JSON
//! functions. The caller holds the hub's write lock, which stands in for PostgreSQL's
//! advisory locks: no other check or ack of this process runs meanwhile, and the transaction
//! keeps other processes out.

use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};

use super::row::{job_from_row, now, ts};
use super::SqliteEngine;
use crate::engine::{Channel, FinishedStep};
use crate::error::Result;
use crate::job::Job;

/// At most this many rounds of cascading cancellation run in one check (see PostgreSQL's).
const MAX_ROUNDS: usize = 64;

/// Checks the steps waiting on `finished` (all waiting steps of `all` as well) in one
/// transaction, with the hub's write lock held by the caller; returns how many changed.
pub(super) async fn release_locked(
    engine: &SqliteEngine,
    mut finished: Vec<FinishedStep>,
    all: &[String],
) -> Result<u64> {
    if finished.is_empty() && all.is_empty() {
        return Ok(0);
    }
    let mut conn = engine.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let mut changed = 0;
    let mut queues: Vec<String> = Vec::new();
    let mut check_all = all.to_vec();
    for _ in 0..MAX_ROUNDS {
        let mut next = Vec::new();
        if !check_all.is_empty() {
            let mut workflows = check_all.clone();
            workflows.extend(sub_workflows(&mut tx, &workflows).await?);
            next.extend(check(&mut tx, &workflows, None, &mut queues).await?);
        }
        if !finished.is_empty() {
            let mut workflows = FinishedStep::workflows(&finished);
            workflows.extend(sub_workflows(&mut tx, &workflows).await?);
            next.extend(check(&mut tx, &workflows, Some(&finished), &mut queues).await?);
        }
        changed += next.len() as u64;
        finished = next.into_iter().flatten().collect();
        check_all.clear();
        if finished.is_empty() {
            break;
        }
    }
    tx.commit().await?;
    for queue in queues {
        engine
            .hub
            .notify(Channel::Insert, json!({ "queue": queue }).to_string());
    }
    Ok(changed)
}

/// See [`Engine::workflow_release`](crate::engine::Engine::workflow_release).
pub(super) async fn release(engine: &SqliteEngine, workflow_ids: &[String]) -> Result<u64> {
    let _write = engine.hub.write.lock().await;
    release_locked(engine, Vec::new(), workflow_ids).await
}

/// Workflows with suspended steps whose parent is one of `workflows`.
async fn sub_workflows(conn: &mut SqliteConnection, workflows: &[String]) -> Result<Vec<String>> {
    const SQL: &str = "SELECT DISTINCT json_extract(j.meta, '$.workflow_id') FROM oban_jobs j
         WHERE j.state = 'suspended'
           AND json_extract(j.meta, '$.sup_workflow_id') IN (SELECT value FROM json_each(?1))";
    Ok(sqlx::query_scalar(SQL)
        .bind(json!(workflows).to_string())
        .fetch_all(conn)
        .await?)
}

/// One round (see PostgreSQL's `check`); adds the queues that received runnable jobs.
async fn check(
    conn: &mut SqliteConnection,
    workflows: &[String],
    finished: Option<&[FinishedStep]>,
    queues: &mut Vec<String>,
) -> Result<Vec<Option<FinishedStep>>> {
    let names: Option<String> = finished.map(|f| json!(FinishedStep::names(f)).to_string());
    let finished_workflows: String =
        json!(finished.map(FinishedStep::workflows).unwrap_or_default()).to_string();
    const SQL: &str = "WITH candidate AS (
           SELECT c.id, json_extract(c.meta, '$.workflow_id') AS wf, json_extract(c.meta, '$.deps') AS deps,
                  coalesce(json_extract(c.meta, '$.ignore_cancelled'), 0) AS ignore_cancelled,
                  coalesce(json_extract(c.meta, '$.ignore_discarded'), 0) AS ignore_discarded,
                  coalesce(json_extract(c.meta, '$.ignore_deleted'), 0) AS ignore_deleted
           FROM oban_jobs c
           WHERE c.state = 'suspended'
             AND json_extract(c.meta, '$.workflow_id') IN (SELECT value FROM json_each(?1))
             AND (?2 IS NULL OR EXISTS (
                   SELECT 1 FROM json_each(c.meta, '$.deps') d
                   WHERE (d.type = 'text' AND d.value IN (SELECT value FROM json_each(?2)))
                      OR (d.type = 'array'
                          AND json_extract(d.value, '$[0]') IN (SELECT value FROM json_each(?3)))))
         ), judged AS (
           SELECT c.id, (
             SELECT json_array(coalesce(s.state, 'deleted'), s.label) FROM (
               SELECT CASE WHEN r.name = '*' THEN (
                        SELECT CASE WHEN count(*) = 0 THEN NULL
                                    WHEN sum(x.state NOT IN ('completed', 'cancelled', 'discarded')) > 0 THEN 'waiting'
                                    WHEN sum(x.state = 'discarded') > 0 THEN 'discarded'
                                    WHEN sum(x.state = 'cancelled') > 0 THEN 'cancelled'
                                    ELSE 'completed' END
                        FROM oban_jobs x
                        WHERE json_extract(x.meta, '$.workflow_id') = r.wf)
                      ELSE (
                        SELECT x.state FROM oban_jobs x
                        WHERE json_extract(x.meta, '$.workflow_id') = r.wf
                          AND json_extract(x.meta, '$.name') = r.name
                        ORDER BY x.id DESC LIMIT 1) END AS state,
                      CASE WHEN r.name = '*' THEN 'sub-workflow ' || r.wf ELSE 'step \"' || r.name || '\"' END AS label
               FROM (SELECT d.key AS ord,
                            CASE WHEN d.type = 'text' THEN c.wf ELSE json_extract(d.value, '$[0]') END AS wf,
                            CASE WHEN d.type = 'text' THEN d.value ELSE json_extract(d.value, '$[1]') END AS name,
                            (d.type = 'text' AND d.value IN (SELECT value FROM json_each(coalesce(?2, '[]')))) AS hint
                     FROM json_each(c.deps) d
                     ORDER BY hint DESC, ord DESC) r
             ) s
             WHERE NOT (s.state IS 'completed'
                        OR (s.state IS NULL AND c.ignore_deleted)
                        OR (s.state IS 'cancelled' AND c.ignore_cancelled)
                        OR (s.state IS 'discarded' AND c.ignore_discarded))
             LIMIT 1) AS blocker
           FROM candidate c
         )
         UPDATE oban_jobs AS j SET
           state = CASE WHEN g.blocker IS NOT NULL THEN 'cancelled'
                        WHEN j.scheduled_at > ?4 THEN 'scheduled'
                        ELSE 'available' END,
           cancelled_at = CASE WHEN g.blocker IS NULL THEN j.cancelled_at ELSE ?4 END,
           errors = CASE WHEN g.blocker IS NULL THEN j.errors
                         ELSE json_insert(j.errors, '$[#]', json_object(
                           'at', ?5, 'attempt', j.attempt,
                           'error', 'cancelled: upstream ' || json_extract(g.blocker, '$[1]')
                                    || ' was ' || json_extract(g.blocker, '$[0]'))) END
         FROM judged g
         WHERE j.id = g.id AND j.state = 'suspended'
           AND (g.blocker IS NULL OR json_extract(g.blocker, '$[0]') IN ('cancelled', 'discarded', 'deleted'))
         RETURNING state, queue, json_extract(meta, '$.workflow_id'),
                   json_extract(meta, '$.sup_workflow_id'), json_extract(meta, '$.name')";
    let now = now();
    let rows = sqlx::query(SQL)
        .bind(json!(workflows).to_string())
        .bind(names)
        .bind(finished_workflows)
        .bind(ts(now))
        .bind(
            now.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        )
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            let state: String = row.try_get(0)?;
            let queue: String = row.try_get(1)?;
            if state == "available" && !queues.contains(&queue) {
                queues.push(queue);
            }
            // Released rows are not finished; cancelled ones are failures to pass on.
            Ok(FinishedStep::of_row(
                &state,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            ))
        })
        .collect()
}

/// See [`Engine::workflow_waiting`](crate::engine::Engine::workflow_waiting).
pub(super) async fn waiting(
    engine: &SqliteEngine,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<String>> {
    const SQL: &str = "SELECT DISTINCT json_extract(j.meta, '$.workflow_id') AS wf FROM oban_jobs j
         WHERE j.state = 'suspended' AND wf IS NOT NULL AND (?1 IS NULL OR wf > ?1)
         ORDER BY wf LIMIT ?2";
    Ok(sqlx::query_scalar(SQL)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&engine.pool)
        .await?)
}

/// See [`Engine::workflow_steps`](crate::engine::Engine::workflow_steps).
pub(super) async fn steps(
    engine: &SqliteEngine,
    workflow_id: &str,
    names: &[String],
) -> Result<Vec<Job>> {
    const SQL: &str = "SELECT j.* FROM oban_jobs j
         WHERE json_extract(j.meta, '$.workflow_id') = ?1
           AND json_extract(j.meta, '$.name') IN (SELECT value FROM json_each(?2))
         ORDER BY j.id DESC";
    let rows = sqlx::query(SQL)
        .bind(workflow_id)
        .bind(Value::from(names.to_vec()).to_string())
        .fetch_all(&engine.pool)
        .await?;
    let mut seen: Vec<String> = Vec::new();
    let mut jobs = Vec::new();
    for row in &rows {
        let job = job_from_row(row)?;
        let name = crate::workflow::layout::step_name(&job.meta).map(str::to_owned);
        if let Some(name) = name {
            if !seen.contains(&name) {
                seen.push(name);
                jobs.push(job);
            }
        }
    }
    Ok(jobs)
}
