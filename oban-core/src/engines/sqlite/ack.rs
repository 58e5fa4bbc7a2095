//! Outcomes: a batch of acks in one statement.

use serde_json::{json, Value};
use sqlx::Row;

use super::insert::keep_uniq_key;
use super::row::{now, plus, ts};
use super::SqliteEngine;
use super::{sequence, workflow};
use crate::engine::{Ack, FinishedStep};
use crate::error::{Error, Result};

/// See [`Engine::job_ack_many`](crate::engine::Engine::job_ack_many).
pub(super) async fn ack_many(engine: &SqliteEngine, acks: &[Ack]) -> Result<Vec<i64>> {
    if acks.is_empty() {
        return Ok(Vec::new());
    }
    let _write = engine.hub.write.lock().await;
    let now = now();
    let rows: Vec<Value> = acks
        .iter()
        .map(|a| {
            let mut row = json!({
                "id": a.id,
                "attempted_at": ts(a.attempted_at),
                "state": a.state.as_str(),
                "give_back": i32::from(a.give_back_attempt),
            });
            if let Some(delay) = a.schedule_in {
                // `plus` saturates and `ts` clamps to year 9999: no delay overflows here.
                row["scheduled_at"] = Value::from(ts(plus(now, delay)));
            }
            if let Some(error) = &a.error {
                row["error"] = error.clone();
            }
            if let Some(meta) = &a.meta {
                row["meta"] = meta.clone();
            }
            row
        })
        .collect();
    let rows = sqlx::query(concat!(
        "UPDATE oban_jobs AS j SET
           state = a.value->>'state', ",
        keep_uniq_key!("a.value->>'state'"),
        ",
           completed_at = CASE WHEN a.value->>'state' = 'completed' THEN ?2 ELSE j.completed_at END,
           discarded_at = CASE WHEN a.value->>'state' = 'discarded' THEN ?2 ELSE j.discarded_at END,
           cancelled_at = CASE WHEN a.value->>'state' = 'cancelled' THEN ?2 ELSE j.cancelled_at END,
           scheduled_at = coalesce(a.value->>'scheduled_at', j.scheduled_at),
           attempt = max(j.attempt - (a.value->>'give_back'), 0),
           errors = CASE WHEN a.value->'error' IS NULL THEN j.errors
                         ELSE json_insert(j.errors, '$[#]', json(a.value->'error')) END,
           meta = CASE WHEN a.value->'meta' IS NULL THEN j.meta
                       ELSE json_patch(j.meta, a.value->'meta') END
         FROM json_each(?1) AS a
         -- `+` keeps the planner on the primary key (one lookup per ack) rather than
         -- scanning every executing job for each ack.
         WHERE j.id = a.value->>'id' AND +j.state = 'executing'
           AND j.attempted_at = a.value->>'attempted_at'
         RETURNING id, state, json_extract(meta, '$.workflow_id'),
                   json_extract(meta, '$.sup_workflow_id'), json_extract(meta, '$.name'),
                   json_extract(meta, '$.sequence')"
    ))
    .bind(Value::Array(rows).to_string())
    .bind(ts(now))
    .fetch_all(&engine.pool)
    .await?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut finished = Vec::new();
    let mut sequences: Vec<String> = Vec::new();
    for row in &rows {
        ids.push(row.try_get::<i64, _>(0)?);
        let state: String = row.try_get(1)?;
        let sequence: Option<String> = row.try_get(5)?;
        if let Some(sequence) = sequence.filter(|_| crate::sequence::ends_run(&state)) {
            sequences.push(sequence);
        }
        finished.extend(FinishedStep::of_row(
            &state,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
        ));
    }
    if !finished.is_empty() {
        // The acks are recorded whatever happens here: the leader's pass over waiting
        // workflows releases what this check misses (maintenance/waiting.rs).
        if let Err(error) = workflow::release_locked(engine, finished, &[]).await {
            tracing::warn!(%error, "could not release the workflow steps waiting on acked jobs; the leader's next pass will");
        }
    }
    if !sequences.is_empty() {
        // The same for sequences (maintenance/waiting.rs).
        if let Err(error) = sequence::release_with_lock(engine, &sequences).await {
            tracing::warn!(%error, "could not start the next jobs of the sequences of acked jobs; the leader's next pass will");
        }
    }
    Ok(ids)
}

/// See [`Engine::is_data_error`](crate::engine::Engine::is_data_error): the primary result codes
/// SQLITE_TOOBIG (18), SQLITE_CONSTRAINT (19), SQLITE_MISMATCH (20) and SQLITE_RANGE (25), besides
/// the database-neutral cases. (sqlx reports the extended code, whose low byte is the primary.)
pub(super) fn is_data_error(error: &Error) -> bool {
    if let Error::Database(sqlx::Error::Database(db)) = error {
        if let Some(code) = db.code().and_then(|code| code.parse::<i32>().ok()) {
            return matches!(code & 0xff, 18 | 19 | 20 | 25);
        }
    }
    crate::engine::is_data_error(error)
}
