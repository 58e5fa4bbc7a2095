//! The benchmark of Oban for Rust: throughput, latency and memory of a node on PostgreSQL.
//!
//! ```text
//! cargo run --release --example bench -- <mode> [--jobs N] [--concurrency C] [--batch B] ...
//! ```
//!
//! Every mode creates a database of its own (`oban_bench_<unix time>_<uuid>`) on the server named
//! by `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), installs the schema
//! with `oban::migrate`, measures, drops the database again, and prints ONE line of `key=value`
//! figures on stdout, e.g.
//!
//! ```text
//! bench mode=drain jobs=100000 concurrency=50 seconds=9.81 jobs_per_s=10194 ... peak_rss_mb=31.2
//! ```
//!
//! (a short header goes to stderr). `scripts/bench.sh` runs every mode beside the database's own
//! floor (`shared/bench/limit/run.sh`) and prints the ratios the project tracks.
//!
//! | mode | what is timed |
//! | --- | --- |
//! | `insert` | one `oban::insert_all(&pool, jobs)` of N jobs, and the same rows through one plain `INSERT .. SELECT FROM unnest(..)` (the SQL floor); best of `--reps` |
//! | `insert-unique` | the same `insert_all` with and without unique options (`keys = [n]`, infinite period) |
//! | `insert-single` | N jobs inserted one statement each by `--tasks` tasks, plain and unique |
//! | `drain` | N no-op jobs already in the table; a node starts with one queue at concurrency C and works them until the database has them all `completed` |
//! | `e2e` | one task inserts N jobs in batches of B (`insert_all` on the node) while the queue works them |
//! | `single` | `--tasks` tasks insert N jobs one statement each (on a pool, as a web server would) while the queue works them |
//! | `latency` | one job at a time on an idle queue: from the insert call to the worker's first line |
//! | `bloat` | `drain` with `--bloat-rows` (1,000,000) completed jobs already in the table |
//! | `rss` | `drain` of 200,000 jobs at concurrency 100, for the node's peak memory |
//! | `depth` | the depth gauges' query (`Engine::job_count_depths`) on a table of N rows (default 10,000,000: 95 % completed over five queues, some discarded and cancelled, a backlog of available, scheduled and retryable), against a plain `GROUP BY queue, state`; best of `--reps`, with the estimates' largest error |
//!
//! Completion is always read from the database: a job counts once its `completed` state is
//! committed. Jobs that should run are pre-inserted with one SQL statement (`generate_series`), so
//! the client's memory and time go to the node alone; the schema and table statistics are
//! settled (`VACUUM ANALYZE`) before the clock starts. Draining modes also report how many fetch
//! and ack statements the node issued (distinct `attempted_at` / `completed_at` values: each
//! statement stamps its rows with its transaction's time), which shows how well it batches.
//!
//! Arguments are parsed by hand rather than with `clap`: a dozen flags do not justify another
//! dependency (and its build time) for every contributor.

use std::fmt::{self, Display};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oban::{JobBuilder, JobContext, JobError, NewJob, Oban, Outcome, UniqueOptions, Worker};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};
use tokio::sync::mpsc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BenchResult<T> = Result<T, BoxError>;

/// The server when `DATABASE_URL` is not set.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// How often the database is asked whether the work is done.
const DONE_POLL: Duration = Duration::from_millis(20);
/// Latency samples taken first and thrown away (connections, prepared statements, caches).
const LATENCY_WARMUP: usize = 20;
/// Pause after each latency sample so the next job meets an idle producer.
const LATENCY_GAP: Duration = Duration::from_millis(5);
/// How long `shutdown` lets running jobs finish once the figures are taken.
const GRACE: Duration = Duration::from_secs(10);

const USAGE: &str = "\
usage: bench <mode> [options]

modes:
  insert          insert_all of N jobs (default 100000) vs the same rows in one SQL INSERT
  insert-unique   insert_all of N jobs, plain vs unique (keys [n], infinite period)
  insert-single   N jobs (default 10000) one statement each from --tasks tasks, plain vs unique
  drain           N pre-inserted no-op jobs (default 100000) worked at concurrency C (default 50)
  e2e             N jobs inserted in batches of B while the queue works them
  single          N jobs (default 50000) inserted one per statement from --tasks tasks while worked
  latency         N samples (default 1000) of insert-to-start on an idle queue
  bloat           drain N with --bloat-rows completed jobs (default 1000000) in the table
  rss             drain N (default 200000) at concurrency 100; report peak memory
  depth           the depth gauges' query on a table of N rows (default 10000000) vs GROUP BY
  sqlite-drain    drain N pre-inserted jobs on the SQLite engine (a temporary file)

options:
  --jobs N           jobs (or samples) to run
  --concurrency C    the queue's limit
  --batch B          jobs per insert_all in e2e (default 1000)
  --tasks T          inserting tasks in single and insert-single (default 8)
  --pool P           connections of the node's pool (default 10)
  --poll-ms MS       the node's poll interval (default 1000, the runtime's default)
  --bloat-rows R     completed jobs put in the table first by bloat (default 1000000)
  --reps R           repetitions of the insert modes; the best is reported (default 3)
  --via oban|pool    where e2e, single and latency insert: the node (wakes its queue at once)
                     or a plain pool (found by polling); default oban, pool for single
  --timeout-s S      give up after S seconds of waiting (default 600)
  --keep-db          do not drop the benchmark database at the end
  --no-notify        the node does not LISTEN: it finds jobs by polling
  --events           a task subscribes to the node's events and reads every one; drain and
                     bloat report how many it saw and missed (to compare with and without)
  --metrics          (needs `--features prometheus`) the node serves Prometheus metrics (gauges
                     every 15 s, the default), and a task scrapes /metrics every second;
                     drain and bloat report the scrapes

