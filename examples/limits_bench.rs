//! Figures for fleet-wide queue limits on PostgreSQL (issue 21): what a global limit, partitions
//! and a rate limit cost in throughput, how exact the rate limit is over a minute, and what a
//! fetch pays to pass over a full partition's backlog. Prints figures; asserts nothing.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run --release --example limits_bench [-- throughput rate walk]
//! ```
//!
//! The run has a database of its own (`oban_limbench_<unix time>_<uuid>`), dropped at the end.
//! Every part starts from empty tables. Three nodes run in the process, each with its own pool
//! (8 connections) and a local limit of 20 on the queue.
//!
//! - `throughput`: 50,000 pre-inserted no-op jobs (`tenant_id` = n mod 1,000, so round-robin
//!   over 1,000 keys), worked by the three nodes until none is left, under each of:
//!   `local` (local limits only), `global` (a global limit of 60 = 3 x 20), `parted` (a global
//!   limit of 2 per `tenant_id`), `parted_rate` (`parted` and a rate limit of 10,000,000 a
//!   minute per `tenant_id`, which never binds: its bookkeeping), `global_rate` (`global` and a
//!   queue-wide rate limit of 10,000,000 a minute). Each round runs the database floor
//!   (`shared/bench/limit/run.sh 100 2 S`) and then every variant; the ratio to `local` is taken
//!   within the round, and the summary gives medians over the rounds. `jobs_per_s` is wall time
//!   from starting the nodes until the database has every job completed; `span_jobs_per_s` is
//!   first `attempted_at` to last `completed_at` (no start-up, no polling granularity).
//! - `rate`: a queue limited to 600 starts per 60 s, and one limited to 60 per 60 s per
//!   `tenant_id` over 10 keys, each with a backlog of 2,000 jobs, worked for 70 s. From
//!   `attempted_at`: the most starts in any 60 s window (per key), which must not exceed the
//!   limit, and the steady-state fraction of the limit achieved: 60 s over the mean time between
//!   a start and the start `allowed` places later (60 s exactly would be 100 %; the window
//!   counts whole buckets of a sixtieth of the period, so about 98 % is expected).
//! - `walk`: 100,000 available jobs of one `tenant_id` at the head of a queue whose global limit
//!   is 2 per `tenant_id` and whose partition is full, 2,000 jobs of 2,000 other tenants behind them:
//!   the time of `Engine::job_fetch_limited(queue, 20)`, median and p90 of 20 calls, then the
//!   same once the backlog is gone, and the plain unlimited claim for reference.
//!
//! Environment: `DATABASE_URL`; `LIMITS_BENCH_JOBS` (50000), `LIMITS_BENCH_ROUNDS` (3),
//! `LIMITS_BENCH_FLOOR_S` (10; 0 skips the floor), `LIMITS_BENCH_RATE=0` skips the minute-long
//! `rate` part, `LIMITS_BENCH_RATE_S` (70), `LIMITS_BENCH_JOB_MS` (0: each job sleeps this long,
//! to see the throughput parts' cost per job against real work), `OBAN_SHARED` (where `bench/limit/run.sh` is; by
//! default `../shared` or `../../shared` from the repository).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oban::engine::Engine;
use oban::engines::postgres::PostgresEngine;
use oban::limits::{GlobalLimit, Limits, Partition, RateLimit};
use oban::{JobContext, JobError, Oban, Outcome, Worker};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Nodes in the process, each with a pool of its own.
const NODES: usize = 3;
/// Connections of each node's pool.
const NODE_POOL: u32 = 8;
/// Each node's local limit on every queue.
const LOCAL: u32 = 20;
/// Keys of the `tenant_id` partition in the throughput part.
const TENANTS: i64 = 1_000;
/// The global limit per `tenant_id` in the partitioned variants.
const PER_TENANT: u32 = 2;
/// A rate limit that never binds in the throughput part.
const UNBOUND_RATE: u32 = 10_000_000;
const QUEUE: &str = "bench";
const GRACE: Duration = Duration::from_secs(10);
const DONE_POLL: Duration = Duration::from_millis(20);

/// How long each job sleeps, in milliseconds (`LIMITS_BENCH_JOB_MS`, default 0: no-op jobs).
static JOB_MS: AtomicU64 = AtomicU64::new(0);

/// The benchmark's job: completes (after sleeping `LIMITS_BENCH_JOB_MS`, if set).
#[derive(Debug, Serialize, Deserialize)]
struct Noop {
    tenant_id: i64,
    n: i64,
}

