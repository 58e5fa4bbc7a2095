//! Figures for workflows on PostgreSQL: how soon a step starts after its dependency completes,
//! and what dependencies cost in throughput. Prints figures; asserts nothing.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run --release --example workflow_bench
//! ```
//!
//! Each part runs on a database of its own (`oban_wfbench_<unix time>_<uuid>`), dropped after.
//!
//! - `release`: 200 workflows A -> B, inserted one every 5 ms; for each, B's `attempted_at`
//!   minus A's `completed_at` (the ack that completed A also released B), p50/p99/max. Run
//!   idle, then while a flood of plain jobs (inserted 500 every 50 ms) runs on the same queue,
//!   then on another queue of the same node.
//! - `fan`: a 1 -> 10,000 -> 1 workflow, from the insert to the last step's completion, against
//!   the same 10,002 jobs inserted without dependencies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oban::workflow::Workflow;
use oban::{worker, JobFilter, JobState, Oban};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const WORKFLOWS: usize = 200;
const WIDTH: usize = 10_000;

#[worker(queue = "default", max_attempts = 1)]
async fn step_a() -> Result<(), std::io::Error> {
    Ok(())
}

#[worker(queue = "default", max_attempts = 1)]
async fn step_b() -> Result<(), std::io::Error> {
    Ok(())
}

#[worker(queue = "default", max_attempts = 1)]
async fn flood() -> Result<(), std::io::Error> {
    Ok(())
}

/// A database of its own on the server of DATABASE_URL.
struct BenchDb {
    admin: PgConnectOptions,
    name: String,
}