Numbers may contain underscores (100_000). DATABASE_URL picks the server.
Output: one line `bench mode=... key=value ...` on stdout.";

// ---------------------------------------------------------------------------------------------
// Workers

/// The benchmark's job: does nothing and completes.
#[derive(Debug, Serialize, Deserialize)]
struct Noop {
    /// A sequence number, so every job has distinct args (and a distinct unique key).
    n: i64,
}

impl Worker for Noop {
    const NAME: &'static str = "Bench.Noop";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

/// The latency probe's job: reports the instant it started on the node's [`ProbeTx`].
#[derive(Debug, Serialize, Deserialize)]
struct Probe {
    /// The sample number, checked by the sender.
    n: i64,
}

/// Where [`Probe`] jobs report `(sample number, start instant)`; registered as node state.
struct ProbeTx(mpsc::UnboundedSender<(i64, Instant)>);

impl ProbeTx {
    /// Sends `(n, started)`; a closed channel means the benchmark is over, so it is ignored.
    fn report(&self, n: i64, started: Instant) {
        let _ = self.0.send((n, started));
    }
}

impl Worker for Probe {
    const NAME: &'static str = "Bench.Probe";

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        let started = Instant::now();
        ctx.state::<ProbeTx>().report(self.n, started);
        Ok(Outcome::Complete)
    }
}

/// A no-op job, built as a user's code would build it.
fn noop_job(n: usize) -> BenchResult<NewJob> {
    Ok(JobBuilder::new(Noop { n: n as i64 }).build()?)
}

/// A no-op job that is unique by its `n`, forever.
fn unique_noop_job(n: usize) -> BenchResult<NewJob> {
    Ok(JobBuilder::new(Noop { n: n as i64 })
        .unique(UniqueOptions::new().keys(&["n"]).infinite())
        .build()?)
}

// ---------------------------------------------------------------------------------------------
// Options

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Insert,
    InsertUnique,
    InsertSingle,
    Drain,
    E2e,
    Single,
    Latency,
    Bloat,
    Rss,
    SqliteDrain,
    Depth,
}

impl Mode {
    const ALL: [Mode; 11] = [
        Mode::Insert,
        Mode::InsertUnique,
        Mode::InsertSingle,
        Mode::Drain,
        Mode::E2e,
        Mode::Single,
        Mode::Latency,
        Mode::Bloat,
        Mode::Rss,
        Mode::SqliteDrain,
        Mode::Depth,
    ];

    /// The name on the command line and in the output.
    fn name(self) -> &'static str {
        match self {
            Mode::Insert => "insert",
            Mode::InsertUnique => "insert-unique",
            Mode::InsertSingle => "insert-single",
            Mode::Drain => "drain",
            Mode::E2e => "e2e",
            Mode::Single => "single",
            Mode::Latency => "latency",
            Mode::Bloat => "bloat",
            Mode::Rss => "rss",
            Mode::SqliteDrain => "sqlite-drain",
            Mode::Depth => "depth",
        }
    }

    fn default_jobs(self) -> usize {
        match self {
            Mode::InsertSingle => 10_000,
            Mode::Single => 50_000,
            Mode::Latency => 1_000,
            Mode::Rss => 200_000,
            Mode::Depth => 10_000_000,
            _ => 100_000,
        }
    }

    fn default_concurrency(self) -> u32 {
        match self {
            Mode::Rss => 100,
            _ => 50,
        }
    }

    fn default_via(self) -> Via {
        match self {
            Mode::Single | Mode::InsertSingle => Via::Pool,
            _ => Via::Oban,
        }
    }
}

/// Where a running-node mode inserts its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `&Oban`: the node's pool, and the node's queue is woken at once.
    Oban,
    /// `&PgPool`: a separate pool, as a process that only enqueues; the node finds the jobs by
    /// polling (or by fetching again after a job finishes).
    Pool,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Oban => "oban",
            Via::Pool => "pool",
        }
    }
}

/// The command line.
#[derive(Debug, Clone)]
struct Options {
    mode: Mode,
    jobs: usize,
    concurrency: u32,
    batch: usize,
    tasks: usize,
    pool_size: u32,
    poll: Duration,
    bloat_rows: usize,
    reps: usize,
    via: Via,
    timeout: Duration,
    keep_db: bool,
    notifications: bool,
    events: bool,
    metrics: bool,
}