impl Worker for Noop {
    const NAME: &'static str = "LimitsBench.Noop";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        let millis = JOB_MS.load(Ordering::Relaxed);
        if millis > 0 {
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
        Ok(Outcome::Complete)
    }
}

/// What the run does, from the environment and the arguments.
struct Settings {
    jobs: i64,
    rounds: usize,
    floor_secs: u64,
    rate_secs: u64,
    job_ms: u64,
    throughput: bool,
    rate: bool,
    walk: bool,
}

impl Settings {
    fn read() -> Result<Self, BoxError> {
        fn env<T: std::str::FromStr>(name: &str, default: T) -> Result<T, BoxError> {
            match std::env::var(name) {
                Ok(value) => value
                    .replace('_', "")
                    .parse()
                    .map_err(|_| format!("{name}={value} is not a number").into()),
                Err(_) => Ok(default),
            }
        }
        let parts: Vec<String> = std::env::args().skip(1).collect();
        for part in &parts {
            if !["throughput", "rate", "walk"].contains(&part.as_str()) {
                return Err(format!("unknown part `{part}`: throughput, rate or walk").into());
            }
        }
        let wants = |name: &str| parts.is_empty() || parts.iter().any(|p| p == name);
        Ok(Self {
            jobs: env("LIMITS_BENCH_JOBS", 50_000)?,
            rounds: env("LIMITS_BENCH_ROUNDS", 3)?,
            floor_secs: env("LIMITS_BENCH_FLOOR_S", 10)?,
            rate_secs: env("LIMITS_BENCH_RATE_S", 70)?,
            job_ms: env("LIMITS_BENCH_JOB_MS", 0)?,
            throughput: wants("throughput"),
            rate: wants("rate") && env("LIMITS_BENCH_RATE", 1u8)? != 0,
            walk: wants("walk"),
        })
    }
}

/// A database of its own on the server of DATABASE_URL.
struct BenchDb {
    admin: PgConnectOptions,
    name: String,
}

impl BenchDb {
    async fn create() -> Result<Self, BoxError> {
        let admin: PgConnectOptions = database_url().parse()?;
        let admin = admin.disable_statement_logging();
        let mut conn = PgConnection::connect_with(&admin).await?;
        let name = format!(
            "oban_limbench_{}_{}",
            chrono::Utc::now().timestamp(),
            uuid::Uuid::new_v4().simple()
        );
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await?;
        conn.close().await?;
        Ok(Self { admin, name })
    }

    async fn pool(&self, size: u32) -> Result<PgPool, BoxError> {
        Ok(PgPoolOptions::new()
            .max_connections(size)
            .connect_with(self.admin.clone().database(&self.name))
            .await?)
    }

    async fn drop_database(self) -> Result<(), BoxError> {
        let mut conn = PgConnection::connect_with(&self.admin).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await?;
        conn.close().await?;
        Ok(())
    }
}

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Empties every table the parts write (no node runs meanwhile).
async fn reset(client: &PgPool) -> Result<(), BoxError> {
    client
        .execute(
            "TRUNCATE oban_jobs, oban_rust_queue_limits, oban_rust_rate_buckets, oban_rust_rate_totals, \
             oban_producers \
             RESTART IDENTITY",
        )
        .await?;
    Ok(())
}

/// Inserts `n` available no-op jobs on `queue` with `tenant_id` = g mod `tenants`, scheduled
/// `ago` seconds ago, in one statement.
async fn preinsert(
    client: &PgPool,
    queue: &str,
    n: i64,
    tenants: i64,
    ago_secs: i64,
) -> Result<(), BoxError> {
    sqlx::query(
        "INSERT INTO oban_jobs (state, queue, worker, args, max_attempts, scheduled_at)
         SELECT 'available', $1, $2, jsonb_build_object('tenant_id', g % $4, 'n', g), 1,
                timezone('UTC', now()) - make_interval(secs => $5)
         FROM generate_series(1, $3::int8) g",
    )
    .bind(queue)
    .bind(Noop::NAME)
    .bind(n)
    .bind(tenants)
    .bind(ago_secs as f64)
    .execute(client)
    .await?;
    Ok(())
}

async fn settle(client: &PgPool) -> Result<(), BoxError> {
    client.execute("VACUUM ANALYZE oban_jobs").await?;
    Ok(())
}

