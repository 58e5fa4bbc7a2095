//! Fleet-wide queue limits: the stored limits, the limited claim and what the limits count.
//!
//! The rules are in `oban_fetch_limited` (`migrations/postgres/009_queue_limits.sql`) and
//! [`crate::limits`].

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::prefix::qualify;
use super::row::{job_columns, job_from_row};
use crate::engine::{LimitsUsage, PartitionCount};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::limits::Limits;
use crate::prefix::Prefix;

/// See [`Engine::job_fetch_limited`](crate::engine::Engine::job_fetch_limited).
pub(super) async fn fetch_limited(
    pool: &PgPool,
    prefix: Prefix,
    queue: &str,
    demand: u32,
    attempted_by: &[String],
) -> Result<Vec<Job>> {
    const SQL: &str = concat!(
        "SELECT ",
        job_columns!(),
        " FROM oban_fetch_limited($1, $2, $3) j"
    );
    if demand == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(qualify(prefix, SQL))
        .bind(queue)
        .bind(i32::try_from(demand).unwrap_or(i32::MAX))
        .bind(attempted_by)
        .fetch_all(pool)
        .await?;
    let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
    jobs.sort_by_key(|job| (job.priority, job.scheduled_at, job.id));
    Ok(jobs)
}

/// See [`Engine::queue_limits_put`](crate::engine::Engine::queue_limits_put).
pub(super) async fn put(
    pool: &PgPool,
    prefix: Prefix,
    queue: &str,
    limits: Option<&Limits>,
) -> Result<()> {
    const UPSERT: &str = "INSERT INTO oban_rust_queue_limits (queue, limits) VALUES ($1, $2)
         ON CONFLICT (queue) DO UPDATE
         SET limits = excluded.limits, updated_at = timezone('UTC', now())";
    const DELETE: &str = "DELETE FROM oban_rust_queue_limits WHERE queue = $1";
    match limits.filter(|limits| !limits.is_empty()) {
        Some(limits) => {
            let json =
                serde_json::to_value(limits).map_err(|error| Error::Config(error.to_string()))?;
            sqlx::query(qualify(prefix, UPSERT))
                .bind(queue)
                .bind(json)
                .execute(pool)
                .await?;
        }
        None => {
            sqlx::query(qualify(prefix, DELETE))
                .bind(queue)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// See [`Engine::queue_limits_get`](crate::engine::Engine::queue_limits_get). A row that does not
/// read as limits (written by hand) is skipped with a warning rather than failing the caller.
pub(super) async fn get(
    pool: &PgPool,
    prefix: Prefix,
    queue: Option<&str>,
) -> Result<Vec<(String, Limits)>> {
    const SQL: &str = "SELECT queue, limits FROM oban_rust_queue_limits
         WHERE $1::text IS NULL OR queue = $1 ORDER BY queue";
    let rows = sqlx::query(qualify(prefix, SQL))
        .bind(queue)
        .fetch_all(pool)
        .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let queue: String = row.try_get("queue")?;
        let json: serde_json::Value = row.try_get("limits")?;
        match serde_json::from_value::<Limits>(json) {
            Ok(limits) => found.push((queue, limits)),
            Err(error) => {
                tracing::warn!(%queue, %error, "skipping stored queue limits that do not read as limits")
            }
        }
    }
    Ok(found)
}

/// See [`Engine::queue_limits_usage`](crate::engine::Engine::queue_limits_usage).
pub(super) async fn usage(
    pool: &PgPool,
    prefix: Prefix,
    queue: &str,
    limits: &Limits,
    top: u32,
) -> Result<LimitsUsage> {
    const RUNNING: &str =
        "SELECT oban_rust_partition(worker, args, $2) AS partition, count(*) AS count
         FROM oban_jobs WHERE state = 'executing' AND queue = $1
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3";
    // The buckets still in the window: the same bound as the claim's.
    const STARTED: &str = "SELECT partition, sum(starts)::bigint AS count
         FROM oban_rust_rate_buckets
         WHERE queue = $1
           AND bucket_ms > floor(extract(epoch FROM timezone('UTC', now())) * 1000)::bigint - $2 - $3
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $4";
    let top = i64::from(top);
    let mut usage = LimitsUsage::default();
    if let Some(global) = &limits.global {
        let spec = serde_json::to_value(&global.partition).unwrap_or_default();
        let rows = sqlx::query(qualify(prefix, RUNNING))
            .bind(queue)
            .bind(spec)
            .bind(top)
            .fetch_all(pool)
            .await?;
        usage.running = counts(&rows)?;
    }
    if let Some(rate) = &limits.rate {
        let period = i64::try_from(rate.period.as_millis()).unwrap_or(i64::MAX);
        let width = i64::try_from(rate.bucket().as_millis()).unwrap_or(i64::MAX);
        let rows = sqlx::query(qualify(prefix, STARTED))
            .bind(queue)
            .bind(period)
            .bind(width)
            .bind(top)
            .fetch_all(pool)
            .await?;
        usage.started = counts(&rows)?;
    }
    Ok(usage)
}

fn counts(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<PartitionCount>> {
    rows.iter()
        .map(|row| {
            let count: i64 = row.try_get("count")?;
            Ok(PartitionCount::new(
                row.try_get::<String, _>("partition")?,
                u64::try_from(count).unwrap_or(0),
            ))
        })
        .collect()
}
