//! Outcomes: acks gathered by the completer, one statement per kind.

use chrono::NaiveDateTime;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;

use super::prefix::qualify;
use super::row::keep_uniq_key;
use super::{sequence, workflow};
use crate::engine::{Ack, FinishedStep};
use crate::error::{Error, Result};
use crate::prefix::Prefix;

/// See [`Engine::job_ack_many`](crate::engine::Engine::job_ack_many).
pub(super) async fn ack_many(pool: &PgPool, prefix: Prefix, acks: &[Ack]) -> Result<Vec<i64>> {
    // Plain completions, nearly every ack of a busy queue, take a statement that writes two
    // columns; every other outcome takes the general one.
    let (completed, other): (Vec<&Ack>, Vec<&Ack>) =
        acks.iter().partition(|ack| ack.is_plain_completion());
    let mut acked = ack_completed(pool, prefix, &completed).await?;
    acked.extend(ack_other(pool, prefix, &other).await?);
    let ids = acked.iter().map(|row| row.id).collect();
    let sequences: Vec<String> = acked
        .iter_mut()
        .filter_map(|row| row.sequence.take())
        .collect();
    let finished: Vec<FinishedStep> = acked.into_iter().filter_map(|row| row.step).collect();
    if !finished.is_empty() {
        // The acks are recorded whatever happens here: a step this check misses is released
        // by the leader's next pass over waiting workflows (maintenance/waiting.rs).
        if let Err(error) = workflow::release(pool, prefix, finished, &[]).await {
            tracing::warn!(%error, "could not release the workflow steps waiting on acked jobs; the leader's next pass will");
        }
    }
    if !sequences.is_empty() {
        // The same for sequences: the leader's pass over waiting sequences
        // (maintenance/waiting.rs) starts what this misses.
        if let Err(error) = sequence::release(pool, prefix, &sequences).await {
            tracing::warn!(%error, "could not start the next jobs of the sequences of acked jobs; the leader's next pass will");
        }
    }
    Ok(ids)
}

/// An acked row: its id, the workflow step it finished, if it is one, and the sequence it
/// ended its run in, if it is sequenced and finished.
struct Acked {
    id: i64,
    step: Option<FinishedStep>,
    sequence: Option<String>,
}

/// What the ack statements return after the id: the state, the workflow keys and the sequence
/// of the row.
macro_rules! acked_columns {
    () => {
        "RETURNING j.id, j.state::text, j.meta->>'workflow_id', j.meta->>'sup_workflow_id', j.meta->>'name', j.meta->>'sequence'"
    };
}

fn acked(row: &PgRow) -> Result<Acked> {
    let state: &str = row.try_get(1)?;
    let sequence: Option<String> = row.try_get(5)?;
    Ok(Acked {
        id: row.try_get(0)?,
        step: FinishedStep::of_row(state, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?),
        sequence: sequence.filter(|_| crate::sequence::ends_run(state)),
    })
}