impl Options {
    /// Parses `args` (without the program name). `Err` holds the message to print.
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mode = match args.next().as_deref() {
            None | Some("-h" | "--help" | "help") => return Err(USAGE.to_owned()),
            Some(name) => Mode::ALL
                .into_iter()
                .find(|m| m.name() == name)
                .ok_or_else(|| format!("unknown mode `{name}`\n\n{USAGE}"))?,
        };
        let mut options = Options {
            mode,
            jobs: mode.default_jobs(),
            concurrency: mode.default_concurrency(),
            batch: 1_000,
            tasks: 8,
            pool_size: 10,
            poll: Duration::from_secs(1),
            bloat_rows: 1_000_000,
            reps: 3,
            via: mode.default_via(),
            timeout: Duration::from_secs(600),
            keep_db: false,
            notifications: true,
            events: false,
            metrics: false,
        };
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("`{flag}` needs a value"))
            };
            match flag.as_str() {
                "--jobs" | "-n" => options.jobs = number(&flag, &value()?)?,
                "--concurrency" | "-c" => options.concurrency = number(&flag, &value()?)?,
                "--batch" | "-b" => options.batch = number(&flag, &value()?)?,
                "--tasks" => options.tasks = number(&flag, &value()?)?,
                "--pool" => options.pool_size = number(&flag, &value()?)?,
                "--poll-ms" => options.poll = Duration::from_millis(number(&flag, &value()?)?),
                "--no-notify" => options.notifications = false,
                "--events" => options.events = true,
                "--metrics" if cfg!(feature = "prometheus") => options.metrics = true,
                "--metrics" => {
                    return Err("`--metrics` needs the Prometheus exporter: run with \
                                `--features prometheus`"
                        .to_owned())
                }
                "--bloat-rows" => options.bloat_rows = number(&flag, &value()?)?,
                "--reps" => options.reps = number(&flag, &value()?)?,
                "--timeout-s" => options.timeout = Duration::from_secs(number(&flag, &value()?)?),
                "--via" => {
                    options.via = match value()?.as_str() {
                        "oban" => Via::Oban,
                        "pool" => Via::Pool,
                        other => return Err(format!("--via: `{other}` is not `oban` or `pool`")),
                    }
                }
                "--keep-db" => options.keep_db = true,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
            }
        }
        if options.jobs == 0
            || options.concurrency == 0
            || options.batch == 0
            || options.tasks == 0
            || options.reps == 0
            || options.pool_size < 2
        {
            return Err(
                "--jobs, --concurrency, --batch, --tasks and --reps must be at least 1, --pool at least 2"
                    .to_owned(),
            );
        }
        Ok(options)
    }
}

/// Parses a number that may contain `_` separators.
fn number<T: FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.replace('_', "")
        .parse()
        .map_err(|_| format!("{flag}: `{text}` is not a number"))
}

// ---------------------------------------------------------------------------------------------
// Output

/// One output line: `bench mode=<mode> key=value ...`.
struct Figures(Vec<(&'static str, String)>);

impl Figures {
    fn new(mode: Mode) -> Self {
        Figures(vec![("mode", mode.name().to_owned())])
    }

    /// Adds `key=value`.
    fn add(mut self, key: &'static str, value: impl Display) -> Self {
        self.0.push((key, value.to_string()));
        self
    }

    /// Adds a duration in seconds, 3 decimals.
    fn secs(self, key: &'static str, elapsed: Duration) -> Self {
        self.add(key, format!("{:.3}", elapsed.as_secs_f64()))
    }

    /// Adds a duration in milliseconds, 3 decimals.
    fn ms(self, key: &'static str, elapsed: Duration) -> Self {
        self.add(key, format!("{:.3}", elapsed.as_secs_f64() * 1e3))
    }

    /// Adds `jobs / elapsed`, rounded.
    fn rate(self, key: &'static str, jobs: usize, elapsed: Duration) -> Self {
        self.add(key, format!("{:.0}", rate(jobs, elapsed)))
    }

    /// Adds a ratio, 3 decimals.
    fn ratio(self, key: &'static str, value: f64) -> Self {
        self.add(key, format!("{value:.3}"))
    }

    /// Adds the process's current and peak resident memory.
    fn memory(self) -> Self {
        let mb = |key| {
            proc_status_kb(key).map_or_else(|| "n/a".to_owned(), |kb| format!("{:.1}", kb / 1024.0))
        };
        self.add("rss_mb", mb("VmRSS"))
            .add("peak_rss_mb", mb("VmHWM"))
    }
}

impl Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bench")?;
        for (key, value) in &self.0 {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}

fn rate(jobs: usize, elapsed: Duration) -> f64 {
    jobs as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// A `kB` line of `/proc/self/status` (`VmHWM` is the peak resident set), or `None` off Linux.
fn proc_status_kb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// The nearest-rank percentile `q` (0..=1) of sorted samples.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------------------------
// The benchmark's own database

/// A database created for one run and dropped at the end.
struct BenchDb {
    /// The server, connected to its maintenance database.
    admin: PgConnectOptions,
    name: String,
}

impl BenchDb {
    /// Creates `oban_bench_<unix time>_<uuid>`, first dropping those an earlier run left behind
    /// more than six hours ago.
    async fn create() -> BenchResult<Self> {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let admin: PgConnectOptions = url.parse()?;
        let admin = admin.disable_statement_logging();
        let mut conn = PgConnection::connect_with(&admin).await?;
        let stamp = chrono::Utc::now().timestamp();
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname ~ '^oban_bench_[0-9]+_' \
             AND split_part(datname, '_', 3)::bigint < $1",
        )
        .bind(stamp - 6 * 3600)
        .fetch_all(&mut conn)
        .await?;
        for name in stale {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                .await;
        }
        let name = format!("oban_bench_{stamp}_{}", uuid::Uuid::new_v4().simple());
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await?;
        conn.close().await?;
        Ok(Self { admin, name })
    }

    /// A pool of `size` connections to the benchmark database.
    async fn pool(&self, size: u32) -> BenchResult<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(size)
            .connect_with(self.admin.clone().database(&self.name))
            .await?)
    }

    /// Drops the database, closing whatever connections are still open to it.
    async fn drop_database(self) -> BenchResult<()> {
        let mut conn = PgConnection::connect_with(&self.admin).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await?;
        conn.close().await?;
        Ok(())
    }
}

