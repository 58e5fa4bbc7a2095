//! The [`Oban`] node handle and its [`Builder`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::json;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::cron::{CronEntry, CronScheduler};
use crate::engine::{Engine, StopSignal};
use crate::engines::inline::InlineEngine;
use crate::engines::postgres::PostgresEngine;
use crate::engines::sqlite::{self, SqliteEngine};
use crate::error::{Error, Result};
use crate::filter::JobFilter;
use crate::job::{Job, JobState};
use crate::maintenance::leader::{LeaderConfig, Leadership};
use crate::maintenance::{cron, leader, lifeline, pruner, reindexer, stager};
use crate::new_job::{IntoNewJob, NewJob};
use crate::notifier::{Channel, Notice, Signal};
use crate::queue::completer::Completer;
use crate::queue::producer::{self, Control, ProducerConfig};
use crate::registry::{Registry, WorkerRegistration};
use crate::state::StateMap;
use crate::testing::Testing;
use crate::worker::Worker;

/// A running Oban node: inserts jobs, runs its queues, and takes part in leader election for the
/// maintenance services, until [`Oban::shutdown`].
///
/// Cheap to clone; every clone is the same node. Dropping the last clone without calling
/// `shutdown` stops the queues at once and hands running jobs back to the table.
///
/// ```no_run
/// # async fn demo() -> oban_core::Result<()> {
/// use std::time::Duration;
/// use oban_core::Oban;
///
/// let oban = Oban::builder()
///     .database("postgres://postgres@127.0.0.1:5432/postgres")
///     .queue("default", 10)
///     .queue("mailers", 20)
///     .start()
///     .await?;
/// // ... insert jobs, serve requests ...
/// oban.shutdown(Duration::from_secs(30)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Oban {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` for a node in inline testing mode, which has no database.
    pool: Option<DbPool>,
    stop: watch::Sender<Option<tokio::time::Instant>>,
    tasks: Mutex<Option<Tasks>>,
}

/// What the node's tasks share.
struct Shared {
    engine: Arc<dyn Engine>,
    registry: Arc<Registry>,
    state: Arc<StateMap>,
    node: Arc<str>,
    poll_interval: Duration,
    dispatch_cooldown: Duration,
    heartbeat_interval: Duration,
    stale_after: Duration,
    producers: Mutex<HashMap<String, ProducerHandle>>,
    /// Producers of stopped queues still finishing their jobs.
    retired: Mutex<Vec<JoinHandle<()>>>,
    completer: Mutex<Option<Completer>>,
    leadership: Arc<Leadership>,
    notifications: AtomicBool,
    stop: StopSignal,
}

struct ProducerHandle {
    control: mpsc::UnboundedSender<Control>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

struct Tasks {
    background: Vec<JoinHandle<()>>,
    completer_task: JoinHandle<()>,
    give_up: watch::Sender<bool>,
}

/// Which nodes a queue command applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nodes {
    /// Every node running the queue (through a notification).
    All,
    /// Only this node.
    Local,
    /// Only the node with this name.
    Only(String),
}

