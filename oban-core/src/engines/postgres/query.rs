//! Jobs by id and by [`JobFilter`]: lists, and bulk retry, cancel and delete.

use serde_json::Value;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use super::row::{job_from_row, keep_uniq_key, JOB_COLUMNS};
use crate::error::Result;
use crate::filter::JobFilter;
use crate::job::Job;

/// See [`Engine::job_get`](crate::engine::Engine::job_get).
pub(super) async fn get(pool: &PgPool, id: i64) -> Result<Option<Job>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM oban_jobs j WHERE j.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(job_from_row).transpose()
}

/// See [`Engine::job_list`](crate::engine::Engine::job_list).
pub(super) async fn list(pool: &PgPool, filter: &JobFilter, limit: u32) -> Result<Vec<Job>> {
    let sql =
        format!("SELECT {JOB_COLUMNS} FROM oban_jobs j WHERE {FILTER_SQL} ORDER BY j.id LIMIT $8");
    let rows = bind_filter(sqlx::query(&sql), filter)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(job_from_row).collect()
}

/// See [`Engine::job_retry_many`](crate::engine::Engine::job_retry_many).
pub(super) async fn retry_many(pool: &PgPool, filter: &JobFilter) -> Result<u64> {
    let sql = format!(
        concat!(
            "UPDATE oban_jobs j SET state = 'available', scheduled_at = timezone('UTC', now()),
               max_attempts = greatest(j.max_attempts, j.attempt + 1),
               completed_at = NULL, discarded_at = NULL, cancelled_at = NULL, ",
            keep_uniq_key!("'available'"),
            " WHERE {} AND j.state NOT IN ('executing', 'available')"
        ),
        FILTER_SQL
    );
    let result = bind_filter(sqlx::query(&sql), filter).execute(pool).await?;
    Ok(result.rows_affected())
}

/// See [`Engine::job_cancel_many`](crate::engine::Engine::job_cancel_many).
pub(super) async fn cancel_many(pool: &PgPool, filter: &JobFilter) -> Result<(u64, Vec<i64>)> {
    let sql = format!(
        concat!(
            "WITH target AS (
               SELECT j.id, j.state FROM oban_jobs j
               WHERE {} AND j.state NOT IN ('completed', 'discarded', 'cancelled')
               FOR UPDATE
             )
             UPDATE oban_jobs j SET state = 'cancelled', cancelled_at = timezone('UTC', now()), ",
            keep_uniq_key!("'cancelled'"),
            " FROM target WHERE j.id = target.id
             RETURNING j.id, target.state = 'executing' AS was_executing"
        ),
        FILTER_SQL
    );
    let rows: Vec<(i64, bool)> = bind_filter(sqlx::query(&sql), filter)
        .try_map(|row: PgRow| Ok((row.try_get(0)?, row.try_get(1)?)))
        .fetch_all(pool)
        .await?;
    let executing = rows.iter().filter(|(_, e)| *e).map(|(id, _)| *id).collect();
    Ok((rows.len() as u64, executing))
}

/// See [`Engine::job_delete_many`](crate::engine::Engine::job_delete_many).
pub(super) async fn delete_many(pool: &PgPool, filter: &JobFilter) -> Result<u64> {
    let sql = format!("DELETE FROM oban_jobs j WHERE {FILTER_SQL} AND j.state <> 'executing'");
    let result = bind_filter(sqlx::query(&sql), filter).execute(pool).await?;
    Ok(result.rows_affected())
}

/// The conditions of a [`JobFilter`], over binds `$1`..`$7` (see [`bind_filter`]).
const FILTER_SQL: &str = "($1::int8[] IS NULL OR j.id = ANY($1))
     AND (cardinality($2::text[]) = 0 OR j.queue = ANY($2))
     AND (cardinality($3::text[]) = 0 OR j.worker = ANY($3))
     AND (cardinality($4::text[]) = 0 OR j.state::text = ANY($4))
     AND coalesce(to_jsonb(j.tags), '[]'::jsonb) @> $5::jsonb
     AND ($6::jsonb IS NULL OR j.args @> $6)
     AND ($7::jsonb IS NULL OR j.meta @> $7)";

fn bind_filter<'q>(
    query: Query<'q, Postgres, PgArguments>,
    filter: &'q JobFilter,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(filter.ids.as_deref())
        .bind(&filter.queues)
        .bind(&filter.workers)
        .bind(filter.states.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .bind(Value::from(filter.tags.clone()))
        .bind(filter.args.as_ref())
        .bind(filter.meta.as_ref())
}
