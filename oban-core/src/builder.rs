//! [`Builder`]: a node's configuration, its defaults, and [`Builder::start`], which checks the
//! configuration, opens the database and starts the node's tasks.

use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

mod check;

use check::{default_node, Checked, Schedule};

use crate::control;
use crate::cron::{CronEntry, CronScheduler};
use crate::engine::Engine;
use crate::engines::inline::InlineEngine;
use crate::engines::pool::{self, DbPool};
use crate::error::Result;
use crate::events::{Event, Events};
use crate::limits::Limits;
use crate::maintenance::leader::{LeaderConfig, Leadership};
use crate::maintenance::{cron, leader, lifeline, pruner, reindexer, stager, waiting};
use crate::measure::{self, gauges};
use crate::new_job::IntoNewJob;
use crate::node::{Oban, Shared, Tasks};
use crate::prefix::Prefix;
use crate::queue::completer::Completer;
use crate::registry::{Registry, WorkerRegistration};
use crate::state::StateMap;
use crate::testing::Testing;
use crate::worker::Worker;

/// Where `start` gets its database from.
enum Database {
    /// `DATABASE_URL`, else the default SQLite file.
    None,
    Url(String),
    Pool(DbPool),
}

/// Configures and starts an [`Oban`] node. Every `#[worker]` linked into the binary is
/// registered on its own.
#[must_use = "a builder does nothing until `.start()` is awaited"]
pub struct Builder {
    database: Database,
    queues: Vec<(String, u32)>,
    limits: Vec<(String, Limits)>,
    node: Option<String>,
    /// The prefix as given; `schema` once `start` checked it.
    prefix: String,
    schema: Prefix,
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
    events: Events,
    metrics_interval: Duration,
    #[cfg(feature = "prometheus")]
    prometheus: Option<String>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            database: Database::None,
            queues: Vec::new(),
            limits: Vec::new(),
            node: None,
            prefix: Prefix::PUBLIC.name().to_owned(),
            schema: Prefix::PUBLIC,
            state: StateMap::new(),
            manual: Vec::new(),
            cron: Vec::new(),
            migrate: true,
            notifications: true,
            poll_interval: Duration::from_secs(1),
            dispatch_cooldown: Duration::from_millis(5),
            stage_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(5),
            rescue_interval: Duration::from_secs(5),
            rescue_after: Duration::from_secs(60),
            rescue_unknown_after: Duration::from_secs(3600),
            leader_ttl: Duration::from_secs(30),
            prune_interval: Duration::from_secs(30),
            prune_max_age: Some(Duration::from_secs(24 * 3600)),
            reindex: Some("@midnight".to_owned()),
            pool_size: None,
            testing: None,
            events: Events::default(),
            metrics_interval: Duration::from_secs(15),
            #[cfg(feature = "prometheus")]
            prometheus: None,
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

    /// Limits `queue` (declared with [`queue`](Self::queue)) across every node: a global limit,
    /// a rate limit, either one split into partitions (see [`crate::limits`] for the rules and
    /// their accuracy). `start` stores them in the database, replacing what an earlier node or
    /// [`Oban::set_queue_limits`] stored: the node started last decides. A node whose
    /// configuration declares no limits for a queue leaves stored ones in place (and logs a
    /// warning that they apply); clear them with `Oban::set_queue_limits(queue, Limits::new())`
    /// or `oban limits QUEUE --clear`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use oban_core::limits::{Limits, Partition, RateLimit};
    /// # async fn run() -> oban_core::Result<()> {
    /// let oban = oban_core::Oban::builder()
    ///     .database("postgres://localhost/app")
    ///     .queue("emails", 20)
    ///     .queue_limits(
    ///         "emails",
    ///         Limits::new().rate(
    ///             RateLimit::new(100, Duration::from_secs(60)).partitioned(Partition::args(["tenant_id"])),
    ///         ),
    ///     )
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn queue_limits(mut self, queue: impl Into<String>, limits: Limits) -> Self {
        self.limits.push((queue.into(), limits));
        self
    }

