//! The SQLite engine (Oban's "Lite" engine): Oban on a single file, with no database server.
//!
//! Made for a zero-setup start and for small single-node deployments; everything the runtime does
//! on PostgreSQL works here too, behind the same [`Engine`] trait and proven by the same
//! conformance suite (`tests/conformance/`). `Oban::builder()` with no database and no
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
//! - **Notifications** stay in the process: [`Notifier::notify`](crate::engine::Notifier::notify) reaches the listeners of every
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
//! - **One instance per file**: a schema [`Prefix`] other than the default `public` is refused
//!   (by `start()` and by [`crate::migrate_prefix`]): SQLite has no schemas to keep instances
//!   apart, so give each instance its own database file instead.

mod ack;
mod depth;
mod fetch;
mod hub;
mod insert;
mod limits;
mod maintenance;
mod notify;
mod peer;
mod query;
mod report;
mod row;
mod schema;
mod sequence;
mod workflow;
mod workflow_query;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, SqliteConnection};

use crate::engine::{
    Ack, CronSeen, Engine, FailureCount, FetchCursor, LimitsUsage, ProducerInfo, QueueDepths,
    SchemaVersions, WorkflowTally,
};
use crate::error::{Error, Result};
use crate::filter::JobFilter;
use crate::job::Job;
use crate::limits::Limits;
use crate::new_job::NewJob;
use crate::prefix::Prefix;

use hub::Hub;

/// The file `Oban::builder()` uses when no database is configured.
pub const DEFAULT_PATH: &str = "oban.db";