/// One node's view of a queue, from its producer's heartbeat.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// The node running it.
    pub node: String,
    /// The queue.
    pub queue: String,
    /// Its concurrency limit.
    pub limit: u32,
    /// Whether it is paused.
    pub paused: bool,
    /// Jobs running at the last heartbeat.
    pub running: u32,
    /// When the producer started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Its last heartbeat.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl Shared {
    fn start_producer(self: &Arc<Self>, queue: &str, limit: u32, paused: bool) -> bool {
        let mut producers = self.producers.lock().expect("producers lock");
        if producers.contains_key(queue) || self.stop.borrow().is_some() {
            return false;
        }
        let Some(completer) = self.completer.lock().expect("completer lock").clone() else {
            return false;
        };
        let (control, control_rx) = mpsc::unbounded_channel();
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(producer::run(ProducerConfig {
            queue: queue.to_owned(),
            limit,
            paused,
            node: Arc::clone(&self.node),
            engine: Arc::clone(&self.engine),
            registry: Arc::clone(&self.registry),
            state: Arc::clone(&self.state),
            completer,
            poll_interval: self.poll_interval,
            dispatch_cooldown: self.dispatch_cooldown,
            heartbeat_interval: self.heartbeat_interval,
            wake: Arc::clone(&wake),
            control: control_rx,
            stop: self.stop.clone(),
        }));
        producers.insert(
            queue.to_owned(),
            ProducerHandle {
                control,
                wake,
                task,
            },
        );
        true
    }

    fn wake(&self, queue: &str) {
        if let Some(producer) = self.producers.lock().expect("producers lock").get(queue) {
            producer.wake.notify_one();
        }
    }

    fn wake_all(&self) {
        for producer in self.producers.lock().expect("producers lock").values() {
            producer.wake.notify_one();
        }
    }

    /// Acts on a signal meant for this node (idempotent: a signal may arrive twice).
    fn apply(self: &Arc<Self>, signal: &Signal) {
        if !signal.is_for(&self.node) {
            return;
        }
        let queue = signal.queue.as_deref().unwrap_or("*");
        let control = match signal.action.as_str() {
            "pause" => Control::Pause,
            "resume" => Control::Resume,
            "scale" => match signal.limit {
                Some(limit) if limit > 0 => Control::Scale(limit),
                _ => return,
            },
            "start" => {
                if let Some(limit) = signal.limit.filter(|l| *l > 0) {
                    if self.start_producer(queue, limit, false) {
                        tracing::info!(queue, limit, "queue started");
                    }
                }
                return;
            }
            "stop" => {
                if let Some(producer) = self.producers.lock().expect("producers lock").remove(queue)
                {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
                    let _ = producer.control.send(Control::Stop(deadline));
                    self.retired
                        .lock()
                        .expect("retired lock")
                        .push(producer.task);
                    tracing::info!(queue, "queue stopped");
                }
                return;
            }
            "pkill" => match signal.job_id {
                Some(job_id) => Control::Kill(job_id),
                None => return,
            },
            _ => return,
        };
        for (name, producer) in self.producers.lock().expect("producers lock").iter() {
            if queue == "*" || name == queue || matches!(control, Control::Kill(_)) {
                let _ = producer.control.send(control);
            }
        }
    }

    /// Applies a signal here if it concerns this node, and tells the other nodes.
    async fn broadcast(self: &Arc<Self>, signal: Signal, nodes: Nodes) -> Result<()> {
        let signal = match nodes {
            Nodes::Local => {
                self.apply(&signal);
                return Ok(());
            }
            Nodes::All => signal,
            Nodes::Only(node) => Signal {
                ident: Some(format!("Oban.{node}")),
                ..signal
            },
        };
        self.apply(&signal);
        let payload = serde_json::to_value(&signal).map_err(|e| Error::Config(e.to_string()))?;
        self.engine.notify(Channel::Signal, payload).await?;
        if !self.notifications.load(Ordering::Relaxed) {
            tracing::warn!(action = %signal.action, "notifications do not reach this node; other nodes may not have received this signal");
        }
        Ok(())
    }
}

impl Oban {
    /// Starts configuring a node.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// This node's name (stored in `attempted_by`).
    pub fn node(&self) -> &str {
        &self.inner.shared.node
    }

    /// The connection pool, on whichever engine this node runs (`None` in inline testing mode).
    pub fn db_pool(&self) -> Option<&DbPool> {
        self.inner.pool.as_ref()
    }