    /// Names this node (default: host name and process id, then `-2`, `-3`, ... for further
    /// nodes started in the same process). Node names must be unique among the nodes sharing a
    /// database: leadership and `attempted_by` go by them.
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// The PostgreSQL schema this node's jobs live in (default `public`), as Elixir's and
    /// Python's `prefix` option: several isolated Oban instances share one database, each in its
    /// own schema. Every table, type, function and index the node uses is that schema's, and its
    /// notification channels are `{prefix}.oban_insert`, `{prefix}.oban_signal` and
    /// `{prefix}.oban_leader`, so nodes of different prefixes never see each other's jobs,
    /// signals or leadership. With [`migrate`](Self::migrate) on (the default), `start` creates
    /// the schema and installs the tables there; otherwise run
    /// [`migrate_prefix`](crate::migrate_prefix).
    ///
    /// A prefix is an ASCII letter or `_` followed by letters, digits and `_`, at most 63 bytes
    /// (see [`Prefix::new`]); any other name fails `start`. The default leaves table names
    /// unqualified, resolved through the connection's `search_path` as before. SQLite keeps one
    /// instance per database file and refuses any other prefix: use another file instead.
    ///
    /// Jobs inserted from outside the node go to a prefix through [`Prefixed`](crate::Prefixed)
    /// or [`Oban::within`].
    ///
    /// ```no_run
    /// # async fn demo() -> oban_core::Result<()> {
    /// let url = "postgres://postgres@127.0.0.1:5432/app";
    /// let tenant_a = oban_core::Oban::builder().database(url).prefix("tenant_a").queue("default", 10).start().await?;
    /// let tenant_b = oban_core::Oban::builder().database(url).prefix("tenant_b").queue("default", 10).start().await?;
    /// // A job inserted through `tenant_a` is worked only by nodes of prefix `tenant_a`.
    /// # Ok(()) }
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Registers a value that workers receive as `State<T>`. `start` requires the state of the
    /// workers whose queue (`#[worker(queue = ..)]`) this node runs; a job of a worker whose
    /// state is missing here (inserted into another queue than its own) is deferred to another
    /// node, see [`crate::deferral`].
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

    /// How often a queue looks for jobs without being woken (default 1 s; 1 ms to a year).
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
    /// again (default 5 ms, at most a minute): fewer, larger fetches under load. An idle queue
    /// fetches at once.
    pub fn dispatch_cooldown(mut self, cooldown: Duration) -> Self {
        self.dispatch_cooldown = cooldown;
        self
    }

    /// How often scheduled and retryable jobs are made available (default 1 s; 1 ms to a year).
    pub fn stage_interval(mut self, interval: Duration) -> Self {
        self.stage_interval = interval;
        self
    }

    /// How often producers record that they are alive and which jobs they hold (default 5 s; at
    /// least 1 ms and at most half the rescue age of [`rescue`](Self::rescue), so that one late
    /// heartbeat does not get live jobs rescued and run twice): a job whose claim never reached
    /// its producer is rescued after at most this plus the rescue interval.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Lifeline: how often to look for orphaned jobs (default 5 s) and how long a producer may
    /// stay silent before its executing jobs are rescued (default 60 s). Each pass also rescues
    /// jobs a live producer's heartbeat says it does not hold (claimed, but lost before they
    /// started). The interval lies between 1 ms and a year; `after` is at least twice the
    /// [`heartbeat_interval`](Self::heartbeat_interval), and `Duration::MAX` never rescues.
    pub fn rescue(mut self, interval: Duration, after: Duration) -> Self {
        self.rescue_interval = interval;
        self.rescue_after = after;
        self
    }

    /// How long leadership lasts without renewal (default 30 s; renewed every third of it;
    /// 300 ms to a day).
    pub fn leader_ttl(mut self, ttl: Duration) -> Self {
        self.leader_ttl = ttl;
        self
    }

    /// Deletes completed, cancelled and discarded jobs older than `max_age` (default one day),
    /// checking every `interval` (default 30 s; 1 ms to a year). `None` (or `Duration::MAX`)
    /// keeps them forever.
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

