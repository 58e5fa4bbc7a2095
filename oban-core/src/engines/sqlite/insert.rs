//! Inserting jobs on SQLite: the statements of the shared insert algorithm
//! ([`crate::engine::insert`]), and inserts through pools and transactions.
//!
//! The rows travel as one JSON array read by `json_each` (SQLite has no arrays), the insert
//! state and timestamps come from the process clock, and the unique path runs in a `BEGIN
//! IMMEDIATE` transaction (or a savepoint of the caller's), i.e. it holds SQLite's write lock
//! from its first statement: no other writer can change a key holder under it.

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::hub::Hub;
use super::notify::notify_inserted;
use super::row::{job_from_row, minus, now, parse_ts, ts, utc, JOB_COLUMNS};
use crate::engine::insert::{
    self as algorithm, Expiring, InsertStatements, Keyed, Replacement, Rounds, StoredRow,
};
use crate::error::{Error, Result};
use crate::insert::{JobInserter, Prefixed};
use crate::job::{Job, JobState};
use crate::new_job::NewJob;

/// `uniq_key` after a change of state to the SQL expression `state` (over the job aliased `j`):
/// kept while the new state is one of the job's unique states (`meta.uniq_states`), cleared
/// otherwise. The SQLite form of the PostgreSQL engine's macro of the same name.
macro_rules! keep_uniq_key {
    ($state:expr) => {
        concat!(
            "uniq_key = CASE WHEN j.uniq_key IS NULL THEN NULL WHEN EXISTS (SELECT 1 FROM json_each(j.meta, '$.uniq_states') AS us WHERE us.value = (",
            $state,
            ")) THEN j.uniq_key END"
        )
    };
}
pub(crate) use keep_uniq_key;

/// Inserts into the database behind `pool` (what `insert(&pool)` and the engine do): under the
/// process's write lock, and wakes this process's queues that received runnable jobs.
pub(super) async fn insert_through_hub(
    pool: &SqlitePool,
    hub: &Hub,
    jobs: Vec<NewJob>,
) -> Result<Vec<Job>> {
    let inserted = {
        let _write = hub.write.lock().await;
        let mut conn = pool.acquire().await?;
        insert_jobs(&mut conn, jobs).await?
    };
    notify_inserted(hub, &inserted);
    Ok(inserted)
}

/// Inserts on `conn` (see [`crate::engine::insert`]); on a connection the caller controls (its
/// own transaction) there is no lock and no notification: queues find the jobs by polling once
/// the caller commits.
async fn insert_jobs(conn: &mut SqliteConnection, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
    algorithm::insert_jobs(&mut Statements(conn), jobs).await
}

impl<'a> JobInserter<'a> for &'a SqlitePool {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        Box::pin(async move { insert_through_hub(self, &Hub::for_pool(self), jobs).await })
    }
}

impl<'a> JobInserter<'a> for &'a mut SqliteConnection {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        Box::pin(insert_jobs(self, jobs))
    }
}

impl<'a, 't: 'a> JobInserter<'a> for &'a mut Transaction<'t, Sqlite> {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        Box::pin(insert_jobs(self, jobs))
    }
}

// A prefix on SQLite: only the default, the file's one instance (see `check_prefix`), so that
// `oban.within(&mut *tx)` reads the same on both engines.

impl<'a> JobInserter<'a> for Prefixed<&'a SqlitePool> {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        let (prefix, pool) = self.into_parts();
        Box::pin(async move {
            super::check_prefix(prefix)?;
            pool.insert_jobs(jobs).await
        })
    }
}

impl<'a> JobInserter<'a> for Prefixed<&'a mut SqliteConnection> {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        let (prefix, conn) = self.into_parts();
        Box::pin(async move {
            super::check_prefix(prefix)?;
            conn.insert_jobs(jobs).await
        })
    }
}

impl<'a, 't: 'a> JobInserter<'a> for Prefixed<&'a mut Transaction<'t, Sqlite>> {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        let (prefix, tx) = self.into_parts();
        Box::pin(async move {
            super::check_prefix(prefix)?;
            tx.insert_jobs(jobs).await
        })
    }
}

/// The insert algorithm's statements on one connection.
struct Statements<'c>(&'c mut SqliteConnection);

