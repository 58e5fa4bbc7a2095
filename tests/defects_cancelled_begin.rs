//! Issue 17, the flaky clean shutdown: an operation dropped while its `BEGIN` was on the wire
//! left its pooled connection inside a transaction nobody commits (sqlx 0.8 raises the
//! transaction depth its rollback guard checks only after the answer). The next statements on
//! that connection ran inside it and were lost: the producer's `DELETE` of its heartbeat row at
//! shutdown, a job's ack. The node drops an election in flight when it stops, so a clean stop
//! sometimes left the row (`lifecycle.rs`, `shutdown_waits_for_a_running_job_within_the_grace_period`).
//!
//! Each case catches the operation at its `BEGIN`: polled by hand until the server shows its
//! session in a transaction whose last statement is `BEGIN`, then dropped before it reads the
//! answer (see `drop_at_begin`). A heartbeat written through the same pool (one connection) must then be visible from
//! another connection, and no session may be left in a transaction.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use oban::engine::{Engine, Peer};
use oban::engines::postgres::PostgresEngine;
use oban::unique::UniqueOptions;
use oban::NewJob;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use common::wait;

/// A pool of one connection to the test database, so the connection an operation leaves behind
/// is the one the next statement gets; connected, and not pinged on acquire, so the first poll
/// of an operation sends its first statement.
async fn one_connection(db: &str) -> PgPool {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect(&common::database_url_for(db))
        .await
        .expect("connect to the test database");
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
    pool
}

/// Where the operation's session stands: `Some(true)` inside a transaction whose last statement
/// is `BEGIN`, `Some(false)` past it, `None` not in a transaction.
async fn session_at_begin(observer: &PgPool) -> Option<bool> {
    sqlx::query_scalar(
        "SELECT bool_or(btrim(query) = 'BEGIN') FROM pg_stat_activity
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(observer)
    .await
    .unwrap()
}

/// Polls operations from `operation` until one is caught with its `BEGIN` run by the server and
/// its answer unread, then drops it there. Only these polls drive an operation, but one poll can
/// cover several round trips when the server answers fast, so an operation may get past its
/// `BEGIN` unseen: it is dropped (a transaction sqlx knows of is rolled back) and another tried.
async fn drop_at_begin<T, F: Future<Output = T>>(
    observer: &PgPool,
    mut operation: impl FnMut() -> F,
) {
    for _ in 0..200 {
        let mut current = pin!(operation());
        'polls: for _ in 0..20 {
            let polled =
                std::future::poll_fn(|cx| Poll::Ready(current.as_mut().poll(cx).is_ready()));
            if polled.await {
                break 'polls; // done without being caught: try another
            }
            let started = tokio::time::Instant::now();
            while started.elapsed() < Duration::from_millis(200) {
                match session_at_begin(observer).await {
                    Some(true) => return,        // dropped here, its BEGIN answered but unread
                    Some(false) => break 'polls, // past its BEGIN: try another
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }
    }
    panic!("no operation was caught at its BEGIN");
}

/// After the drop: a statement through `pool` is committed, and no session of the database is
/// left in a transaction.
async fn assert_pool_commits(pool: &PgPool, observer: &PgPool) {
    let engine = PostgresEngine::new(pool.clone());
    let uuid = uuid::Uuid::new_v4();
    wait::within(
        "a heartbeat after the dropped operation",
        Duration::from_secs(10),
        engine.producer_heartbeat(uuid, "after", "default", json!({})),
    )
    .await
    .expect("heartbeat");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_producers WHERE uuid = $1")
        .bind(uuid)
        .fetch_one(observer)
        .await
        .unwrap();
    assert_eq!(
        rows, 1,
        "the heartbeat is committed, not run inside the dropped operation's transaction"
    );
    wait::wait_until(
        "no session of the database left in a transaction",
        Duration::from_secs(10),
        async || {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            )
            .fetch_one(observer)
            .await
            .unwrap();
            open == 0
        },
    )
    .await;
}

async fn setup() -> (PgPool, PgPool) {
    let (observer, db) = common::empty_database().await;
    oban::migrate(&observer).await.expect("migrate");
    let pool = one_connection(&db).await;
    (observer, pool)
}

#[tokio::test]
async fn an_election_dropped_at_its_begin_leaves_no_transaction_open() {
    let (observer, pool) = setup().await;
    let engine = PostgresEngine::new(pool.clone());
    drop_at_begin(&observer, || {
        engine.leader_elect("oban", "node", Duration::from_secs(30))
    })
    .await;
    assert_pool_commits(&pool, &observer).await;
}

#[tokio::test]
async fn a_unique_insert_dropped_at_its_begin_leaves_no_transaction_open() {
    let (observer, pool) = setup().await;
    let job = NewJob::new("Test.Unique", json!({"id": 1})).unique(UniqueOptions::new());
    drop_at_begin(&observer, || oban::insert_all(&pool, vec![job.clone()])).await;
    assert_pool_commits(&pool, &observer).await;
}
