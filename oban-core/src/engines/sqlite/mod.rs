//! The SQLite engine (Oban's "Lite" engine): Oban on a single file, with no database server.
//!
//! Made for a zero-setup start and for small single-node deployments; everything the runtime does
//! on PostgreSQL works here too, behind the same [`Engine`] trait and proven by the same
//! conformance suite (`tests/conformance.rs`). `Oban::builder()` with no database and no
//! `DATABASE_URL` uses it on the file `oban.db` in the working directory, and says so at start
//! (a `tracing` info event and a line on stderr with the absolute path);
//! `DATABASE_URL=sqlite://path` or `.database("sqlite://path")` choose a file (created when
//! missing), `.sqlite_pool(pool)` an existing pool, `sqlite::memory:` a database that lives as
//! long as the pool (one connection).
//!
//! # How it works
//!
//! - **Schema**: `migrations/sqlite/*.sql`, the same tables and columns as PostgreSQL's
//!   (`oban_jobs`, `oban_peers`, `oban_producers`, `oban_rust_migrations`), with JSON in TEXT
//!   columns and UTC timestamps as sortable text (`YYYY-MM-DD HH:MM:SS.ffffff`).
//! - **One writer**: SQLite lets one connection write at a time. Every write of the engine takes a
//!   lock shared by all pools on the same file in this process, so writers queue in order instead
//!   of spinning in SQLite's busy handler, and transactions that read before they write begin with
//!   `BEGIN IMMEDIATE`. Connections opened by [`connect`] use WAL (readers never block the
//!   writer) and a 5 s busy timeout, so other processes writing the same file wait their turn
//!   instead of failing with "database is locked".
//! - **Fetch** is one `UPDATE .. WHERE id IN (SELECT .. ORDER BY priority, scheduled_at, id LIMIT
//!   n) RETURNING ..`: the statement holds the write lock, so no job is handed to two queues.
//!   **Acks** of a batch are one `UPDATE .. FROM json_each(..)` guarded by `state = 'executing'
//!   AND attempted_at = <the fetched attempt>`. **Inserts** are one `INSERT .. SELECT FROM
//!   json_each(..)`, whatever the batch size.
//! - **Durability**: [`connect`] sets `synchronous = NORMAL`, SQLite's advice for WAL: a crash of
//!   the process loses nothing, a power cut may lose the last transactions before a checkpoint.
//!   Open the pool yourself with `synchronous(Full)` if that matters more than write speed.
//! - **Uniqueness** has the PostgreSQL engine's semantics and guarantees (see [`crate::unique`]):
//!   the key in `uniq_key` under a partial unique index, released when a job leaves its unique
//!   states or its period, conflicts returning the existing job.
//! - **Clock**: the process clock, with microseconds (SQLite's own clock has milliseconds). All
//!   processes sharing a file run on one machine, so they share that clock.
//!
//! # What degrades
//!
//! - **Notifications** stay in the process: [`Engine::notify`] reaches the listeners of every
//!   engine on the same file in this process (an in-process broadcast stands in for
//!   LISTEN/NOTIFY). Another process on the same file is not told of inserts or signals: its
//!   queues find jobs by polling (`poll_interval`), and queue control (pause, scale, cancel of a
//!   running job) reaches only the nodes of the process that sent it.
//! - **One node** is the expected deployment. Several nodes in one process, or several processes
//!   on one local file, work (leadership is the same `oban_peers` row algorithm), but they all
//!   share one writer. The file must be on a local disk: WAL does not work over network file
//!   systems, so nodes on several machines need PostgreSQL.
//! - **Filters**: `args`/`meta` containment ([`crate::JobFilter::args_contain`]) follows
//!   PostgreSQL's `jsonb @>` exactly, but is evaluated in Rust over the jobs the other conditions
//!   select, so give it a queue, worker, state or ids to keep bulk operations cheap on big tables.
//! - **Meta merges** (a snooze's `snoozed`, the lifeline's `rescued`) use SQLite's `json_patch`:
//!   equal to PostgreSQL's `||` for the flat keys the runtime writes.
//! - **Reindexing** is `PRAGMA optimize` plus a passive WAL checkpoint: SQLite's B-trees do not
//!   bloat the way PostgreSQL's indexes do, and `REINDEX` would block every writer.
//! - **Transactions of your own** (`insert(&mut *tx)`): begin them with
//!   `pool.begin_with("BEGIN IMMEDIATE")` when they read before they write, as SQLite advises for
//!   any writing transaction; jobs inserted in them are found by polling after your commit.

