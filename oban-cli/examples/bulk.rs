//! The bulk figure: `oban retry` and `oban delete` over 100,000 jobs, their time, and evidence
//! that no lock on `oban_jobs` outlives one batch.
//!
//! ```text
//! cargo run --release -p oban-cli --example bulk [JOBS] [BATCH]
//! ```
//!
//! It makes a database of its own on the server of `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), inserts JOBS scheduled jobs (100,000), then
//! runs what `oban retry --state scheduled --yes --batch BATCH` and `oban delete --all --yes
//! --batch BATCH` run (`Admin::retry`, `Admin::delete`: the CLI adds only the count, the
//! question and the bar). While each runs, two probes watch:
//!
//! - a writer updates one matching row after another in its own short transaction (the rows a
//!   node's ack or a second operator would touch), under `lock_timeout = 5s`; its longest wait
//!   is how long a lock held by the bulk operation can block anyone;
//! - a sampler reads `pg_locks` every 5 ms and records the oldest transaction of another
//!   session holding a lock on `oban_jobs`: the longest-lived lock the operation took.
//!
//! Both are compared with the longest batch (the time between two progress calls). A lock held
//! across batches would show as a probe wait or lock age far beyond one batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oban::{JobState, NewJob};
use oban_core::admin::{Admin, JobQuery};
use oban_core::{DbPool, JobFilter, Prefix};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: u64 = args
        .next()
        .map_or(100_000, |n| n.parse().expect("JOBS is a number"));
    let batch: u32 = args
        .next()
        .map_or(1_000, |n| n.parse().expect("BATCH is a number"));
    let (pool, name) = database().await;
    oban::migrate(&pool).await.expect("migrate");

    let started = Instant::now();
    let mut ids = Vec::with_capacity(jobs as usize);
    let mut left = jobs;
    while left > 0 {
        let n = left.min(5_000);
        let chunk: Vec<NewJob> = (0..n)
            .map(|i| {
                NewJob::new("Bench.Bulk", json!({"i": i}))
                    .queue("bulk")
                    .schedule_in(Duration::from_secs(3_600))
            })
            .collect();
        let inserted = oban::insert_all(&pool, chunk).await.expect("insert");
        ids.extend(inserted.iter().map(|job| job.id));
        left -= n;
    }
    println!(
        "inserted {jobs} scheduled jobs in {:.1}s; batch {batch}",
        started.elapsed().as_secs_f64()
    );

    let admin = Admin::new(DbPool::from(pool.clone()), Prefix::PUBLIC).expect("admin");
    let scheduled = JobQuery::new(JobFilter::new().state(JobState::Scheduled));
    let figure = measure(&pool, &ids, "retry", async |progress| {
        admin.retry(&scheduled, batch, progress).await
    })
    .await;
    figure.print(&format!(
        "oban retry --state scheduled --yes --batch {batch}"
    ));
    assert_eq!(figure.changed, jobs, "every job retried");

    let every = JobQuery::new(JobFilter::all());
    let figure = measure(&pool, &ids, "delete", async |progress| {
        admin.delete(&every, batch, progress).await
    })
    .await;
    figure.print(&format!("oban delete --all --yes --batch {batch}"));
    assert_eq!(figure.changed, jobs, "every job deleted");

    pool.close().await;
    drop_database(&name).await;
}

/// What one bulk run measured.
struct Figure {
    changed: u64,
    total: Duration,
    batches: u64,
    longest_batch: Duration,
    probe_writes: u64,
    probe_longest_wait: Duration,
    lock_samples: u64,
    oldest_lock: Duration,
}