impl BenchDb {
    async fn create() -> Result<Self, BoxError> {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let admin: PgConnectOptions = url.parse()?;
        let admin = admin.disable_statement_logging();
        let mut conn = PgConnection::connect_with(&admin).await?;
        let name = format!(
            "oban_wfbench_{}_{}",
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

/// A node on a fresh database: queue `default` (and `bulk`) at concurrency 50.
async fn node() -> Result<(BenchDb, PgPool, Oban), BoxError> {
    let db = BenchDb::create().await?;
    let client = db.pool(4).await?;
    oban::migrate(&client).await?;
    let oban = Oban::builder()
        .pool(db.pool(20).await?)
        .queue("default", 50)
        .queue("bulk", 50)
        .register::<StepA>()
        .register::<StepB>()
        .register::<Flood>()
        .migrate(false)
        .start()
        .await?;
    Ok((db, client, oban))
}

async fn finish(db: BenchDb, client: PgPool, oban: Oban) -> Result<(), BoxError> {
    oban.shutdown(Duration::from_secs(10)).await;
    client.close().await;
    db.drop_database().await
}

async fn count_completed(client: &PgPool) -> Result<i64, BoxError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM oban_jobs WHERE state = 'completed'")
            .fetch_one(client)
            .await?,
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Part (a): release latency of 200 A -> B workflows, with `flood` on queue `flood_queue`.
async fn release(flood_queue: Option<&'static str>) -> Result<(), BoxError> {
    let (db, client, oban) = node().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood_queue.map(|queue| {
        let (oban, stop) = (oban.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut inserted = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let jobs = (0..500)
                    .map(|_| Flood::new().queue(queue).build().expect("a flood job"))
                    .collect();
                inserted += oban.insert_all(jobs).await.expect("flood insert").len();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            inserted
        })
    });
    if flooder.is_some() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let started = Instant::now();
    let mut b_ids = Vec::with_capacity(WORKFLOWS);
    let mut a_ids = Vec::with_capacity(WORKFLOWS);
    for _ in 0..WORKFLOWS {
        let workflow = Workflow::new("ab").build(|wf| {
            let a = wf.add("a", StepA::new(), ());
            wf.add("b", StepB::new(), &a);
        })?;
        let jobs = workflow.insert(&oban).await?;
        a_ids.push(jobs[0].id);
        b_ids.push(jobs[1].id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let jobs = loop {
        let jobs = oban
            .jobs(&JobFilter::ids(a_ids.iter().chain(&b_ids).copied()))
            .await?;
        if jobs
            .iter()
            .filter(|j| j.state == JobState::Completed)
            .count()
            == 2 * WORKFLOWS
        {
            break jobs;
        }
        if Instant::now() > deadline {
            return Err("the workflows did not finish within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let flooded = match flooder {
        Some(task) => task.await?,
        None => 0,
    };
    let by_id: std::collections::HashMap<i64, &oban::Job> =
        jobs.iter().map(|j| (j.id, j)).collect();
    let mut gaps: Vec<f64> = a_ids
        .iter()
        .zip(&b_ids)
        .map(|(a, b)| {
            let done = by_id[a].completed_at.expect("A completed");
            let start = by_id[b].attempted_at.expect("B attempted");
            (start - done).num_microseconds().unwrap_or(0) as f64 / 1000.0
        })
        .collect();
    gaps.sort_by(f64::total_cmp);
    let completed = count_completed(&client).await?;
    println!(
        "release workflows={WORKFLOWS} flood={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} \
         seconds={:.2} flood_jobs_inserted={flooded} jobs_completed={completed}",
        flood_queue.map_or("none".to_owned(), |q| format!("queue:{q}")),
        percentile(&gaps, 50.0),
        percentile(&gaps, 99.0),
        gaps[gaps.len() - 1],
        elapsed.as_secs_f64(),
    );
    finish(db, client, oban).await
}

/// Waits until `n` jobs are completed; returns the time since `started`.
async fn until_completed(client: &PgPool, n: i64, started: Instant) -> Result<f64, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if count_completed(client).await? >= n {
            return Ok(started.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            return Err(format!("{n} jobs did not complete within 600 s").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Part (b): 1 -> 10,000 -> 1 as a workflow, then as 10,002 independent jobs.
async fn fan() -> Result<(), BoxError> {
    let total = (WIDTH + 2) as i64;
    let (db, client, oban) = node().await?;
    let workflow = Workflow::new("fan").build(|wf| {
        let first = wf.add("first", StepA::new(), ());
        let middle: Vec<_> = (0..WIDTH)
            .map(|i| wf.add(format!("m{i}"), StepA::new(), &first))
            .collect();
        wf.add("last", StepB::new(), &middle);
    })?;
    let started = Instant::now();
    workflow.insert(&oban).await?;
    let inserted = started.elapsed().as_secs_f64();
    let workflow_s = until_completed(&client, total, started).await?;
    let timeline = fan_timeline(&client).await?;
    finish(db, client, oban).await?;

    let (db, client, oban) = node().await?;
    let jobs = (0..total)
        .map(|_| StepA::new().build().expect("a job"))
        .collect();
    let started = Instant::now();
    oban.insert_all(jobs).await?;
    let plain_inserted = started.elapsed().as_secs_f64();
    let plain_s = until_completed(&client, total, started).await?;
    finish(db, client, oban).await?;

    let (wf_rate, plain_rate) = (total as f64 / workflow_s, total as f64 / plain_s);
    println!(
        "fan shape=1->{WIDTH}->1 jobs={total} workflow_s={workflow_s:.2} workflow_insert_s={inserted:.2} \
         workflow_jobs_per_s={wf_rate:.0} plain_s={plain_s:.2} plain_insert_s={plain_inserted:.2} \
         plain_jobs_per_s={plain_rate:.0} ratio={:.2}",
        wf_rate / plain_rate
    );
    println!("fan timeline_ms {timeline}");
    Ok(())
}

/// Where the workflow's time went, in ms from the first step's insert: the first step's
/// completion, the middle steps' first and last start and last completion, the last step's start.
async fn fan_timeline(client: &PgPool) -> Result<String, BoxError> {
    let row: (f64, f64, f64, f64, f64, f64) = sqlx::query_as(
        "WITH t AS (SELECT meta->>'name' AS name, inserted_at, attempted_at, completed_at            FROM oban_jobs),          z AS (SELECT min(inserted_at) AS t0 FROM t)          SELECT            extract(epoch FROM (SELECT completed_at FROM t WHERE name = 'first') - t0)::float8 * 1e3,            extract(epoch FROM (SELECT min(attempted_at) FROM t WHERE name LIKE 'm%') - t0)::float8 * 1e3,            extract(epoch FROM (SELECT max(attempted_at) FROM t WHERE name LIKE 'm%') - t0)::float8 * 1e3,            extract(epoch FROM (SELECT max(completed_at) FROM t WHERE name LIKE 'm%') - t0)::float8 * 1e3,            extract(epoch FROM (SELECT attempted_at FROM t WHERE name = 'last') - t0)::float8 * 1e3,            (SELECT count(DISTINCT completed_at) FROM t)::float8          FROM z",
    )
    .fetch_one(client)
    .await?;
    Ok(format!(
        "first_completed={:.0} middle_first_start={:.0} middle_last_start={:.0} \
         middle_last_completed={:.0} last_start={:.0} ack_statements={:.0}",
        row.0, row.1, row.2, row.3, row.4, row.5
    ))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "oban=warn".into()))
        .init();
    release(None).await?;
    release(Some("default")).await?;
    release(Some("bulk")).await?;
    fan().await
}
