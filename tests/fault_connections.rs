//! Fault suite (b): the server terminates every connection of a running node (its pool and its
//! LISTEN connection) three times mid-run. All jobs finish, none is left `executing` or
//! `available`, and a job inserted afterwards from elsewhere starts within 2 s.

mod common;

use std::time::Duration;

use common::wait::{self, wait_until_every};
use common::workers::Nap;
use oban::{JobBuilder, NewJob, Oban};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

const JOBS: i64 = 3_000;
/// The node's connections carry this name, so the test can terminate exactly them.
const APPLICATION: &str = "oban-fault-node";

async fn completed(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM oban_jobs WHERE state = 'completed'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Terminates every connection of the node; returns how many there were.
async fn terminate_node_connections(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
         FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(APPLICATION)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_suite_connections_terminated_three_times_lose_nothing() {
    let (direct, name) = common::empty_database().await;
    oban::migrate(&direct).await.unwrap();
    let options: PgConnectOptions = common::database_url_for(&name).parse().unwrap();
    let node_pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(options.application_name(APPLICATION))
        .await
        .unwrap();
    let oban = Oban::builder()
        .pool(node_pool)
        .queue("default", 10)
        .register::<Nap>()
        .start()
        .await
        .unwrap();
    assert!(oban.notifications_enabled(), "the node listens");

    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|_| NewJob::new("Test.Nap", json!({"ms": 15})))
        .collect();
    oban::insert_all(&direct, jobs).await.unwrap();

    for round in 1..=3 {
        let target = JOBS * round / 4;
        wait_until_every(
            format!("{target} jobs done before cut {round}"),
            Duration::from_secs(60),
            Duration::from_millis(20),
            async || completed(&direct).await >= target,
        )
        .await;
        let terminated = terminate_node_connections(&direct).await;
        assert!(
            terminated >= 2,
            "cut {round}: the pool and the listener ({terminated})"
        );
    }

    wait_until_every(
        "every job to complete",
        Duration::from_secs(60),
        Duration::from_millis(50),
        async || completed(&direct).await == JOBS,
    )
    .await;
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM oban_jobs WHERE state IN ('executing', 'available')",
    )
    .fetch_one(&direct)
    .await
    .unwrap();
    assert_eq!(left, 0, "nothing stranded");

    // A job inserted from another pool afterwards starts within 2 s.
    let late = JobBuilder::new(Nap { ms: 1 })
        .insert(&direct)
        .await
        .unwrap();
    let started =
        wait::wait_for_state_within(&direct, late.id, "completed", Duration::from_secs(2)).await;
    let waited = started.attempted_at.expect("attempted") - started.inserted_at;
    assert!(
        waited < chrono::Duration::seconds(2),
        "started {waited} after its insert"
    );
    eprintln!("fault suite (b): {JOBS} jobs, 3 cuts of every node connection, a later job started {} ms after its insert", waited.num_milliseconds());
    oban.shutdown(Duration::from_secs(2)).await;
}
