//! Shared helpers for integration tests: an isolated, migrated PostgreSQL database per test,
//! bounded waits (`wait`), child processes that cannot outlive their test (`process`).
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod process;
pub mod proxy;
pub mod python;
pub mod wait;
pub mod workers;

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

/// The job row through the public API.
pub async fn fetch_job(pool: &PgPool, id: i64) -> oban::Job {
    use oban::engine::Engine as _;
    oban::engines::postgres::PostgresEngine::new(pool.clone())
        .job_get(id)
        .await
        .expect("read job")
        .expect("job exists")
}