    /// The connection pool, when this node runs on PostgreSQL.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.inner.pool {
            Some(DbPool::Postgres(pool)) => Some(pool),
            _ => None,
        }
    }

    /// The connection pool, when this node runs on SQLite.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.inner.pool {
            Some(DbPool::Sqlite(pool)) => Some(pool),
            _ => None,
        }
    }

    pub(crate) fn engine(&self) -> &Arc<dyn Engine> {
        &self.inner.shared.engine
    }

    pub(crate) fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.inner.shared.registry)
    }

    pub(crate) fn state(&self) -> Arc<StateMap> {
        Arc::clone(&self.inner.shared.state)
    }

    /// Whether this node currently leads (runs staging, pruning, rescue, cron).
    pub fn is_leader(&self) -> bool {
        self.inner.shared.leadership.is_leader()
    }

    /// Whether LISTEN/NOTIFY works for this node; without it, queues poll.
    pub fn notifications_enabled(&self) -> bool {
        self.inner.shared.notifications.load(Ordering::Relaxed)
    }

    /// Inserts jobs in one statement and wakes this node's queues that received runnable jobs
    /// (other nodes are woken by the insert's notification).
    pub async fn insert_all(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        let inserted = self.inner.shared.engine.job_insert_many(jobs).await?;
        let mut woken: Vec<&str> = Vec::new();
        for job in &inserted {
            if job.state == JobState::Available
                && !job.conflict
                && !woken.contains(&job.queue.as_str())
            {
                woken.push(&job.queue);
                self.inner.shared.wake(&job.queue);
            }
        }
        Ok(inserted)
    }

    /// Inserts one job (what `builder.insert(&oban)` calls).
    pub async fn insert(&self, job: NewJob) -> Result<Job> {
        job.insert(self).await
    }

    /// Jobs matching `filter`, oldest first, at most 10,000 (narrow the filter for more).
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.inner.shared.engine.job_list(filter, 10_000).await
    }

    /// The job with this id.
    pub async fn job(&self, id: i64) -> Result<Option<Job>> {
        self.inner.shared.engine.job_get(id).await
    }

    /// Makes a job that is not executing available again now (raising `max_attempts` when its
    /// attempts are spent). Returns whether a job was changed.
    pub async fn retry_job(&self, id: i64) -> Result<bool> {
        Ok(self.retry_jobs(&JobFilter::id(id)).await? == 1)
    }

    /// [`retry_job`](Self::retry_job) for every matching job; returns how many changed.
    pub async fn retry_jobs(&self, filter: &JobFilter) -> Result<u64> {
        let changed = self.inner.shared.engine.job_retry_many(filter).await?;
        if changed > 0 {
            self.inner.shared.wake_all();
        }
        Ok(changed)
    }

    /// Cancels a job that has not finished. A running job is stopped on whichever node runs it.
    /// Returns whether a job was changed.
    pub async fn cancel_job(&self, id: i64) -> Result<bool> {
        Ok(self.cancel_jobs(&JobFilter::id(id)).await? == 1)
    }

    /// [`cancel_job`](Self::cancel_job) for every matching job; returns how many changed.
    pub async fn cancel_jobs(&self, filter: &JobFilter) -> Result<u64> {
        let (cancelled, executing) = self.inner.shared.engine.job_cancel_many(filter).await?;
        for job_id in executing {
            let signal = Signal {
                action: "pkill".into(),
                queue: None,
                ident: None,
                limit: None,
                job_id: Some(job_id),
            };
            self.inner.shared.broadcast(signal, Nodes::All).await?;
        }
        Ok(cancelled)
    }

    /// Deletes matching jobs that are not running; returns how many.
    pub async fn delete_jobs(&self, filter: &JobFilter) -> Result<u64> {
        self.inner.shared.engine.job_delete_many(filter).await
    }

    /// Stops fetching new jobs of `queue` (running ones finish).
    pub async fn pause_queue(&self, queue: &str, nodes: Nodes) -> Result<()> {
        self.queue_signal("pause", queue, None, nodes).await
    }

    /// Resumes a paused queue.
    pub async fn resume_queue(&self, queue: &str, nodes: Nodes) -> Result<()> {
        self.queue_signal("resume", queue, None, nodes).await
    }

    /// Changes a queue's concurrency limit.
    pub async fn scale_queue(&self, queue: &str, limit: u32, nodes: Nodes) -> Result<()> {
        if limit == 0 {
            return Err(Error::Config(format!(
                "cannot scale queue `{queue}` to 0: pause it instead"
            )));
        }
        self.queue_signal("scale", queue, Some(limit), nodes).await
    }

    /// Starts running `queue` with `limit` on the chosen nodes (where it is not running yet).
    pub async fn start_queue(&self, queue: &str, limit: u32, nodes: Nodes) -> Result<()> {
        if limit == 0 || queue.is_empty() {
            return Err(Error::Config(format!(
                "queue `{queue}` needs a name and a limit of at least 1"
            )));
        }
        self.queue_signal("start", queue, Some(limit), nodes).await
    }

    /// Stops running `queue` on the chosen nodes; their running jobs get 15 s to finish.
    pub async fn stop_queue(&self, queue: &str, nodes: Nodes) -> Result<()> {
        self.queue_signal("stop", queue, None, nodes).await
    }

    async fn queue_signal(
        &self,
        action: &str,
        queue: &str,
        limit: Option<u32>,
        nodes: Nodes,
    ) -> Result<()> {
        let signal = Signal {
            action: action.into(),
            queue: Some(queue.into()),
            ident: None,
            limit,
            job_id: None,
        };
        self.inner.shared.broadcast(signal, nodes).await
    }

    /// Every live node's view of `queue`: limit, paused, running jobs.
    pub async fn check_queue(&self, queue: &str) -> Result<Vec<QueueInfo>> {
        let live_since = chrono::Utc::now()
            - chrono::Duration::from_std(self.inner.shared.stale_after)
                .unwrap_or(chrono::Duration::MAX);
        let producers = self.inner.shared.engine.producer_list(Some(queue)).await?;
        Ok(producers
            .into_iter()
            .filter(|p| p.updated_at >= live_since)
            .map(|p| QueueInfo {
                limit: p
                    .meta
                    .get("limit")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0) as u32,
                paused: p
                    .meta
                    .get("paused")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
                running: p
                    .meta
                    .get("running")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0) as u32,
                node: p.node,
                queue: p.queue,
                started_at: p.started_at,
                updated_at: p.updated_at,
            })
            .collect())
    }

    /// Stops the node: no new fetches, running jobs get `grace` to finish, whatever is still
    /// running then is stopped and made available again (its attempt given back), leadership is
    /// handed over, and every outcome is recorded before this returns. Calling it twice is
    /// harmless.
    pub async fn shutdown(&self, grace: Duration) {
        let Some(tasks) = self.inner.tasks.lock().expect("tasks lock").take() else {
            return;
        };
        let shared = &self.inner.shared;
        let deadline = tokio::time::Instant::now() + grace;
        let _ = self.inner.stop.send(Some(deadline));
        // Producers keep their control channel open until they are done: a closed one means
        // "stop at once".
        let producers: Vec<ProducerHandle> = shared
            .producers
            .lock()
            .expect("producers lock")
            .drain()
            .map(|(_, p)| p)
            .collect();
        let retired: Vec<JoinHandle<()>> = shared
            .retired
            .lock()
            .expect("retired lock")
            .drain(..)
            .collect();
        let mut controls = Vec::with_capacity(producers.len());
        let mut handles = Vec::with_capacity(producers.len());
        for producer in producers {
            controls.push(producer.control);
            handles.push(producer.task);
        }
        for handle in handles.into_iter().chain(retired).chain(tasks.background) {
            let _ = handle.await;
        }
        drop(controls);
        drop(shared.completer.lock().expect("completer lock").take());
        // Outcomes get the grace period plus a little to reach the database, then are left to
        // the lifeline of another node.
        let mut completer_task = tasks.completer_task;
        let ack_deadline = deadline.max(tokio::time::Instant::now()) + Duration::from_secs(5);
        if tokio::time::timeout_at(ack_deadline, &mut completer_task)
            .await
            .is_err()
        {
            let _ = tasks.give_up.send(true);
            let _ = completer_task.await;
        }
        tracing::info!(node = %shared.node, "oban stopped");
    }

    /// Waits for Ctrl-C or SIGTERM, then shuts down with `grace` (for worker binaries).
    pub async fn shutdown_on_signal(&self, grace: Duration) {
        wait_for_signal().await;
        tracing::info!(?grace, "shutdown signal received");
        self.shutdown(grace).await;
    }
}

