//! Shared helpers for integration tests: an isolated, migrated PostgreSQL database per test.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod proxy;
pub mod workers;

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// The server tests run against: `DATABASE_URL`, else the local default.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The URL of database `name` on the test server.
pub fn database_url_for(name: &str) -> String {
    let url = database_url();
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base.to_owned(), format!("?{query}")),
        None => (url.clone(), String::new()),
    };
    let (server, _) = base.rsplit_once('/').expect("a database URL has a path");
    format!("{server}/{name}{query}")
}

/// A fresh database of its own for one test, without the schema.
pub async fn empty_database() -> (PgPool, String) {
    let admin_options: PgConnectOptions = database_url().parse().expect("DATABASE_URL parses");
    let mut admin = PgConnection::connect_with(&admin_options)
        .await
        .expect("connect to PostgreSQL");
    let stamp = chrono::Utc::now().timestamp();
    let name = format!("oban_test_{stamp}_{}", uuid::Uuid::new_v4().simple());
    // Databases of runs that crashed before cleaning up: drop those older than an hour.
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'oban_test_%' \
         AND split_part(datname, '_', 3)::bigint < $1",
    )
    .bind(stamp - 3600)
    .fetch_all(&mut admin)
    .await
    .unwrap_or_default();
    for db in stale {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect_with(admin_options.database(&name).disable_statement_logging())
        .await
        .expect("connect to the test database");
    (pool, name)
}

/// A fresh, migrated database of its own for one test.
pub async fn test_pool() -> PgPool {
    let (pool, _) = empty_database().await;
    oban::migrate(&pool).await.expect("migrate");
    pool
}

/// Polls until job `id` is in `state` (10 s at most), returning the job.
pub async fn wait_for_state(pool: &PgPool, id: i64, state: &str) -> oban::Job {
    wait_for_state_within(pool, id, state, Duration::from_secs(10)).await
}

/// Polls until job `id` is in `state`, at most `limit`.
pub async fn wait_for_state_within(
    pool: &PgPool,
    id: i64,
    state: &str,
    limit: Duration,
) -> oban::Job {
    let started = Instant::now();
    loop {
        let current: Option<String> =
            sqlx::query_scalar("SELECT state::text FROM oban_jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
                .expect("query job state");
        if current.as_deref() == Some(state) {
            return fetch_job(pool, id).await;
        }
        assert!(
            started.elapsed() < limit,
            "job {id} did not reach state `{state}` within {limit:?}; it is {current:?}: {:?}",
            fetch_job(pool, id).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `sql` (a `SELECT count(*)`) returns `expected`, at most `limit`.
pub async fn wait_for_count(pool: &PgPool, sql: &str, expected: i64, limit: Duration) {
    let started = Instant::now();
    loop {
        let count: i64 = sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await
            .expect("count query");
        if count == expected {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "`{sql}` is {count}, expected {expected} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The job row through the public API.
pub async fn fetch_job(pool: &PgPool, id: i64) -> oban::Job {
    use oban::engine::Engine as _;
    oban::engines::postgres::PostgresEngine::new(pool.clone())
        .job_get(id)
        .await
        .expect("read job")
        .expect("job exists")
}