#[async_trait]
impl InsertStatements for Statements<'_> {
    async fn insert_rows(&mut self, jobs: &[Keyed<'_>]) -> Result<Vec<StoredRow>> {
        insert_rows(self.0, jobs).await
    }

    async fn release_expired(&mut self, expiring: &[Expiring<'_>]) -> Result<()> {
        if expiring.is_empty() {
            return Ok(());
        }
        let now = now();
        let expiring: Vec<Value> = expiring
            .iter()
            .map(|e| {
                json!({
                    "key": e.key,
                    "cutoff": ts(minus(now, e.period)),
                    "by_scheduled": e.by_scheduled_at,
                })
            })
            .collect();
        sqlx::query(
            "UPDATE oban_jobs SET uniq_key = NULL
             WHERE id IN (
               SELECT j.id FROM json_each(?1) AS t JOIN oban_jobs AS j ON j.uniq_key = t.value->>'key'
               WHERE CASE WHEN t.value->>'by_scheduled' THEN j.scheduled_at ELSE j.inserted_at END
                     < t.value->>'cutoff')",
        )
        .bind(Value::Array(expiring).to_string())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn clear_keys(&mut self, ids: &[i64]) -> Result<()> {
        sqlx::query(
            "UPDATE oban_jobs SET uniq_key = NULL WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(Value::from(ids).to_string())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn key_holders(&mut self, keys: &[&str]) -> Result<Vec<(String, Job)>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS}, uniq_key FROM oban_jobs
             WHERE uniq_key IN (SELECT value FROM json_each(?1))"
        );
        let rows = sqlx::query(&sql)
            .bind(Value::from(keys).to_string())
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("uniq_key")?, job_from_row(row)?)))
            .collect()
    }

    async fn replace(&mut self, existing: &Job, with: &Replacement<'_>) -> Result<Option<Job>> {
        let sql = format!(
            "UPDATE oban_jobs SET
               args = coalesce(json(?3), args),
               max_attempts = CASE WHEN ?4 IS NULL THEN max_attempts ELSE max(?4, attempt + ?10) END,
               meta = coalesce(json(?5), meta),
               priority = coalesce(?6, priority),
               queue = coalesce(?7, queue),
               scheduled_at = coalesce(?8, scheduled_at),
               tags = coalesce(json(?9), tags)
             WHERE id = ?1 AND state = ?2
             RETURNING {JOB_COLUMNS}"
        );
        let json = |value: Option<&Value>| value.map(Value::to_string);
        let scheduled_at = with
            .scheduled_at
            .map(|at| ts(at.map_or_else(now, |at| at.naive_utc())));
        let row = sqlx::query(&sql)
            .bind(existing.id)
            .bind(existing.state.as_str())
            .bind(json(with.args))
            .bind(with.max_attempts)
            .bind(json(with.meta))
            .bind(with.priority)
            .bind(with.queue)
            .bind(scheduled_at)
            .bind(with.tags.map(|tags| Value::from(tags).to_string()))
            .bind(with.attempts_left)
            .fetch_optional(&mut *self.0)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn lock_sequences(&mut self, _keys: &[String]) -> Result<()> {
        // The transaction holds SQLite's write lock from its first statement (see `transaction`).
        Ok(())
    }

    async fn release_sequences(&mut self, keys: &[String]) -> Result<Vec<(i64, JobState)>> {
        let released = super::sequence::release_locked(self.0, keys).await?;
        Ok(released
            .into_iter()
            .map(|(id, state, _)| (id, state))
            .collect())
    }

    async fn transaction(&mut self, rounds: Rounds) -> Result<Vec<Job>> {
        // `BEGIN IMMEDIATE` takes the write lock at once; inside the caller's transaction, a
        // savepoint.
        let mut tx = if self.0.is_in_transaction() {
            self.0.begin().await?
        } else {
            self.0.begin_with("BEGIN IMMEDIATE").await?
        };
        let jobs = rounds(&mut Statements(&mut tx)).await?;
        tx.commit().await?;
        Ok(jobs)
    }
}

/// The insert statement; returns, in input order, what the database decided for each row it
/// stored. Rows that lost a unique conflict are absent.
async fn insert_rows(conn: &mut SqliteConnection, jobs: &[Keyed<'_>]) -> Result<Vec<StoredRow>> {
    let now = now();
    let rows: Vec<Value> = jobs
        .iter()
        .map(|&Keyed { job, key }| {
            let scheduled_at = job.scheduled_at.map(|at| at.naive_utc()).unwrap_or(now);
            // A sequenced job waits; the release that follows in the same transaction starts
            // the first of an idle sequence (sequence.rs).
            let state = if crate::workflow::waits(&job.meta)
                || crate::sequence::sequence_of(&job.meta).is_some()
            {
                JobState::Suspended
            } else if scheduled_at > now {
                JobState::Scheduled
            } else {
                JobState::Available
            };
            json!({
                "state": state.as_str(),
                "queue": job.queue,
                "worker": job.worker,
                "args": job.args,
                "meta": job.meta,
                "tags": job.tags,
                "priority": job.priority,
                "max_attempts": job.max_attempts,
                "scheduled_at": ts(scheduled_at),
                "uniq_key": key,
            })
        })
        .collect();
    // `WHERE true` keeps SQLite from reading ON CONFLICT as a join constraint.
    const SQL: &str =
        "INSERT INTO oban_jobs (state, queue, worker, args, meta, tags, priority, max_attempts,
                                inserted_at, scheduled_at, uniq_key)
         SELECT t.value->>'state', t.value->>'queue', t.value->>'worker', t.value->'args',
                t.value->'meta', t.value->'tags', t.value->>'priority', t.value->>'max_attempts',
                ?2, t.value->>'scheduled_at', t.value->>'uniq_key'
         FROM json_each(?1) AS t WHERE true ORDER BY t.key
         ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
         RETURNING id, state, inserted_at, scheduled_at, uniq_key";
    let rows = sqlx::query(SQL)
        .bind(Value::Array(rows).to_string())
        .bind(ts(now))
        .fetch_all(&mut *conn)
        .await?;
    let mut rows = rows
        .iter()
        .map(|row| {
            let state: String = row.try_get(1)?;
            let inserted_at: String = row.try_get(2)?;
            let scheduled_at: String = row.try_get(3)?;
            Ok(StoredRow {
                id: row.try_get(0)?,
                state: state
                    .parse::<JobState>()
                    .map_err(|e| Error::InvalidJob(e.to_string()))?,
                inserted_at: utc(parse_ts(&inserted_at)?),
                scheduled_at: utc(parse_ts(&scheduled_at)?),
                uniq_key: row.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    rows.sort_by_key(|row| row.id);
    Ok(rows)
}