/// The pools of one run: the node's, and a small one for setup, inserting clients and checks.
struct Pools {
    node: PgPool,
    client: PgPool,
}

impl Pools {
    async fn open(db: &BenchDb, options: &Options) -> BenchResult<Self> {
        let client = db.pool(options.tasks as u32 + 2).await?;
        oban::migrate(&client).await?;
        let node = db.pool(options.pool_size).await?;
        Ok(Self { node, client })
    }

    async fn close(self) {
        self.node.close().await;
        self.client.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Shared steps

/// Starts a node with one queue, `default`, at `concurrency`, running [`Noop`] jobs.
/// With `--events`, a task reads every event of the node, counting them in [`EVENTS_SEEN`] and
/// [`EVENTS_MISSED`].
async fn start_node(pool: &PgPool, options: &Options, concurrency: u32) -> BenchResult<Oban> {
    let builder = Oban::builder()
        .pool(pool.clone())
        .queue("default", concurrency)
        .register::<Noop>()
        .migrate(false)
        .poll_interval(options.poll)
        .notifications(options.notifications);
    if options.events {
        let mut events = builder.events();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(_) => EVENTS_SEEN.fetch_add(1, Ordering::Relaxed),
                    Err(RecvError::Lagged(missed)) => {
                        EVENTS_MISSED.fetch_add(missed, Ordering::Relaxed)
                    }
                    Err(RecvError::Closed) => return,
                };
            }
        });
    }
    #[cfg(feature = "prometheus")]
    if options.metrics {
        let oban = builder.prometheus("127.0.0.1:0").start().await?;
        let addr = oban.prometheus_addr().expect("the node serves metrics");
        tokio::spawn(scrape_every_second(addr));
        return Ok(oban);
    }
    Ok(builder.start().await?)
}

/// With `--metrics`, reads `/metrics` every second as Prometheus would, counting the scrapes
/// in [`SCRAPES`].
#[cfg(feature = "prometheus")]
async fn scrape_every_second(addr: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
            return;
        };
        let mut response = Vec::new();
        if stream.write_all(request.as_bytes()).await.is_ok()
            && stream.read_to_end(&mut response).await.is_ok()
            && response.starts_with(b"HTTP/1.1 200")
        {
            SCRAPES.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Successful scrapes of `/metrics` with `--metrics`.
static SCRAPES: AtomicU64 = AtomicU64::new(0);

/// Events read by the `--events` subscriber.
static EVENTS_SEEN: AtomicU64 = AtomicU64::new(0);
/// Events the `--events` subscriber missed by lagging.
static EVENTS_MISSED: AtomicU64 = AtomicU64::new(0);

/// Empties the job table (between repetitions of the insert modes).
async fn truncate(pool: &PgPool) -> BenchResult<()> {
    pool.execute("TRUNCATE oban_jobs RESTART IDENTITY").await?;
    Ok(())
}

/// Settles the table before a timed run: dead rows gone, planner statistics current.
async fn settle(pool: &PgPool) -> BenchResult<()> {
    pool.execute("VACUUM ANALYZE oban_jobs").await?;
    Ok(())
}

/// Inserts `n` available no-op jobs with one SQL statement; returns the first id.
async fn preinsert_available(pool: &PgPool, n: usize) -> BenchResult<i64> {
    let first: Option<i64> = sqlx::query_scalar(
        "WITH ins AS (
           INSERT INTO oban_jobs (state, queue, worker, args)
           SELECT 'available', 'default', $1, jsonb_build_object('n', g)
           FROM generate_series(1, $2::int8) g
           RETURNING id)
         SELECT min(id) FROM ins",
    )
    .bind(Noop::NAME)
    .bind(n as i64)
    .fetch_one(pool)
    .await?;
    first.ok_or_else(|| "pre-insert inserted nothing".into())
}

/// Inserts `n` jobs that completed an hour ago, as a busy table keeps until it is pruned.
async fn preinsert_completed(pool: &PgPool, n: usize) -> BenchResult<()> {
    sqlx::query(
        "INSERT INTO oban_jobs (state, queue, worker, args, attempt, attempted_by,
                                inserted_at, scheduled_at, attempted_at, completed_at)
         SELECT 'completed', 'default', $1, jsonb_build_object('n', g), 1,
                ARRAY['bench-filler', 'filler'], t.at, t.at, t.at, t.at
         FROM generate_series(1, $2::int8) g,
              (SELECT timezone('UTC', now()) - interval '1 hour' AS at) t",
    )
    .bind(Noop::NAME)
    .bind(n as i64)
    .execute(pool)
    .await?;
    Ok(())
}

