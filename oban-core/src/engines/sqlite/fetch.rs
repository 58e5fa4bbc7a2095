//! The claim: available jobs of a queue moved to `executing`, under the write lock.
//!
//! An available job whose attempts are all spent (`attempt >= max_attempts`: a replay by SQL, an
//! older client) is discarded instead of run, with an entry in `errors` that says why, as
//! PostgreSQL's claim does (`migrations/postgres/005_fetch_exhausted.sql`). Incrementing its
//! attempt would break the `attempt <= max_attempts` check and fail every claim of its queue.

use serde_json::Value;

use super::insert::keep_uniq_key;
use super::row::{job_from_row, now, ts, JOB_COLUMNS};
use super::SqliteEngine;
use crate::error::Result;
use crate::job::Job;

/// See [`Engine::job_fetch_available`](crate::engine::Engine::job_fetch_available); SQLite scans
/// from the head (one writer at a time and a small table keep that cheap), so there is no cursor.
///
/// The claim takes the first `demand` available jobs and moves those with an attempt left; a
/// normal job costs one comparison more than before. Only a short claim (the end of the queue,
/// or spent jobs among those taken) runs a second statement, which discards the spent jobs that
/// were taken: they are now the first available ones. If it discarded any, jobs after them may
/// be claimable, so the claim runs again for what is missing: a short answer keeps meaning that
/// nothing more is available.
pub(super) async fn fetch_available(
    engine: &SqliteEngine,
    queue: &str,
    demand: u32,
    attempted_by: &[String],
) -> Result<Vec<Job>> {
    if demand == 0 {
        return Ok(Vec::new());
    }
    let _write = engine.hub.write.lock().await;
    claim_head(engine, queue, demand, attempted_by, now()).await
}

/// The claim from the head of `queue` at `at`, for a caller that holds the write lock (as the
/// limited claim does, between counting and claiming).
pub(super) async fn claim_head(
    engine: &SqliteEngine,
    queue: &str,
    demand: u32,
    attempted_by: &[String],
    at: chrono::NaiveDateTime,
) -> Result<Vec<Job>> {
    let claim = format!(
        concat!(
            "UPDATE oban_jobs AS j
             SET state = 'executing', attempt = j.attempt + 1, attempted_at = ?3, attempted_by = ?4, ",
            keep_uniq_key!("'executing'"),
            " WHERE j.id IN (
               SELECT id FROM oban_jobs
               WHERE state = 'available' AND queue = ?1
               ORDER BY priority, scheduled_at, id
               LIMIT ?2)
               AND j.attempt < j.max_attempts
             RETURNING {}"
        ),
        JOB_COLUMNS
    );
    let attempted_by = Value::from(attempted_by).to_string();
    let mut jobs = Vec::new();
    while (jobs.len() as u64) < u64::from(demand) {
        let wanted = u64::from(demand) - jobs.len() as u64;
        let rows = sqlx::query(&claim)
            .bind(queue)
            .bind(i64::try_from(wanted).unwrap_or(i64::MAX))
            .bind(ts(at))
            .bind(&attempted_by)
            .fetch_all(&engine.pool)
            .await?;
        let claimed = rows.len() as u64;
        for row in &rows {
            jobs.push(job_from_row(row)?);
        }
        if claimed == wanted {
            break;
        }
        // Short: every job taken but not claimed was spent, and they now come first.
        if discard_spent(engine, queue, wanted - claimed).await? == 0 {
            break;
        }
    }
    jobs.sort_by_key(|job| (job.priority, job.scheduled_at, job.id));
    Ok(jobs)
}

/// The statement that discards available jobs with no attempt left among those `$filter` (a
/// condition on `j` whose parameters start at `?3`) selects, with an entry in `errors` saying
/// why; bind its timestamps with [`bind_discarded_at`] first.
macro_rules! discard_spent_sql {
    ($filter:expr) => {
        concat!(
            "UPDATE oban_jobs AS j
             SET state = 'discarded', discarded_at = ?1,
                 errors = json_insert(j.errors, '$[#]', json_object(
                   'at', ?2, 'attempt', j.attempt,
                   'error', printf('discarded instead of run: the job was available with all of its '
                                   || 'attempts spent (attempt %d of max_attempts %d), and running it '
                                   || 'would exceed max_attempts; to run it again, retry it with a '
                                   || 'higher max_attempts', j.attempt, j.max_attempts))), ",
            keep_uniq_key!("'discarded'"),
            " WHERE ",
            $filter,
            " AND j.attempt >= j.max_attempts"
        )
    };
}
pub(super) use discard_spent_sql;

/// Binds `?1` and `?2` of a [`discard_spent_sql!`] statement: now, as stored and as Oban's errors
/// entries write it.
pub(super) fn bind_discarded_at<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    query.bind(ts(now())).bind(at)
}

/// Discards the spent jobs among the first `limit` available jobs of `queue`; returns how many.
async fn discard_spent(engine: &SqliteEngine, queue: &str, limit: u64) -> Result<u64> {
    const SQL: &str = discard_spent_sql!(
        "j.id IN (SELECT id FROM oban_jobs WHERE state = 'available' AND queue = ?3
                  ORDER BY priority, scheduled_at, id LIMIT ?4)"
    );
    let done = bind_discarded_at(sqlx::query(SQL))
        .bind(queue)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&engine.pool)
        .await?;
    Ok(done.rows_affected())
}