    /// A receiver of the [`Event`]s the node will emit, including those of `start` itself (its
    /// first election, the notifier connecting), which a receiver from
    /// [`Oban::events`](crate::Oban::events) is too late for. Call it as often as you need
    /// receivers; see [`crate::events`] for the guarantees.
    ///
    /// ```no_run
    /// # async fn example() -> oban_core::Result<()> {
    /// use oban_core::{Event, Oban};
    ///
    /// let builder = Oban::builder().queue("default", 10);
    /// let mut events = builder.events();
    /// let oban = builder.start().await?;
    /// while let Ok(event) = events.recv().await {
    ///     if event == Event::LeadershipGained {
    ///         println!("{} leads", oban.node());
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// How often the node sets its gauges (default 15 s; 1 ms to a year; `Duration::MAX` never
    /// does): its producers' running jobs and limits, whether it leads, and, on the Rust leader
    /// only, every queue's depth by state and the age of its oldest available job, which cost
    /// one query of the job table per interval (see [`crate::measure`] for the series and what
    /// the query costs). Counters and histograms are recorded as jobs run, whatever this is.
    ///
    /// Metrics go to the recorder of the [`metrics`] facade: install one (a Prometheus
    /// exporter, say) before `start`.
    ///
    /// ```no_run
    /// # async fn example() -> oban_core::Result<()> {
    /// use std::time::Duration;
    /// use oban_core::Oban;
    ///
    /// let oban = Oban::builder()
    ///     .queue("default", 10)
    ///     .metrics_interval(Duration::from_secs(5))
    ///     .start()
    ///     .await?;
    /// # let _ = oban;
    /// # Ok(())
    /// # }
    /// ```
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// Serves every metric of this process at `http://{addr}/metrics` in Prometheus' text
    /// format while the node runs (feature `prometheus`; see [`crate::prometheus`]). `addr` is a
    /// `host:port` such as `"0.0.0.0:9568"` (9568 is the port commonly given to Oban exporters);
    /// port 0 picks a free one, which [`Oban::prometheus_addr`](crate::Oban::prometheus_addr)
    /// tells. A node in [testing](Self::testing) mode serves nothing.
    ///
    /// `start` fails if the address cannot be bound, or if the process already has another
    /// `metrics` recorder (then Oban's series already go to it: leave this option out).
    ///
    /// ```no_run
    /// # async fn example() -> oban_core::Result<()> {
    /// use oban_core::Oban;
    ///
    /// let oban = Oban::builder()
    ///     .queue("default", 10)
    ///     .prometheus("127.0.0.1:9568")
    ///     .start()
    ///     .await?;
    /// // curl http://127.0.0.1:9568/metrics
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "prometheus")]
    pub fn prometheus(mut self, addr: impl Into<String>) -> Self {
        self.prometheus = Some(addr.into());
        self
    }

    /// Builds a node for tests: [`Testing::Manual`] inserts jobs but runs no queues and no
    /// maintenance (drain them with [`drain_queue`](crate::testing::drain_queue)); `Inline` runs
    /// each job as it is inserted.
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
    /// A database that cannot be reached, two workers with one stored name, a worker of a queue
    /// this node runs whose `State<T>` was not registered (a node needs only the state of the
    /// workers of its own queues: one with no queues, which only inserts, needs none), a queue
    /// declared twice or with limit 0, a bad cron expression or time zone, a prefix that is not
    /// a plain identifier (or any prefix but `public` on SQLite), an interval of zero or of more
    /// than a year, a heartbeat longer
    /// than half the rescue age, a leader TTL outside 300 ms to a day, a dispatch cooldown over
    /// a minute. Each error names the option and what to do.
    pub async fn start(mut self) -> Result<Oban> {
        let Checked {
            registry,
            cron,
            reindex_due,
        } = self.check_config()?;
        let node: Arc<str> = self.node.take().unwrap_or_else(default_node).into();
        #[cfg(feature = "prometheus")]
        let prometheus = match (&self.prometheus, self.testing) {
            (Some(addr), None) => Some(crate::prometheus::bind(addr).await?),
            _ => None,
        };
        // After the Prometheus recorder is installed, so the descriptions reach it.
        measure::describe();
        let registry = Arc::new(registry);
        // Workflow steps reach the engine through the state (`Flow`), once it is open.
        self.state.insert(crate::workflow::EngineSlot::default());
        let state = Arc::new(mem::take(&mut self.state));
        let (pool, engine) = self.open_engine(&registry, &state, &node).await?;
        if let Some(slot) = state.get::<crate::workflow::EngineSlot>() {
            slot.set(&engine);
        }
        let (stop, stop_rx) = watch::channel(None);
        let (give_up, give_up_rx) = watch::channel(false);
        let (completer, completer_task) = Completer::start(Arc::clone(&engine), give_up_rx);
        let shared = Arc::new(self.shared(engine, registry, state, node, completer, stop_rx));
        let mut background = Vec::new();
        #[cfg(feature = "prometheus")]
        if let Some(listener) = prometheus {
            shared.set_prometheus_addr(listener.addr);
            background.push(listener.serve(shared.stop.clone()));
        }
        if let Some(mode) = self.testing {
            tracing::info!(node = %shared.node, ?mode, "oban started in testing mode: no queues, no maintenance");
        } else {
            // Notifications first, so no insert notice is missed once queues run.
            background.extend(self.start_notifications(&shared).await);
            self.store_limits(&shared).await?;
            self.start_queues(&shared);
            background.push(self.start_leadership(&shared).await);
            background.extend(self.start_maintenance(&shared, cron, reindex_due));
            background.extend(self.start_gauges(&shared));
            self.log_started(&shared);
        }
        let tasks = Tasks {
            background,
            completer_task,
            give_up,
        };
        Ok(Oban::from_parts(shared, pool, stop, tasks))
    }
}

