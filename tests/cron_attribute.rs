//! `#[worker(cron = ..)]`: the schedule travels with the worker, and a node inserts its jobs.

mod common;

use std::time::Duration;

use common::wait;
use oban::{worker, Oban, Worker};

/// Runs every minute, in Paris.
#[worker(queue = "maintenance", cron = "* * * * *", timezone = "Europe/Paris", tags = ["cron"])]
async fn tick() {}

/// Runs at two schedules.
#[worker(cron = ["0 3 * * *", "@hourly"])]
async fn nightly_report() {}

#[test]
fn the_schedules_are_part_of_the_worker() {
    assert_eq!(Tick::CRON, &[("* * * * *", "Europe/Paris")]);
    assert_eq!(
        NightlyReport::CRON,
        &[("0 3 * * *", "UTC"), ("@hourly", "UTC")]
    );
}

#[tokio::test]
async fn a_node_inserts_the_workers_cron_jobs() {
    let pool = common::test_pool().await;
    // The leader's first cron pass looks back over its catch-up window (TTL + 1 minute), so an
    // every-minute schedule has one or two due minutes at once.
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("maintenance", 2)
        .start()
        .await
        .unwrap();
    assert!(oban.is_leader());
    wait::wait_for_count(
        &pool,
        "SELECT least(count(*), 1) FROM oban_jobs WHERE worker = 'Tick' AND meta->>'cron' = 'true' AND queue = 'maintenance'",
        1,
        Duration::from_secs(10),
    )
    .await;
    let (tz, tags): (String, Vec<String>) = sqlx::query_as(
        "SELECT meta->>'cron_tz', tags FROM oban_jobs WHERE worker = 'Tick' LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (tz.as_str(), tags),
        ("Europe/Paris", vec!["cron".to_owned()])
    );
    oban.shutdown(Duration::from_secs(1)).await;
}
