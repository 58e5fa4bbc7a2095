//! Jobs by id and by [`JobFilter`]: lists, newest-first pages, and bulk retry, cancel and
//! delete.

use serde_json::Value;
use sqlx::{Row, SqliteConnection};

use super::insert::keep_uniq_key;
use super::row::{self, job_from_row, now, ts, JOB_COLUMNS};
use super::SqliteEngine;
use crate::error::{Error, Result};
use crate::filter::json_contains;
use crate::filter::{JobFilter, Search};
use crate::job::{Job, JobState};

/// See [`Engine::job_get`](crate::engine::Engine::job_get).
pub(super) async fn get(engine: &SqliteEngine, id: i64) -> Result<Option<Job>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM oban_jobs WHERE id = ?1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&engine.pool)
        .await?;
    row.as_ref().map(job_from_row).transpose()
}

/// See [`Engine::job_list`](crate::engine::Engine::job_list).
pub(super) async fn list(
    engine: &SqliteEngine,
    filter: &JobFilter,
    limit: u32,
) -> Result<Vec<Job>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM oban_jobs
         WHERE {FILTER_SQL} AND id > ?10 ORDER BY id LIMIT ?11"
    );
    walk(engine, &sql, filter, 0, |last| last, limit).await
}

/// See [`Engine::job_page`](crate::engine::Engine::job_page). The bound is inclusive (`id <=
/// ?10`, from `before - 1`) so that a page without `before` binds `i64::MAX` and every id stays a
/// range on the rowid: no `?10 IS NULL OR ..` that SQLite's planner would not take apart.
pub(super) async fn page(
    engine: &SqliteEngine,
    filter: &JobFilter,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<Job>> {
    let start = match before {
        None => i64::MAX,
        Some(i64::MIN) => return Ok(Vec::new()),
        Some(before) => before - 1,
    };
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM oban_jobs
         WHERE {FILTER_SQL} AND id <= ?10 ORDER BY id DESC LIMIT ?11"
    );
    walk(
        engine,
        &sql,
        filter,
        start,
        |last| last.saturating_sub(1),
        limit,
    )
    .await
}

/// Up to `limit` jobs of `sql`: the filter's conditions, then a keyset bound `?10` (first
/// `start`, then `next` of the last id read) and a page size `?11`. SQL conditions first, in
/// pages of rows; the args/meta containment is then checked in Rust.
async fn walk(
    engine: &SqliteEngine,
    sql: &str,
    filter: &JobFilter,
    start: i64,
    next: fn(i64) -> i64,
    limit: u32,
) -> Result<Vec<Job>> {
    let page = if filter.args.is_some() || filter.meta.is_some() {
        1_000
    } else {
        i64::from(limit)
    };
    let mut jobs = Vec::new();
    let mut bound = start;
    while jobs.len() < limit as usize {
        let rows = bind_filter(sqlx::query(sql), filter)
            .bind(bound)
            .bind(page)
            .fetch_all(&engine.pool)
            .await?;
        let fetched = rows.len();
        for row in &rows {
            let job = job_from_row(row)?;
            bound = next(job.id);
            let wanted = |want: &Option<Value>, have: &Value| match want {
                Some(want) => json_contains(have, want),
                None => true,
            };
            if wanted(&filter.args, &job.args) && wanted(&filter.meta, &job.meta) {
                jobs.push(job);
                if jobs.len() == limit as usize {
                    break;
                }
            }
        }
        if (fetched as i64) < page {
            break;
        }
    }
    Ok(jobs)
}

/// See [`Engine::job_ids`](crate::engine::Engine::job_ids).
pub(super) async fn ids(
    engine: &SqliteEngine,
    filter: &JobFilter,
    after: i64,
    limit: u32,
) -> Result<Vec<i64>> {
    let json = filter.args.is_some() || filter.meta.is_some();
    // Without args/meta conditions the statement answers alone; with them it pages and the
    // containment is checked in Rust, as `list` does.
    let page = if json { 1_000 } else { i64::from(limit) };
    let (args, meta) = json_columns(filter);
    let sql = format!(
        "SELECT id, {args} AS args, {meta} AS meta FROM oban_jobs
         WHERE {FILTER_SQL} AND id > ?10 ORDER BY id LIMIT ?11"
    );
    let mut ids = Vec::new();
    let mut after = after;
    while ids.len() < limit as usize {
        let rows = bind_filter(sqlx::query(&sql), filter)
            .bind(after)
            .bind(page)
            .fetch_all(&engine.pool)
            .await?;
        for row in &rows {
            after = row.try_get("id")?;
            if json_matches(row, filter)? {
                ids.push(after);
                if ids.len() == limit as usize {
                    break;
                }
            }
        }
        if (rows.len() as i64) < page {
            break;
        }
    }
    Ok(ids)
}