/// Three nodes on `queues`, each with a pool of its own (connected first, then the nodes
/// started one after another: a start takes a few milliseconds).
async fn start_nodes(
    db: &BenchDb,
    queues: &[(&str, Option<&Limits>)],
) -> Result<Vec<(Oban, PgPool)>, BoxError> {
    let mut pools = Vec::new();
    for _ in 0..NODES {
        pools.push(db.pool(NODE_POOL).await?);
    }
    let mut nodes = Vec::new();
    for (i, pool) in pools.into_iter().enumerate() {
        let mut builder = Oban::builder()
            .pool(pool.clone())
            .node(format!("limbench-{i}"))
            .register::<Noop>()
            .migrate(false);
        for (queue, limits) in queues {
            builder = builder.queue(*queue, LOCAL);
            if let Some(limits) = limits {
                builder = builder.queue_limits(*queue, (*limits).clone());
            }
        }
        nodes.push((builder.start().await?, pool));
    }
    Ok(nodes)
}

/// Shuts the nodes down together, then closes their pools.
async fn stop_nodes(nodes: Vec<(Oban, PgPool)>) {
    let mut stopping = tokio::task::JoinSet::new();
    for (oban, _) in &nodes {
        let oban = oban.clone();
        stopping.spawn(async move { oban.shutdown(GRACE).await });
    }
    while stopping.join_next().await.is_some() {}
    for (_, pool) in nodes {
        pool.close().await;
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------------------------
// The database floor

/// `shared/bench/limit/run.sh`: from `OBAN_SHARED`, else `../shared` or `../../shared` from the
/// repository (a worktree sits one level deeper than the main checkout).
fn floor_script() -> Option<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(shared) = std::env::var("OBAN_SHARED") {
        candidates.push(PathBuf::from(shared));
    }
    candidates.push(repo.join("../shared"));
    candidates.push(repo.join("../../shared"));
    candidates
        .into_iter()
        .map(|shared| shared.join("bench/limit/run.sh"))
        .find(|script| script.is_file())
}

/// The floor's jobs/s (batch 100, 2 clients), its line echoed; `None` when skipped or missing.
fn floor(seconds: u64) -> Option<f64> {
    if seconds == 0 {
        return None;
    }
    let Some(script) = floor_script() else {
        eprintln!("# the floor is skipped: bench/limit/run.sh not found (set OBAN_SHARED)");
        return None;
    };
    let output = std::process::Command::new("bash")
        .arg(&script)
        .args(["100", "2", &seconds.to_string()])
        .env("DATABASE_URL", database_url())
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() {
        eprintln!(
            "# the floor failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    println!("{line}");
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("jobs_per_s="))
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Part 1: throughput

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Local,
    Global,
    Parted,
    PartedRate,
    GlobalRate,
}

impl Variant {
    const ALL: [Variant; 5] = [
        Variant::Local,
        Variant::Global,
        Variant::Parted,
        Variant::PartedRate,
        Variant::GlobalRate,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Local => "local",
            Variant::Global => "global",
            Variant::Parted => "parted",
            Variant::PartedRate => "parted_rate",
            Variant::GlobalRate => "global_rate",
        }
    }

    fn describe(self) -> String {
        match self {
            Variant::Local => format!("local limits only ({NODES} x {LOCAL})"),
            Variant::Global => format!("global limit {}", NODES as u32 * LOCAL),
            Variant::Parted => format!("global {PER_TENANT} per tenant_id, {TENANTS} keys"),
            Variant::PartedRate => {
                format!("parted + rate {UNBOUND_RATE}/60 s per tenant_id (never binds)")
            }
            Variant::GlobalRate => format!("global + rate {UNBOUND_RATE}/60 s (never binds)"),
        }
    }

    fn limits(self) -> Option<Limits> {
        let by_tenant = || Partition::args(["tenant_id"]);
        let global = GlobalLimit::new(NODES as u32 * LOCAL);
        let parted = GlobalLimit::new(PER_TENANT).partitioned(by_tenant());
        let rate = RateLimit::new(UNBOUND_RATE, Duration::from_secs(60));
        match self {
            Variant::Local => None,
            Variant::Global => Some(Limits::new().global(global)),
            Variant::Parted => Some(Limits::new().global(parted)),
            Variant::PartedRate => Some(
                Limits::new()
                    .global(parted)
                    .rate(rate.partitioned(by_tenant())),
            ),
            Variant::GlobalRate => Some(Limits::new().global(global).rate(rate)),
        }
    }
}

struct Drained {
    seconds: f64,
    span_seconds: f64,
    fetches: i64,
    max_executing: i64,
}

/// One drain of `jobs` pre-inserted jobs by three nodes under `variant`.
async fn drain(
    db: &BenchDb,
    client: &PgPool,
    variant: Variant,
    jobs: i64,
) -> Result<Drained, BoxError> {
    reset(client).await?;
    preinsert(client, QUEUE, jobs, TENANTS, 1).await?;
    settle(client).await?;
    let limits = variant.limits();
    let started = Instant::now();
    let nodes = start_nodes(db, &[(QUEUE, limits.as_ref())]).await?;
    let deadline = started + Duration::from_secs(600);
    let mut max_executing = 0i64;
    let mut tick = tokio::time::interval(DONE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let seconds = loop {
        tick.tick().await;
        let (executing, busy): (i64, bool) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM oban_jobs WHERE state = 'executing'),
                    EXISTS (SELECT 1 FROM oban_jobs WHERE state IN ('available', 'executing'))",
        )
        .fetch_one(client)
        .await?;
        max_executing = max_executing.max(executing);
        if !busy {
            break started.elapsed().as_secs_f64();
        }
        if Instant::now() > deadline {
            return Err(format!("{} did not drain within 600 s", variant.name()).into());
        }
    };
    stop_nodes(nodes).await;
    let (span_seconds, fetches, completed): (f64, i64, i64) = sqlx::query_as(
        "SELECT extract(epoch FROM max(completed_at) - min(attempted_at))::float8,
                count(DISTINCT attempted_at), count(*) FILTER (WHERE state = 'completed')
         FROM oban_jobs",
    )
    .fetch_one(client)
    .await?;
    if completed != jobs {
        return Err(format!("{}: {completed} of {jobs} completed", variant.name()).into());
    }
    Ok(Drained {
        seconds,
        span_seconds,
        fetches,
        max_executing,
    })
}

