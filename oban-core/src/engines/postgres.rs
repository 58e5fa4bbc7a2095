//! The PostgreSQL engine: all of the runtime's SQL for PostgreSQL lives in this file.
//!
//! Timestamps are `timestamp without time zone` holding UTC, as in Elixir Oban's schema; the
//! database clock (`timezone('UTC', now())`) is the only clock used for scheduling decisions.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Executor, Row};

use crate::engine::{Ack, Engine};
use crate::error::{Error, Result};
use crate::job::{AttemptError, Job, JobState};
use crate::new_job::NewJob;

/// Column list every job query returns, normalised so that schemas installed by Elixir Oban
/// (integer, `text[]` tags, `jsonb[]` errors) and by Oban's Python port (smallint, jsonb) decode
/// alike.
const JOB_COLUMNS: &str = "j.id, j.state::text AS state, j.queue, j.worker, j.args, \
     coalesce(j.meta, '{}'::jsonb) AS meta, coalesce(to_jsonb(j.tags), '[]'::jsonb) AS tags, \
     coalesce(to_jsonb(j.errors), '[]'::jsonb) AS errors, j.attempt::int4 AS attempt, \
     j.max_attempts::int4 AS max_attempts, j.priority::int4 AS priority, \
     coalesce(j.attempted_by, ARRAY[]::text[]) AS attempted_by, j.inserted_at, j.scheduled_at, \
     j.attempted_at, j.completed_at, j.discarded_at, j.cancelled_at";

const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "install oban_jobs",
        include_str!("../../../migrations/postgres/001_install_oban_jobs.sql"),
    ),
    (
        2,
        "runtime tables",
        include_str!("../../../migrations/postgres/002_runtime_tables.sql"),
    ),
];

/// Arbitrary but fixed key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x0ba7_0001;

/// The PostgreSQL engine over a connection pool.
#[derive(Debug, Clone)]
pub struct PostgresEngine {
    pool: PgPool,
}