/// Waits until no job is `available` or `executing` any more (checked every [`DONE_POLL`]).
/// `EXISTS` on the state index stops at the first live entry, so the check stays cheap while
/// the node works.
async fn wait_idle(pool: &PgPool, timeout: Duration) -> BenchResult<()> {
    let deadline = Instant::now() + timeout;
    let mut tick = tokio::time::interval(DONE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM oban_jobs WHERE state IN ('available', 'executing'))",
        )
        .fetch_one(pool)
        .await?;
        if !busy {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("jobs still running after {timeout:?}").into());
        }
    }
}

/// Checks that exactly `expected` jobs are `completed`; otherwise says where the others are.
async fn verify_completed(pool: &PgPool, expected: usize) -> BenchResult<()> {
    let completed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM oban_jobs WHERE state = 'completed'")
            .fetch_one(pool)
            .await?;
    if completed == expected as i64 {
        return Ok(());
    }
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state::text, count(*) FROM oban_jobs GROUP BY 1 ORDER BY 1")
            .fetch_all(pool)
            .await?;
    Err(format!("expected {expected} completed jobs, the table holds {states:?}").into())
}

/// How many fetch and ack statements the node issued for the jobs with `id >= first_id`:
/// each statement stamps its rows with its own transaction time.
async fn statement_counts(pool: &PgPool, first_id: i64) -> BenchResult<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT count(DISTINCT attempted_at), count(DISTINCT completed_at) \
         FROM oban_jobs WHERE id >= $1",
    )
    .bind(first_id)
    .fetch_one(pool)
    .await?)
}

/// Adds the statement counts of a draining run to its figures.
async fn with_statements(
    figures: Figures,
    pool: &PgPool,
    first_id: i64,
    jobs: usize,
) -> BenchResult<Figures> {
    let (fetches, acks) = statement_counts(pool, first_id).await?;
    Ok(figures
        .add("fetches", fetches)
        .add(
            "jobs_per_fetch",
            format!("{:.1}", jobs as f64 / fetches.max(1) as f64),
        )
        .add("acks", acks)
        .add(
            "jobs_per_ack",
            format!("{:.1}", jobs as f64 / acks.max(1) as f64),
        ))
}

// ---------------------------------------------------------------------------------------------
// Modes

/// `insert`: `insert_all(&pool, jobs)` of N jobs vs the same rows by one plain SQL statement.
async fn bench_insert(pools: &Pools, options: &Options) -> BenchResult<Figures> {
    let n = options.jobs;
    let pool = &pools.node;
    let (mut best_oban, mut best_floor) = (Duration::MAX, Duration::MAX);
    for _ in 0..options.reps {
        truncate(pool).await?;
        let jobs = (0..n).map(noop_job).collect::<BenchResult<Vec<_>>>()?;
        let started = Instant::now();
        let inserted = oban::insert_all(pool, jobs).await?;
        best_oban = best_oban.min(started.elapsed());
        if inserted.len() != n {
            return Err(format!("insert_all returned {} jobs, not {n}", inserted.len()).into());
        }
        drop(inserted);

        truncate(pool).await?;
        let workers = vec![Noop::NAME; n];
        let queues = vec!["default"; n];
        let args: Vec<serde_json::Value> = (0..n).map(|i| serde_json::json!({ "n": i })).collect();
        let started = Instant::now();
        let done = sqlx::query(
            "INSERT INTO oban_jobs (worker, queue, args) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])",
        )
        .bind(workers)
        .bind(queues)
        .bind(args)
        .execute(pool)
        .await?;
        best_floor = best_floor.min(started.elapsed());
        if done.rows_affected() != n as u64 {
            return Err("the SQL floor inserted a different number of rows".into());
        }
    }
    Ok(Figures::new(options.mode)
        .add("jobs", n)
        .add("reps", options.reps)
        .secs("seconds", best_oban)
        .rate("jobs_per_s", n, best_oban)
        .secs("floor_seconds", best_floor)
        .rate("floor_jobs_per_s", n, best_floor)
        .ratio("ratio_vs_floor", rate(n, best_oban) / rate(n, best_floor)))
}

/// `insert-unique`: the same `insert_all`, plain and unique, alternating.
async fn bench_insert_unique(pools: &Pools, options: &Options) -> BenchResult<Figures> {
    let n = options.jobs;
    let pool = &pools.node;
    let (mut best_plain, mut best_unique) = (Duration::MAX, Duration::MAX);
    for _ in 0..options.reps {
        for unique in [false, true] {
            truncate(pool).await?;
            let make = if unique { unique_noop_job } else { noop_job };
            let jobs = (0..n).map(make).collect::<BenchResult<Vec<_>>>()?;
            let started = Instant::now();
            let inserted = oban::insert_all(pool, jobs).await?;
            let elapsed = started.elapsed();
            let fresh = inserted.iter().filter(|job| !job.conflict).count();
            if fresh != n {
                return Err(format!("insert_all inserted {fresh} jobs, not {n}").into());
            }
            let best = if unique {
                &mut best_unique
            } else {
                &mut best_plain
            };
            *best = (*best).min(elapsed);
        }
    }
    Ok(Figures::new(options.mode)
        .add("jobs", n)
        .add("reps", options.reps)
        .rate("plain_jobs_per_s", n, best_plain)
        .rate("unique_jobs_per_s", n, best_unique)
        .ratio(
            "unique_vs_plain",
            rate(n, best_unique) / rate(n, best_plain),
        ))
}