mod hub;
mod insert;
pub(crate) mod row;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Executor, Row, SqliteConnection};
use tokio::sync::{broadcast, mpsc};

use crate::engine::{Ack, Engine, FetchCursor, ProducerInfo, StopSignal};
use crate::error::{Error, Result};
use crate::filter::JobFilter;
use crate::job::{Job, JobState};
use crate::new_job::NewJob;
use crate::notifier::{Channel, Notice};

use hub::Hub;
use insert::keep_uniq_key;
use row::{job_from_row, json_contains, minus, now, parse_ts, plus, ts, utc, JOB_COLUMNS};

/// The file `Oban::builder()` uses when no database is configured.
pub const DEFAULT_PATH: &str = "oban.db";

/// How long a connection waits for another process's write lock before "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "install oban_jobs",
        include_str!("../../../../migrations/sqlite/001_install_oban_jobs.sql"),
    ),
    (
        2,
        "runtime tables",
        include_str!("../../../../migrations/sqlite/002_runtime_tables.sql"),
    ),
];

/// Connection options for the database at `url`: `sqlite://path/to/file.db`, `sqlite:file.db`,
/// `sqlite:///absolute/path.db`, or `sqlite::memory:`; the file is created when missing. WAL,
/// a 5 s busy timeout and `synchronous = NORMAL` (durable at every checkpoint, safe with WAL).
pub fn connect_options(url: &str) -> Result<SqliteConnectOptions> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("`{url}` is not a SQLite URL: {e}")))?;
    Ok(tune(options))
}

/// [`connect_options`] for a file path.
pub fn file_options(path: impl AsRef<Path>) -> SqliteConnectOptions {
    tune(SqliteConnectOptions::new().filename(path))
}

fn tune(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(false)
}

/// A pool of at most `size` connections with `options` (one, for an in-memory database, whose
/// connections would otherwise lock each other out).
pub async fn connect_with(options: SqliteConnectOptions, size: u32) -> Result<SqlitePool> {
    let in_memory = options
        .get_filename()
        .to_string_lossy()
        .contains("in-memory")
        || options.get_filename() == Path::new(":memory:");
    let size = if in_memory { 1 } else { size.max(2) };
    Ok(SqlitePoolOptions::new()
        .max_connections(size)
        .min_connections(if in_memory { 1 } else { 0 })
        .idle_timeout(if in_memory {
            None
        } else {
            Some(Duration::from_secs(600))
        })
        .max_lifetime(if in_memory {
            None
        } else {
            Some(Duration::from_secs(1800))
        })
        .connect_with(options)
        .await?)
}

/// [`connect_with`] on a URL (see [`connect_options`]).
pub async fn connect(url: &str, size: u32) -> Result<SqlitePool> {
    connect_with(connect_options(url)?, size).await
}

/// The SQLite engine over a connection pool (best opened with [`connect`]).
#[derive(Debug, Clone)]
pub struct SqliteEngine {
    pool: SqlitePool,
    hub: Arc<Hub>,
}

impl SqliteEngine {
    /// An engine using `pool`.
    pub fn new(pool: SqlitePool) -> Self {
        let hub = Hub::for_pool(&pool);
        Self { pool, hub }
    }

    /// The pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction under the process's write lock.
    async fn write_tx<T>(
        &self,
        f: impl for<'c> FnOnce(
            &'c mut SqliteConnection,
        ) -> futures_util::future::BoxFuture<'c, Result<T>>,
    ) -> Result<T> {
        let _write = self.hub.write.lock().await;
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let value = f(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }
}

