//! Jobs by id and by [`JobFilter`]: lists, newest-first pages, and bulk retry, cancel and
//! delete.

use serde_json::Value;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use super::prefix::qualify;
use super::row::{job_columns, job_from_row, keep_uniq_key};
use crate::error::Result;
use crate::filter::{JobFilter, Search};
use crate::job::Job;
use crate::prefix::Prefix;

/// The conditions of a [`JobFilter`], over binds `$1`..`$11` (see [`bind_filter`]); a statement's
/// own binds start at `$12`.
///
/// Written for the planner: sqlx prepares each statement once per connection, and PostgreSQL
/// plans its first five executions (and every later one whose generic plan does not look
/// cheaper) with the values bound, folding away each condition whose bind leaves it nothing to
/// do (`cardinality('{}') = 0 OR ..` is true). Two conditions are written so that folding leaves
/// what the statistics and indexes know:
///
/// - the states (`$4`) as one `'discarded' = ANY($4) AND j.state = 'discarded'` per state (every
///   one of [`JobState::ALL`](crate::job::JobState::ALL), checked by a test below): what
///   remains compares the column with a constant of its own type, which the column's statistics
///   estimate and the partial indexes of each state (`WHERE state = 'discarded'`, the fetch and
///   executing indexes) serve. A page of `executing` jobs on a million rows reads that index
///   (0.04 ms) instead of the whole primary key (370 ms), and an estimate of the state's share
///   makes a page of a common state walk the primary key. `suspended` is compared as text: a
///   schema Elixir Oban installed before that state has no such label, and a constant of it would
///   not parse.
/// - the tags (`$5`) only when some are asked: the containment of `'[]'`, always true, is
///   estimated at 1% of the rows; with a state compared as text (0.5%) on top, the planner
///   expected 50 matches in a million rows and read and sorted the whole table (300 ms) for a
///   page that a walk of the primary key fills from 5,000 rows (1 ms).
///
/// The search (`$9`, a `LIKE` pattern already escaped, and `$10`, the id it names) reads
/// `errors` through `to_jsonb`, which renders both of its types as JSON text: `jsonb[]` (the
/// schema Elixir Oban and this runtime install; its own `::text` is an array literal with every
/// quote escaped) and `jsonb` (Python Oban's); an empty `errors` (`'{}'` or `'[]'` as text, a
/// cheap test) is not rendered. `ILIKE` runs in the `C` collation, which folds ASCII letters
/// only, as SQLite's `LIKE` does: in a locale's collation every row's text goes through the
/// locale's case conversion first (a million rows, one core: 2.3 s for a search no job matches,
/// 1.4 s with both changes). No index serves a substring: a search reads rows until the page is
/// full, and all of them when few jobs match.
///
/// The workflow (`$11`) is compared as `meta->>'workflow_id'` together with `meta ? 'workflow_id'`,
/// the predicate of the workflow indexes (migration 008): the planner uses a partial index only
/// for a condition that implies its predicate, and an equality on `->>` alone does not.
macro_rules! filter_sql {
    () => {
        "($1::int8[] IS NULL OR j.id = ANY($1))
     AND (cardinality($2::text[]) = 0 OR j.queue = ANY($2))
     AND (cardinality($3::text[]) = 0 OR j.worker = ANY($3))
     AND (cardinality($4::text[]) = 0
          OR ('available' = ANY($4) AND j.state = 'available')
          OR ('scheduled' = ANY($4) AND j.state = 'scheduled')
          OR ('executing' = ANY($4) AND j.state = 'executing')
          OR ('retryable' = ANY($4) AND j.state = 'retryable')
          OR ('completed' = ANY($4) AND j.state = 'completed')
          OR ('discarded' = ANY($4) AND j.state = 'discarded')
          OR ('cancelled' = ANY($4) AND j.state = 'cancelled')
          OR ('suspended' = ANY($4) AND j.state::text = 'suspended'))
     AND ($5::jsonb = '[]'::jsonb OR coalesce(to_jsonb(j.tags), '[]'::jsonb) @> $5)
     AND ($6::jsonb IS NULL OR j.args @> $6)
     AND ($7::jsonb IS NULL OR j.meta @> $7)
     AND ($8::int8 IS NULL OR j.inserted_at >= timezone('UTC', now()) - $8 * interval '1 millisecond')
     AND ($9::text IS NULL
          OR j.worker ILIKE $9 COLLATE \"C\"
          OR j.args::text ILIKE $9 COLLATE \"C\"
          OR (j.errors::text NOT IN ('{}', '[]') AND to_jsonb(j.errors)::text ILIKE $9 COLLATE \"C\")
          OR j.id = $10::int8)
     AND ($11::text IS NULL OR (j.meta ? 'workflow_id' AND j.meta->>'workflow_id' = $11))"
    };
}

/// See [`Engine::job_get`](crate::engine::Engine::job_get).
pub(super) async fn get(pool: &PgPool, prefix: Prefix, id: i64) -> Result<Option<Job>> {
    const SQL: &str = concat!(
        "SELECT ",
        job_columns!(),
        " FROM oban_jobs j WHERE j.id = $1"
    );
    let row = sqlx::query(qualify(prefix, SQL))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(job_from_row).transpose()
}

/// See [`Engine::job_list`](crate::engine::Engine::job_list).
pub(super) async fn list(
    pool: &PgPool,
    prefix: Prefix,
    filter: &JobFilter,
    limit: u32,
) -> Result<Vec<Job>> {
    const SQL: &str = concat!(
        "SELECT ",
        job_columns!(),
        " FROM oban_jobs j WHERE ",
        filter_sql!(),
        " ORDER BY j.id LIMIT $12"
    );
    let rows = bind_filter(sqlx::query(qualify(prefix, SQL)), filter)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(job_from_row).collect()
}

/// See [`Engine::job_page`](crate::engine::Engine::job_page): a backward walk of the primary
/// key from `before`, stopping at `limit` matching rows.
pub(super) async fn page(
    pool: &PgPool,
    prefix: Prefix,
    filter: &JobFilter,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<Job>> {
    const SQL: &str = concat!(
        "SELECT ",
        job_columns!(),
        " FROM oban_jobs j WHERE ",
        filter_sql!(),
        " AND ($12::int8 IS NULL OR j.id < $12) ORDER BY j.id DESC LIMIT $13"
    );
    let rows = bind_filter(sqlx::query(qualify(prefix, SQL)), filter)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(job_from_row).collect()
}

/// See [`Engine::job_ids`](crate::engine::Engine::job_ids).
pub(super) async fn ids(
    pool: &PgPool,
    prefix: Prefix,
    filter: &JobFilter,
    after: i64,
    limit: u32,
) -> Result<Vec<i64>> {
    const SQL: &str = concat!(
        "SELECT j.id FROM oban_jobs j WHERE ",
        filter_sql!(),
        " AND j.id > $12 ORDER BY j.id LIMIT $13"
    );
    let ids = bind_filter(sqlx::query(qualify(prefix, SQL)), filter)
        .bind(after)
        .bind(i64::from(limit))
        .try_map(|row: PgRow| row.try_get::<i64, _>(0))
        .fetch_all(pool)
        .await?;
    Ok(ids)
}

/// See [`Engine::job_count`](crate::engine::Engine::job_count).
pub(super) async fn count(pool: &PgPool, prefix: Prefix, filter: &JobFilter) -> Result<u64> {
    const SQL: &str = concat!("SELECT count(*) FROM oban_jobs j WHERE ", filter_sql!());
    let count: i64 = bind_filter(sqlx::query(qualify(prefix, SQL)), filter)
        .try_map(|row: PgRow| row.try_get::<i64, _>(0))
        .fetch_one(pool)
        .await?;
    Ok(count.max(0) as u64)
}

/// See [`Engine::job_retry_many`](crate::engine::Engine::job_retry_many). A sequenced job goes
/// back in line (`suspended`), and its sequence's release starts it when nothing holds the
/// sequence ([`crate::sequence`]).
pub(super) async fn retry_many(pool: &PgPool, prefix: Prefix, filter: &JobFilter) -> Result<u64> {
    const SQL: &str = concat!(
        "UPDATE oban_jobs j SET
           state = CASE WHEN j.meta ? 'sequence' THEN 'suspended' ELSE 'available' END::oban_job_state,
           scheduled_at = timezone('UTC', now()),
           max_attempts = greatest(j.max_attempts, j.attempt + 1),
           completed_at = NULL, discarded_at = NULL, cancelled_at = NULL, ",
        keep_uniq_key!("CASE WHEN j.meta ? 'sequence' THEN 'suspended' ELSE 'available' END"),
        " WHERE ",
        filter_sql!(),
        " AND j.state NOT IN ('executing', 'available')
         RETURNING j.meta->>'sequence'"
    );
    let sequences: Vec<Option<String>> = bind_filter(sqlx::query(qualify(prefix, SQL)), filter)
        .try_map(|row: PgRow| row.try_get(0))
        .fetch_all(pool)
        .await?;
    let retried = sequences.len() as u64;
    let sequences: Vec<String> = sequences.into_iter().flatten().collect();
    if !sequences.is_empty() {
        super::sequence::release(pool, prefix, &sequences).await?;
    }
    Ok(retried)
}

/// See [`Engine::job_cancel_many`](crate::engine::Engine::job_cancel_many).
pub(super) async fn cancel_many(
    pool: &PgPool,
    prefix: Prefix,
    filter: &JobFilter,
) -> Result<(u64, Vec<i64>)> {
    const SQL: &str = concat!(
        "WITH target AS (
           SELECT j.id, j.state FROM oban_jobs j
           WHERE ",
        filter_sql!(),
        " AND j.state NOT IN ('completed', 'discarded', 'cancelled')
           FOR UPDATE
         )
         UPDATE oban_jobs j SET state = 'cancelled', cancelled_at = timezone('UTC', now()), ",
        keep_uniq_key!("'cancelled'"),
        " FROM target WHERE j.id = target.id
         RETURNING j.id, target.state = 'executing' AS was_executing, j.meta->>'sequence'"
    );
    let rows: Vec<(i64, bool, Option<String>)> =
        bind_filter(sqlx::query(qualify(prefix, SQL)), filter)
            .try_map(|row: PgRow| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .fetch_all(pool)
            .await?;
    let executing = rows.iter().filter(|r| r.1).map(|r| r.0).collect();
    // The next job of a sequence starts now, unless the cancelled one was running: its node
    // stops it on the signal, and the leader's pass starts the next after (crate::sequence).
    let sequences: Vec<String> = rows
        .iter()
        .filter(|r| !r.1)
        .filter_map(|r| r.2.clone())
        .collect();
    if !sequences.is_empty() {
        super::sequence::release(pool, prefix, &sequences).await?;
    }
    Ok((rows.len() as u64, executing))
}

/// See [`Engine::job_delete_many`](crate::engine::Engine::job_delete_many).
pub(super) async fn delete_many(pool: &PgPool, prefix: Prefix, filter: &JobFilter) -> Result<u64> {
    const SQL: &str = concat!(
        "DELETE FROM oban_jobs j WHERE ",
        filter_sql!(),
        " AND j.state <> 'executing' RETURNING j.meta->>'sequence'"
    );
    let sequences: Vec<Option<String>> = bind_filter(sqlx::query(qualify(prefix, SQL)), filter)
        .try_map(|row: PgRow| row.try_get(0))
        .fetch_all(pool)
        .await?;
    let deleted = sequences.len() as u64;
    // A deleted holder lets the next job of its sequence start (crate::sequence).
    let sequences: Vec<String> = sequences.into_iter().flatten().collect();
    if !sequences.is_empty() {
        super::sequence::release(pool, prefix, &sequences).await?;
    }
    Ok(deleted)
}

/// Binds `$1`..`$11` of [`filter_sql!`].
fn bind_filter<'q>(
    query: Query<'q, Postgres, PgArguments>,
    filter: &'q JobFilter,
) -> Query<'q, Postgres, PgArguments> {
    let search = filter.search_terms();
    query
        .bind(filter.ids.as_deref())
        .bind(&filter.queues)
        .bind(&filter.workers)
        .bind(filter.states.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .bind(Value::from(filter.tags.clone()))
        .bind(filter.args.as_ref())
        .bind(filter.meta.as_ref())
        .bind(filter.inserted_within.map(super::millis))
        .bind(search.as_ref().map(Search::pattern))
        .bind(search.as_ref().and_then(Search::id))
        .bind(filter.workflow.as_deref())
}

#[cfg(test)]
mod tests {
    use crate::job::JobState;

    #[test]
    fn the_filter_names_every_state() {
        for state in JobState::ALL {
            let condition = format!("'{}' = ANY($4) AND j.state", state.as_str());
            assert!(filter_sql!().contains(&condition), "{state} is missing");
        }
    }
}
