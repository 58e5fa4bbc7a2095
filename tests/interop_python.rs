//! One database, this runtime and the real Python Oban package (pinned: oban 0.7.0), in both
//! orders of installation. Python runs as child processes of `tests/interop/node.py` (workers in
//! `tests/interop/interop_workers.py`); each test has a database of its own. Without Python 3.12
//! and the package (see `common::python`), each test prints a notice and passes, except in CI.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{python, wait};
use oban::{
    Error, JobBuilder, JobContext, JobError, Oban, Outcome, UniqueOptions, Worker, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use sqlx::{Executor, PgPool};

const LIMIT: Duration = Duration::from_secs(30);

/// Python's `interop_workers.Echo`: completes.
#[derive(Serialize, Deserialize)]
struct Echo {
    n: i64,
}

impl Worker for Echo {
    const NAME: &'static str = "interop_workers.Echo";
    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

/// Python's `interop_workers.Fail`: fails its one attempt, naming the job.
#[derive(Serialize, Deserialize)]
struct Fail {
    n: i64,
}

impl Worker for Fail {
    const NAME: &'static str = "interop_workers.Fail";
    fn options() -> WorkerOptions {
        WorkerOptions::new().max_attempts(1)
    }
    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new(format!("rust failure {}", ctx.job().id)))
    }
}

/// Python's `interop_workers.Recorder` records a value; this one, Rust's, records one too.
#[derive(Serialize, Deserialize)]
struct RustRecorder {
    n: i64,
}

impl Worker for RustRecorder {
    const NAME: &'static str = "interop.RustRecorder";
    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Record(recorded_value()))
    }
}

/// What both sides record: every JSON kind.
fn recorded_value() -> serde_json::Value {
    serde_json::json!({
        "rows": 3, "file": "export.csv", "ok": true, "none": null, "ratio": 0.5,
        "big": 3_000_000_000_i64, "tags": ["a", "é"], "nested": {"n": -7}
    })
}

/// Python's `interop_workers.Recorder`, as Rust inserts it.
#[derive(Serialize, Deserialize)]
struct Recorder {
    n: i64,
}

impl Worker for Recorder {
    const NAME: &'static str = "interop_workers.Recorder";
    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

/// Who installs the schema first.
#[derive(Debug, Clone, Copy)]
enum Installer {
    /// `oban.schema.install` from the Python package.
    Python,
    /// `oban::migrate`.
    Rust,
    /// Elixir Oban's migrations V01..V14 (`tests/fixtures/elixir_oban_v14.sql`, without its job).
    Elixir,
}

/// A database of its own with the schema `installer` gives it, its URL, and the interpreter;
/// `None` when Python interop is skipped.
async fn database(test: &str, installer: Installer) -> Option<(PgPool, String, PathBuf)> {
    let python = python::interpreter(test)?;
    let (pool, name) = common::empty_database().await;
    let url = common::database_url_for(&name);
    match installer {
        Installer::Python => {
            python::run(&python, &["install", &url]).await;
        }
        Installer::Rust => oban::migrate(&pool).await.expect("migrate"),
        Installer::Elixir => {
            pool.execute(include_str!("fixtures/elixir_oban_v14.sql"))
                .await
                .expect("Elixir Oban's schema");
            pool.execute("DELETE FROM oban_jobs").await.unwrap();
        }
    }
    Some((pool, url, python))
}

/// A Rust node working queue `default` as `rust-1` (it migrates when it starts).
async fn rust_node(pool: &PgPool) -> Oban {
    Oban::builder()
        .pool(pool.clone())
        .node("rust-1")
        .queue("default", 5)
        .register::<Echo>()
        .register::<Fail>()
        .poll_interval(Duration::from_millis(50))
        .stage_interval(Duration::from_millis(100))
        .start()
        .await
        .expect("start the Rust node")
}

/// Ids Python inserted (`node.py insert`).
async fn python_inserts(python: &Path, url: &str, worker: &str, count: usize) -> Vec<i64> {
    python::run(
        &python.to_path_buf(),
        &["insert", url, worker, &count.to_string()],
    )
    .await
    .lines()
    .map(|id| id.trim().parse().expect("a job id"))
    .collect()
}

/// Rust inserts `count` Echo jobs through the pool alone (no node, no migration).
async fn rust_inserts(pool: &PgPool, count: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0..count {
        let job = JobBuilder::new(Echo { n })
            .insert(pool)
            .await
            .expect("insert");
        ids.push(job.id);
    }
    ids
}

/// Waits until every job of `ids` is completed.
async fn wait_completed(pool: &PgPool, ids: &[i64]) {
    wait::wait_until(format!("jobs {ids:?} completed"), LIMIT, async || {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM oban_jobs WHERE id = ANY($1) AND state = 'completed'",
        )
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap();
        done == ids.len() as i64
    })
    .await;
}

