//! Transactional receipts, the flagship example: unique jobs per recipient and template, a mail
//! provider that fails now and then, and a delivery log in the application's own table.
//!
//! ```text
//! cargo run --example email_receipts                  # embedded SQLite file, no server
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example email_receipts
//! ```
//!
//! Transient provider errors are retried with backoff, invalid addresses are discarded at once,
//! rate limits snooze the job, and enqueuing a receipt twice inserts it once.

mod receipts;

use std::time::Duration;

use oban::{DbPool, JobFilter, JobState, Oban};
use receipts::{DeliveryLog, FakeProvider, SendReceipt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "oban=warn".into()))
        .init();

    // One pool for the application's tables and the jobs: DATABASE_URL, or the SQLite file.
    let db = DbPool::from_env().await?;
    let log = match &db {
        DbPool::Postgres(pool) => DeliveryLog::Postgres(pool.clone()),
        DbPool::Sqlite(pool) => DeliveryLog::Sqlite(pool.clone()),
    };
    log.migrate().await?;

    let oban = Oban::builder()
        .db_pool(db)
        .queue("mailers", 10)
        .state(FakeProvider::default())
        .state(log.clone())
        .start()
        .await?;

    // A run id keeps reruns apart: recipients are plus-addressed per run.
    let run = chrono::Utc::now().timestamp_millis();
    let orders = [
        (1, format!("ada+{run}@example.com")),
        (2, format!("flaky-bob+{run}@example.com")),
        (3, format!("busy-cy+{run}@example.com")),
        (4, format!("dee+{run}-at-example.com")),
        (5, format!("eve+{run}@example.com")),
        (6, format!("flaky-fay+{run}@example.com")),
    ];
    let mut ids = Vec::new();
    let mut duplicates = 0;
    // Every receipt is enqueued twice, as a retried HTTP request would: the second is suppressed.
    for _ in 0..2 {
        for (order_id, recipient) in &orders {
            let job = SendReceipt::new(*order_id, recipient.clone(), "receipt".into())
                .insert(&oban)
                .await?;
            if job.conflict {
                duplicates += 1;
            } else {
                ids.push(job.id);
            }
        }
    }

    // Wait until every receipt is sent or given up on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let finished = loop {
        let jobs = oban.jobs(&JobFilter::ids(ids.clone())).await?;
        if jobs.iter().all(|job| job.state.is_final()) {
            break jobs;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the receipts did not finish within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    oban.shutdown(Duration::from_secs(5)).await;

    let count = |pred: &dyn Fn(&oban::Job) -> bool| finished.iter().filter(|job| pred(job)).count();
    println!(
        "receipts: {} enqueued, {duplicates} duplicates suppressed",
        ids.len()
    );
    println!(
        "sent: {} ({} after a retry, {} after a snooze), discarded: {}",
        count(&|j| j.state == JobState::Completed),
        count(&|j| j.state == JobState::Completed && !j.errors.is_empty()),
        count(&|j| j.meta.get("snoozed").is_some()),
        count(&|j| j.state == JobState::Discarded),
    );
    for job in &finished {
        println!(
            "  #{:<4} {:<40} {:<10} attempts: {}",
            job.id,
            job.args["recipient"].as_str().unwrap_or_default(),
            job.state,
            job.attempt
        );
    }
    println!(
        "delivery log, last attempt per job (all runs): {:?}",
        log.final_statuses().await?
    );
    Ok(())
}
