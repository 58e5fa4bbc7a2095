//! The [`Oban`] node handle: what its tasks share, its job operations, and its shutdown.
//!
//! A node is configured and started by [`Builder`](crate::Builder) (in `builder.rs`); the methods
//! that control its queues, and the routing of signals to its producers, are in `control.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::builder::Builder;
use crate::control::Nodes;
use crate::engine::{Engine, StopSignal};
use crate::engines::pool::DbPool;
use crate::error::Result;
use crate::events::{Event, Events};
use crate::filter::JobFilter;
use crate::insert::Prefixed;
use crate::job::{Job, JobState};
use crate::maintenance::leader::Leadership;
use crate::new_job::NewJob;
use crate::notifier::{Command, Signal};
use crate::prefix::Prefix;
use crate::queue::completer::Completer;
use crate::queue::load::QueueLoad;
use crate::queue::producer::{self, Control, ProducerConfig};
use crate::registry::Registry;
use crate::state::StateMap;

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
pub(crate) struct Shared {
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) state: Arc<StateMap>,
    pub(crate) events: Events,
    pub(crate) node: Arc<str>,
    pub(crate) prefix: Prefix,
    pub(crate) poll_interval: Duration,
    pub(crate) dispatch_cooldown: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) stale_after: Duration,
    pub(crate) producers: Mutex<HashMap<String, ProducerHandle>>,
    /// Producers of stopped queues still finishing their jobs.
    pub(crate) retired: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) completer: Mutex<Option<Completer>>,
    pub(crate) leadership: Arc<Leadership>,
    pub(crate) notifications: AtomicBool,
    pub(crate) stop: StopSignal,
    /// Where this node serves Prometheus metrics, once bound.
    #[cfg(feature = "prometheus")]
    pub(crate) prometheus_addr: std::sync::OnceLock<std::net::SocketAddr>,
}

/// How long a completer told to give up may take to notice before it is aborted.
const GIVE_UP_WAIT: Duration = Duration::from_millis(250);

/// A running queue's producer.
pub(crate) struct ProducerHandle {
    pub(crate) control: mpsc::UnboundedSender<Control>,
    wake: Arc<Notify>,
    /// Its running jobs and limit, for the node's gauges.
    pub(crate) load: Arc<QueueLoad>,
    pub(crate) task: JoinHandle<()>,
}

/// The node's tasks, awaited on shutdown.
pub(crate) struct Tasks {
    /// The notification dispatcher, leadership and the maintenance services.
    pub(crate) background: Vec<JoinHandle<()>>,
    pub(crate) completer_task: JoinHandle<()>,
    /// Tells the completer to drop what it could not record.
    pub(crate) give_up: watch::Sender<bool>,
}

impl Shared {
    #[cfg(feature = "prometheus")]
    pub(crate) fn set_prometheus_addr(&self, addr: std::net::SocketAddr) {
        let _ = self.prometheus_addr.set(addr);
    }