impl std::fmt::Debug for Oban {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oban")
            .field("node", &self.inner.shared.node)
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

enum Database {
    None,
    Url(String),
    Pool(DbPool),
}

/// A connection pool on either engine: what a node runs on, and what an application can use for
/// its own tables too (one database for the jobs and the data they commit with).
///
/// ```no_run
/// # async fn demo() -> oban_core::Result<()> {
/// use oban_core::oban::DbPool;
///
/// // DATABASE_URL (postgres://.. or sqlite://..), else the SQLite file ./oban.db
/// let db = DbPool::from_env().await?;
/// let oban = oban_core::Oban::builder().db_pool(db.clone()).start().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub enum DbPool {
    /// A PostgreSQL pool.
    Postgres(PgPool),
    /// A SQLite pool (see [`crate::engines::sqlite`]).
    Sqlite(SqlitePool),
}

impl DbPool {
    /// Opens a pool on `url`, choosing the engine by its scheme: `postgres://..` (or
    /// `postgresql://..`) or `sqlite://path/to/file.db` (created when missing).
    pub async fn connect(url: &str) -> Result<Self> {
        connect(url, 10).await
    }

    /// [`connect`](Self::connect) to `DATABASE_URL`, or, when it is not set, to the SQLite file
    /// `oban.db` in the working directory (its path is printed).
    pub async fn from_env() -> Result<Self> {
        from_env(10).await
    }
}

impl From<PgPool> for DbPool {
    fn from(pool: PgPool) -> Self {
        Self::Postgres(pool)
    }
}

