//! The operator's reports ([`crate::admin`]): failures grouped by worker and last error, cron
//! entries seen in recent jobs.

use std::time::Duration;

use chrono::NaiveDateTime;
use sqlx::postgres::PgPool;

use super::prefix::qualify;
use super::row::utc;
use crate::engine::{CronSeen, FailureCount};
use crate::error::Result;
use crate::prefix::Prefix;

/// See [`Engine::job_failures`](crate::engine::Engine::job_failures). `errors` is `jsonb[]` in
/// Elixir Oban's schema and `jsonb` in the Python port's: `to_jsonb` reads both as an array.
pub(super) async fn failures(
    pool: &PgPool,
    prefix: Prefix,
    since: Duration,
) -> Result<Vec<FailureCount>> {
    const SQL: &str = "WITH cutoff AS (
           SELECT timezone('UTC', now()) - $1 * interval '1 millisecond' AS at)
         SELECT j.worker, j.queue, j.state::text,
                (to_jsonb(j.errors) -> (-1)) ->> 'error' AS error, count(*)
         FROM oban_jobs j, cutoff
         WHERE (j.state = 'retryable' AND j.attempted_at >= cutoff.at)
            OR (j.state = 'discarded' AND j.discarded_at >= cutoff.at)
         GROUP BY 1, 2, 3, 4";
    let rows: Vec<(String, String, String, Option<String>, i64)> =
        sqlx::query_as(qualify(prefix, SQL))
            .bind(super::millis(since))
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(FailureCount::from_row)
        .collect())
}

/// See [`Engine::job_cron_seen`](crate::engine::Engine::job_cron_seen): the meta keys as this
/// runtime (`cron_expr`, `cron_name`, `cron_tz`), Elixir Oban's Cron plugin and Python Oban
/// write them.
pub(super) async fn cron_seen(
    pool: &PgPool,
    prefix: Prefix,
    since: Duration,
) -> Result<Vec<CronSeen>> {
    const SQL: &str = "SELECT j.worker, j.queue, j.meta ->> 'cron_expr' AS expr,
                coalesce(j.meta ->> 'cron_name',
                         CASE WHEN jsonb_typeof(j.meta -> 'cron') = 'string' THEN j.meta ->> 'cron' END) AS name,
                coalesce(j.meta ->> 'cron_tz', j.meta ->> 'tz', j.meta ->> 'timezone') AS tz,
                max(j.inserted_at), count(*)
         FROM oban_jobs j
         WHERE j.inserted_at >= timezone('UTC', now()) - $1 * interval '1 millisecond'
           AND (j.meta ->> 'cron_expr' IS NOT NULL OR j.meta ->> 'cron_name' IS NOT NULL)
         GROUP BY 1, 2, 3, 4, 5";
    type Row = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        NaiveDateTime,
        i64,
    );
    let rows: Vec<Row> = sqlx::query_as(qualify(prefix, SQL))
        .bind(super::millis(since))
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(worker, queue, expr, name, tz, last, count)| {
            CronSeen::new(
                worker,
                queue,
                expr,
                name,
                tz,
                utc(last),
                count.max(0) as u64,
            )
        })
        .collect())
}
