//! What the CLI tests share: a database of their own per test (PostgreSQL or a SQLite file),
//! the built `oban` binary pointed at it, its `--json` output parsed, workers a node runs.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use oban::{JobContext, JobError, Outcome, Worker};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, SqlitePool};

/// The server tests run against: `DATABASE_URL`, else the local default (as the workspace's
/// `tests/common` does).
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh, migrated PostgreSQL database of its own: its pool and URL.
pub async fn postgres() -> (PgPool, String) {
    let (pool, url) = postgres_unmigrated().await;
    oban::migrate(&pool).await.expect("migrate");
    (pool, url)
}

/// A fresh PostgreSQL database of its own without the schema: its pool and URL.
pub async fn postgres_unmigrated() -> (PgPool, String) {
    let url = server_url();
    let admin_options: PgConnectOptions = url.parse().expect("DATABASE_URL parses");
    let mut admin = PgConnection::connect_with(&admin_options)
        .await
        .expect("connect to PostgreSQL");
    let stamp = chrono::Utc::now().timestamp();
    let name = format!("oban_test_{stamp}_{}", uuid::Uuid::new_v4().simple());
    // Databases of runs that crashed before cleaning up, as the workspace's tests name them:
    // drop those older than an hour.
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
        .max_connections(10)
        .connect_with(admin_options.database(&name).disable_statement_logging())
        .await
        .expect("connect to the test database");
    (pool, database_url_for(&url, &name))
}

/// The URL of database `name` on the server of `url`.
fn database_url_for(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base.to_owned(), format!("?{query}")),
        None => (url.to_owned(), String::new()),
    };
    let (server, _) = base.rsplit_once('/').expect("a database URL has a path");
    format!("{server}/{name}{query}")
}

/// A fresh, migrated SQLite file of its own: its pool, URL and path (removed on drop).
pub struct Sqlite {
    pub pool: SqlitePool,
    pub url: String,
    path: PathBuf,
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

pub async fn sqlite() -> Sqlite {
    let path = std::env::temp_dir().join(format!("oban_cli_{}.db", uuid::Uuid::new_v4().simple()));
    let pool = oban::engines::sqlite::connect_with(oban::engines::sqlite::file_options(&path), 4)
        .await
        .expect("open sqlite");
    oban::migrate(&pool).await.expect("migrate sqlite");
    Sqlite {
        pool,
        url: format!("sqlite://{}", path.display()),
        path,
    }
}

/// The built `oban` binary on `url`, with no `DATABASE_URL` of the test's own environment.
pub fn oban(url: &str) -> Command {
    let mut cmd = Command::cargo_bin("oban").expect("the oban binary is built");
    cmd.env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .arg("--database")
        .arg(url)
        .timeout(Duration::from_secs(60));
    cmd
}

/// Runs `oban --json ARGS` on `url`, expects exit code `code`, returns stdout parsed.
pub fn json(url: &str, args: &[&str], code: i32) -> Value {
    let output = oban(url)
        .arg("--json")
        .args(args)
        .output()
        .expect("run oban");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "oban {args:?}: stdout {stdout}\nstderr {stderr}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("oban {args:?}: not JSON ({err}): {stdout}"))
}

/// Polls `check` every 20 ms until it holds; fails naming `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails on its first attempt with "flaky: first attempt", completes on any later one.
#[derive(Debug, Serialize, Deserialize)]
pub struct Flaky {
    pub n: u32,
}

impl Worker for Flaky {
    const NAME: &'static str = "Cli.Flaky";

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        if ctx.job().attempt <= 1 {
            return Err(JobError::new("flaky: first attempt"));
        }
        Ok(Outcome::Complete)
    }
}

/// Always fails with "broken: always".
#[derive(Debug, Serialize, Deserialize)]
pub struct Broken {
    pub n: u32,
}

impl Worker for Broken {
    const NAME: &'static str = "Cli.Broken";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("broken: always"))
    }
}

/// Completes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Fine {
    pub n: u32,
}

impl Worker for Fine {
    const NAME: &'static str = "Cli.Fine";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

/// The job row, through the engine.
pub async fn find_job(pool: &PgPool, id: i64) -> Option<oban::Job> {
    use oban::engine::Engine as _;
    oban::engines::postgres::PostgresEngine::new(pool.clone())
        .job_get(id)
        .await
        .expect("read job")
}

/// The job row, which must exist.
pub async fn job(pool: &PgPool, id: i64) -> oban::Job {
    find_job(pool, id).await.expect("job exists")
}

/// `oban --json jobs ARGS`: the jobs listed, whether some matched (exit 0) or none (exit 3).
pub fn jobs(url: &str, args: &[&str]) -> Vec<Value> {
    let output = oban(url)
        .arg("--json")
        .arg("jobs")
        .args(args)
        .output()
        .expect("run oban");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        matches!(output.status.code(), Some(0 | 3)),
        "oban jobs {args:?}: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        output.status.code() == Some(3),
        listed == Value::Array(vec![])
    );
    listed.as_array().expect("an array").clone()
}

/// Sleeps for a minute: a job that is executing until it is cancelled.
#[derive(Debug, Serialize, Deserialize)]
pub struct Sleepy {
    pub n: u32,
}

impl Worker for Sleepy {
    const NAME: &'static str = "Cli.Sleepy";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(Outcome::Complete)
    }
}
