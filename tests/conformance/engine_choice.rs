//! Choosing the engine (SQLite only: PostgreSQL is chosen by `.pool` and `postgres://` URLs in
//! every other test file).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use oban::{JobBuilder, JobFilter, JobState, NewJob, Oban, UniqueOptions};
use serde_json::json;

use crate::common::process::{this_test, ChildGuard};
use crate::common::wait::wait_until;
use crate::harness::{self, Db, Kind};
use crate::helpers::ms;
use crate::probe::{node, Probe, Runs};

/// How long a child process may take: it starts a node and runs a few hundred jobs.
const CHILD_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn a_sqlite_url_chooses_the_sqlite_engine() {
    let dir = harness::TempDir::new();
    let path = dir.0.join("by-url.db");
    let oban = Oban::builder()
        .database(format!("sqlite://{}", path.display()))
        .queue("default", 2)
        .register::<Probe>()
        .poll_interval(ms(50))
        .start()
        .await
        .unwrap();
    assert!(oban.sqlite_pool().is_some() && oban.pg_pool().is_none());
    assert!(path.exists(), "the file is created");
    let job = JobBuilder::new(Probe::Ok).insert(&oban).await.unwrap();
    wait_until("completed", Duration::from_secs(10), async || {
        oban.job(job.id).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    oban.shutdown(Duration::from_secs(1)).await;

    // The same file through a `DbPool`, shared with the application.
    let db = oban::DbPool::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let oban = Oban::builder().db_pool(db.clone()).start().await.unwrap();
    assert!(matches!(oban.db_pool(), Some(oban::DbPool::Sqlite(_))));
    assert_eq!(
        oban.job(job.id).await.unwrap().unwrap().state,
        JobState::Completed
    );
    oban.shutdown(Duration::from_secs(1)).await;

    // An in-memory database works too (one connection; gone with the pool).
    let memory = Oban::builder()
        .database("sqlite::memory:")
        .queue("default", 2)
        .register::<Probe>()
        .poll_interval(ms(50))
        .start()
        .await
        .unwrap();
    let job = JobBuilder::new(Probe::Fail { times: 1 })
        .insert(&memory)
        .await
        .unwrap();
    wait_until("completed in memory", Duration::from_secs(10), async || {
        memory.job(job.id).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    memory.shutdown(Duration::from_secs(1)).await;

    let err = Oban::builder()
        .database("mysql://root:secret@localhost/db")
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("mysql") && !err.contains("secret"), "{err}");
}

#[tokio::test]
async fn without_a_database_a_node_uses_a_sqlite_file_in_the_working_directory() {
    let dir = harness::TempDir::new();
    let output = ChildGuard::spawn(
        "default-database",
        this_test("engine_choice::child_default_database")
            .current_dir(&dir.0)
            .env_remove("DATABASE_URL")
            .env("OBAN_CONFORMANCE_CHILD", "default")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait_with_output(CHILD_LIMIT)
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child ran its test:\n{stdout}"
    );
    let path = dir.0.join("oban.db");
    assert!(path.exists(), "{} was created", path.display());
    assert!(
        stderr.contains("using the SQLite file") && stderr.contains("oban.db"),
        "the path is printed at start:\n{stderr}"
    );

    // DATABASE_URL=sqlite://.. chooses a file explicitly.
    let chosen = dir.0.join("chosen.db");
    let output = ChildGuard::spawn(
        "url-database",
        this_test("engine_choice::child_default_database")
            .current_dir(&dir.0)
            .env("DATABASE_URL", format!("sqlite://{}", chosen.display()))
            .env("OBAN_CONFORMANCE_CHILD", "url")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait_with_output(CHILD_LIMIT)
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(chosen.exists());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("no database configured"));
}

/// Not a test: run by the test above in a child process with no `DATABASE_URL`.
#[tokio::test]
#[ignore = "runs only as a child process of the engine-choice tests"]
async fn child_default_database() {
    if std::env::var("OBAN_CONFORMANCE_CHILD").is_err() {
        return;
    }
    let oban = Oban::builder()
        .queue("default", 2)
        .register::<Probe>()
        .poll_interval(ms(50))
        .start()
        .await
        .expect("starts with no database configured");
    assert!(oban.sqlite_pool().is_some());
    let job = JobBuilder::new(Probe::Ok).insert(&oban).await.unwrap();
    wait_until("the job completes", Duration::from_secs(10), async || {
        oban.job(job.id).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn processes_writing_one_file_at_once_never_see_database_is_locked() {
    let db = Db::new(Kind::Sqlite).await;
    let path = db.sqlite_path().unwrap().clone();
    let runs = Arc::new(Runs::default());
    let oban = node(&db, "worker")
        .queue("default", 10)
        .state(Arc::clone(&runs))
        .start()
        .await
        .unwrap();
    let children: Vec<ChildGuard> = (0..3)
        .map(|i| {
            ChildGuard::spawn(
                format!("inserter-{i}"),
                this_test("engine_choice::child_inserter")
                    .env("OBAN_CONFORMANCE_CHILD", "inserter")
                    .env("OBAN_CONFORMANCE_FILE", &path)
                    .env("OBAN_CONFORMANCE_TAG", format!("child-{i}"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped()),
            )
        })
        .collect();
    // Meanwhile this process inserts too.
    for n in 0..200 {
        JobBuilder::new(Probe::Count)
            .meta("from", "parent")
            .meta("n", n)
            .insert(&oban)
            .await
            .unwrap();
    }
    for child in children {
        let output = child.wait_with_output(CHILD_LIMIT).await;
        assert!(
            output.status.success(),
            "an inserting process failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    db.wait_for_count(
        JobFilter::new().state(JobState::Completed),
        200 + 3 * 200,
        Duration::from_secs(60),
    )
    .await;
    oban.shutdown(Duration::from_secs(2)).await;
    assert!(runs.by_job.lock().unwrap().values().all(|&n| n == 1));
    let unique = db.count(JobFilter::new().worker("Test.ChildUnique")).await;
    assert_eq!(
        unique, 20,
        "unique inserts from three processes: one row per key"
    );
}

/// Not a test: a process inserting into the SQLite file of the test above.
#[tokio::test]
#[ignore = "runs only as a child process of the multi-process test"]
async fn child_inserter() {
    let (Ok(path), Ok(tag)) = (
        std::env::var("OBAN_CONFORMANCE_FILE"),
        std::env::var("OBAN_CONFORMANCE_TAG"),
    ) else {
        return;
    };
    let pool = oban::engines::sqlite::connect_with(oban::engines::sqlite::file_options(path), 4)
        .await
        .unwrap();
    let unique = UniqueOptions::new().keys(&["k"]).infinite();
    for n in 0..200 {
        JobBuilder::new(Probe::Count)
            .meta("from", tag.as_str())
            .meta("n", n)
            .insert(&pool)
            .await
            .expect("insert without `database is locked`");
        if n % 10 == 0 {
            NewJob::new("Test.ChildUnique", json!({"k": n / 10}))
                .queue("unrun")
                .unique(unique)
                .insert(&pool)
                .await
                .expect("unique insert without `database is locked`");
        }
    }
}
