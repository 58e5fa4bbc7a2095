//! The hot path's storage details against a real PostgreSQL: fetching after a cursor, what a
//! wake-up does to it, and tags that need quoting on the way in. (The insert notifications'
//! throttle is unit-tested beside it in `oban-core/src/engines/postgres.rs`.)

mod common;

use std::time::Duration;

use common::wait;
use common::workers::Nap;
use oban::engine::{Engine, FetchCursor};
use oban::engines::postgres::PostgresEngine;
use oban::{JobBuilder, NewJob, Oban};
use serde_json::json;
use sqlx::PgPool;

fn by() -> Vec<String> {
    vec!["test-node".to_owned(), uuid::Uuid::new_v4().to_string()]
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_fetch_after_a_cursor_takes_only_later_jobs_and_one_from_the_head_takes_the_rest() {
    let pool = common::test_pool().await;
    let engine = PostgresEngine::new(pool.clone());
    let jobs = (0..4)
        .map(|n| NewJob::new("Test.Nap", json!({ "ms": n })).priority(3))
        .collect();
    oban::insert_all(&pool, jobs).await.unwrap();

    let first = engine
        .job_fetch_available("default", 2, &by(), None)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let cursor = first.iter().map(FetchCursor::of).max();

    // Sorts before the cursor: a higher priority, and a scheduled time in the past.
    let urgent = NewJob::new("Test.Nap", json!({ "ms": 99 })).priority(0);
    let urgent = oban::insert_all(&pool, vec![urgent]).await.unwrap()[0].id;

    let after = engine
        .job_fetch_available("default", 10, &by(), cursor)
        .await
        .unwrap();
    let later: Vec<i64> = after.iter().map(|job| job.id).collect();
    assert_eq!(
        later,
        [first[1].id + 1, first[1].id + 2],
        "only jobs after the cursor"
    );

    let head = engine
        .job_fetch_available("default", 10, &by(), None)
        .await
        .unwrap();
    assert_eq!(head.iter().map(|job| job.id).collect::<Vec<_>>(), [urgent]);
}

#[tokio::test]
async fn an_urgent_job_inserted_while_a_backlog_drains_runs_before_the_backlog_ends() {
    let pool = common::test_pool().await;
    let backlog: Vec<NewJob> = (0..200)
        .map(|_| JobBuilder::new(Nap { ms: 5 }).priority(5).build().unwrap())
        .collect();
    oban::insert_all(&pool, backlog).await.unwrap();
    // No poll for a minute: only the insert's wake-up can send the producer back to the head.
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("default", 2)
        .register::<Nap>()
        .poll_interval(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    // Well into the backlog: the producer now fetches after a cursor.
    wait::wait_until_every(
        "20 backlog jobs to complete",
        Duration::from_secs(30),
        Duration::from_millis(5),
        async || {
            count(
                &pool,
                "SELECT count(*) FROM oban_jobs WHERE state = 'completed' AND priority = 5",
            )
            .await
                >= 20
        },
    )
    .await;
    let urgent = JobBuilder::new(Nap { ms: 0 })
        .priority(0)
        .insert(&oban)
        .await
        .unwrap();
    wait::wait_for_state(&pool, urgent.id, "completed").await;
    let waiting = count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE state = 'available' AND priority = 5",
    )
    .await;
    assert!(
        waiting > 50,
        "the urgent job ran only once {} of 200 backlog jobs were left",
        waiting
    );
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn tags_that_need_quoting_are_stored_as_given() {
    let pool = common::test_pool().await;
    let tags = [
        "plain",
        "with \"quotes\"",
        "back\\slash",
        "a,b",
        "{braces}",
        "NULL",
        " spaced ",
        "ünïcödé",
    ];
    let job = tags
        .iter()
        .fold(NewJob::new("Test.Nap", json!({ "ms": 0 })), |job, tag| {
            job.tag(*tag)
        });
    let inserted = oban::insert_all(&pool, vec![job]).await.unwrap();
    assert_eq!(inserted[0].tags, tags, "the returned job");
    let stored: Vec<String> = sqlx::query_scalar("SELECT unnest(tags) FROM oban_jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored, tags, "the stored row");
    assert_eq!(common::fetch_job(&pool, inserted[0].id).await.tags, tags);
}