async fn throughput(db: &BenchDb, client: &PgPool, settings: &Settings) -> Result<(), BoxError> {
    let jobs = settings.jobs;
    println!(
        "# throughput: {jobs} jobs of {} ms, {NODES} nodes x local limit {LOCAL}, pool {NODE_POOL} each",
        settings.job_ms
    );
    for variant in Variant::ALL {
        println!("#   {:<12} {}", variant.name(), variant.describe());
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); Variant::ALL.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); Variant::ALL.len()];
    let mut span_ratios: Vec<Vec<f64>> = vec![Vec::new(); Variant::ALL.len()];
    let mut floors = Vec::new();
    for round in 1..=settings.rounds {
        if let Some(jobs_per_s) = floor(settings.floor_secs) {
            floors.push(jobs_per_s);
        }
        let mut local: Option<(f64, f64)> = None;
        for (i, variant) in Variant::ALL.into_iter().enumerate() {
            let drained = drain(db, client, variant, jobs).await?;
            let rate = jobs as f64 / drained.seconds;
            let span_rate = jobs as f64 / drained.span_seconds;
            let (base, span_base) = *local.get_or_insert((rate, span_rate));
            rates[i].push(rate);
            ratios[i].push(rate / base);
            span_ratios[i].push(span_rate / span_base);
            println!(
                "throughput round={round} variant={} jobs={jobs} seconds={:.2} jobs_per_s={rate:.0} \
                 span_jobs_per_s={span_rate:.0} ratio_vs_local={:.3} span_ratio_vs_local={:.3} \
                 fetches={} jobs_per_fetch={:.1} max_executing_seen={} load1={}",
                variant.name(),
                drained.seconds,
                rate / base,
                span_rate / span_base,
                drained.fetches,
                jobs as f64 / drained.fetches.max(1) as f64,
                drained.max_executing,
                load1(),
            );
        }
    }
    println!();
    println!(
        "| variant | jobs/s (median of {}) | ratio to local (median) | span ratio (median) | ratios per round |",
        settings.rounds
    );
    println!("| --- | --- | --- | --- | --- |");
    for (i, variant) in Variant::ALL.into_iter().enumerate() {
        let per_round: Vec<String> = ratios[i].iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "| {} | {:.0} | {:.3} | {:.3} | {} |",
            variant.name(),
            median(&mut rates[i].clone()),
            median(&mut ratios[i].clone()),
            median(&mut span_ratios[i].clone()),
            per_round.join(", ")
        );
    }
    if !floors.is_empty() {
        let floor = median(&mut floors.clone());
        println!(
            "| floor (run.sh 100 2 {}s) | {floor:.0} | local/floor {:.3} | | {} |",
            settings.floor_secs,
            median(&mut rates[0].clone()) / floor,
            floors
                .iter()
                .map(|f| format!("{f:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!();
    Ok(())
}

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

// ---------------------------------------------------------------------------------------------
// Part 2: the rate limit over a minute

async fn rate(db: &BenchDb, client: &PgPool, settings: &Settings) -> Result<(), BoxError> {
    const PERIOD: i64 = 60;
    let queues: [(&str, u32, i64, Limits); 2] = [
        (
            "rate",
            600,
            1,
            Limits::new().rate(RateLimit::new(600, Duration::from_secs(PERIOD as u64))),
        ),
        (
            "rate_args",
            60,
            10,
            Limits::new().rate(
                RateLimit::new(60, Duration::from_secs(PERIOD as u64))
                    .partitioned(Partition::args(["tenant_id"])),
            ),
        ),
    ];
    reset(client).await?;
    for (queue, _, tenants, _) in &queues {
        preinsert(client, queue, 2_000, *tenants, 1).await?;
    }
    settle(client).await?;
    println!(
        "# rate: {NODES} nodes x local limit {LOCAL}, backlog 2000 per queue, run {} s",
        settings.rate_secs
    );
    let specs: Vec<(&str, Option<&Limits>)> = queues
        .iter()
        .map(|(queue, _, _, limits)| (*queue, Some(limits)))
        .collect();
    let nodes = start_nodes(db, &specs).await?;
    tokio::time::sleep(Duration::from_secs(settings.rate_secs)).await;
    stop_nodes(nodes).await;
    println!(
        "| queue | limit | keys | starts | max starts in any {PERIOD} s window (per key) | within limit | \
         mean / min time from a start to the start `allowed` later | steady-state fraction of the limit |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (queue, allowed, tenants, _) in &queues {
        // Windows [t, t + period) from every start, per key; and the time from each start to
        // the one `allowed` places later (no window of the period may hold both).
        let (starts, max_window, mean_gap, min_gap): (i64, i64, Option<f64>, Option<f64>) =
            sqlx::query_as(
                "WITH s AS (
                   SELECT CASE WHEN $3 > 1 THEN args->>'tenant_id' ELSE '' END AS key,
                          attempted_at AS at, id
                   FROM oban_jobs WHERE queue = $1 AND attempted_at IS NOT NULL
                 ), w AS (
                   SELECT count(*) OVER (PARTITION BY key ORDER BY at
                            RANGE BETWEEN CURRENT ROW
                                  AND make_interval(secs => $4) - interval '1 microsecond' FOLLOWING)
                            AS in_window,
                          extract(epoch FROM lead(at, $2) OVER (PARTITION BY key ORDER BY at, id) - at)
                            AS gap
                   FROM s
                 )
                 SELECT count(*), coalesce(max(in_window), 0), avg(gap)::float8, min(gap)::float8
                 FROM w",
            )
            .bind(*queue)
            .bind(*allowed as i32)
            .bind(*tenants)
            .bind(PERIOD as f64)
            .fetch_one(client)
            .await?;
        let (mean_gap, min_gap) = (mean_gap.unwrap_or(f64::NAN), min_gap.unwrap_or(f64::NAN));
        let limit = if *tenants > 1 {
            format!("{allowed}/{PERIOD} s per tenant_id")
        } else {
            format!("{allowed}/{PERIOD} s")
        };
        println!(
            "| {queue} | {limit} | {tenants} | {starts} | {max_window} | {} | {mean_gap:.2} s / {min_gap:.2} s | {:.1} % |",
            if max_window <= i64::from(*allowed) { "yes" } else { "NO" },
            100.0 * PERIOD as f64 / mean_gap,
        );
    }
    println!();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Part 3: passing over a full partition's backlog

async fn walk(client: &PgPool) -> Result<(), BoxError> {
    const BACKLOG: i64 = 100_000;
    const OTHERS: i64 = 2_000;
    const CALLS: usize = 20;
    const DEMAND: u32 = 20;
    let engine = PostgresEngine::new(client.clone());
    let by = vec!["limbench".to_owned(), "walk".to_owned()];
    reset(client).await?;
    engine
        .queue_limits_put(
            "walk",
            Some(
                &Limits::new().global(
                    GlobalLimit::new(PER_TENANT).partitioned(Partition::args(["tenant_id"])),
                ),
            ),
        )
        .await?;
    // Tenant 0's backlog first (an hour old), the other tenants' jobs behind it (a minute old).
    sqlx::query(
        "INSERT INTO oban_jobs (state, queue, worker, args, max_attempts, scheduled_at)
         SELECT 'available', 'walk', $1, jsonb_build_object('tenant_id', 0, 'n', g), 1,
                timezone('UTC', now()) - interval '1 hour'
         FROM generate_series(1, $2::int8) g",
    )
    .bind(Noop::NAME)
    .bind(BACKLOG)
    .execute(client)
    .await?;
    preinsert(client, "walk", OTHERS, OTHERS, 60).await?;
    // Tenant 0 ... and `OTHERS` mod `OTHERS` = 0 too: move that one to tenant `OTHERS`.
    sqlx::query(
        "UPDATE oban_jobs SET args = jsonb_set(args, '{tenant_id}', to_jsonb($1::int8))
         WHERE queue = 'walk' AND args->>'tenant_id' = '0'
           AND scheduled_at > timezone('UTC', now()) - interval '30 minutes'",
    )
    .bind(OTHERS)
    .execute(client)
    .await?;
    // Tenant 0 full: two of its jobs executing.
    sqlx::query(
        "UPDATE oban_jobs SET state = 'executing', attempt = 1,
                attempted_at = timezone('UTC', now()), attempted_by = ARRAY['limbench', 'held']
         WHERE id IN (SELECT id FROM oban_jobs WHERE queue = 'walk' ORDER BY id LIMIT 2)",
    )
    .execute(client)
    .await?;
    settle(client).await?;

    println!(
        "# walk: global limit {PER_TENANT} per tenant_id; fetches of {DEMAND} through \
         Engine::job_fetch_limited, {CALLS} calls after 2 warm-up calls"
    );
    println!("| case | median ms | p90 ms | max ms | jobs per fetch |");
    println!("| --- | --- | --- | --- | --- |");
    let measure = |label: &'static str, limited: bool| {
        let engine = &engine;
        let by = &by;
        async move {
            let mut times = Vec::new();
            let mut claimed = 0usize;
            for call in 0..CALLS + 2 {
                let started = Instant::now();
                let jobs = if limited {
                    engine.job_fetch_limited("walk", DEMAND, by).await?
                } else {
                    engine.job_fetch_available("walk", DEMAND, by, None).await?
                };
                let took = started.elapsed().as_secs_f64() * 1000.0;
                if jobs.iter().any(|job| job.args["tenant_id"] == 0) && limited {
                    return Err::<(), BoxError>("a job of the full partition was claimed".into());
                }
                if call >= 2 {
                    times.push(took);
                    claimed += jobs.len();
                }
            }
            times.sort_by(f64::total_cmp);
            println!(
                "| {label} | {:.2} | {:.2} | {:.2} | {:.1} |",
                percentile(&times, 50.0),
                percentile(&times, 90.0),
                times[times.len() - 1],
                claimed as f64 / CALLS as f64
            );
            Ok(())
        }
    };
    measure(
        "limited, 100,000 jobs of the full partition at the head",
        true,
    )
    .await?;
    sqlx::query(
        "DELETE FROM oban_jobs WHERE queue = 'walk' AND state = 'available'
           AND args->>'tenant_id' = '0'",
    )
    .execute(client)
    .await?;
    settle(client).await?;
    measure("limited, no backlog at the head", true).await?;
    // For reference: the plain claim (it ignores the limits) on the same table.
    measure("plain oban_fetch_available (no limits)", false).await?;
    println!();
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "oban=warn".into()))
        .init();
    let settings = Settings::read()?;
    JOB_MS.store(settings.job_ms, Ordering::Relaxed);
    eprintln!(
        "# {} {} cores, load {}",
        chrono::Utc::now().format("%FT%TZ"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let db = BenchDb::create().await?;
    let client = db.pool(4).await?;
    let result = async {
        oban::migrate(&client).await?;
        if settings.throughput {
            throughput(&db, &client, &settings).await?;
        }
        if settings.rate {
            rate(&db, &client, &settings).await?;
        }
        if settings.walk {
            walk(&client).await?;
        }
        Ok::<(), BoxError>(())
    }
    .await;
    client.close().await;
    db.drop_database().await?;
    result
}
