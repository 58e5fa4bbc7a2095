//! The [`Oban`] node handle and its [`Builder`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::engines::postgres::PostgresEngine;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::maintenance::{lifeline, stager};
use crate::new_job::NewJob;
use crate::queue::completer::Completer;
use crate::queue::producer::{self, ProducerConfig};
use crate::registry::{Registry, WorkerRegistration};
use crate::state::StateMap;
use crate::worker::Worker;

/// A running Oban node: inserts jobs and runs its queues until [`Oban::shutdown`].
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
    engine: Arc<dyn Engine>,
    pool: PgPool,
    node: Arc<str>,
    wakers: Arc<HashMap<String, Arc<Notify>>>,
    stop: watch::Sender<Option<tokio::time::Instant>>,
    tasks: Mutex<Option<Tasks>>,
}

struct Tasks {
    producers: Vec<JoinHandle<()>>,
    maintenance: Vec<JoinHandle<()>>,
    completer: Option<Completer>,
    completer_task: JoinHandle<()>,
    give_up: watch::Sender<bool>,
}

impl Oban {
    /// Starts configuring a node.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// This node's name (stored in `attempted_by`).
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Inserts jobs in one statement and wakes this node's queues that received runnable jobs.
    pub async fn insert_all(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        let inserted = self.inner.engine.job_insert_many(jobs).await?;
        let mut woken: Vec<&str> = Vec::new();
        for job in &inserted {
            if job.state == crate::job::JobState::Available && !woken.contains(&job.queue.as_str())
            {
                woken.push(&job.queue);
                if let Some(wake) = self.inner.wakers.get(&job.queue) {
                    wake.notify_one();
                }
            }
        }
        Ok(inserted)
    }

    /// Inserts one job (what `builder.insert(&oban)` calls).
    pub async fn insert(&self, job: NewJob) -> Result<Job> {
        job.insert(self).await
    }

    /// The job with this id.
    pub async fn job(&self, id: i64) -> Result<Option<Job>> {
        self.inner.engine.job_get(id).await
    }

    /// Makes a job that is not executing available again now (raising `max_attempts` when its
    /// attempts are spent). Returns whether a job was changed.
    pub async fn retry_job(&self, id: i64) -> Result<bool> {
        let changed = self.inner.engine.job_retry(id).await?;
        if changed {
            if let Some(job) = self.job(id).await? {
                if let Some(wake) = self.inner.wakers.get(&job.queue) {
                    wake.notify_one();
                }
            }
        }
        Ok(changed)
    }

    /// Cancels a job that has not started or finished. Returns whether a job was changed.
    pub async fn cancel_job(&self, id: i64) -> Result<bool> {
        self.inner.engine.job_cancel(id).await
    }

    /// Stops the node: no new fetches, running jobs get `grace` to finish, whatever is still
    /// running then is stopped and made available again (its attempt given back), and every
    /// outcome is recorded before this returns. Calling it twice is harmless.
    pub async fn shutdown(&self, grace: Duration) {
        let Some(tasks) = self.inner.tasks.lock().expect("tasks lock").take() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + grace;
        let _ = self.inner.stop.send(Some(deadline));
        for handle in tasks.producers {
            let _ = handle.await;
        }
        for handle in tasks.maintenance {
            let _ = handle.await;
        }
        drop(tasks.completer);
        // Outcomes get the grace period plus a little to reach the database, then are left to
        // the lifeline of another node.
        let give_up = tasks.give_up;
        let mut completer_task = tasks.completer_task;
        let ack_deadline = deadline.max(tokio::time::Instant::now()) + Duration::from_secs(5);
        if tokio::time::timeout_at(ack_deadline, &mut completer_task)
            .await
            .is_err()
        {
            let _ = give_up.send(true);
            let _ = completer_task.await;
        }
        tracing::info!(node = %self.inner.node, "oban stopped");
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
            .field("node", &self.inner.node)
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
    Pool(PgPool),
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
    migrate: bool,
    poll_interval: Duration,
    stage_interval: Duration,
    heartbeat_interval: Duration,
    rescue_interval: Duration,
    rescue_after: Duration,
    rescue_unknown_after: Duration,
    pool_size: Option<u32>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            database: Database::None,
            queues: Vec::new(),
            node: None,
            state: StateMap::new(),
            manual: Vec::new(),
            migrate: true,
            poll_interval: Duration::from_secs(1),
            stage_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(15),
            rescue_interval: Duration::from_secs(60),
            rescue_after: Duration::from_secs(60),
            rescue_unknown_after: Duration::from_secs(3600),
            pool_size: None,
        }
    }
}

