//! Recorded results (issue 20): a worker's return value kept with its completed job in Oban's
//! layout (`meta.recorded`, `meta.return` as a base64 Erlang term), read back typed with
//! `Job::recorded`; a value over the limit fails the attempt with a clear error; on PostgreSQL
//! and SQLite.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::time::Duration;

use oban::{worker, JobState, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;

use harness::{Db, Kind};

/// What an export produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Export {
    rows: u64,
    file: String,
    columns: Vec<String>,
    checksum: Option<String>,
}

#[worker(queue = "exports", max_attempts = 1, record_limit = 4_000)]
async fn export_table(table: String) -> Result<Export, std::io::Error> {
    Ok(Export {
        rows: 1_234,
        file: format!("{table}.csv"),
        columns: vec!["id".into(), "<name>".into()],
        checksum: None,
    })
}

/// Records through `Outcome::Record`, or returns far more than the limit.
#[worker(queue = "exports", max_attempts = 2)]
async fn summarize(huge: bool) -> Outcome {
    if huge {
        Outcome::Record(json!("x".repeat(100_000)))
    } else {
        Outcome::Record(json!({"total": 99.5, "currencies": ["EUR", "USD"]}))
    }
}

async fn results_are_recorded_and_read_back_typed(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = db
        .builder("recorded")
        .queue("exports", 5)
        .register::<ExportTable>()
        .register::<Summarize>()
        .start()
        .await
        .expect("start the node");
    let export = ExportTable::new("users".into())
        .insert(&oban)
        .await
        .unwrap();
    let summary = Summarize::new(false).insert(&oban).await.unwrap();
    let huge = Summarize::new(true).insert(&oban).await.unwrap();
    assert_eq!(
        export.recorded::<Export>().unwrap(),
        None,
        "nothing recorded yet"
    );

    let done = db.wait_for_state(export.id, JobState::Completed).await;
    assert_eq!(done.meta["recorded"], true);
    assert!(done.meta["return"].is_string());
    assert_eq!(
        done.recorded::<Export>().unwrap(),
        Some(Export {
            rows: 1_234,
            file: "users.csv".into(),
            columns: vec!["id".into(), "<name>".into()],
            checksum: None,
        })
    );
    let mismatch = done.recorded::<Vec<u8>>().unwrap_err().to_string();
    assert!(mismatch.contains("does not fit"), "{mismatch}");

    let summed = db.wait_for_state(summary.id, JobState::Completed).await;
    assert_eq!(
        summed.recorded::<serde_json::Value>().unwrap(),
        Some(json!({"total": 99.5, "currencies": ["EUR", "USD"]}))
    );

    // Over the limit: the attempt fails, saying what to do; the job keeps no partial value.
    let failed = db.wait_for_state(huge.id, JobState::Retryable).await;
    assert!(
        failed.errors[0].error.contains("over the limit of 32000"),
        "{:?}",
        failed.errors
    );
    assert!(failed.errors[0].error.contains("record_limit"));
    assert!(failed.meta.get("return").is_none());
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn results_are_recorded_and_read_back_typed_on_postgres() {
    results_are_recorded_and_read_back_typed(Kind::Postgres).await;
}

#[tokio::test]
async fn results_are_recorded_and_read_back_typed_on_sqlite() {
    results_are_recorded_and_read_back_typed(Kind::Sqlite).await;
}

#[tokio::test]
async fn perform_job_returns_the_recorded_value() {
    let outcome = oban::testing::perform_job(ExportTable {
        table: "orders".into(),
    })
    .await;
    let Ok(Outcome::Record(value)) = outcome else {
        panic!("expected a recorded value, got {outcome:?}");
    };
    assert_eq!(value["file"], "orders.csv");
}

#[test]
fn the_macro_sets_the_record_limit_and_marks_recording_workers() {
    use oban::Worker;
    let options = ExportTable::options();
    assert!(options.recorded);
    assert_eq!(options.record_limit, 4_000);
    let options = Summarize::options();
    assert!(
        !options.recorded,
        "Outcome::Record alone is not seen by the macro"
    );
    assert_eq!(options.record_limit, oban::recorded::DEFAULT_LIMIT);
}
