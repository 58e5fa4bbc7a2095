//! The claim: available jobs of a queue moved to `executing`.

use sqlx::postgres::PgPool;

use super::prefix::qualify;
use super::row::{job_columns, job_from_row};
use crate::engine::FetchCursor;
use crate::error::Result;
use crate::job::Job;
use crate::prefix::Prefix;

/// See [`Engine::job_fetch_available`](crate::engine::Engine::job_fetch_available).
pub(super) async fn fetch_available(
    pool: &PgPool,
    prefix: Prefix,
    queue: &str,
    demand: u32,
    attempted_by: &[String],
    after: Option<FetchCursor>,
) -> Result<Vec<Job>> {
    // The claim is `oban_fetch_available` (migrations/postgres/004_fetch.sql, as
    // 005_fetch_exhausted.sql replaces it): a function so that its plan is pinned to the ordered
    // scan of the fetch index. It returns only the jobs it claimed: an available job with no
    // attempt left is discarded instead, so that it never fails the claim.
    const SQL: &str = concat!(
        "SELECT ",
        job_columns!(),
        " FROM oban_fetch_available($1, $2, $3, $4, $5, $6) j"
    );
    let rows = sqlx::query(qualify(prefix, SQL))
        .bind(queue)
        .bind(i32::try_from(demand).unwrap_or(i32::MAX))
        .bind(attempted_by)
        .bind(after.map(|c| c.priority))
        .bind(after.map(|c| c.scheduled_at))
        .bind(after.map(|c| c.id))
        .fetch_all(pool)
        .await?;
    let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
    jobs.sort_by_key(|job| (job.priority, job.scheduled_at, job.id));
    Ok(jobs)
}