impl Builder {
    /// Connects to this PostgreSQL URL (`postgres://user@host:port/db`).
    pub fn database(mut self, url: impl Into<String>) -> Self {
        self.database = Database::Url(url.into());
        self
    }

    /// Uses an existing pool.
    pub fn pool(mut self, pool: PgPool) -> Self {
        self.database = Database::Pool(pool);
        self
    }

    /// Runs `queue` on this node with at most `limit` jobs at once.
    pub fn queue(mut self, queue: impl Into<String>, limit: u32) -> Self {
        self.queues.push((queue.into(), limit));
        self
    }

    /// Names this node (default: the host name, else `oban-<pid>`).
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

    /// Whether `start` applies the schema first (default true; it is idempotent and takes an
    /// advisory lock). Turn it off when migrations are run by your deploy instead.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// How often an idle queue looks for jobs without being woken (default 1 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
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

    /// Maximum connections of the pool this builder opens (default: 2 per queue plus 4).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = Some(size);
        self
    }

    /// Connects, applies the schema, checks the configuration and starts the queues.
    ///
    /// # Errors
    /// A database that cannot be reached, two workers with one stored name, a worker whose
    /// `State<T>` was not registered, a queue declared twice or with limit 0.
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
        let pool =
            match self.database {
                Database::Pool(pool) => pool,
                Database::Url(url) => {
                    connect(
                        &url,
                        self.pool_size.unwrap_or(4 + 2 * self.queues.len() as u32),
                    )
                    .await?
                }
                Database::None => match std::env::var("DATABASE_URL") {
                    Ok(url) => {
                        connect(
                            &url,
                            self.pool_size.unwrap_or(4 + 2 * self.queues.len() as u32),
                        )
                        .await?
                    }
                    Err(_) => return Err(Error::Config(
                        "no database: call `.database(url)` or `.pool(pool)`, or set DATABASE_URL"
                            .into(),
                    )),
                },
            };
        let engine: Arc<dyn Engine> = Arc::new(PostgresEngine::new(pool.clone()));
        if self.migrate {
            engine.schema_migrate().await?;
        }
        let node: Arc<str> = self.node.unwrap_or_else(default_node).into();
        let registry = Arc::new(registry);
        let state = Arc::new(self.state);
        let wakers: Arc<HashMap<String, Arc<Notify>>> = Arc::new(
            self.queues
                .iter()
                .map(|(q, _)| (q.clone(), Arc::new(Notify::new())))
                .collect(),
        );
        let (stop, stop_rx) = watch::channel(None);
        let (give_up, give_up_rx) = watch::channel(false);
        let (completer, completer_task) = Completer::start(Arc::clone(&engine), give_up_rx);

        let producers = self
            .queues
            .iter()
            .map(|(queue, limit)| {
                tokio::spawn(producer::run(ProducerConfig {
                    queue: queue.clone(),
                    limit: *limit,
                    node: Arc::clone(&node),
                    engine: Arc::clone(&engine),
                    registry: Arc::clone(&registry),
                    state: Arc::clone(&state),
                    completer: completer.clone(),
                    poll_interval: self.poll_interval,
                    heartbeat_interval: self.heartbeat_interval,
                    wake: Arc::clone(&wakers[queue]),
                    stop: stop_rx.clone(),
                }))
            })
            .collect();
        let maintenance = vec![
            tokio::spawn(stager::run(
                Arc::clone(&engine),
                stager::StagerConfig {
                    interval: self.stage_interval,
                    limit: 5_000,
                },
                Arc::clone(&wakers),
                stop_rx.clone(),
            )),
            tokio::spawn(lifeline::run(
                Arc::clone(&engine),
                lifeline::LifelineConfig {
                    interval: self.rescue_interval,
                    stale_after: self.rescue_after,
                    unknown_after: self.rescue_unknown_after,
                },
                stop_rx,
            )),
        ];
        tracing::info!(
            node = %node,
            queues = ?self.queues,
            workers = ?registry.iter().map(WorkerRegistration::name).collect::<Vec<_>>(),
            "oban started"
        );
        Ok(Oban {
            inner: Arc::new(Inner {
                engine,
                pool,
                node,
                wakers,
                stop,
                tasks: Mutex::new(Some(Tasks {
                    producers,
                    maintenance,
                    completer: Some(completer),
                    completer_task,
                    give_up,
                })),
            }),
        })
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

async fn connect(url: &str, size: u32) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(size.max(2))
        .connect(url)
        .await?)
}

fn default_node() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| format!("oban-{}", std::process::id()))
}
