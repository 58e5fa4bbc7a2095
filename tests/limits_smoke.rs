//! First checks of fleet-wide limits (issue 21); the full suite is tests/limits.rs.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::time::Duration;

use oban::limits::{GlobalLimit, Limits, Partition, RateLimit};
use oban::{worker, JobFilter, JobState};

use harness::{Db, Kind};

#[worker(queue = "limited", max_attempts = 1)]
async fn nap(tenant: u32, millis: u64) -> Result<(), std::io::Error> {
    let _ = tenant;
    tokio::time::sleep(Duration::from_millis(millis)).await;
    Ok(())
}

async fn executing_by_tenant(db: &Db) -> std::collections::HashMap<u64, usize> {
    let mut counts = std::collections::HashMap::new();
    for job in db.jobs(JobFilter::new().state(JobState::Executing)).await {
        *counts
            .entry(job.args["tenant"].as_u64().unwrap())
            .or_default() += 1;
    }
    counts
}

async fn global_limit_holds(kind: Kind, partition: Partition, allowed: usize) {
    let db = Db::new(kind).await;
    let limits =
        Limits::new().global(GlobalLimit::new(allowed as u32).partitioned(partition.clone()));
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(
            db.builder(&format!("n{i}"))
                .queue("limited", 5)
                .queue_limits("limited", limits.clone())
                .start()
                .await
                .unwrap(),
        );
    }
    let jobs: Vec<_> = (0..60)
        .map(|i| Nap::new(i % 3, 20).build().unwrap())
        .collect();
    db.insert_via_pool(jobs).await;
    let mut most = 0;
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let counts = executing_by_tenant(&db).await;
            let worst = match partition {
                Partition::None => counts.values().sum(),
                _ => counts.values().copied().max().unwrap_or(0),
            };
            most = most.max(worst);
            assert!(worst <= allowed, "{counts:?} exceeds {allowed}");
            if db.count(JobFilter::new().state(JobState::Completed)).await == 60 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    })
    .await;
    finished.expect("every job completes");
    assert_eq!(most, allowed, "the limit was reached");
    for node in nodes {
        node.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn a_global_limit_holds_across_three_nodes_on_postgres() {
    global_limit_holds(Kind::Postgres, Partition::None, 4).await;
}

#[tokio::test]
async fn a_partitioned_global_limit_holds_per_partition_on_postgres() {
    global_limit_holds(Kind::Postgres, Partition::args(["tenant"]), 2).await;
}

#[tokio::test]
async fn a_global_limit_holds_on_sqlite() {
    global_limit_holds(Kind::Sqlite, Partition::None, 4).await;
}

#[tokio::test]
async fn a_partitioned_global_limit_holds_per_partition_on_sqlite() {
    global_limit_holds(Kind::Sqlite, Partition::args(["tenant"]), 2).await;
}

async fn rate_limit_holds(kind: Kind) {
    let db = Db::new(kind).await;
    let limits = Limits::new().rate(RateLimit::new(10, Duration::from_secs(1)));
    let node = db
        .builder("rate")
        .queue("limited", 20)
        .queue_limits("limited", limits)
        .start()
        .await
        .unwrap();
    let jobs: Vec<_> = (0..30)
        .map(|i| Nap::new(i % 3, 1).build().unwrap())
        .collect();
    db.insert_via_pool(jobs).await;
    tokio::time::timeout(Duration::from_secs(30), async {
        while db.count(JobFilter::new().state(JobState::Completed)).await < 30 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("every job completes");
    let mut starts: Vec<_> = db
        .jobs(JobFilter::new())
        .await
        .into_iter()
        .map(|job| job.attempted_at.unwrap())
        .collect();
    starts.sort();
    for (i, start) in starts.iter().enumerate() {
        let within = starts[i..]
            .iter()
            .take_while(|later| **later - *start < chrono::Duration::seconds(1))
            .count();
        assert!(within <= 10, "{within} starts within a second from {start}");
    }
    node.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_rate_limit_holds_on_postgres() {
    rate_limit_holds(Kind::Postgres).await;
}

#[tokio::test]
async fn a_rate_limit_holds_on_sqlite() {
    rate_limit_holds(Kind::Sqlite).await;
}
