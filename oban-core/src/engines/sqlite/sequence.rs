//! Sequences on SQLite ([`crate::sequence`]): the release of `engines/postgres/sequence.rs` in
//! SQLite's JSON functions. SQLite's write lock stands in for the advisory locks: an insert
//! writes its `suspended` rows before it checks, inside `BEGIN IMMEDIATE` (or the caller's
//! transaction, which holds the write lock from its first write), and the release after an ack
//! or by the leader runs under the hub's write lock in a transaction of its own.

use serde_json::json;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};

use super::row::{now, ts};
use super::SqliteEngine;
use crate::engine::Channel;
use crate::error::{Error, Result};
use crate::job::JobState;

/// In each of these sequences where no job holds without waiting, moves the first waiting job
/// to `available` (`scheduled` when its time is ahead); returns the jobs released with their
/// new state and queue. The caller holds the write lock.
pub(super) async fn release_locked(
    conn: &mut SqliteConnection,
    keys: &[String],
) -> Result<Vec<(i64, JobState, String)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    // The conditions repeat the indexes' predicates, so the planner reads them; `ORDER BY w.id`
    // (not the key first) is what lets SQLite read the first entry of the key without a sort.
    const SQL: &str = "UPDATE oban_jobs AS j SET
           state = CASE WHEN j.scheduled_at > ?2 THEN 'scheduled' ELSE 'available' END
         WHERE j.state = 'suspended' AND j.id IN (
           SELECT (SELECT w.id FROM oban_jobs w
                   WHERE json_extract(w.meta, '$.sequence') IS NOT NULL AND w.state = 'suspended'
                     AND json_extract(w.meta, '$.sequence') = s.value
                   ORDER BY w.id LIMIT 1)
           FROM (SELECT DISTINCT value FROM json_each(?1)) s
           WHERE NOT EXISTS (
             SELECT 1 FROM oban_jobs b
             WHERE json_extract(b.meta, '$.sequence') IS NOT NULL
               AND b.state NOT IN ('completed', 'suspended')
               AND (b.state NOT IN ('discarded', 'cancelled')
                    OR json_extract(b.meta, '$.sequence_hold') IS NOT NULL)
               AND json_extract(b.meta, '$.sequence') = s.value))
         RETURNING id, state, queue";
    let rows = sqlx::query(SQL)
        .bind(json!(keys).to_string())
        .bind(ts(now()))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            let state: String = row.try_get(1)?;
            let state = state
                .parse::<JobState>()
                .map_err(|e| Error::InvalidJob(e.to_string()))?;
            Ok((row.try_get(0)?, state, row.try_get(2)?))
        })
        .collect()
}

/// Releases the next job of each of these sequences that nothing holds, in one transaction,
/// with the hub's write lock held by the caller, and wakes their queues; returns how many.
pub(super) async fn release_with_lock(engine: &SqliteEngine, keys: &[String]) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let mut conn = engine.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let released = release_locked(&mut tx, keys).await?;
    tx.commit().await?;
    let mut queues: Vec<&str> = Vec::new();
    for (_, state, queue) in &released {
        if *state == JobState::Available && !queues.contains(&queue.as_str()) {
            queues.push(queue);
        }
    }
    for queue in queues {
        engine
            .hub
            .notify(Channel::Insert, json!({ "queue": queue }).to_string());
    }
    Ok(released.len() as u64)
}

/// See [`Engine::sequence_release`](crate::engine::Engine::sequence_release).
pub(super) async fn release(engine: &SqliteEngine, keys: &[String]) -> Result<u64> {
    let _write = engine.hub.write.lock().await;
    release_with_lock(engine, keys).await
}

/// See [`Engine::sequence_waiting`](crate::engine::Engine::sequence_waiting).
pub(super) async fn waiting(
    engine: &SqliteEngine,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<String>> {
    const SQL: &str = "SELECT DISTINCT json_extract(w.meta, '$.sequence') AS seq FROM oban_jobs w
         WHERE json_extract(w.meta, '$.sequence') IS NOT NULL AND w.state = 'suspended'
           AND (?1 IS NULL OR json_extract(w.meta, '$.sequence') > ?1)
         ORDER BY seq LIMIT ?2";
    Ok(sqlx::query_scalar(SQL)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&engine.pool)
        .await?)
}