/// Records plain completions: one statement over ids and the attempt each ack belongs to.
async fn ack_completed(pool: &PgPool, prefix: Prefix, acks: &[&Ack]) -> Result<Vec<Acked>> {
    if acks.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = acks.iter().map(|a| a.id).collect();
    let attempted: Vec<NaiveDateTime> = acks.iter().map(|a| a.attempted_at).collect();
    const SQL: &str = concat!(
        "UPDATE oban_jobs j SET state = 'completed', completed_at = timezone('UTC', now()), ",
        keep_uniq_key!("'completed'"),
        " FROM unnest($1::int8[], $2::timestamp[]) AS a(id, attempted_at)
         -- state::text keeps the planner on the primary key where a schema has a state index
         -- (Elixir Oban's): statistics taken while nothing ran estimate one executing row, and
         -- scanning the state index instead walks every dead entry that fetches and acks left
         -- behind (measured: seconds per ack with 200,000 finished jobs in the table).
         WHERE j.id = a.id AND j.state::text = 'executing' AND j.attempted_at = a.attempted_at ",
        acked_columns!()
    );
    let rows = sqlx::query(qualify(prefix, SQL))
        .bind(ids)
        .bind(attempted)
        .fetch_all(pool)
        .await?;
    rows.iter().map(acked).collect()
}

/// Records any outcome: retries, discards, cancels, snoozes, hand-backs.
async fn ack_other(pool: &PgPool, prefix: Prefix, acks: &[&Ack]) -> Result<Vec<Acked>> {
    if acks.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = acks.iter().map(|a| a.id).collect();
    let attempted: Vec<NaiveDateTime> = acks.iter().map(|a| a.attempted_at).collect();
    let states: Vec<&str> = acks.iter().map(|a| a.state.as_str()).collect();
    let delays: Vec<Option<i64>> = acks
        .iter()
        .map(|a| {
            // Clamped: `delay_ms * interval '1 millisecond'` and the timestamp it is added to
            // both overflow far below i64::MAX milliseconds.
            a.schedule_in
                .map(|d| i64::try_from(d.min(Ack::MAX_DELAY).as_millis()).unwrap_or(i64::MAX))
        })
        .collect();
    let give_back: Vec<i32> = acks
        .iter()
        .map(|a| i32::from(a.give_back_attempt))
        .collect();
    let errors: Vec<Option<Value>> = acks.iter().map(|a| a.error.clone()).collect();
    let metas: Vec<Option<Value>> = acks.iter().map(|a| a.meta.clone()).collect();
    const SQL: &str = concat!(
        "UPDATE oban_jobs j SET
           state = a.state::oban_job_state, ",
        keep_uniq_key!("a.state"),
        ",
           completed_at = CASE WHEN a.state = 'completed' THEN timezone('UTC', now()) ELSE j.completed_at END,
           discarded_at = CASE WHEN a.state = 'discarded' THEN timezone('UTC', now()) ELSE j.discarded_at END,
           cancelled_at = CASE WHEN a.state = 'cancelled' THEN timezone('UTC', now()) ELSE j.cancelled_at END,
           scheduled_at = CASE WHEN a.delay_ms IS NULL THEN j.scheduled_at
                               ELSE timezone('UTC', now()) + a.delay_ms * interval '1 millisecond' END,
           attempt = greatest(j.attempt - a.give_back, 0),
           errors = CASE WHEN a.error IS NULL THEN j.errors ELSE j.errors || a.error END,
           meta = CASE WHEN a.meta IS NULL THEN j.meta ELSE coalesce(j.meta, '{}'::jsonb) || a.meta END
         FROM unnest($1::int8[], $2::timestamp[], $3::text[], $4::int8[], $5::int4[], $6::jsonb[], $7::jsonb[])
           AS a(id, attempted_at, state, delay_ms, give_back, error, meta)
         -- state::text: see ack_completed
         WHERE j.id = a.id AND j.state::text = 'executing' AND j.attempted_at = a.attempted_at ",
        acked_columns!()
    );
    let rows = sqlx::query(qualify(prefix, SQL))
        .bind(ids)
        .bind(attempted)
        .bind(states)
        .bind(delays)
        .bind(give_back)
        .bind(errors)
        .bind(metas)
        .fetch_all(pool)
        .await?;
    rows.iter().map(acked).collect()
}

/// See [`Engine::is_data_error`](crate::engine::Engine::is_data_error): SQLSTATE classes 22 (data
/// exception: a NUL in `jsonb`, a value out of range), 23 (integrity constraint violation) and 54
/// (program limit exceeded: a value too large), besides the database-neutral cases.
pub(super) fn is_data_error(error: &Error) -> bool {
    if let Error::Database(sqlx::Error::Database(db)) = error {
        if let Some(code) = db.code() {
            return ["22", "23", "54"]
                .iter()
                .any(|class| code.starts_with(class));
        }
    }
    crate::engine::is_data_error(error)
}