// The steps of `start`, in order.
impl Builder {
    /// The engine: the inline one in inline testing mode (no pool), else one on the configured
    /// pool in the node's prefix, opened and migrated as asked.
    async fn open_engine(
        &mut self,
        registry: &Arc<Registry>,
        state: &Arc<StateMap>,
        node: &Arc<str>,
    ) -> Result<(Option<DbPool>, Arc<dyn Engine>)> {
        if self.testing == Some(Testing::Inline) {
            let engine =
                InlineEngine::new(Arc::clone(registry), Arc::clone(state), Arc::clone(node))
                    .with_events(self.events.clone());
            return Ok((None, Arc::new(engine)));
        }
        let size = self.pool_size.unwrap_or(4 + 2 * self.queues.len() as u32);
        let pool = match mem::replace(&mut self.database, Database::None) {
            Database::Pool(pool) => pool,
            Database::Url(url) => pool::connect(&url, size).await?,
            Database::None => pool::from_env(size).await?,
        };
        let engine = pool.engine(self.schema)?;
        if self.migrate {
            engine.schema_migrate().await?;
        }
        Ok((Some(pool), engine))
    }

    /// What the node's tasks share, with no queue running yet.
    fn shared(
        &self,
        engine: Arc<dyn Engine>,
        registry: Arc<Registry>,
        state: Arc<StateMap>,
        node: Arc<str>,
        completer: Completer,
        stop: crate::engine::StopSignal,
    ) -> Shared {
        Shared {
            engine,
            registry,
            state,
            events: self.events.clone(),
            node,
            prefix: self.schema,
            poll_interval: self.poll_interval,
            dispatch_cooldown: self.dispatch_cooldown,
            heartbeat_interval: self.heartbeat_interval,
            stale_after: self.rescue_after,
            producers: Mutex::new(Default::default()),
            retired: Mutex::new(Vec::new()),
            completer: Mutex::new(Some(completer)),
            leadership: Arc::new(Leadership::default()),
            notifications: AtomicBool::new(false),
            stop,
            #[cfg(feature = "prometheus")]
            prometheus_addr: std::sync::OnceLock::new(),
        }
    }

    /// Listens for notifications, when enabled and when they reach this node, and routes them
    /// (the returned task); otherwise queues poll.
    async fn start_notifications(&self, shared: &Arc<Shared>) -> Option<JoinHandle<()>> {
        if !self.notifications {
            tracing::info!(poll_interval = ?self.poll_interval, "notifications disabled; queues poll");
            return None;
        }
        let (sink, notices) = mpsc::unbounded_channel();
        match shared.engine.listen(sink, shared.stop.clone()).await {
            Ok(true) => {
                shared.notifications.store(true, Ordering::Relaxed);
                shared.events.emit(|| Event::NotifierConnected);
                Some(tokio::spawn(control::dispatch(
                    Arc::downgrade(shared),
                    notices,
                )))
            }
            Ok(false) => {
                tracing::warn!(
                    poll_interval = ?self.poll_interval,
                    "LISTEN/NOTIFY does not reach this node (a transaction-mode pooler?); queues will poll"
                );
                None
            }
            Err(error) => {
                tracing::warn!(%error, "could not listen for notifications; queues will poll");
                None
            }
        }
    }

    /// Stores the configured queue limits (before any producer reads them), and warns of stored
    /// limits of this node's other queues, which apply though the configuration does not say so.
    async fn store_limits(&self, shared: &Arc<Shared>) -> Result<()> {
        // A node that only inserts may run on a schema this runtime never migrated.
        if self.queues.is_empty() {
            return Ok(());
        }
        for (queue, limits) in &self.limits {
            shared.engine.queue_limits_put(queue, Some(limits)).await?;
        }
        for (queue, limits) in shared.engine.queue_limits_get(None).await? {
            let declared = self.queues.iter().any(|(name, _)| *name == queue);
            if declared && !self.limits.iter().any(|(name, _)| *name == queue) {
                tracing::warn!(
                    %queue, ?limits,
                    "queue has limits across the fleet that this node's configuration does not declare; they apply (clear them with Oban::set_queue_limits or `oban limits`)"
                );
            }
        }
        Ok(())
    }