/// Applies the schema (see [`crate::migrate`]): idempotent, and serialised between processes by
/// SQLite's write lock (`BEGIN IMMEDIATE`).
pub(crate) async fn migrate(pool: &SqlitePool) -> Result<()> {
    let hub = Hub::for_pool(pool);
    let _write = hub.write.lock().await;
    let mut conn = pool.acquire().await?;
    // Persistent in the file; a no-op once set (and for in-memory databases).
    if let Err(error) = (&mut *conn).execute("PRAGMA journal_mode = WAL").await {
        tracing::warn!(%error, "could not switch the SQLite database to WAL mode");
    }
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    (&mut *tx)
        .execute(
            "CREATE TABLE IF NOT EXISTS oban_rust_migrations (
               version INTEGER PRIMARY KEY,
               description TEXT NOT NULL,
               installed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')))",
        )
        .await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM oban_rust_migrations")
        .fetch_all(&mut *tx)
        .await?;
    for (version, description, sql) in MIGRATIONS {
        if applied.contains(&i64::from(*version)) {
            continue;
        }
        (&mut *tx)
            .execute(*sql)
            .await
            .map_err(|e| Error::Migration(format!("step {version} ({description}): {e}")))?;
        sqlx::query("INSERT INTO oban_rust_migrations (version, description) VALUES (?1, ?2)")
            .bind(version)
            .bind(*description)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Inserts into the database behind `pool` (what `insert(&pool)` does): under the process's write
/// lock, and wakes this process's queues that received runnable jobs.
pub(crate) async fn insert_into_pool(pool: &SqlitePool, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
    let hub = Hub::for_pool(pool);
    let inserted = {
        let _write = hub.write.lock().await;
        let mut conn = pool.acquire().await?;
        insert::insert_jobs(&mut conn, jobs).await?
    };
    notify_inserted(&hub, &inserted);
    Ok(inserted)
}

/// Inserts on a connection the caller controls (its own transaction): no lock, no notification
/// (queues find the jobs by polling once the caller commits).
pub(crate) async fn insert_jobs(
    conn: &mut SqliteConnection,
    jobs: Vec<NewJob>,
) -> Result<Vec<Job>> {
    insert::insert_jobs(conn, jobs).await
}

/// One insert notification per queue that received runnable jobs.
fn notify_inserted(hub: &Hub, jobs: &[Job]) {
    let mut queues: Vec<&str> = Vec::new();
    for job in jobs {
        if job.state == JobState::Available
            && !job.conflict
            && !queues.contains(&job.queue.as_str())
        {
            queues.push(&job.queue);
        }
    }
    for queue in queues {
        hub.notify(Channel::Insert, json!({ "queue": queue }).to_string());
    }
}

/// The conditions of a [`JobFilter`] but args/meta containment, over binds `?1`..`?5` (see
/// [`bind_filter`]).
const FILTER_SQL: &str = "(?1 IS NULL OR id IN (SELECT value FROM json_each(?1)))
     AND (?2 IS NULL OR queue IN (SELECT value FROM json_each(?2)))
     AND (?3 IS NULL OR worker IN (SELECT value FROM json_each(?3)))
     AND (?4 IS NULL OR state IN (SELECT value FROM json_each(?4)))
     AND (?5 IS NULL OR NOT EXISTS (
       SELECT 1 FROM json_each(?5) AS want
       WHERE want.value NOT IN (SELECT have.value FROM json_each(oban_jobs.tags) AS have)))";

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds `?1`..`?5` of [`FILTER_SQL`].
fn bind_filter<'q>(query: SqliteQuery<'q>, filter: &JobFilter) -> SqliteQuery<'q> {
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
}