/// Inserts jobs `0..n` one statement each from `tasks` tasks into `pool`; returns the time.
async fn insert_one_by_one(
    pool: &PgPool,
    oban: Option<&Oban>,
    n: usize,
    tasks: usize,
    unique: bool,
) -> BenchResult<Duration> {
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let pool = pool.clone();
        let oban = oban.cloned();
        set.spawn(async move {
            for i in (task..n).step_by(tasks) {
                let builder = JobBuilder::new(Noop { n: i as i64 });
                let builder = if unique {
                    builder.unique(UniqueOptions::new().keys(&["n"]).infinite())
                } else {
                    builder
                };
                match &oban {
                    Some(oban) => builder.insert(oban).await?,
                    None => builder.insert(&pool).await?,
                };
            }
            Ok::<(), BoxError>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

/// `insert-single`: N jobs one statement each from `--tasks` tasks, plain and unique.
async fn bench_insert_single(pools: &Pools, options: &Options) -> BenchResult<Figures> {
    let n = options.jobs;
    let (mut best_plain, mut best_unique) = (Duration::MAX, Duration::MAX);
    for _ in 0..options.reps {
        truncate(&pools.client).await?;
        let plain = insert_one_by_one(&pools.client, None, n, options.tasks, false).await?;
        best_plain = best_plain.min(plain);
        truncate(&pools.client).await?;
        let unique = insert_one_by_one(&pools.client, None, n, options.tasks, true).await?;
        best_unique = best_unique.min(unique);
    }
    Ok(Figures::new(options.mode)
        .add("jobs", n)
        .add("tasks", options.tasks)
        .add("reps", options.reps)
        .rate("plain_jobs_per_s", n, best_plain)
        .rate("unique_jobs_per_s", n, best_unique)
        .ratio(
            "unique_vs_plain",
            rate(n, best_unique) / rate(n, best_plain),
        ))
}

/// `drain`, `bloat` and `rss`: pre-inserted jobs worked by a node started on the clock.
async fn bench_drain(pools: &Pools, options: &Options) -> BenchResult<Figures> {
    let n = options.jobs;
    let filler = if options.mode == Mode::Bloat {
        options.bloat_rows
    } else {
        0
    };
    if filler > 0 {
        eprintln!("# filling the table with {filler} completed jobs");
        preinsert_completed(&pools.client, filler).await?;
    }
    let first_id = preinsert_available(&pools.client, n).await?;
    settle(&pools.client).await?;
    let rss_before = proc_status_kb("VmRSS").unwrap_or(0.0) / 1024.0;

    let started = Instant::now();
    let oban = start_node(&pools.node, options, options.concurrency).await?;
    wait_idle(&pools.client, options.timeout).await?;
    let elapsed = started.elapsed();
    oban.shutdown(GRACE).await;
    verify_completed(&pools.client, filler + n).await?;

    let mut figures = Figures::new(options.mode).add("jobs", n);
    if filler > 0 {
        figures = figures.add("completed_rows_before", filler);
    }
    let figures = figures
        .add("concurrency", options.concurrency)
        .secs("seconds", elapsed)
        .rate("jobs_per_s", n, elapsed)
        .add("rss_before_mb", format!("{rss_before:.1}"));
    let figures = if options.events {
        figures
            .add("events_seen", EVENTS_SEEN.load(Ordering::Relaxed))
            .add("events_missed", EVENTS_MISSED.load(Ordering::Relaxed))
    } else {
        figures.add("events", "off")
    };
    let figures = if options.metrics {
        figures.add("scrapes", SCRAPES.load(Ordering::Relaxed))
    } else {
        figures.add("metrics", "off")
    };
    with_statements(figures, &pools.client, first_id, n).await
}

/// `e2e`: one task inserts N jobs in batches while the queue works them.
async fn bench_e2e(pools: &Pools, options: &Options) -> BenchResult<Figures> {
    let (n, batch, via) = (options.jobs, options.batch, options.via);
    let oban = start_node(&pools.node, options, options.concurrency).await?;
    let started = Instant::now();
    let inserter = {
        let oban = oban.clone();
        let pool = pools.client.clone();
        tokio::spawn(async move {
            for from in (0..n).step_by(batch) {
                let jobs = (from..n.min(from + batch))
                    .map(noop_job)
                    .collect::<BenchResult<Vec<_>>>()?;
                match via {
                    Via::Oban => oban::insert_all(&oban, jobs).await?,
                    Via::Pool => oban::insert_all(&pool, jobs).await?,
                };
            }
            Ok::<Duration, BoxError>(started.elapsed())
        })
    };
    let insert_elapsed = inserter.await??;
    wait_idle(&pools.client, options.timeout).await?;
    let elapsed = started.elapsed();
    oban.shutdown(GRACE).await;
    verify_completed(&pools.client, n).await?;
    let figures = Figures::new(options.mode)
        .add("jobs", n)
        .add("concurrency", options.concurrency)
        .add("batch", batch)
        .add("via", via.name())
        .secs("seconds", elapsed)
        .rate("jobs_per_s", n, elapsed)
        .secs("insert_seconds", insert_elapsed);
    with_statements(figures, &pools.client, 0, n).await
}

/// `single`: `--tasks` tasks insert N jobs one statement each while the queue works them.
async fn bench_single(pools: &Pools, options: &Options) -> BenchResult<Figures> {
    let n = options.jobs;
    let oban = start_node(&pools.node, options, options.concurrency).await?;
    let started = Instant::now();
    let target = match options.via {
        Via::Oban => Some(&oban),
        Via::Pool => None,
    };
    let insert_elapsed = insert_one_by_one(&pools.client, target, n, options.tasks, false).await?;
    wait_idle(&pools.client, options.timeout).await?;
    let elapsed = started.elapsed();
    oban.shutdown(GRACE).await;
    verify_completed(&pools.client, n).await?;
    let figures = Figures::new(options.mode)
        .add("jobs", n)
        .add("concurrency", options.concurrency)
        .add("tasks", options.tasks)
        .add("via", options.via.name())
        .secs("seconds", elapsed)
        .rate("jobs_per_s", n, elapsed)
        .secs("insert_seconds", insert_elapsed);
    with_statements(figures, &pools.client, 0, n).await
}

/// `latency`: one job at a time on an idle queue, from the insert call to the worker's start.
async fn bench_latency(pools: &Pools, options: &Options) -> BenchResult<Figures> {
    let n = options.jobs;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let oban = Oban::builder()
        .pool(pools.node.clone())
        .queue("default", options.concurrency)
        .register::<Probe>()
        .state(ProbeTx(tx))
        .migrate(false)
        .poll_interval(options.poll)
        .notifications(options.notifications)
        .start()
        .await?;
    let mut latencies = Vec::with_capacity(n);
    let mut inserts = Vec::with_capacity(n);
    for i in 0..LATENCY_WARMUP + n {
        let job = JobBuilder::new(Probe { n: i as i64 });
        let called = Instant::now();
        match options.via {
            Via::Oban => job.insert(&oban).await?,
            Via::Pool => job.insert(&pools.client).await?,
        };
        let inserted = called.elapsed();
        let (seen, started) = tokio::time::timeout(options.timeout, rx.recv())
            .await
            .map_err(|_| format!("probe {i} did not start within {:?}", options.timeout))?
            .ok_or("the probe channel closed")?;
        if seen != i as i64 {
            return Err(format!("expected probe {i} to start, probe {seen} did").into());
        }
        if i >= LATENCY_WARMUP {
            latencies.push(started.saturating_duration_since(called));
            inserts.push(inserted);
        }
        tokio::time::sleep(LATENCY_GAP).await;
    }
    oban.shutdown(GRACE).await;
    latencies.sort();
    inserts.sort();
    let mean = latencies.iter().sum::<Duration>() / n as u32;
    Ok(Figures::new(options.mode)
        .add("jobs", n)
        .add("via", options.via.name())
        .add("poll_ms", options.poll.as_millis())
        .add("notifications", options.notifications)
        .ms("p50_ms", percentile(&latencies, 0.50))
        .ms("p90_ms", percentile(&latencies, 0.90))
        .ms("p99_ms", percentile(&latencies, 0.99))
        .ms("max_ms", percentile(&latencies, 1.0))
        .ms("mean_ms", mean)
        .ms("insert_p50_ms", percentile(&inserts, 0.50)))
}

/// `sqlite-drain`: the drain on the SQLite engine, in a temporary file of its own.
async fn bench_sqlite_drain(options: &Options) -> BenchResult<Figures> {
    let n = options.jobs;
    let path =
        std::env::temp_dir().join(format!("oban-bench-{}.db", uuid::Uuid::new_v4().simple()));
    let pool = oban::engines::sqlite::connect_with(
        oban::engines::sqlite::file_options(&path),
        options.pool_size,
    )
    .await?;
    oban::migrate(&pool).await?;
    for from in (0..n).step_by(10_000) {
        let jobs = (from..n.min(from + 10_000))
            .map(noop_job)
            .collect::<BenchResult<Vec<_>>>()?;
        oban::insert_all(&pool, jobs).await?;
    }
    let count = "SELECT count(*) FROM oban_jobs WHERE state = 'completed'";
    let started = Instant::now();
    let oban = Oban::builder()
        .sqlite_pool(pool.clone())
        .queue("default", options.concurrency)
        .register::<Noop>()
        .migrate(false)
        .poll_interval(options.poll)
        .start()
        .await?;
    loop {
        let done: i64 = sqlx::query_scalar(count).fetch_one(&pool).await?;
        if done as usize >= n {
            break;
        }
        if started.elapsed() > options.timeout {
            return Err(format!("{done} of {n} jobs completed in {:?}", options.timeout).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    oban.shutdown(GRACE).await;
    pool.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(Figures::new(options.mode)
        .add("jobs", n)
        .add("concurrency", options.concurrency)
        .secs("seconds", elapsed)
        .rate("jobs_per_s", n, elapsed))
}

/// `depth`: the depth gauges' query against a plain grouped count, on a table of N rows.
async fn bench_depth(pools: &Pools, options: &Options) -> BenchResult<Figures> {
    use oban::engine::Engine;
    use oban::engines::postgres::PostgresEngine;

    let n = options.jobs as i64;
    eprintln!("# filling the table with {n} rows");
    // Of every 1000 rows: 950 completed, 10 discarded, 5 cancelled, 20 available, 10 scheduled,
    // 5 retryable; the last 100 rows executing. Queues of unequal sizes, priorities 0 to 3.
    sqlx::query(
        "INSERT INTO oban_jobs (state, queue, worker, args, attempt, priority, scheduled_at,
                                attempted_at, completed_at, discarded_at, cancelled_at)
         SELECT s.state::oban_job_state,
                (ARRAY['default','default','default','mailers','mailers','reports','webhooks',
                       'exports'])[1 + (g * 7 / 3) % 8],
                'Bench.Worker', jsonb_build_object('n', g),
                CASE WHEN s.state IN ('available', 'scheduled') THEN 0 ELSE 1 END, (g / 7) % 4,
                CASE s.state WHEN 'scheduled' THEN now() + g * interval '1 ms'
                             WHEN 'retryable' THEN now() + interval '10 minutes'
                             ELSE now() - interval '2 days' + g * interval '10 ms' END,
                CASE WHEN s.state IN ('available', 'scheduled') THEN NULL
                     ELSE now() - interval '1 day' END,
                CASE WHEN s.state = 'completed' THEN now() - interval '1 day' END,
                CASE WHEN s.state = 'discarded' THEN now() - interval '1 day' END,
                CASE WHEN s.state = 'cancelled' THEN now() - interval '1 day' END
         FROM generate_series(1, $1::int8) AS g
         CROSS JOIN LATERAL (SELECT CASE
           WHEN g > $1 - 100 THEN 'executing'
           WHEN g % 1000 < 950 THEN 'completed'
           WHEN g % 1000 < 960 THEN 'discarded'
           WHEN g % 1000 < 965 THEN 'cancelled'
           WHEN g % 1000 < 985 THEN 'available'
           WHEN g % 1000 < 995 THEN 'scheduled'
           ELSE 'retryable' END AS state) AS s",
    )
    .bind(n)
    .execute(&pools.client)
    .await?;
    settle(&pools.client).await?;
    let engine = PostgresEngine::new(pools.client.clone());
    let bound = oban::measure::DEPTH_EXACT_UP_TO;
    let mut best_depth = Duration::MAX;
    let mut depths = oban::engine::QueueDepths::default();
    for _ in 0..options.reps.max(1) {
        let started = Instant::now();
        depths = engine.job_count_depths(bound).await?;
        best_depth = best_depth.min(started.elapsed());
    }
    let mut best_group = Duration::MAX;
    let mut exact: Vec<(String, String, i64)> = Vec::new();
    for _ in 0..options.reps.max(1) {
        let started = Instant::now();
        exact = sqlx::query_as(
            "SELECT queue, state::text, count(*) FROM oban_jobs GROUP BY queue, state",
        )
        .fetch_all(&pools.client)
        .await?;
        best_group = best_group.min(started.elapsed());
    }
    // The largest relative error of a reported count against the true one.
    let mut worst = 0.0f64;
    for (queue, state, count) in &exact {
        let reported = depths
            .counts
            .iter()
            .find(|c| &c.queue == queue && c.state.as_str() == state)
            .map_or(0, |c| c.count);
        worst = worst.max((reported as f64 - *count as f64).abs() / *count as f64);
    }
    let estimated = depths.counts.iter().filter(|c| !c.exact).count();
    Ok(Figures::new(options.mode)
        .add("rows", n)
        .add("reps", options.reps)
        .add("exact_up_to", bound)
        .add("pairs_exact", depths.counts.len() - estimated)
        .add("pairs_estimated", estimated)
        .ratio("worst_relative_error", worst)
        .ms("depth_ms", best_depth)
        .ms("group_by_ms", best_group)
        .ratio(
            "group_by_vs_depth",
            best_group.as_secs_f64() / best_depth.as_secs_f64(),
        ))
}

/// Runs the chosen mode in its own database and returns its figures.
async fn run(options: &Options, db: &BenchDb) -> BenchResult<Figures> {
    let pools = Pools::open(db, options).await?;
    let figures = match options.mode {
        Mode::Insert => bench_insert(&pools, options).await,
        Mode::InsertUnique => bench_insert_unique(&pools, options).await,
        Mode::InsertSingle => bench_insert_single(&pools, options).await,
        Mode::Drain | Mode::Bloat | Mode::Rss => bench_drain(&pools, options).await,
        Mode::E2e => bench_e2e(&pools, options).await,
        Mode::Single => bench_single(&pools, options).await,
        Mode::Latency => bench_latency(&pools, options).await,
        Mode::SqliteDrain => bench_sqlite_drain(options).await,
        Mode::Depth => bench_depth(&pools, options).await,
    };
    pools.close().await;
    figures
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return if message == USAGE {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let db = match BenchDb::create().await {
        Ok(db) => db,
        Err(error) => {
            eprintln!("bench: could not create a database: {error}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "# oban bench: mode={} jobs={} concurrency={} database={}",
        options.mode.name(),
        options.jobs,
        options.concurrency,
        db.name
    );
    let outcome = run(&options, &db).await;
    if options.keep_db {
        eprintln!("# kept database {}", db.name);
    } else if let Err(error) = db.drop_database().await {
        eprintln!("bench: could not drop the benchmark database: {error}");
    }
    match outcome {
        Ok(figures) => {
            println!("{}", figures.memory());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench: {} failed: {error}", options.mode.name());
            ExitCode::FAILURE
        }
    }
}