    /// A producer for each configured queue.
    fn start_queues(&self, shared: &Arc<Shared>) {
        for (queue, limit) in &self.queues {
            shared.start_producer(queue, *limit, false);
        }
    }

    /// Takes part in one election now, then keeps leading or electing (the returned task).
    async fn start_leadership(&self, shared: &Arc<Shared>) -> JoinHandle<()> {
        let config = LeaderConfig {
            ttl: self.leader_ttl,
        };
        leader::run_once(
            &*shared.engine,
            &shared.node,
            &shared.leadership,
            config,
            &shared.events,
        )
        .await;
        tokio::spawn(leader::run(
            Arc::clone(&shared.engine),
            Arc::clone(&shared.node),
            Arc::clone(&shared.leadership),
            config,
            shared.events.clone(),
            shared.stop.clone(),
        ))
    }

    /// The services only the leader runs: stager, lifeline, the workflow pass, and, as
    /// configured, pruner, reindexer and cron.
    fn start_maintenance(
        &self,
        shared: &Arc<Shared>,
        cron: Vec<CronEntry>,
        reindex_due: Option<Schedule>,
    ) -> Vec<JoinHandle<()>> {
        let engine = &shared.engine;
        let leadership = &shared.leadership;
        let mut tasks = vec![
            tokio::spawn(stager::run(
                Arc::clone(engine),
                Arc::clone(leadership),
                stager::StagerConfig {
                    interval: self.stage_interval,
                    limit: 5_000,
                },
                control::wake_staged(Arc::downgrade(shared)),
                shared.events.clone(),
                shared.stop.clone(),
            )),
            tokio::spawn(lifeline::run(
                Arc::clone(engine),
                Arc::clone(leadership),
                lifeline::LifelineConfig {
                    interval: self.rescue_interval,
                    stale_after: self.rescue_after,
                    unknown_after: self.rescue_unknown_after,
                },
                shared.events.clone(),
                shared.stop.clone(),
            )),
        ];
        // Waiting workflow steps and sequences the acks did not release: as often as the
        // lifeline rescues.
        for waiting in [waiting::Waiting::Workflows, waiting::Waiting::Sequences] {
            tasks.push(tokio::spawn(waiting::run(
                Arc::clone(engine),
                Arc::clone(leadership),
                waiting::WaitingPassConfig {
                    waiting,
                    interval: self.rescue_interval,
                    limit: 100,
                },
                shared.stop.clone(),
            )));
        }
        if let Some(max_age) = self.prune_max_age {
            tasks.push(tokio::spawn(pruner::run(
                Arc::clone(engine),
                Arc::clone(leadership),
                pruner::PrunerConfig {
                    interval: self.prune_interval,
                    max_age,
                    limit: 10_000,
                },
                shared.events.clone(),
                shared.stop.clone(),
            )));
        }
        if let Some(due) = reindex_due {
            tasks.push(tokio::spawn(reindexer::run(
                Arc::clone(engine),
                Arc::clone(leadership),
                due,
                shared.stop.clone(),
            )));
        }
        if !cron.is_empty() {
            let catch_up = self.leader_ttl.saturating_add(Duration::from_secs(60));
            tasks.push(tokio::spawn(cron::run(
                Arc::clone(engine),
                Arc::clone(leadership),
                CronScheduler::new(cron, catch_up),
                shared.events.clone(),
                shared.stop.clone(),
            )));
        }
        tasks
    }

    /// Sets the gauges on the metrics interval (the returned task), unless it is `Duration::MAX`.
    fn start_gauges(&self, shared: &Arc<Shared>) -> Option<JoinHandle<()>> {
        (self.metrics_interval != Duration::MAX).then(|| {
            tokio::spawn(gauges::run(
                Arc::downgrade(shared),
                self.metrics_interval,
                shared.stop.clone(),
            ))
        })
    }

    fn log_started(&self, shared: &Shared) {
        tracing::info!(
            node = %shared.node,
            queues = ?self.queues,
            workers = ?shared.registry.iter().map(WorkerRegistration::name).collect::<Vec<_>>(),
            leader = shared.leadership.is_leader(),
            notifications = shared.notifications.load(Ordering::Relaxed),
            "oban started"
        );
    }
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("queues", &self.queues)
            .field("limits", &self.limits)
            .field("node", &self.node)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}
