//! The operator's reports ([`crate::admin`]): failures grouped by worker and last error, cron
//! entries seen in recent jobs.

use std::time::Duration;

use super::row::{now, parse_ts, ts, utc};
use super::SqliteEngine;
use crate::engine::{CronSeen, FailureCount};
use crate::error::Result;

/// `now - since` as stored, saturating.
fn cutoff(since: Duration) -> String {
    let since =
        chrono::Duration::from_std(crate::clock::age(since)).unwrap_or(chrono::Duration::MAX);
    ts(now()
        .checked_sub_signed(since)
        .unwrap_or(chrono::NaiveDateTime::MIN))
}

/// See [`Engine::job_failures`](crate::engine::Engine::job_failures).
pub(super) async fn failures(engine: &SqliteEngine, since: Duration) -> Result<Vec<FailureCount>> {
    let rows: Vec<(String, String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT worker, queue, state,
                CASE WHEN json_valid(errors) AND json_array_length(errors) > 0
                     THEN json_extract(errors, '$[#-1].error') END AS error,
                count(*)
         FROM oban_jobs
         WHERE (state = 'retryable' AND attempted_at >= ?1)
            OR (state = 'discarded' AND discarded_at >= ?1)
         GROUP BY 1, 2, 3, 4",
    )
    .bind(cutoff(since))
    .fetch_all(&engine.pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(FailureCount::from_row)
        .collect())
}

/// See [`Engine::job_cron_seen`](crate::engine::Engine::job_cron_seen).
pub(super) async fn cron_seen(engine: &SqliteEngine, since: Duration) -> Result<Vec<CronSeen>> {
    type Row = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        i64,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT worker, queue, json_extract(meta, '$.cron_expr') AS expr,
                coalesce(json_extract(meta, '$.cron_name'),
                         CASE WHEN json_type(meta, '$.cron') = 'text'
                              THEN json_extract(meta, '$.cron') END) AS name,
                coalesce(json_extract(meta, '$.cron_tz'), json_extract(meta, '$.tz'),
                         json_extract(meta, '$.timezone')) AS tz,
                max(inserted_at), count(*)
         FROM oban_jobs
         WHERE inserted_at >= ?1 AND json_valid(meta)
           AND (json_extract(meta, '$.cron_expr') IS NOT NULL
                OR json_extract(meta, '$.cron_name') IS NOT NULL)
         GROUP BY 1, 2, 3, 4, 5",
    )
    .bind(cutoff(since))
    .fetch_all(&engine.pool)
    .await?;
    rows.into_iter()
        .map(|(worker, queue, expr, name, tz, last, count)| {
            Ok(CronSeen::new(
                worker,
                queue,
                expr,
                name,
                tz,
                utc(parse_ts(&last)?),
                count.max(0) as u64,
            ))
        })
        .collect()
}