/// See [`Engine::job_count`](crate::engine::Engine::job_count).
pub(super) async fn count(engine: &SqliteEngine, filter: &JobFilter) -> Result<u64> {
    if filter.args.is_none() && filter.meta.is_none() {
        let sql = format!("SELECT count(*) FROM oban_jobs WHERE {FILTER_SQL}");
        let count: i64 = bind_filter(sqlx::query(&sql), filter)
            .fetch_one(&engine.pool)
            .await?
            .try_get(0)?;
        return Ok(count.max(0) as u64);
    }
    let mut count = 0;
    let mut after = 0;
    loop {
        let page = ids(engine, filter, after, 10_000).await?;
        count += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == 10_000 => after = *last,
            _ => return Ok(count),
        }
    }
}

/// See [`Engine::job_retry_many`](crate::engine::Engine::job_retry_many).
pub(super) async fn retry_many(engine: &SqliteEngine, filter: &JobFilter) -> Result<u64> {
    let filter = filter.clone();
    engine
        .write_tx(move |conn| {
            Box::pin(async move {
                let jobs =
                    select_filtered(conn, &filter, "state NOT IN ('executing', 'available')")
                        .await?;
                if jobs.is_empty() {
                    return Ok(0);
                }
                // A sequenced job goes back in line; its sequence's release starts it when
                // nothing holds the sequence (crate::sequence).
                let result = sqlx::query(concat!(
                    "UPDATE oban_jobs AS j SET
                   state = CASE WHEN json_extract(j.meta, '$.sequence') IS NOT NULL
                                THEN 'suspended' ELSE 'available' END,
                   scheduled_at = ?2,
                   max_attempts = max(j.max_attempts, j.attempt + 1),
                   completed_at = NULL, discarded_at = NULL, cancelled_at = NULL, ",
                    keep_uniq_key!(
                        "CASE WHEN json_extract(j.meta, '$.sequence') IS NOT NULL THEN 'suspended' ELSE 'available' END"
                    ),
                    " WHERE j.id IN (SELECT value FROM json_each(?1))
                     RETURNING json_extract(meta, '$.sequence')"
                ))
                .bind(ids_json(&jobs))
                .bind(ts(now()))
                .fetch_all(&mut *conn)
                .await?;
                let mut sequences: Vec<String> = Vec::new();
                for row in &result {
                    sequences.extend(row.try_get::<Option<String>, _>(0)?);
                }
                super::sequence::release_locked(conn, &sequences).await?;
                Ok(result.len() as u64)
            })
        })
        .await
}

/// See [`Engine::job_cancel_many`](crate::engine::Engine::job_cancel_many).
pub(super) async fn cancel_many(
    engine: &SqliteEngine,
    filter: &JobFilter,
) -> Result<(u64, Vec<i64>)> {
    let filter = filter.clone();
    engine
        .write_tx(move |conn| {
            Box::pin(async move {
                let jobs = select_filtered(
                    conn,
                    &filter,
                    "state NOT IN ('completed', 'discarded', 'cancelled')",
                )
                .await?;
                if jobs.is_empty() {
                    return Ok((0, Vec::new()));
                }
                let result = sqlx::query(concat!(
                    "UPDATE oban_jobs AS j SET state = 'cancelled', cancelled_at = ?2, ",
                    keep_uniq_key!("'cancelled'"),
                    " WHERE j.id IN (SELECT value FROM json_each(?1))
                     RETURNING id, json_extract(meta, '$.sequence')"
                ))
                .bind(ids_json(&jobs))
                .bind(ts(now()))
                .fetch_all(&mut *conn)
                .await?;
                let executing: Vec<i64> = jobs
                    .iter()
                    .filter(|(_, state)| *state == JobState::Executing)
                    .map(|(id, _)| *id)
                    .collect();
                // The next job of a sequence starts now, unless the cancelled one was running:
                // its node stops it on the signal, and the leader's pass starts the next after
                // (crate::sequence).
                let mut sequences: Vec<String> = Vec::new();
                for row in &result {
                    let id: i64 = row.try_get(0)?;
                    if !executing.contains(&id) {
                        sequences.extend(row.try_get::<Option<String>, _>(1)?);
                    }
                }
                super::sequence::release_locked(conn, &sequences).await?;
                Ok((result.len() as u64, executing))
            })
        })
        .await
}

/// See [`Engine::job_delete_many`](crate::engine::Engine::job_delete_many).
pub(super) async fn delete_many(engine: &SqliteEngine, filter: &JobFilter) -> Result<u64> {
    let filter = filter.clone();
    engine
        .write_tx(move |conn| {
            Box::pin(async move {
                let jobs = select_filtered(conn, &filter, "state <> 'executing'").await?;
                if jobs.is_empty() {
                    return Ok(0);
                }
                let result = sqlx::query(
                    "DELETE FROM oban_jobs WHERE id IN (SELECT value FROM json_each(?1))
                     RETURNING json_extract(meta, '$.sequence')",
                )
                .bind(ids_json(&jobs))
                .fetch_all(&mut *conn)
                .await?;
                // A deleted holder lets the next job of its sequence start (crate::sequence).
                let mut sequences: Vec<String> = Vec::new();
                for row in &result {
                    sequences.extend(row.try_get::<Option<String>, _>(0)?);
                }
                super::sequence::release_locked(conn, &sequences).await?;
                Ok(result.len() as u64)
            })
        })
        .await
}