impl From<SqlitePool> for DbPool {
    fn from(pool: SqlitePool) -> Self {
        Self::Sqlite(pool)
    }
}

/// Configures and starts an [`Oban`] node. Every `#[worker]` linked into the binary is
/// registered on its own.
#[must_use = "a builder does nothing until `.start()` is awaited"]
pub struct Builder {
    database: Database,
    queues: Vec<(String, u32)>,
    node: Option<String>,
    state: StateMap,
    manual: Vec<WorkerRegistration>,
    cron: Vec<Result<CronEntry>>,
    migrate: bool,
    notifications: bool,
    poll_interval: Duration,
    dispatch_cooldown: Duration,
    stage_interval: Duration,
    heartbeat_interval: Duration,
    rescue_interval: Duration,
    rescue_after: Duration,
    rescue_unknown_after: Duration,
    leader_ttl: Duration,
    prune_interval: Duration,
    prune_max_age: Option<Duration>,
    reindex: Option<String>,
    pool_size: Option<u32>,
    testing: Option<Testing>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            database: Database::None,
            queues: Vec::new(),
            node: None,
            state: StateMap::new(),
            manual: Vec::new(),
            cron: Vec::new(),
            migrate: true,
            notifications: true,
            poll_interval: Duration::from_secs(1),
            dispatch_cooldown: Duration::from_millis(5),
            stage_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(15),
            rescue_interval: Duration::from_secs(60),
            rescue_after: Duration::from_secs(60),
            rescue_unknown_after: Duration::from_secs(3600),
            leader_ttl: Duration::from_secs(30),
            prune_interval: Duration::from_secs(30),
            prune_max_age: Some(Duration::from_secs(24 * 3600)),
            reindex: Some("@midnight".to_owned()),
            pool_size: None,
            testing: None,
        }
    }
}

impl Builder {
    /// Connects to this database URL: PostgreSQL (`postgres://user@host:port/db`) or SQLite
    /// (`sqlite://path/to/file.db`, created when missing; see [`crate::engines::sqlite`]).
    ///
    /// Without `.database(..)`, `.pool(..)` or `.sqlite_pool(..)`, `start` uses `DATABASE_URL`,
    /// and without that the SQLite file `oban.db` in the working directory.
    pub fn database(mut self, url: impl Into<String>) -> Self {
        self.database = Database::Url(url.into());
        self
    }

    /// Uses an existing PostgreSQL pool.
    pub fn pool(mut self, pool: PgPool) -> Self {
        self.database = Database::Pool(DbPool::Postgres(pool));
        self
    }

    /// Uses an existing SQLite pool (best opened with [`crate::engines::sqlite::connect`], which
    /// sets WAL mode and a busy timeout).
    pub fn sqlite_pool(mut self, pool: SqlitePool) -> Self {
        self.database = Database::Pool(DbPool::Sqlite(pool));
        self
    }

    /// Uses an existing pool on either engine.
    pub fn db_pool(mut self, pool: impl Into<DbPool>) -> Self {
        self.database = Database::Pool(pool.into());
        self
    }

    /// Runs `queue` on this node with at most `limit` jobs at once. (A queue of jobs faster
    /// than a fetch also claims up to `limit` more, held until a slot frees: see the crate's
    /// guide on designing queues.)
    pub fn queue(mut self, queue: impl Into<String>, limit: u32) -> Self {
        self.queues.push((queue.into(), limit));
        self
    }

    /// Names this node (default: host name and process id). Node names must be unique among
    /// the nodes sharing a database: leadership and `attempted_by` go by them.
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Registers a value that workers receive as `State<T>`.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Registers a worker by hand (workers made with `#[worker]` are found without this).
    pub fn register<W: Worker>(mut self) -> Self {
        self.manual.push(WorkerRegistration::of::<W>());
        self
    }

    /// Inserts `job` on the schedule `expression` (UTC; see [`CronEntry::new`] for the syntax).
    /// A bad expression makes `start` fail.
    pub fn cron(mut self, expression: &str, job: impl IntoNewJob) -> Self {
        self.cron.push(
            job.into_new_job()
                .and_then(|job| CronEntry::new(expression, job)),
        );
        self
    }

    /// [`cron`](Self::cron) evaluated in an IANA time zone such as `"Europe/Paris"`.
    pub fn cron_in(mut self, timezone: &str, expression: &str, job: impl IntoNewJob) -> Self {
        self.cron.push(
            job.into_new_job()
                .and_then(|job| CronEntry::new(expression, job))
                .and_then(|entry| entry.timezone(timezone)),
        );
        self
    }

