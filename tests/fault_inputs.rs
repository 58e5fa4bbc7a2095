//! Fault suite (c): a matrix of bad inputs, on both engines. Each ends in a clear error or a
//! defined state, and after each the queue still works a plain job.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::time::Duration;

use harness::{Db, Kind};
use oban::{Job, JobContext, JobError, JobState, NewJob, Oban, Outcome, Worker};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Completes; its args must be `{"n": <integer>}` (other keys are ignored).
#[derive(Serialize, Deserialize)]
struct Count {
    n: i64,
}

impl Worker for Count {
    const NAME: &'static str = "Test.Count";
    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

const QUEUES: [&str; 3] = [
    "default",
    "a queue with spaces and ünïcødé 🦀",
    // The longest name the schema allows: 127 characters.
    "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
];

/// Runs a SQL statement of the test's own on the database (no binds: the text is the test's).
async fn raw(db: &Db, sql: &str) {
    match (db.pg_pool(), db.sqlite_pool()) {
        (Some(pool), _) => {
            sqlx::query(sql).execute(pool).await.unwrap();
        }
        (_, Some(pool)) => {
            sqlx::query(sql).execute(pool).await.unwrap();
        }
        _ => unreachable!("a database"),
    }
}

/// A plain job in `queue` still completes: the queue keeps working.
async fn queue_still_works(db: &Db, oban: &Oban, queue: &str, case: &str) {
    let job = oban
        .insert(NewJob::new("Test.Count", json!({"n": 1})).queue(queue))
        .await
        .unwrap();
    let done = db.wait_for_state(job.id, JobState::Completed).await;
    assert_eq!(done.attempt, 1, "{case}: the queue keeps working");
}

async fn finished(db: &Db, job: &Job, state: JobState, error: &str, case: &str) {
    let job = db.wait_for_state(job.id, state).await;
    if !error.is_empty() {
        let errors: Vec<&str> = job.errors.iter().map(|e| e.error.as_str()).collect();
        assert!(
            errors.iter().any(|e| e.contains(error)),
            "{case}: an error mentioning `{error}`: {errors:?}"
        );
    }
}

async fn bad_inputs_end_in_a_clear_error_or_a_defined_state(kind: Kind) {
    let db = Db::new(kind).await;
    let mut builder = db
        .builder("matrix")
        .register::<Count>()
        .poll_interval(Duration::from_millis(100))
        .stage_interval(Duration::from_millis(100))
        // A cron entry that never fires (February 30th) is accepted, with a warning at start.
        .cron("0 0 30 2 *", NewJob::new("Test.Count", json!({"n": 0})));
    for queue in QUEUES {
        builder = builder.queue(queue, 5);
    }
    let oban = builder.start().await.expect("the node starts");

    // Args that are not an object are refused at insert, naming the worker.
    let refused = oban
        .insert(NewJob::new("Test.Count", json!([1, 2, 3])))
        .await
        .expect_err("args must be an object");
    assert!(
        refused.to_string().contains("Test.Count"),
        "names the worker: {refused}"
    );

    // Args of the wrong type or missing a field: discarded with serde's message.
    for (case, args, error) in [
        ("wrongly typed", json!({"n": "seven"}), "invalid type"),
        ("a missing field", json!({}), "missing field `n`"),
    ] {
        let job = oban
            .insert(NewJob::new("Test.Count", args).max_attempts(3))
            .await
            .unwrap();
        finished(&db, &job, JobState::Discarded, error, case).await;
        queue_still_works(&db, &oban, "default", case).await;
    }

    // Oversized args (a megabyte) are stored and run.
    let blob = "x".repeat(1 << 20);
    let big = oban
        .insert(NewJob::new("Test.Count", json!({"n": 1, "blob": blob})))
        .await
        .unwrap();
    finished(&db, &big, JobState::Completed, "", "oversized").await;

    // A NUL in args is refused at insert, naming the worker and the field; nothing is stored.
    let before = db.count(oban::JobFilter::new().worker("Test.Count")).await;
    let refused = oban
        .insert(NewJob::new(
            "Test.Count",
            json!({"n": 1, "name": "nul\u{0}here"}),
        ))
        .await
        .expect_err("a NUL is refused");
    let message = refused.to_string();
    assert!(
        message.contains("Test.Count") && message.contains("args.name"),
        "names the worker and the field: {message}"
    );
    assert_eq!(
        db.count(oban::JobFilter::new().worker("Test.Count")).await,
        before
    );
    queue_still_works(&db, &oban, "default", "NUL").await;

    // An unknown worker is deferred without spending an attempt (another node may know it),
    // with an error that says so.
    let unknown = oban
        .insert(NewJob::new("Nobody.Knows", json!({})))
        .await
        .unwrap();
    finished(
        &db,
        &unknown,
        JobState::Scheduled,
        "is not known to node",
        "unknown worker",
    )
    .await;
    queue_still_works(&db, &oban, "default", "unknown worker").await;

    // Rows written by raw SQL: an odd priority runs; an exhausted available row is discarded
    // with a clear error; a suspended row is left alone.
    raw(
        &db,
        r#"INSERT INTO oban_jobs (state, queue, worker, args, priority)
           VALUES ('available', 'default', 'Test.Count', '{"n": 7}', 1000)"#,
    )
    .await;
    raw(
        &db,
        r#"INSERT INTO oban_jobs (state, queue, worker, args, attempt, max_attempts)
           VALUES ('available', 'default', 'Test.Count', '{"n": 8}', 3, 3)"#,
    )
    .await;
    raw(
        &db,
        r#"INSERT INTO oban_jobs (state, queue, worker, args)
           VALUES ('suspended', 'default', 'Test.Count', '{"n": 9}')"#,
    )
    .await;
    // Args another client wrote that are not an object at all.
    raw(
        &db,
        r#"INSERT INTO oban_jobs (state, queue, worker, args, max_attempts, meta)
           VALUES ('available', 'default', 'Test.Count', '"ten"', 1, '{"case": "string args"}')"#,
    )
    .await;
    // The rows came without a notification: the queue's poll (100 ms) finds them.
    let by_n = |n: i64| oban::JobFilter::new().args_contain(json!({ "n": n }));
    db.wait_for_count(
        by_n(7).state(JobState::Completed),
        1,
        Duration::from_secs(10),
    )
    .await;
    db.wait_for_count(
        by_n(8).state(JobState::Discarded),
        1,
        Duration::from_secs(10),
    )
    .await;
    let exhausted = db.jobs(by_n(8)).await.remove(0);
    assert!(
        exhausted
            .errors
            .iter()
            .any(|e| e.error.contains("attempts spent")),
        "says why: {:?}",
        exhausted.errors
    );
    let string_args = oban::JobFilter::new().meta_contain(json!({"case": "string args"}));
    db.wait_for_count(
        string_args.clone().state(JobState::Discarded),
        1,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        db.jobs(string_args).await[0].errors[0]
            .error
            .contains("invalid type"),
        "serde's message"
    );
    queue_still_works(&db, &oban, "default", "raw rows").await;
    assert_eq!(db.jobs(by_n(9)).await[0].state, JobState::Suspended);

    // Odd queue names work like any other.
    for queue in &QUEUES[1..] {
        queue_still_works(&db, &oban, queue, "odd queue name").await;
    }
    oban.shutdown(Duration::from_secs(2)).await;

    // An unknown time zone is refused at start, naming it.
    let error = db
        .builder("matrix-tz")
        .register::<Count>()
        .cron_in(
            "Mars/Olympus_Mons",
            "0 * * * *",
            NewJob::new("Test.Count", json!({"n": 0})),
        )
        .start()
        .await
        .expect_err("an unknown time zone is refused");
    assert!(
        error.to_string().contains("Mars/Olympus_Mons"),
        "names the zone: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_end_in_a_clear_error_or_a_defined_state_on_postgres() {
    bad_inputs_end_in_a_clear_error_or_a_defined_state(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_end_in_a_clear_error_or_a_defined_state_on_sqlite() {
    bad_inputs_end_in_a_clear_error_or_a_defined_state(Kind::Sqlite).await;
}