/// The conditions of a [`JobFilter`] but args/meta containment, over binds `?1`..`?9` (see
/// [`bind_filter`]); a statement's own binds start at `?10`.
///
/// The search (`?7`, a `LIKE` pattern already escaped, and `?8`, the id it names) reads the JSON
/// text as stored. SQLite's `LIKE` ignores the case of ASCII letters only. The workflow (`?9`) is
/// compared as `json_extract(meta, '$.workflow_id')`, the expression the workflow index (migration 003) is
/// built on.
const FILTER_SQL: &str = "(?1 IS NULL OR id IN (SELECT value FROM json_each(?1)))
     AND (?2 IS NULL OR queue IN (SELECT value FROM json_each(?2)))
     AND (?3 IS NULL OR worker IN (SELECT value FROM json_each(?3)))
     AND (?4 IS NULL OR state IN (SELECT value FROM json_each(?4)))
     AND (?5 IS NULL OR NOT EXISTS (
       SELECT 1 FROM json_each(?5) AS want
       WHERE want.value NOT IN (SELECT have.value FROM json_each(oban_jobs.tags) AS have)))
     AND (?6 IS NULL OR inserted_at >= ?6)
     AND (?7 IS NULL OR worker LIKE ?7 ESCAPE '\\' OR args LIKE ?7 ESCAPE '\\'
          OR errors LIKE ?7 ESCAPE '\\' OR id = ?8)
     AND (?9 IS NULL OR json_extract(meta, '$.workflow_id') = ?9)";

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds `?1`..`?9` of [`FILTER_SQL`].
fn bind_filter<'q>(query: SqliteQuery<'q>, filter: &JobFilter) -> SqliteQuery<'q> {
    let search = filter.search_terms();
    let list = |items: &[String]| (!items.is_empty()).then(|| Value::from(items).to_string());
    let states: Vec<String> = filter
        .states
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    query
        .bind(
            filter
                .ids
                .as_ref()
                .map(|ids| Value::from(ids.clone()).to_string()),
        )
        .bind(list(&filter.queues))
        .bind(list(&filter.workers))
        .bind(list(&states))
        .bind(list(&filter.tags))
        .bind(filter.inserted_within.map(|age| {
            let age =
                chrono::Duration::from_std(crate::clock::age(age)).unwrap_or(chrono::Duration::MAX);
            ts(now()
                .checked_sub_signed(age)
                .unwrap_or(chrono::NaiveDateTime::MIN))
        }))
        .bind(search.as_ref().map(Search::pattern))
        .bind(search.as_ref().and_then(Search::id))
        .bind(filter.workflow.clone())
}

/// The ids and states of jobs matching `filter` whose state satisfies `states_sql`.
async fn select_filtered(
    conn: &mut SqliteConnection,
    filter: &JobFilter,
    states_sql: &str,
) -> Result<Vec<(i64, JobState)>> {
    let (args, meta) = json_columns(filter);
    let sql = format!(
        "SELECT id, state, {args} AS args, {meta} AS meta FROM oban_jobs
         WHERE {FILTER_SQL} AND {states_sql} ORDER BY id"
    );
    let rows = bind_filter(sqlx::query(&sql), filter)
        .fetch_all(&mut *conn)
        .await?;
    let mut matched = Vec::with_capacity(rows.len());
    for row in &rows {
        if !json_matches(row, filter)? {
            continue;
        }
        let state: String = row.try_get("state")?;
        let state = state
            .parse::<JobState>()
            .map_err(|e| Error::InvalidJob(e.to_string()))?;
        matched.push((row.try_get("id")?, state));
    }
    Ok(matched)
}

fn ids_json(jobs: &[(i64, JobState)]) -> String {
    Value::from(jobs.iter().map(|(id, _)| *id).collect::<Vec<_>>()).to_string()
}

/// The columns to read for the filter's args/meta conditions (`NULL` when it has none): fixed
/// names, never user input.
fn json_columns(filter: &JobFilter) -> (&'static str, &'static str) {
    (
        if filter.args.is_some() {
            "args"
        } else {
            "NULL"
        },
        if filter.meta.is_some() {
            "meta"
        } else {
            "NULL"
        },
    )
}

/// Whether a row read with [`json_columns`] meets the filter's args/meta containment.
fn json_matches(row: &sqlx::sqlite::SqliteRow, filter: &JobFilter) -> Result<bool> {
    if let Some(wanted) = &filter.args {
        if !json_contains(&row::json_col(row, "args", Value::Null)?, wanted) {
            return Ok(false);
        }
    }
    if let Some(wanted) = &filter.meta {
        if !json_contains(&row::json_col(row, "meta", Value::Null)?, wanted) {
            return Ok(false);
        }
    }
    Ok(true)
}