    /// Whether `start` applies the schema first (default true; it is idempotent and takes an
    /// advisory lock). Turn it off when migrations are run by your deploy instead.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Whether to use LISTEN/NOTIFY (default true). Turn it off behind a transaction-mode
    /// pooler; queues then find work by polling, and cross-node commands wait for heartbeats.
    pub fn notifications(mut self, enabled: bool) -> Self {
        self.notifications = enabled;
        self
    }

    /// How often a queue looks for jobs without being woken (default 1 s).
    ///
    /// A busy queue fetches after the position its last full batch ended at, which skips the
    /// dead index entries that earlier fetches leave at the head of the queue. Every wake-up (an
    /// insert, staged jobs, a control message) and every poll starts again from the head, so a
    /// job that sorts before the batches in flight (a higher priority, say) and arrives without
    /// a wake-up, e.g. rescued by the lifeline, waits at most this long.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// While a queue has jobs running, how long freed slots may accumulate before it fetches
    /// again (default 5 ms): fewer, larger fetches under load. An idle queue fetches at once.
    pub fn dispatch_cooldown(mut self, cooldown: Duration) -> Self {
        self.dispatch_cooldown = cooldown;
        self
    }

    /// How often scheduled and retryable jobs are made available (default 1 s).
    pub fn stage_interval(mut self, interval: Duration) -> Self {
        self.stage_interval = interval;
        self
    }

    /// How often producers record that they are alive (default 15 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Lifeline: how often to look for orphaned jobs (default 60 s) and how long a producer may
    /// stay silent before its executing jobs are rescued (default 60 s).
    pub fn rescue(mut self, interval: Duration, after: Duration) -> Self {
        self.rescue_interval = interval;
        self.rescue_after = after;
        self
    }

    /// How long leadership lasts without renewal (default 30 s; renewed every third of it).
    pub fn leader_ttl(mut self, ttl: Duration) -> Self {
        self.leader_ttl = ttl;
        self
    }

    /// Deletes completed, cancelled and discarded jobs older than `max_age` (default one day),
    /// checking every `interval` (default 30 s). `None` keeps them forever.
    pub fn prune(mut self, max_age: Option<Duration>, interval: Duration) -> Self {
        self.prune_max_age = max_age;
        self.prune_interval = interval;
        self
    }

    /// When to rebuild the job table's indexes, a UTC cron expression (default `@midnight`);
    /// `None` never does.
    pub fn reindex(mut self, schedule: Option<&str>) -> Self {
        self.reindex = schedule.map(str::to_owned);
        self
    }

    /// Builds a node for tests: [`Testing::Manual`](Testing::Manual) inserts
    /// jobs but runs no queues and no maintenance (drain them with
    /// [`drain_queue`](crate::testing::drain_queue)); `Inline` runs each job as it is inserted.
    pub fn testing(mut self, mode: Testing) -> Self {
        self.testing = Some(mode);
        self
    }