/// How long a connection waits for another process's write lock before "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection options for the database at `url`: `sqlite://path/to/file.db`, `sqlite:file.db`,
/// `sqlite:///absolute/path.db`, or `sqlite::memory:`; the file is created when missing. WAL,
/// a 5 s busy timeout and `synchronous = NORMAL` (durable at every checkpoint, safe with WAL).
pub fn connect_options(url: &str) -> Result<SqliteConnectOptions> {
    let options = SqliteConnectOptions::from_str(url).map_err(|e| {
        Error::Config(format!(
            "`{}` is not a SQLite URL: {}",
            crate::error::redact(url),
            crate::error::redact(&e.to_string())
        ))
    })?;
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
    pub(super) async fn write_tx<T>(
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

#[async_trait]
impl Engine for SqliteEngine {
    async fn schema_migrate(&self) -> Result<()> {
        schema::migrate(&self.pool).await
    }

    async fn schema_reindex(&self) -> Result<()> {
        schema::reindex(self).await
    }

    async fn job_insert_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        insert::insert_through_hub(&self.pool, &self.hub, jobs).await
    }

    async fn job_fetch_available(
        &self,
        queue: &str,
        demand: u32,
        attempted_by: &[String],
        // One writer at a time and a small table: SQLite's scans from the head stay cheap.
        _after: Option<FetchCursor>,
    ) -> Result<Vec<Job>> {
        fetch::fetch_available(self, queue, demand, attempted_by).await
    }

    async fn job_fetch_limited(
        &self,
        queue: &str,
        demand: u32,
        attempted_by: &[String],
    ) -> Result<Vec<Job>> {
        limits::fetch_limited(self, queue, demand, attempted_by).await
    }

    async fn queue_limits_put(&self, queue: &str, limits: Option<&Limits>) -> Result<()> {
        limits::put(self, queue, limits).await
    }

    async fn queue_limits_get(&self, queue: Option<&str>) -> Result<Vec<(String, Limits)>> {
        limits::read(self, queue).await
    }

    async fn queue_limits_usage(
        &self,
        queue: &str,
        limits: &Limits,
        top: u32,
    ) -> Result<LimitsUsage> {
        limits::usage(self, queue, limits, top).await
    }

    async fn job_ack_many(&self, acks: &[Ack]) -> Result<Vec<i64>> {
        ack::ack_many(self, acks).await
    }

    fn is_data_error(&self, error: &Error) -> bool {
        ack::is_data_error(error)
    }

    async fn job_stage_due(&self, limit: u32) -> Result<Vec<String>> {
        maintenance::stage_due(self, limit).await
    }

    async fn job_rescue_orphaned(
        &self,
        stale_after: Duration,
        unknown_after: Duration,
    ) -> Result<u64> {
        maintenance::rescue_orphaned(self, stale_after, unknown_after).await
    }

    async fn job_prune(&self, max_age: Duration, limit: u32) -> Result<u64> {
        maintenance::prune(self, max_age, limit).await
    }

    async fn job_count_depths(&self, _exact_up_to: u64) -> Result<QueueDepths> {
        depth::count_depths(self).await
    }

    async fn job_get(&self, id: i64) -> Result<Option<Job>> {
        query::get(self, id).await
    }

    async fn job_list(&self, filter: &JobFilter, limit: u32) -> Result<Vec<Job>> {
        query::list(self, filter, limit).await
    }

    async fn job_page(
        &self,
        filter: &JobFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        query::page(self, filter, before, limit).await
    }

    async fn job_retry_many(&self, filter: &JobFilter) -> Result<u64> {
        query::retry_many(self, filter).await
    }

    async fn job_cancel_many(&self, filter: &JobFilter) -> Result<(u64, Vec<i64>)> {
        query::cancel_many(self, filter).await
    }

    async fn job_delete_many(&self, filter: &JobFilter) -> Result<u64> {
        query::delete_many(self, filter).await
    }

    async fn job_ids(&self, filter: &JobFilter, after: i64, limit: u32) -> Result<Vec<i64>> {
        query::ids(self, filter, after, limit).await
    }

    async fn job_count(&self, filter: &JobFilter) -> Result<u64> {
        query::count(self, filter).await
    }

    async fn job_failures(&self, since: Duration) -> Result<Vec<FailureCount>> {
        report::failures(self, since).await
    }

    async fn job_cron_seen(&self, since: Duration) -> Result<Vec<CronSeen>> {
        report::cron_seen(self, since).await
    }

    async fn workflow_recent_steps(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, String)>> {
        workflow_query::recent_steps(self, before, limit).await
    }

    async fn workflow_tally(&self, workflow_ids: &[String]) -> Result<Vec<WorkflowTally>> {
        workflow_query::tally(self, workflow_ids).await
    }

    async fn workflow_subs(
        &self,
        workflow_id: &str,
        from_id: i64,
        rows: u32,
    ) -> Result<Vec<String>> {
        workflow_query::subs(self, workflow_id, from_id, rows).await
    }

    async fn workflow_suspend_failed(&self, workflow_ids: &[String]) -> Result<u64> {
        workflow_query::suspend_failed(self, workflow_ids).await
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        schema::versions(&self.pool).await
    }

    async fn producer_list(&self, queue: Option<&str>) -> Result<Vec<ProducerInfo>> {
        peer::producer_list(self, queue).await
    }

    async fn producer_heartbeat(
        &self,
        uuid: uuid::Uuid,
        node: &str,
        queue: &str,
        meta: Value,
    ) -> Result<()> {
        peer::producer_heartbeat(self, uuid, node, queue, meta).await
    }

    async fn producer_delete(&self, uuid: uuid::Uuid) -> Result<()> {
        peer::producer_delete(self, uuid).await
    }

    async fn workflow_release(&self, workflow_ids: &[String]) -> Result<u64> {
        workflow::release(self, workflow_ids).await
    }

    async fn workflow_waiting(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        workflow::waiting(self, after, limit).await
    }

    async fn sequence_release(&self, keys: &[String]) -> Result<u64> {
        sequence::release(self, keys).await
    }

    async fn sequence_waiting(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        sequence::waiting(self, after, limit).await
    }

    async fn workflow_steps(&self, workflow_id: &str, names: &[String]) -> Result<Vec<Job>> {
        workflow::steps(self, workflow_id, names).await
    }
}

/// SQLite keeps one Oban instance per database file: only the default prefix, `public`, is
/// accepted.
///
/// # Errors
/// [`Error::Config`] for any other prefix, saying to use another file.
pub(crate) fn check_prefix(prefix: Prefix) -> Result<()> {
    if prefix.is_public() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "`prefix` `{prefix}` is not supported on SQLite, which keeps one Oban instance per \
         database file: leave the prefix at its default (`public`) and give each instance its \
         own file (`sqlite://tenant_a.db`)"
    )))
}