impl PostgresEngine {
    /// An engine using `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Applies the schema on `conn` (see [`crate::migrate`]).
pub(crate) async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    (&mut *tx)
        .execute(
            "CREATE TABLE IF NOT EXISTS oban_rust_migrations (
               version integer PRIMARY KEY,
               description text NOT NULL,
               installed_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let applied: Vec<i32> = sqlx::query_scalar("SELECT version FROM oban_rust_migrations")
        .fetch_all(&mut *tx)
        .await?;
    let jobs_table_exists: bool = sqlx::query_scalar("SELECT to_regclass('oban_jobs') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await?;
    for (version, description, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        // Version 1 installs the job table; a table some other Oban installed is kept as it is.
        let skip = *version == 1 && jobs_table_exists;
        if !skip {
            (&mut *tx)
                .execute(*sql)
                .await
                .map_err(|e| Error::Migration(format!("step {version} ({description}): {e}")))?;
        }
        sqlx::query("INSERT INTO oban_rust_migrations (version, description) VALUES ($1, $2)")
            .bind(version)
            .bind(if skip {
                format!("{description} (kept the existing table)")
            } else {
                (*description).to_owned()
            })
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Inserts `jobs` on any PostgreSQL connection, in one statement with one array bind per column.
pub(crate) async fn insert_jobs<'c, E>(executor: E, jobs: Vec<NewJob>) -> Result<Vec<Job>>
where
    E: sqlx::PgExecutor<'c>,
{
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let len = jobs.len();
    let mut queues = Vec::with_capacity(len);
    let mut workers = Vec::with_capacity(len);
    let mut args = Vec::with_capacity(len);
    let mut metas = Vec::with_capacity(len);
    let mut tags = Vec::with_capacity(len);
    let mut priorities = Vec::with_capacity(len);
    let mut max_attempts = Vec::with_capacity(len);
    let mut scheduled = Vec::with_capacity(len);
    for job in jobs {
        job.validate()?;
        queues.push(job.queue);
        workers.push(job.worker);
        args.push(job.args);
        metas.push(job.meta);
        tags.push(Value::from(job.tags));
        priorities.push(job.priority);
        max_attempts.push(job.max_attempts);
        scheduled.push(job.scheduled_at.map(|at| at.naive_utc()));
    }
    let sql = format!(
        "WITH input AS (
           SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[], $5::jsonb[],
                                $6::int4[], $7::int4[], $8::timestamp[])
             WITH ORDINALITY AS t(queue, worker, args, meta, tags, priority, max_attempts, scheduled_at, ord)
         ), inserted AS (
           INSERT INTO oban_jobs AS j (state, queue, worker, args, meta, tags, priority, max_attempts, scheduled_at)
           SELECT CASE WHEN t.scheduled_at > timezone('UTC', now()) THEN 'scheduled' ELSE 'available' END::oban_job_state,
                  t.queue, t.worker, t.args, t.meta,
                  ARRAY(SELECT jsonb_array_elements_text(t.tags)),
                  t.priority, t.max_attempts, coalesce(t.scheduled_at, timezone('UTC', now()))
           FROM input t ORDER BY t.ord
           RETURNING {JOB_COLUMNS}
         )
         SELECT * FROM inserted j ORDER BY j.id"
    );
    let rows = sqlx::query(&sql)
        .bind(queues)
        .bind(workers)
        .bind(args)
        .bind(metas)
        .bind(tags)
        .bind(priorities)
        .bind(max_attempts)
        .bind(scheduled)
        .fetch_all(executor)
        .await?;
    rows.iter().map(job_from_row).collect()
}

#[async_trait]
impl Engine for PostgresEngine {
    async fn schema_migrate(&self) -> Result<()> {
        migrate(&self.pool).await
    }

    async fn job_insert_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        insert_jobs(&self.pool, jobs).await
    }

    async fn job_fetch_available(
        &self,
        queue: &str,
        demand: u32,
        attempted_by: &[String],
    ) -> Result<Vec<Job>> {
        const SQL: &str = "WITH locked AS (
               SELECT id FROM oban_jobs
               WHERE state = 'available' AND queue = $1
               ORDER BY priority, scheduled_at, id
               LIMIT $2
               FOR UPDATE SKIP LOCKED
             )
             UPDATE oban_jobs j
             SET state = 'executing', attempt = j.attempt + 1,
                 attempted_at = timezone('UTC', now()), attempted_by = $3
             FROM locked WHERE j.id = locked.id
             RETURNING ";
        let sql = format!("{SQL}{JOB_COLUMNS}");
        let rows = sqlx::query(&sql)
            .bind(queue)
            .bind(i64::from(demand))
            .bind(attempted_by)
            .fetch_all(&self.pool)
            .await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|job| (job.priority, job.scheduled_at, job.id));
        Ok(jobs)
    }

    async fn job_ack_many(&self, acks: &[Ack]) -> Result<Vec<i64>> {
        if acks.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = acks.iter().map(|a| a.id).collect();
        let attempted: Vec<NaiveDateTime> = acks.iter().map(|a| a.attempted_at).collect();
        let states: Vec<&str> = acks.iter().map(|a| a.state.as_str()).collect();
        let delays: Vec<Option<i64>> = acks
            .iter()
            .map(|a| {
                a.schedule_in
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            })
            .collect();
        let give_back: Vec<i32> = acks
            .iter()
            .map(|a| i32::from(a.give_back_attempt))
            .collect();
        let errors: Vec<Option<Value>> = acks.iter().map(|a| a.error.clone()).collect();
        let metas: Vec<Option<Value>> = acks.iter().map(|a| a.meta.clone()).collect();
        let ids = sqlx::query_scalar(
            "UPDATE oban_jobs j SET
               state = a.state::oban_job_state,
               completed_at = CASE WHEN a.state = 'completed' THEN timezone('UTC', now()) ELSE j.completed_at END,
               discarded_at = CASE WHEN a.state = 'discarded' THEN timezone('UTC', now()) ELSE j.discarded_at END,
               cancelled_at = CASE WHEN a.state = 'cancelled' THEN timezone('UTC', now()) ELSE j.cancelled_at END,
               scheduled_at = CASE WHEN a.delay_ms IS NULL THEN j.scheduled_at
                                   ELSE timezone('UTC', now()) + a.delay_ms * interval '1 millisecond' END,
               attempt = greatest(j.attempt - a.give_back, 0),
               errors = CASE WHEN a.error IS NULL THEN j.errors ELSE j.errors || a.error END,
               meta = CASE WHEN a.meta IS NULL THEN j.meta ELSE coalesce(j.meta, '{}'::jsonb) || a.meta END
             FROM unnest($1::int8[], $2::timestamp[], $3::text[], $4::int8[], $5::int4[], $6::jsonb[], $7::jsonb[])
               AS a(id, attempted_at, state, delay_ms, give_back, error, meta)
             WHERE j.id = a.id AND j.state = 'executing' AND j.attempted_at = a.attempted_at
             RETURNING j.id",
        )
        .bind(ids)
        .bind(attempted)
        .bind(states)
        .bind(delays)
        .bind(give_back)
        .bind(errors)
        .bind(metas)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    async fn job_stage_due(&self, limit: u32) -> Result<Vec<String>> {
        let queues = sqlx::query_scalar(
            "WITH due AS (
               SELECT id FROM oban_jobs
               WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= timezone('UTC', now())
               ORDER BY scheduled_at, id
               LIMIT $1
               FOR UPDATE SKIP LOCKED
             ), staged AS (
               UPDATE oban_jobs j SET state = 'available' FROM due WHERE j.id = due.id RETURNING j.queue
             )
             SELECT DISTINCT queue FROM staged",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(queues)
    }

    async fn job_rescue_orphaned(
        &self,
        stale_after: Duration,
        unknown_after: Duration,
    ) -> Result<u64> {
        let result = sqlx::query(
            "WITH orphans AS (
               SELECT j.id FROM oban_jobs j
               LEFT JOIN oban_producers p ON p.uuid::text = j.attempted_by[2]
               WHERE j.state = 'executing'
                 AND ((p.uuid IS NOT NULL AND p.updated_at < timezone('UTC', now()) - $1 * interval '1 millisecond')
                   OR (p.uuid IS NULL AND j.attempted_at < timezone('UTC', now()) - $2 * interval '1 millisecond'))
               FOR UPDATE OF j SKIP LOCKED
             )
             UPDATE oban_jobs j SET
               state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END::oban_job_state,
               discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN timezone('UTC', now()) ELSE j.discarded_at END,
               meta = coalesce(j.meta, '{}'::jsonb) || jsonb_build_object(
                 'rescued', coalesce((j.meta->>'rescued')::int, 0) + 1,
                 'rescued_from', to_jsonb(j.attempted_by))
             FROM orphans WHERE j.id = orphans.id",
        )
        .bind(millis(stale_after))
        .bind(millis(unknown_after))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn job_get(&self, id: i64) -> Result<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM oban_jobs j WHERE j.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn job_retry(&self, id: i64) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE oban_jobs SET state = 'available', scheduled_at = timezone('UTC', now()),
               max_attempts = greatest(max_attempts, attempt + 1),
               completed_at = NULL, discarded_at = NULL, cancelled_at = NULL
             WHERE id = $1 AND state <> 'executing'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn job_cancel(&self, id: i64) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE oban_jobs SET state = 'cancelled', cancelled_at = timezone('UTC', now())
             WHERE id = $1 AND state NOT IN ('executing', 'completed', 'discarded', 'cancelled')",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn producer_heartbeat(
        &self,
        uuid: uuid::Uuid,
        node: &str,
        queue: &str,
        meta: Value,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO oban_producers (uuid, node, queue, meta) VALUES ($1, $2, $3, $4)
             ON CONFLICT (uuid) DO UPDATE SET meta = excluded.meta, updated_at = timezone('UTC', now())",
        )
        .bind(uuid)
        .bind(node)
        .bind(queue)
        .bind(meta)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn producer_delete(&self, uuid: uuid::Uuid) -> Result<()> {
        sqlx::query("DELETE FROM oban_producers WHERE uuid = $1")
            .bind(uuid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn utc(at: NaiveDateTime) -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&at)
}