    /// Maximum connections of the pool this builder opens (default: 2 per queue plus 4).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = Some(size);
        self
    }

    /// Connects, applies the schema, checks the configuration and starts the queues.
    ///
    /// # Errors
    /// A database that cannot be reached, two workers with one stored name, a worker whose
    /// `State<T>` was not registered, a queue declared twice or with limit 0, a bad cron
    /// expression or time zone.
    pub async fn start(self) -> Result<Oban> {
        let mut registry = Registry::discover()?;
        for registration in self.manual {
            registry.add(registration)?;
        }
        registry.check_state(&self.state)?;
        let mut seen = std::collections::HashSet::new();
        for (queue, limit) in &self.queues {
            if queue.is_empty() || queue.chars().count() >= 128 {
                return Err(Error::Config(format!(
                    "queue name `{queue}` must be 1 to 127 characters"
                )));
            }
            if *limit == 0 {
                return Err(Error::Config(format!(
                    "queue `{queue}` has limit 0; give it at least 1"
                )));
            }
            if !seen.insert(queue.clone()) {
                return Err(Error::Config(format!("queue `{queue}` is declared twice")));
            }
        }
        let mut cron: Vec<CronEntry> = self.cron.into_iter().collect::<Result<_>>()?;
        for registration in registry.iter() {
            for (expression, timezone) in registration.cron() {
                let options = registration.options();
                let mut job = NewJob::new(registration.name(), serde_json::json!({}))
                    .queue(options.queue)
                    .priority(options.priority)
                    .max_attempts(options.max_attempts);
                job.tags = options.tags.iter().map(|t| (*t).to_owned()).collect();
                cron.push(CronEntry::new(expression, job)?.timezone(timezone)?);
            }
        }
        let reindex_due = self
            .reindex
            .as_deref()
            .map(crate::cron::utc_schedule)
            .transpose()?;
        if self.leader_ttl < Duration::from_millis(300) {
            return Err(Error::Config("leader_ttl must be at least 300 ms".into()));
        }

        let node: Arc<str> = self.node.unwrap_or_else(default_node).into();
        let registry = Arc::new(registry);
        let state = Arc::new(self.state);
        let (pool, engine): (Option<DbPool>, Arc<dyn Engine>) =
            if self.testing == Some(Testing::Inline) {
                let engine =
                    InlineEngine::new(Arc::clone(&registry), Arc::clone(&state), Arc::clone(&node));
                (None, Arc::new(engine))
            } else {
                let size = self.pool_size.unwrap_or(4 + 2 * self.queues.len() as u32);
                let pool = match self.database {
                    Database::Pool(pool) => pool,
                    Database::Url(url) => connect(&url, size).await?,
                    Database::None => from_env(size).await?,
                };
                let engine: Arc<dyn Engine> = match &pool {
                    DbPool::Postgres(pool) => Arc::new(PostgresEngine::new(pool.clone())),
                    DbPool::Sqlite(pool) => Arc::new(SqliteEngine::new(pool.clone())),
                };
                if self.migrate {
                    engine.schema_migrate().await?;
                }
                (Some(pool), engine)
            };
        let (stop, stop_rx) = watch::channel(None);
        let (give_up, give_up_rx) = watch::channel(false);
        let (completer, completer_task) = Completer::start(Arc::clone(&engine), give_up_rx);
        let shared = Arc::new(Shared {
            engine: Arc::clone(&engine),
            registry,
            state,
            node: Arc::clone(&node),
            poll_interval: self.poll_interval,
            dispatch_cooldown: self.dispatch_cooldown,
            heartbeat_interval: self.heartbeat_interval,
            stale_after: self.rescue_after,
            producers: Mutex::new(HashMap::new()),
            retired: Mutex::new(Vec::new()),
            completer: Mutex::new(Some(completer)),
            leadership: Arc::new(Leadership::default()),
            notifications: AtomicBool::new(false),
            stop: stop_rx.clone(),
        });

        let mut background = Vec::new();
        if let Some(mode) = self.testing {
            tracing::info!(node = %node, ?mode, "oban started in testing mode: no queues, no maintenance");
            return Ok(Oban {
                inner: Arc::new(Inner {
                    shared,
                    pool,
                    stop,
                    tasks: Mutex::new(Some(Tasks {
                        background,
                        completer_task,
                        give_up,
                    })),
                }),
            });
        }
        // Notifications first, so no insert notice is missed once queues run.
        if self.notifications {
            let (sink, notices) = mpsc::unbounded_channel();
            match engine.listen(sink, stop_rx.clone()).await {
                Ok(true) => {
                    shared.notifications.store(true, Ordering::Relaxed);
                    background.push(tokio::spawn(dispatch(Arc::downgrade(&shared), notices)));
                }
                Ok(false) => tracing::warn!(
                    poll_interval = ?self.poll_interval,
                    "LISTEN/NOTIFY does not reach this node (a transaction-mode pooler?); queues will poll"
                ),
                Err(error) => {
                    tracing::warn!(%error, "could not listen for notifications; queues will poll")
                }
            }
        } else {
            tracing::info!(poll_interval = ?self.poll_interval, "notifications disabled; queues poll");
        }
        for (queue, limit) in &self.queues {
            shared.start_producer(queue, *limit, false);
        }

        // Leadership, then the services only the leader runs.
        let leader_config = LeaderConfig {
            ttl: self.leader_ttl,
        };
        leader::run_once(&*engine, &node, &shared.leadership, leader_config).await;
        background.push(tokio::spawn(leader::run(
            Arc::clone(&engine),
            Arc::clone(&node),
            Arc::clone(&shared.leadership),
            leader_config,
            stop_rx.clone(),
        )));
        let staged = {
            let shared = Arc::downgrade(&shared);
            move |queues: Vec<String>| {
                let shared = shared.clone();
                async move {
                    let Some(shared) = shared.upgrade() else {
                        return;
                    };
                    for queue in &queues {
                        shared.wake(queue);
                        if shared.notifications.load(Ordering::Relaxed) {
                            let _ = shared
                                .engine
                                .notify(Channel::Insert, json!({ "queue": queue }))
                                .await;
                        }
                    }
                }
                .boxed()
            }
        };
        background.push(tokio::spawn(stager::run(
            Arc::clone(&engine),
            Arc::clone(&shared.leadership),
            stager::StagerConfig {
                interval: self.stage_interval,
                limit: 5_000,
            },
            staged,
            stop_rx.clone(),
        )));
        background.push(tokio::spawn(lifeline::run(
            Arc::clone(&engine),
            Arc::clone(&shared.leadership),
            lifeline::LifelineConfig {
                interval: self.rescue_interval,
                stale_after: self.rescue_after,
                unknown_after: self.rescue_unknown_after,
            },
            stop_rx.clone(),
        )));
        if let Some(max_age) = self.prune_max_age {
            background.push(tokio::spawn(pruner::run(
                Arc::clone(&engine),
                Arc::clone(&shared.leadership),
                pruner::PrunerConfig {
                    interval: self.prune_interval,
                    max_age,
                    limit: 10_000,
                },
                stop_rx.clone(),
            )));
        }
        if let Some(due) = reindex_due {
            background.push(tokio::spawn(reindexer::run(
                Arc::clone(&engine),
                Arc::clone(&shared.leadership),
                due,
                stop_rx.clone(),
            )));
        }
        if !cron.is_empty() {
            let catch_up = self.leader_ttl + Duration::from_secs(60);
            background.push(tokio::spawn(cron::run(
                Arc::clone(&engine),
                Arc::clone(&shared.leadership),
                CronScheduler::new(cron, catch_up),
                stop_rx,
            )));
        }

        tracing::info!(
            node = %node,
            queues = ?self.queues,
            workers = ?shared.registry.iter().map(WorkerRegistration::name).collect::<Vec<_>>(),
            leader = shared.leadership.is_leader(),
            notifications = shared.notifications.load(Ordering::Relaxed),
            "oban started"
        );
        Ok(Oban {
            inner: Arc::new(Inner {
                shared,
                pool,
                stop,
                tasks: Mutex::new(Some(Tasks {
                    background,
                    completer_task,
                    give_up,
                })),
            }),
        })
    }
}