/// The node names that ran `ids` (`attempted_by[1]`), each job attempted once.
async fn ran_once_by(pool: &PgPool, ids: &[i64]) -> Vec<String> {
    let rows: Vec<(i32, String)> = sqlx::query_as(
        "SELECT attempt::int4, attempted_by[1] FROM oban_jobs WHERE id = ANY($1) ORDER BY id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), ids.len());
    rows.into_iter()
        .map(|(attempt, node)| {
            assert_eq!(attempt, 1, "each job is attempted once");
            node
        })
        .collect()
}

#[tokio::test]
async fn python_installs_rust_inserts_without_migrating_then_a_rust_node_works_python_jobs() {
    let test = "python_installs_rust_inserts_without_migrating_then_a_rust_node_works_python_jobs";
    let Some((pool, url, python)) = database(test, Installer::Python).await else {
        return;
    };
    let from_rust = rust_inserts(&pool, 3).await;
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('oban_rust_migrations') IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(migrated, "inserting did not migrate");
    let from_python = python_inserts(&python, &url, "interop_workers.Echo", 3).await;

    let node = rust_node(&pool).await;
    let all: Vec<i64> = from_rust.iter().chain(&from_python).copied().collect();
    wait_completed(&pool, &all).await;
    node.shutdown(Duration::from_secs(2)).await;
    assert!(ran_once_by(&pool, &all).await.iter().all(|n| n == "rust-1"));
}

#[tokio::test]
async fn rust_inserts_and_a_python_node_works_each_job_exactly_once() {
    let test = "rust_inserts_and_a_python_node_works_each_job_exactly_once";
    let Some((pool, url, python)) = database(test, Installer::Python).await else {
        return;
    };
    let node = python::spawn_node(&python, &url, "python-1");
    let ids = rust_inserts(&pool, 20).await;
    wait_completed(&pool, &ids).await;
    let mut ran = python::stop_node(node).await;
    ran.sort_unstable();
    assert_eq!(ran, ids, "Python ran each job exactly once");
    assert!(ran_once_by(&pool, &ids)
        .await
        .iter()
        .all(|n| n == "python-1"));
}

#[tokio::test]
async fn rust_installs_then_a_python_node_starts_and_each_side_works_the_others_jobs() {
    let test = "rust_installs_then_a_python_node_starts_and_each_side_works_the_others_jobs";
    let Some((pool, url, python)) = database(test, Installer::Rust).await else {
        return;
    };
    let node = python::spawn_node(&python, &url, "python-1");
    let from_rust = rust_inserts(&pool, 5).await;
    wait_completed(&pool, &from_rust).await;
    wait::wait_until("the Python node leads", LIMIT, async || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM oban_leaders WHERE node = 'python-1'")
            .fetch_one(&pool)
            .await
            .unwrap()
            == 1
    })
    .await;
    let mut ran = python::stop_node(node).await;
    ran.sort_unstable();
    assert_eq!(ran, from_rust);

    let from_python = python_inserts(&python, &url, "interop_workers.Echo", 5).await;
    let node = rust_node(&pool).await;
    wait_completed(&pool, &from_python).await;
    node.shutdown(Duration::from_secs(2)).await;
    assert!(ran_once_by(&pool, &from_python)
        .await
        .iter()
        .all(|n| n == "rust-1"));
}

/// A job of `ids` in `discarded`, waited for.
async fn wait_discarded(pool: &PgPool, id: i64) -> oban::Job {
    wait::wait_for_state_within(pool, id, "discarded", LIMIT).await
}

async fn errors_cross(test: &str, installer: Installer) {
    let Some((pool, url, python)) = database(test, installer).await else {
        return;
    };
    oban::migrate(&pool).await.expect("migrate");

    // Python records a failure of a job Rust inserted; Rust reads it.
    let node = python::spawn_node(&python, &url, "python-1");
    let job = JobBuilder::new(Fail { n: 1 })
        .insert(&pool)
        .await
        .expect("insert");
    let failed = wait_discarded(&pool, job.id).await;
    python::stop_node(node).await;
    assert_eq!(failed.errors.len(), 1, "{:?}", failed.errors);
    assert_eq!(failed.errors[0].attempt, 1);
    assert!(
        failed.errors[0]
            .error
            .contains(&format!("python failure {}", job.id)),
        "{:?}",
        failed.errors
    );

    // Rust records a failure of a job Python inserted; Python reads it.
    let ids = python_inserts(&python, &url, "interop_workers.Fail", 1).await;
    let node = rust_node(&pool).await;
    wait_discarded(&pool, ids[0]).await;
    node.shutdown(Duration::from_secs(2)).await;
    let errors = python::run(&python, &["errors", &url, &ids[0].to_string()]).await;
    let errors: serde_json::Value = serde_json::from_str(&errors).expect("errors as JSON");
    assert_eq!(errors[0]["attempt"], 1, "{errors}");
    assert_eq!(
        errors[0]["error"],
        format!("rust failure {}", ids[0]),
        "{errors}"
    );
}