    /// Starts a producer for `queue` unless it runs already or the node is stopping; returns
    /// whether it started.
    pub(crate) fn start_producer(self: &Arc<Self>, queue: &str, limit: u32, paused: bool) -> bool {
        let mut producers = self.producers.lock().expect("producers lock");
        if producers.contains_key(queue) || self.stop.borrow().is_some() {
            return false;
        }
        let Some(completer) = self.completer.lock().expect("completer lock").clone() else {
            return false;
        };
        let (control, control_rx) = mpsc::unbounded_channel();
        let wake = Arc::new(Notify::new());
        let load = Arc::new(QueueLoad::default());
        load.set(0, limit);
        let task = tokio::spawn(producer::run(ProducerConfig {
            queue: queue.to_owned(),
            limit,
            paused,
            limits: None,
            node: Arc::clone(&self.node),
            engine: Arc::clone(&self.engine),
            registry: Arc::clone(&self.registry),
            state: Arc::clone(&self.state),
            events: self.events.clone(),
            load: Arc::clone(&load),
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
                load,
                task,
            },
        );
        true
    }

    /// Wakes `queue`'s producer, if it runs here.
    pub(crate) fn wake(&self, queue: &str) {
        if let Some(producer) = self.producers.lock().expect("producers lock").get(queue) {
            producer.wake.notify_one();
        }
    }

    /// Wakes every producer.
    pub(crate) fn wake_all(&self) {
        for producer in self.producers.lock().expect("producers lock").values() {
            producer.wake.notify_one();
        }
    }
}

impl Oban {
    /// Starts configuring a node.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The handle of a node whose tasks run (or, for `pool` `None`, of an inline testing node).
    pub(crate) fn from_parts(
        shared: Arc<Shared>,
        pool: Option<DbPool>,
        stop: watch::Sender<Option<tokio::time::Instant>>,
        tasks: Tasks,
    ) -> Self {
        Oban {
            inner: Arc::new(Inner {
                shared,
                pool,
                stop,
                tasks: Mutex::new(Some(tasks)),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// This node's name (stored in `attempted_by`).
    pub fn node(&self) -> &str {
        &self.inner.shared.node
    }

    /// The address this node serves Prometheus metrics on
    /// ([`Builder::prometheus`](crate::Builder::prometheus)), with the port the system chose when
    /// the option asked for port 0; `None` without the option, or in testing mode.
    #[cfg(feature = "prometheus")]
    pub fn prometheus_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.shared.prometheus_addr.get().copied()
    }

    /// The schema prefix this node's tables and channels live in (default `public`).
    pub fn prefix(&self) -> Prefix {
        self.inner.shared.prefix
    }

    /// `target` (a `&PgPool`, `&mut PgConnection` or `&mut Transaction<Postgres>`) inserting into
    /// this node's prefix: for jobs that must commit with your own transaction.
    ///
    /// ```no_run
    /// # async fn demo(oban: oban_core::Oban) -> Result<(), Box<dyn std::error::Error>> {
    /// use oban_core::NewJob;
    ///
    /// let pool = oban.pg_pool().expect("a PostgreSQL node");
    /// let mut tx = pool.begin().await?;
    /// NewJob::new("SendReceipt", serde_json::json!({"order_id": 42}))
    ///     .insert(oban.within(&mut *tx))
    ///     .await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub fn within<T>(&self, target: T) -> Prefixed<T> {
        Prefixed::new(self.prefix(), target)
    }

    /// The operator's API on this node's database and prefix (see [`crate::admin`]): what the
    /// dashboard and the CLI present. Its queue commands reach this node's notifier, so on
    /// SQLite they reach the nodes of this process.
    ///
    /// ```no_run
    /// # async fn demo(oban: oban_core::Oban) -> oban_core::Result<()> {
    /// for queue in oban.admin().queues().await? {
    ///     println!("{}: {} jobs", queue.queue, queue.total);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn admin(&self) -> crate::admin::Admin {
        crate::admin::Admin::with_engine(self.inner.shared.engine.clone())
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

    /// Whether this node currently leads the Rust nodes on its database: it runs the cron
    /// entries, the heartbeat lifeline and the reindexer. At most one Rust node leads at a time.
    /// Staging and pruning also need [`is_shared_leader`](Self::is_shared_leader).
    pub fn is_leader(&self) -> bool {
        self.inner.shared.leadership.is_leader()
    }

    /// A receiver of the [`Event`]s this node emits from now on: jobs starting and stopping,
    /// inserts, leadership, the notifier, maintenance passes. See [`crate::events`] for the
    /// guarantees (a slow receiver never slows a job; it is told how many events it missed) and
    /// [`Builder::events`] to also see what happens while the node starts.
    ///
    /// ```no_run
    /// # async fn example(oban: oban_core::Oban) {
    /// use oban_core::Event;
    ///
    /// let mut events = oban.events();
    /// while let Ok(event) = events.recv().await {
    ///     if let Event::JobStop(stop) = event {
    ///         println!("{} {} in {:?}", stop.job.worker, stop.outcome.as_str(), stop.duration);
    ///     }
    /// }
    /// # }
    /// ```
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.inner.shared.events.subscribe()
    }

    pub(crate) fn event_sender(&self) -> Events {
        self.inner.shared.events.clone()
    }

    /// Whether this node leads the Rust nodes and also holds the leadership row it shares with
    /// Elixir Oban nodes (`"Oban"` in `oban_peers`): it stages scheduled and retryable jobs and
    /// prunes finished ones. Among Rust nodes alone the leader always holds it; while an Elixir
    /// node holds it, that node stages and prunes instead.
    pub fn is_shared_leader(&self) -> bool {
        self.inner.shared.leadership.leads_shared()
    }

    /// Whether LISTEN/NOTIFY works for this node; without it, queues poll.
    pub fn notifications_enabled(&self) -> bool {
        self.inner.shared.notifications.load(Ordering::Relaxed)
    }

    /// Inserts jobs in one statement and wakes this node's queues that received runnable jobs
    /// (other nodes are woken by the insert's notification).
    pub async fn insert_all(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        let inserted = self.inner.shared.engine.job_insert_many(jobs).await?;
        crate::measure::jobs::jobs_inserted(&inserted);
        self.inner.shared.events.emit(|| {
            let mut queues: Vec<String> = Vec::new();
            let mut count = 0;
            for job in inserted.iter().filter(|job| !job.conflict) {
                count += 1;
                if !queues.contains(&job.queue) {
                    queues.push(job.queue.clone());
                }
            }
            Event::JobsInserted { count, queues }
        });
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
    ///
    /// # Errors
    /// [`Error::EmptyFilter`](crate::Error::EmptyFilter) for a filter with no condition (use
    /// [`JobFilter::all`] to retry every job on purpose); a database error.
    pub async fn retry_jobs(&self, filter: &JobFilter) -> Result<u64> {
        filter.check_bulk("retry")?;
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
    ///
    /// The cancel is committed before running jobs are told to stop: this node stops its own at
    /// once, the others are told by a notification. When that notification cannot be sent, the
    /// jobs are still cancelled (their outcome will not be recorded) and this returns `Ok`
    /// after logging a warning; those other nodes let the jobs run to their end.
    ///
    /// # Errors
    /// [`Error::EmptyFilter`](crate::Error::EmptyFilter) for a filter with no condition (use
    /// [`JobFilter::all`] to cancel every job on purpose); a database error from the cancel.
    pub async fn cancel_jobs(&self, filter: &JobFilter) -> Result<u64> {
        filter.check_bulk("cancel")?;
        let (cancelled, executing) = self.inner.shared.engine.job_cancel_many(filter).await?;
        let mut nodes = Nodes::All;
        for job_id in executing {
            let signal = Signal {
                command: Command::Kill(job_id),
                queue: None,
                ident: None,
            };
            // The signal is applied here before it is sent, so this node's jobs stop even when
            // the notification fails; after one failure the rest are only applied here.
            if let Err(error) = self.inner.shared.broadcast(signal, nodes.clone()).await {
                tracing::warn!(%error, job_id, "cancelled, but other nodes could not be told to stop their running cancelled jobs; they run to their end and their outcome is not recorded");
                nodes = Nodes::Local;
            }
        }
        Ok(cancelled)
    }

    /// Deletes matching jobs that are not running; returns how many.
    ///
    /// # Errors
    /// [`Error::EmptyFilter`](crate::Error::EmptyFilter) for a filter with no condition (use
    /// [`JobFilter::all`] to delete every job on purpose); a database error.
    pub async fn delete_jobs(&self, filter: &JobFilter) -> Result<u64> {
        filter.check_bulk("delete")?;
        self.inner.shared.engine.job_delete_many(filter).await
    }

    /// Stops the node: no new fetches, running jobs get `grace` to finish, whatever is still
    /// running then is stopped and made available again (its attempt given back), leadership is
    /// handed over, and every outcome is recorded before this returns. Calling it twice is
    /// harmless; any `grace` is accepted, `Duration::MAX` waiting for running jobs however long
    /// they take.
    ///
    /// Returns within `grace` plus [`SHUTDOWN_MARGIN`](Self::SHUTDOWN_MARGIN) (5 s) plus a
    /// quarter of a second, whatever the database does:
    /// - the maintenance services (stager, lifeline, pruner, reindexer, cron) and the election
    ///   drop the statement they are running as soon as the stop begins (each is a transaction
    ///   of its own: rolled back, or done if the database already finished it; a
    ///   `REINDEX CONCURRENTLY` runs on to completion on the server);
    /// - a fetch in flight gets until the end of `grace`; one still running then is abandoned,
    ///   and the jobs it claims if its statement commits later are left to the lifeline, which
    ///   rescues them once this producer's heartbeat is older than the rescue age (the producer
    ///   keeps its heartbeat row for that);
    /// - outcomes and the clean-up statements (resigning, removing heartbeats) get until
    ///   `grace` + `SHUTDOWN_MARGIN`; a task still running then is aborted, and outcomes not yet
    ///   recorded are left to the lifeline (logged with their job ids).
    pub async fn shutdown(&self, grace: Duration) {
        let Some(tasks) = self.inner.tasks.lock().expect("tasks lock").take() else {
            return;
        };
        let shared = &self.inner.shared;
        let deadline = crate::clock::after(grace);
        let _ = self.inner.stop.send(Some(deadline));
        // Everything is over by then, recorded or not.
        let hard_deadline = crate::clock::saturating_add(deadline, Self::SHUTDOWN_MARGIN);
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
        for mut handle in handles.into_iter().chain(retired).chain(tasks.background) {
            if tokio::time::timeout_at(hard_deadline, &mut handle)
                .await
                .is_err()
            {
                tracing::warn!(node = %shared.node, "a task outlived the shutdown margin; aborting it");
                handle.abort();
                let _ = handle.await;
            }
        }
        drop(controls);
        drop(shared.completer.lock().expect("completer lock").take());
        // Outcomes get the grace period plus the margin to reach the database, then are left
        // to the lifeline of another node.
        let mut completer_task = tasks.completer_task;
        if tokio::time::timeout_at(hard_deadline, &mut completer_task)
            .await
            .is_err()
        {
            let _ = tasks.give_up.send(true);
            // The completer gives up between attempts; one stuck in a statement is aborted.
            if tokio::time::timeout(GIVE_UP_WAIT, &mut completer_task)
                .await
                .is_err()
            {
                tracing::error!(node = %shared.node, "recording job outcomes is stuck; abandoning them to the lifeline");
                completer_task.abort();
                let _ = completer_task.await;
            }
        }
        tracing::info!(node = %shared.node, "oban stopped");
    }

    /// How long [`shutdown`](Self::shutdown) waits past its `grace` for outcomes to be recorded
    /// and for the node's tasks to clean up, before it abandons them.
    pub const SHUTDOWN_MARGIN: Duration = Duration::from_secs(5);

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