/// Routes notices from the listener to this node's producers and leader task.
async fn dispatch(shared: std::sync::Weak<Shared>, mut notices: mpsc::UnboundedReceiver<Notice>) {
    while let Some(notice) = notices.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match notice {
            Notice::Insert { queue } => shared.wake(&queue),
            Notice::Signal(signal) => shared.apply(&signal),
            Notice::LeaderDown => shared.leadership.elect_now.notify_one(),
            Notice::Reconnected => shared.wake_all(),
        }
    }
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("queues", &self.queues)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Opens a pool on `DATABASE_URL`, or on the default SQLite file (saying so).
async fn from_env(size: u32) -> Result<DbPool> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => connect(&url, size).await,
        _ => {
            let path = std::env::current_dir()
                .map(|dir| dir.join(sqlite::DEFAULT_PATH))
                .unwrap_or_else(|_| sqlite::DEFAULT_PATH.into());
            tracing::info!(path = %path.display(), "no database configured (no `.database(url)`, no DATABASE_URL): using SQLite");
            eprintln!(
                "oban: no database configured; using the SQLite file {} (set DATABASE_URL=postgres://... or sqlite://... to choose)",
                path.display()
            );
            Ok(DbPool::Sqlite(
                sqlite::connect_with(sqlite::file_options(&path), size).await?,
            ))
        }
    }
}

/// Opens a pool on `url`, choosing the engine by its scheme.
async fn connect(url: &str, size: u32) -> Result<DbPool> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "postgres" | "postgresql" => Ok(DbPool::Postgres(
            PgPoolOptions::new()
                .max_connections(size.max(2))
                .connect(url)
                .await?,
        )),
        "sqlite" => Ok(DbPool::Sqlite(sqlite::connect(url, size).await?)),
        _ => Err(Error::Config(format!(
            "the database URL's scheme `{scheme}` is not supported: use postgres://user@host:port/db or sqlite://path/to/file.db"
        ))),
    }
}

fn default_node() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "oban".to_owned());
    format!("{host}-{}", std::process::id())
}