/// The ids and states of jobs matching `filter` whose state satisfies `states_sql`.
async fn select_filtered(
    conn: &mut SqliteConnection,
    filter: &JobFilter,
    states_sql: &str,
) -> Result<Vec<(i64, JobState)>> {
    let args = if filter.args.is_some() {
        "args"
    } else {
        "NULL"
    };
    let meta = if filter.meta.is_some() {
        "meta"
    } else {
        "NULL"
    };
    let sql = format!(
        "SELECT id, state, {args} AS args, {meta} AS meta FROM oban_jobs
         WHERE {FILTER_SQL} AND {states_sql} ORDER BY id"
    );
    let rows = bind_filter(sqlx::query(&sql), filter)
        .fetch_all(&mut *conn)
        .await?;
    let mut matched = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(wanted) = &filter.args {
            if !json_contains(&row::json_col(row, "args", Value::Null)?, wanted) {
                continue;
            }
        }
        if let Some(wanted) = &filter.meta {
            if !json_contains(&row::json_col(row, "meta", Value::Null)?, wanted) {
                continue;
            }
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

#[async_trait]
impl Engine for SqliteEngine {
    async fn schema_migrate(&self) -> Result<()> {
        migrate(&self.pool).await
    }

    async fn job_insert_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        let inserted = {
            let _write = self.hub.write.lock().await;
            let mut conn = self.pool.acquire().await?;
            insert::insert_jobs(&mut conn, jobs).await?
        };
        notify_inserted(&self.hub, &inserted);
        Ok(inserted)
    }

    async fn job_fetch_available(
        &self,
        queue: &str,
        demand: u32,
        attempted_by: &[String],
        // One writer at a time and a small table: SQLite's scans from the head stay cheap.
        _after: Option<FetchCursor>,
    ) -> Result<Vec<Job>> {
        if demand == 0 {
            return Ok(Vec::new());
        }
        let sql = format!(
            concat!(
                "UPDATE oban_jobs AS j
                 SET state = 'executing', attempt = j.attempt + 1, attempted_at = ?3, attempted_by = ?4, ",
                keep_uniq_key!("'executing'"),
                " WHERE j.id IN (
                   SELECT id FROM oban_jobs
                   WHERE state = 'available' AND queue = ?1
                   ORDER BY priority, scheduled_at, id
                   LIMIT ?2)
                 RETURNING {}"
            ),
            JOB_COLUMNS
        );
        let write = self.hub.write.lock().await;
        let rows = sqlx::query(&sql)
            .bind(queue)
            .bind(i64::from(demand))
            .bind(ts(now()))
            .bind(Value::from(attempted_by).to_string())
            .fetch_all(&self.pool)
            .await?;
        drop(write);
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|job| (job.priority, job.scheduled_at, job.id));
        Ok(jobs)
    }

    async fn job_ack_many(&self, acks: &[Ack]) -> Result<Vec<i64>> {
        if acks.is_empty() {
            return Ok(Vec::new());
        }
        let _write = self.hub.write.lock().await;
        let now = now();
        let rows: Vec<Value> = acks
            .iter()
            .map(|a| {
                let mut row = json!({
                    "id": a.id,
                    "attempted_at": ts(a.attempted_at),
                    "state": a.state.as_str(),
                    "give_back": i32::from(a.give_back_attempt),
                });
                if let Some(delay) = a.schedule_in {
                    row["scheduled_at"] = Value::from(ts(plus(now, delay)));
                }
                if let Some(error) = &a.error {
                    row["error"] = error.clone();
                }
                if let Some(meta) = &a.meta {
                    row["meta"] = meta.clone();
                }
                row
            })
            .collect();
        let ids = sqlx::query_scalar(concat!(
            "UPDATE oban_jobs AS j SET
               state = a.value->>'state', ",
            keep_uniq_key!("a.value->>'state'"),
            ",
               completed_at = CASE WHEN a.value->>'state' = 'completed' THEN ?2 ELSE j.completed_at END,
               discarded_at = CASE WHEN a.value->>'state' = 'discarded' THEN ?2 ELSE j.discarded_at END,
               cancelled_at = CASE WHEN a.value->>'state' = 'cancelled' THEN ?2 ELSE j.cancelled_at END,
               scheduled_at = coalesce(a.value->>'scheduled_at', j.scheduled_at),
               attempt = max(j.attempt - (a.value->>'give_back'), 0),
               errors = CASE WHEN a.value->'error' IS NULL THEN j.errors
                             ELSE json_insert(j.errors, '$[#]', json(a.value->'error')) END,
               meta = CASE WHEN a.value->'meta' IS NULL THEN j.meta
                           ELSE json_patch(j.meta, a.value->'meta') END
             FROM json_each(?1) AS a
             -- `+` keeps the planner on the primary key (one lookup per ack) rather than
             -- scanning every executing job for each ack.
             WHERE j.id = a.value->>'id' AND +j.state = 'executing'
               AND j.attempted_at = a.value->>'attempted_at'
             RETURNING id"
        ))
        .bind(Value::Array(rows).to_string())
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    async fn job_stage_due(&self, limit: u32) -> Result<Vec<String>> {
        let _write = self.hub.write.lock().await;
        let staged: Vec<String> = sqlx::query_scalar(concat!(
            "UPDATE oban_jobs AS j SET state = 'available', ",
            keep_uniq_key!("'available'"),
            " WHERE j.id IN (
                SELECT id FROM oban_jobs INDEXED BY oban_jobs_staging_idx
                WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= ?1
                ORDER BY scheduled_at, id
                LIMIT ?2)
              RETURNING queue"
        ))
        .bind(ts(now()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut queues: Vec<String> = Vec::new();
        for queue in staged {
            if !queues.contains(&queue) {
                queues.push(queue);
            }
        }
        Ok(queues)
    }

    async fn job_rescue_orphaned(
        &self,
        stale_after: Duration,
        unknown_after: Duration,
    ) -> Result<u64> {
        let _write = self.hub.write.lock().await;
        let now = now();
        let result = sqlx::query(concat!(
            "UPDATE oban_jobs AS j SET
               state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END, ",
            keep_uniq_key!("CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END"),
            ",
               discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN ?1 ELSE j.discarded_at END,
               meta = json_set(j.meta,
                 '$.rescued', coalesce(j.meta->>'rescued', 0) + 1,
                 '$.rescued_from', json(coalesce(j.attempted_by, 'null')))
             WHERE j.state = 'executing' AND j.id IN (
               SELECT o.id FROM oban_jobs AS o
               LEFT JOIN oban_producers AS p ON p.uuid = o.attempted_by->>1
               WHERE o.state = 'executing'
                 AND ((p.uuid IS NOT NULL AND p.updated_at < ?2)
                   OR (p.uuid IS NULL AND o.attempted_at < ?3)))"
        ))
        .bind(ts(now))
        .bind(ts(minus(now, stale_after)))
        .bind(ts(minus(now, unknown_after)))
        .execute(&self.pool)
        .await?;
        // Producers silent for three times the threshold, with nothing left to rescue, are gone.
        sqlx::query(
            "DELETE FROM oban_producers
             WHERE updated_at < ?1
               AND NOT EXISTS (SELECT 1 FROM oban_jobs AS j
                               WHERE j.state = 'executing' AND j.attempted_by->>1 = oban_producers.uuid)",
        )
        .bind(ts(minus(now, stale_after.saturating_mul(3))))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn job_get(&self, id: i64) -> Result<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM oban_jobs WHERE id = ?1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn job_list(&self, filter: &JobFilter, limit: u32) -> Result<Vec<Job>> {
        // SQL conditions first, in pages of ids; args/meta containment is then checked in Rust.
        let page = if filter.args.is_some() || filter.meta.is_some() {
            1_000
        } else {
            i64::from(limit)
        };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM oban_jobs
             WHERE {FILTER_SQL} AND id > ?6 ORDER BY id LIMIT ?7"
        );
        let mut jobs = Vec::new();
        let mut after = 0_i64;
        while jobs.len() < limit as usize {
            let rows = bind_filter(sqlx::query(&sql), filter)
                .bind(after)
                .bind(page)
                .fetch_all(&self.pool)
                .await?;
            let fetched = rows.len();
            for row in &rows {
                let job = job_from_row(row)?;
                after = job.id;
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

    async fn job_retry_many(&self, filter: &JobFilter) -> Result<u64> {
        let filter = filter.clone();
        self.write_tx(move |conn| {
            Box::pin(async move {
                let jobs =
                    select_filtered(conn, &filter, "state NOT IN ('executing', 'available')")
                        .await?;
                if jobs.is_empty() {
                    return Ok(0);
                }
                let result = sqlx::query(concat!(
                    "UPDATE oban_jobs AS j SET state = 'available', scheduled_at = ?2,
                       max_attempts = max(j.max_attempts, j.attempt + 1),
                       completed_at = NULL, discarded_at = NULL, cancelled_at = NULL, ",
                    keep_uniq_key!("'available'"),
                    " WHERE j.id IN (SELECT value FROM json_each(?1))"
                ))
                .bind(ids_json(&jobs))
                .bind(ts(now()))
                .execute(&mut *conn)
                .await?;
                Ok(result.rows_affected())
            })
        })
        .await
    }

    async fn job_cancel_many(&self, filter: &JobFilter) -> Result<(u64, Vec<i64>)> {
        let filter = filter.clone();
        self.write_tx(move |conn| {
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
                    " WHERE j.id IN (SELECT value FROM json_each(?1))"
                ))
                .bind(ids_json(&jobs))
                .bind(ts(now()))
                .execute(&mut *conn)
                .await?;
                let executing = jobs
                    .iter()
                    .filter(|(_, state)| *state == JobState::Executing)
                    .map(|(id, _)| *id)
                    .collect();
                Ok((result.rows_affected(), executing))
            })
        })
        .await
    }

    async fn job_delete_many(&self, filter: &JobFilter) -> Result<u64> {
        let filter = filter.clone();
        self.write_tx(move |conn| {
            Box::pin(async move {
                let jobs = select_filtered(conn, &filter, "state <> 'executing'").await?;
                if jobs.is_empty() {
                    return Ok(0);
                }
                let result = sqlx::query(
                    "DELETE FROM oban_jobs WHERE id IN (SELECT value FROM json_each(?1))",
                )
                .bind(ids_json(&jobs))
                .execute(&mut *conn)
                .await?;
                Ok(result.rows_affected())
            })
        })
        .await
    }

    async fn job_prune(&self, max_age: Duration, limit: u32) -> Result<u64> {
        let _write = self.hub.write.lock().await;
        let result = sqlx::query(
            "WITH doomed AS (
               SELECT id FROM (SELECT id FROM oban_jobs INDEXED BY oban_jobs_completed_at_idx WHERE state = 'completed' AND completed_at < ?1 LIMIT ?2)
               UNION ALL
               SELECT id FROM (SELECT id FROM oban_jobs INDEXED BY oban_jobs_cancelled_at_idx WHERE state = 'cancelled' AND cancelled_at < ?1 LIMIT ?2)
               UNION ALL
               SELECT id FROM (SELECT id FROM oban_jobs INDEXED BY oban_jobs_discarded_at_idx WHERE state = 'discarded' AND discarded_at < ?1 LIMIT ?2)
             )
             DELETE FROM oban_jobs WHERE id IN (SELECT id FROM doomed ORDER BY id LIMIT ?2)",
        )
        .bind(ts(minus(now(), max_age)))
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn schema_reindex(&self) -> Result<()> {
        // SQLite's B-trees do not bloat like PostgreSQL's indexes, and REINDEX would block every
        // writer: refresh the planner's statistics and fold the WAL back into the file instead.
        // `optimize` may run ANALYZE, which writes. (The lock comes before the connection, as
        // everywhere: a one-connection pool must not deadlock.)
        let _write = self.hub.write.lock().await;
        let mut conn = self.pool.acquire().await?;
        (&mut *conn).execute("PRAGMA optimize").await?;
        let (busy, log, checkpointed): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut *conn)
                .await?;
        tracing::info!(
            busy,
            log,
            checkpointed,
            "SQLite maintenance: PRAGMA optimize and a WAL checkpoint (no REINDEX needed)"
        );
        Ok(())
    }

    async fn notify(&self, channel: Channel, payload: Value) -> Result<()> {
        self.hub.notify(channel, payload.to_string());
        Ok(())
    }

    async fn listen(
        &self,
        sink: mpsc::UnboundedSender<Notice>,
        mut stop: StopSignal,
    ) -> Result<bool> {
        let mut notices = self.hub.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    received = notices.recv() => match received {
                        Ok((channel, payload)) => {
                            if let Some(notice) = Notice::decode(channel, &payload) {
                                if sink.send(notice).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::debug!(missed, "fell behind on notifications; waking every queue");
                            if sink.send(Notice::Reconnected).is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        Ok(true)
    }

    async fn leader_elect(&self, name: &str, node: &str, ttl: Duration) -> Result<bool> {
        let (name, node) = (name.to_owned(), node.to_owned());
        let leader: Option<String> = self
            .write_tx(move |conn| {
                Box::pin(async move {
                    let now = now();
                    sqlx::query("DELETE FROM oban_peers WHERE name = ?1 AND expires_at < ?2")
                        .bind(&name)
                        .bind(ts(now))
                        .execute(&mut *conn)
                        .await?;
                    let leader: Option<String> = sqlx::query_scalar(
                        "INSERT INTO oban_peers (name, node, started_at, expires_at)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at
                           WHERE oban_peers.node = excluded.node
                         RETURNING node",
                    )
                    .bind(&name)
                    .bind(&node)
                    .bind(ts(now))
                    .bind(ts(plus(now, ttl)))
                    .fetch_optional(&mut *conn)
                    .await?;
                    Ok(leader.filter(|leader| *leader == node))
                })
            })
            .await?;
        Ok(leader.is_some())
    }

    async fn leader_resign(&self, name: &str, node: &str) -> Result<()> {
        let _write = self.hub.write.lock().await;
        sqlx::query("DELETE FROM oban_peers WHERE name = ?1 AND node = ?2")
            .bind(name)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn producer_list(&self, queue: Option<&str>) -> Result<Vec<ProducerInfo>> {
        let rows = sqlx::query(
            "SELECT uuid, node, queue, meta, started_at, updated_at FROM oban_producers
             WHERE ?1 IS NULL OR queue = ?1 ORDER BY queue, node, started_at",
        )
        .bind(queue)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(producer_from_row).collect()
    }

    async fn producer_heartbeat(
        &self,
        uuid: uuid::Uuid,
        node: &str,
        queue: &str,
        meta: Value,
    ) -> Result<()> {
        let _write = self.hub.write.lock().await;
        sqlx::query(
            "INSERT INTO oban_producers (uuid, node, queue, meta, started_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (uuid) DO UPDATE SET meta = excluded.meta, updated_at = excluded.updated_at",
        )
        .bind(uuid.to_string())
        .bind(node)
        .bind(queue)
        .bind(meta.to_string())
        .bind(ts(now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn producer_delete(&self, uuid: uuid::Uuid) -> Result<()> {
        let _write = self.hub.write.lock().await;
        sqlx::query("DELETE FROM oban_producers WHERE uuid = ?1")
            .bind(uuid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn producer_from_row(row: &SqliteRow) -> Result<ProducerInfo> {
    let uuid: String = row.try_get("uuid")?;
    let started_at: String = row.try_get("started_at")?;
    let updated_at: String = row.try_get("updated_at")?;
    Ok(ProducerInfo {
        uuid: uuid
            .parse()
            .map_err(|e| Error::InvalidJob(format!("producer uuid `{uuid}`: {e}")))?,
        node: row.try_get("node")?,
        queue: row.try_get("queue")?,
        meta: row::json_col(row, "meta", Value::Object(Default::default()))?,
        started_at: utc(parse_ts(&started_at)?),
        updated_at: utc(parse_ts(&updated_at)?),
    })
}