impl Figure {
    fn print(&self, command: &str) {
        println!("\n{command}");
        println!(
            "  {} jobs in {:.2}s ({:.0} jobs/s), {} batches, longest batch {:.1} ms",
            self.changed,
            self.total.as_secs_f64(),
            self.changed as f64 / self.total.as_secs_f64(),
            self.batches,
            ms(self.longest_batch),
        );
        println!(
            "  probe writer: {} single-row updates of matching rows, longest wait {:.1} ms",
            self.probe_writes,
            ms(self.probe_longest_wait)
        );
        println!(
            "  pg_locks: {} samples, oldest transaction holding a lock on oban_jobs {:.1} ms",
            self.lock_samples,
            ms(self.oldest_lock)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

async fn measure(
    pool: &PgPool,
    ids: &[i64],
    what: &str,
    run: impl AsyncFnOnce(&mut (dyn FnMut(u64) + Send)) -> oban::Result<u64>,
) -> Figure {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(probe_writer(pool.clone(), ids.to_vec(), stop.clone()));
    let sampler = tokio::spawn(lock_sampler(pool.clone(), stop.clone()));
    // Let both probes start before the operation.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let mut last = started;
    let mut batches = 0;
    let mut longest_batch = Duration::ZERO;
    let mut progress = |_done: u64| {
        let now = Instant::now();
        longest_batch = longest_batch.max(now - last);
        last = now;
        batches += 1;
    };
    let changed = run(&mut progress)
        .await
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    let total = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (probe_writes, probe_longest_wait) = writer.await.expect("writer");
    let (lock_samples, oldest_lock) = sampler.await.expect("sampler");
    Figure {
        changed,
        total,
        batches,
        longest_batch,
        probe_writes,
        probe_longest_wait,
        lock_samples,
        oldest_lock,
    }
}

/// Updates one row after another (walking the ids from the end, so it meets rows the
/// operation has not reached yet and rows it is changing), each in a transaction of its own;
/// returns how many and the longest wait.
async fn probe_writer(pool: PgPool, ids: Vec<i64>, stop: Arc<AtomicBool>) -> (u64, Duration) {
    let mut conn = pool.acquire().await.expect("probe connection");
    sqlx::query("SET lock_timeout = '5s'")
        .execute(&mut *conn)
        .await
        .expect("lock_timeout");
    let mut writes = 0;
    let mut longest = Duration::ZERO;
    let mut index = ids.len();
    while !stop.load(Ordering::Relaxed) {
        index = if index == 0 { ids.len() - 1 } else { index - 1 };
        let started = Instant::now();
        sqlx::query("UPDATE oban_jobs SET priority = priority WHERE id = $1")
            .bind(ids[index])
            .execute(&mut *conn)
            .await
            .expect("the probe's update waited longer than lock_timeout");
        longest = longest.max(started.elapsed());
        writes += 1;
        // Stride through the table: a write every ~2 ms over the whole range.
        index = index.saturating_sub(97);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (writes, longest)
}

/// Samples `pg_locks` every 5 ms; returns the number of samples and the age of the oldest
/// transaction seen holding a lock on `oban_jobs` (other than this session).
async fn lock_sampler(pool: PgPool, stop: Arc<AtomicBool>) -> (u64, Duration) {
    let mut conn = pool.acquire().await.expect("sampler connection");
    let mut samples = 0;
    let mut oldest = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let age: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM max(clock_timestamp() - a.xact_start))::float8
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.relation = 'oban_jobs'::regclass AND l.granted
                AND l.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL",
        )
        .fetch_one(&mut *conn)
        .await
        .expect("sample pg_locks");
        if let Some(age) = age {
            oldest = oldest.max(Duration::from_secs_f64(age.max(0.0)));
        }
        samples += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (samples, oldest)
}

fn server() -> PgConnectOptions {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
        .parse()
        .expect("DATABASE_URL parses")
}

async fn database() -> (PgPool, String) {
    let mut admin = PgConnection::connect_with(&server())
        .await
        .expect("connect");
    let name = format!("oban_bulk_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create database");
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(server().database(&name).disable_statement_logging())
        .await
        .expect("connect to the bench database");
    (pool, name)
}

async fn drop_database(name: &str) {
    let mut admin = PgConnection::connect_with(&server())
        .await
        .expect("connect");
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}