fn job_from_row(row: &PgRow) -> Result<Job> {
    let state: String = row.try_get("state")?;
    let state = state
        .parse::<JobState>()
        .map_err(|e| Error::InvalidJob(e.to_string()))?;
    let tags: Value = row.try_get("tags")?;
    let errors: Value = row.try_get("errors")?;
    Ok(Job {
        id: row.try_get("id")?,
        state,
        queue: row.try_get("queue")?,
        worker: row.try_get("worker")?,
        args: row.try_get("args")?,
        meta: row.try_get("meta")?,
        tags: match tags {
            Value::Array(items) => items
                .into_iter()
                .map(|t| match t {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
            _ => Vec::new(),
        },
        errors: match errors {
            Value::Array(items) => items.into_iter().map(attempt_error).collect(),
            _ => Vec::new(),
        },
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        priority: row.try_get("priority")?,
        attempted_by: row.try_get("attempted_by")?,
        inserted_at: utc(row.try_get("inserted_at")?),
        scheduled_at: utc(row.try_get("scheduled_at")?),
        attempted_at: row
            .try_get::<Option<NaiveDateTime>, _>("attempted_at")?
            .map(utc),
        completed_at: row
            .try_get::<Option<NaiveDateTime>, _>("completed_at")?
            .map(utc),
        discarded_at: row
            .try_get::<Option<NaiveDateTime>, _>("discarded_at")?
            .map(utc),
        cancelled_at: row
            .try_get::<Option<NaiveDateTime>, _>("cancelled_at")?
            .map(utc),
    })
}

/// Reads an `errors` entry leniently: other Oban implementations may add keys or omit some.
fn attempt_error(value: Value) -> AttemptError {
    let attempt = value.get("attempt").and_then(Value::as_i64).unwrap_or(0);
    AttemptError {
        attempt: i32::try_from(attempt).unwrap_or(0),
        at: value
            .get("at")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        error: match value.get("error") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => value.to_string(),
        },
    }
}