#[tokio::test]
async fn errors_written_by_either_side_are_read_by_the_other_on_a_python_schema() {
    errors_cross(
        "errors_written_by_either_side_are_read_by_the_other_on_a_python_schema",
        Installer::Python,
    )
    .await;
}

#[tokio::test]
async fn errors_written_by_either_side_are_read_by_the_other_on_a_rust_schema() {
    errors_cross(
        "errors_written_by_either_side_are_read_by_the_other_on_a_rust_schema",
        Installer::Rust,
    )
    .await;
}

#[tokio::test]
async fn errors_written_by_either_side_are_read_by_the_other_on_an_elixir_schema() {
    // Three implementations on one database: Elixir installed it, this runtime migrated it
    // (which adds what a Python node needs), Python and Rust nodes work each other's jobs.
    errors_cross(
        "errors_written_by_either_side_are_read_by_the_other_on_an_elixir_schema",
        Installer::Elixir,
    )
    .await;
}

#[tokio::test]
async fn a_unique_insert_on_an_unmigrated_python_schema_says_to_run_migrate() {
    let test = "a_unique_insert_on_an_unmigrated_python_schema_says_to_run_migrate";
    let Some((pool, _url, _python)) = database(test, Installer::Python).await else {
        return;
    };
    let error = JobBuilder::new(Echo { n: 1 })
        .unique(UniqueOptions::new())
        .insert(&pool)
        .await
        .expect_err("no uniq_key column");
    assert!(matches!(error, Error::NotMigrated { .. }), "{error:?}");
    assert!(error.to_string().contains("oban::migrate"), "{error}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing was inserted");

    oban::migrate(&pool).await.expect("migrate");
    let first = JobBuilder::new(Echo { n: 1 })
        .unique(UniqueOptions::new())
        .insert(&pool)
        .await
        .expect("a unique insert after migrating");
    let again = JobBuilder::new(Echo { n: 1 })
        .unique(UniqueOptions::new())
        .insert(&pool)
        .await
        .unwrap();
    assert!(again.conflict && again.id == first.id);
    pool.execute("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn max_attempts_beyond_a_python_schemas_smallint_is_refused_naming_the_bound() {
    let test = "max_attempts_beyond_a_python_schemas_smallint_is_refused_naming_the_bound";
    let Some((pool, _url, _python)) = database(test, Installer::Python).await else {
        return;
    };
    let error = JobBuilder::new(Echo { n: 1 })
        .max_attempts(40_000)
        .insert(&pool)
        .await
        .expect_err("smallint max_attempts");
    assert!(matches!(error, Error::InvalidJob(_)), "{error:?}");
    assert!(error.to_string().contains("32767"), "{error}");
    JobBuilder::new(Echo { n: 1 })
        .max_attempts(32_767)
        .insert(&pool)
        .await
        .expect("the largest smallint fits");
}

#[tokio::test]
async fn results_recorded_by_either_side_are_read_by_the_other() {
    let Some((pool, url, python)) = database(
        "results_recorded_by_either_side_are_read_by_the_other",
        Installer::Python,
    )
    .await
    else {
        return;
    };
    oban::migrate(&pool).await.expect("migrate");

    // Python records (erlpack, unpadded base64); Rust reads it typed.
    let node = python::spawn_node(&python, &url, "python-1");
    let job = JobBuilder::new(Recorder { n: 1 })
        .insert(&pool)
        .await
        .expect("insert");
    wait_completed(&pool, &[job.id]).await;
    python::stop_node(node).await;
    let done = wait::wait_for_state_within(&pool, job.id, "completed", LIMIT).await;
    assert_eq!(done.meta["recorded"], true, "{}", done.meta);
    assert_eq!(
        done.recorded::<serde_json::Value>()
            .expect("Rust reads Python's term"),
        Some(recorded_value())
    );

    // Rust records; Python's own decoder reads it.
    let node = Oban::builder()
        .pool(pool.clone())
        .node("rust-1")
        .queue("default", 5)
        .register::<RustRecorder>()
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .expect("start the Rust node");
    let job = JobBuilder::new(RustRecorder { n: 2 })
        .insert(&pool)
        .await
        .expect("insert");
    wait_completed(&pool, &[job.id]).await;
    node.shutdown(Duration::from_secs(2)).await;
    let read = python::run(&python, &["recorded", &url, &job.id.to_string()]).await;
    let read: serde_json::Value = serde_json::from_str(&read).expect("Python prints JSON");
    assert_eq!(read, recorded_value());
}
