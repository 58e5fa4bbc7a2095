//! The job columns every job query returns, and decoding them.

use chrono::{NaiveDateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::error::{Error, Result};
use crate::job::{strings_from_json, AttemptError, Job, JobState};

/// Column list every job query returns first, normalised so that schemas installed by Elixir
/// Oban (integer, `text[]` tags, `jsonb[]` errors) and by Oban's Python port (smallint, jsonb)
/// decode alike; empty tags and errors come as NULL, which decodes without a JSON parse.
/// [`job_from_row`] reads the columns by position, in this order.
macro_rules! job_columns {
    () => {
        "j.id, j.state::text AS state, j.queue, j.worker, j.args, \
     coalesce(j.meta, '{}'::jsonb) AS meta, nullif(to_jsonb(j.tags), '[]'::jsonb) AS tags, \
     nullif(to_jsonb(j.errors), '[]'::jsonb) AS errors, j.attempt::int4 AS attempt, \
     j.max_attempts::int4 AS max_attempts, j.priority::int4 AS priority, \
     coalesce(j.attempted_by, ARRAY[]::text[]) AS attempted_by, j.inserted_at, j.scheduled_at, \
     j.attempted_at, j.completed_at, j.discarded_at, j.cancelled_at"
    };
}
pub(super) use job_columns;

/// `uniq_key` after a change of state to the SQL expression `state`: kept while the new state is
/// one of the job's unique states (`meta.uniq_states`), cleared otherwise.
macro_rules! keep_uniq_key {
    ($state:literal) => {
        concat!(
            "uniq_key = CASE WHEN j.uniq_key IS NOT NULL AND coalesce(j.meta->'uniq_states' ? (",
            $state,
            ")::text, false) THEN j.uniq_key END"
        )
    };
}
pub(super) use keep_uniq_key;

/// A database timestamp (UTC without a zone) as UTC.
pub(super) fn utc(at: NaiveDateTime) -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&at)
}

/// A job from the columns of [`job_columns!`], read by position (a fetch decodes a row per job:
/// by name, every field cost a lookup of its column).
pub(super) fn job_from_row(row: &PgRow) -> Result<Job> {
    let state = row
        .try_get::<&str, _>(1)?
        .parse::<JobState>()
        .map_err(|e| Error::InvalidJob(e.to_string()))?;
    let tags = row
        .try_get::<Option<Value>, _>(6)?
        .map(strings_from_json)
        .unwrap_or_default();
    let errors = match row.try_get::<Option<Value>, _>(7)? {
        Some(Value::Array(items)) => items.into_iter().map(AttemptError::from_json).collect(),
        _ => Vec::new(),
    };
    let at = |index: usize| -> Result<Option<chrono::DateTime<Utc>>> {
        Ok(row.try_get::<Option<NaiveDateTime>, _>(index)?.map(utc))
    };
    Ok(Job {
        id: row.try_get(0)?,
        state,
        queue: row.try_get(2)?,
        worker: row.try_get(3)?,
        args: row.try_get(4)?,
        meta: row.try_get(5)?,
        tags,
        errors,
        attempt: row.try_get(8)?,
        max_attempts: row.try_get(9)?,
        priority: row.try_get(10)?,
        attempted_by: row.try_get(11)?,
        inserted_at: utc(row.try_get(12)?),
        scheduled_at: utc(row.try_get(13)?),
        attempted_at: at(14)?,
        completed_at: at(15)?,
        discarded_at: at(16)?,
        cancelled_at: at(17)?,
        conflict: false,
    })
}
