//! Issue 15, defect 2: the fetch never fails because of one row.
//!
//! An `available` row whose attempts are all spent (`attempt >= max_attempts`: a replay by SQL,
//! an older client, or a unique `replace` of `max_attempts`) made the claim break the
//! `attempt <= max_attempts` check on every poll of every node, so that no other job of its queue
//! ran again. The claim now discards such a row with an entry in `errors` that says why, and
//! claims the others; a unique replace can no longer make one. Each behaviour runs on PostgreSQL
//! and SQLite.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::time::Duration;

use oban::{Job, JobState, NewJob, ReplaceField, UniqueOptions};
use serde_json::json;

use common::workers::Nap;
use harness::{Db, Kind};

macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$name(crate::harness::Kind::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$name(crate::harness::Kind::Sqlite).await
                }
            )*
        }
    };
}

on_both_engines!(
    an_exhausted_available_row_does_not_block_its_queue,
    the_claim_discards_exhausted_rows_and_still_fills_its_demand,
    an_available_row_beyond_max_attempts_is_discarded_too,
    unique_replace_of_max_attempts_cannot_exhaust_a_runnable_job,
);

/// Runs `sql` on the test database, as a replay or another client would.
async fn exec(db: &Db, sql: &str) {
    match db.kind {
        Kind::Postgres | Kind::PostgresPrefix => {
            sqlx::raw_sql(sql)
                .execute(db.pg_pool().unwrap())
                .await
                .unwrap();
        }
        Kind::Sqlite => {
            // One connection, so that a pragma applies to the statements after it.
            let mut conn = db.sqlite_pool().unwrap().acquire().await.unwrap();
            sqlx::raw_sql(sql).execute(&mut *conn).await.unwrap();
        }
    }
}

/// Makes job `id` available with `attempt` attempts made of `max_attempts`, by SQL.
async fn make_available(db: &Db, id: i64, attempt: i32, max_attempts: i32) {
    exec(
        db,
        &format!(
            "UPDATE oban_jobs SET state = 'available', attempt = {attempt}, \
             max_attempts = {max_attempts} WHERE id = {id}"
        ),
    )
    .await;
}

fn nap() -> NewJob {
    NewJob::new("Test.Nap", json!({"ms": 0}))
}

/// The job, discarded by the claim with the entry that says why.
fn assert_discarded_by_the_claim(job: &Job, attempt: i32, max_attempts: i32) {
    assert_eq!(job.state, JobState::Discarded, "{job:?}");
    assert!(job.discarded_at.is_some());
    assert_eq!(
        (job.attempt, job.max_attempts),
        (attempt, max_attempts),
        "the claim did not count an attempt it did not make"
    );
    let entry = job.errors.last().expect("an errors entry");
    assert_eq!(entry.attempt, attempt);
    assert!(
        entry.error.contains("attempts spent") && entry.error.contains("instead of run"),
        "{entry:?}"
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(&entry.at).is_ok(),
        "`at` is an ISO 8601 time: {entry:?}"
    );
}

async fn an_exhausted_available_row_does_not_block_its_queue(kind: Kind) {
    let db = Db::new(kind).await;
    // First in the queue's order: every claim finds it before the others.
    let exhausted = db.insert(nap().priority(0)).await;
    make_available(&db, exhausted.id, 3, 3).await;
    let mut normal = Vec::new();
    for _ in 0..4 {
        normal.push(db.insert(nap().priority(1)).await);
    }
    let oban = db
        .builder("defects-fetch")
        .queue("default", 2)
        .register::<Nap>()
        .start()
        .await
        .unwrap();
    for job in &normal {
        let done = db.wait_for_state(job.id, JobState::Completed).await;
        assert_eq!(done.attempt, 1);
    }
    let spent = db.wait_for_state(exhausted.id, JobState::Discarded).await;
    assert_discarded_by_the_claim(&spent, 3, 3);

    // One more, inserted while the node runs: it is worked too.
    let later = db.insert(nap()).await;
    db.wait_for_state(later.id, JobState::Completed).await;
    oban.shutdown(Duration::from_secs(2)).await;
}

async fn the_claim_discards_exhausted_rows_and_still_fills_its_demand(kind: Kind) {
    let db = Db::new(kind).await;
    let a = db.insert(nap()).await;
    let spent_1 = db.insert(nap()).await;
    let b = db.insert(nap()).await;
    let spent_2 = db.insert(nap()).await;
    let c = db.insert(nap()).await;
    make_available(&db, spent_1.id, 1, 1).await;
    make_available(&db, spent_2.id, 5, 5).await;
    let by = vec!["defects-fetch".to_owned(), "p1".to_owned()];

    // Three are asked for: the first scan meets both spent rows among its three, and the claim
    // still brings three, so that a short batch keeps meaning "nothing more to claim".
    let claimed = db
        .engine
        .job_fetch_available("default", 3, &by, None)
        .await
        .expect("the claim succeeds");
    let ids: Vec<i64> = claimed.iter().map(|j| j.id).collect();
    assert_eq!(ids, [a.id, b.id, c.id]);
    for job in &claimed {
        assert_eq!((job.state, job.attempt), (JobState::Executing, 1));
    }
    assert_discarded_by_the_claim(&db.job(spent_1.id).await, 1, 1);
    assert_discarded_by_the_claim(&db.job(spent_2.id).await, 5, 5);

    // A queue holding only spent rows: the claim is empty, and succeeds.
    let only = db.insert(nap().queue("spent")).await;
    make_available(&db, only.id, 2, 2).await;
    let none = db
        .engine
        .job_fetch_available("spent", 10, &by, None)
        .await
        .expect("the claim succeeds");
    assert!(none.is_empty());
    assert_discarded_by_the_claim(&db.job(only.id).await, 2, 2);
    let again = db
        .engine
        .job_fetch_available("spent", 10, &by, None)
        .await
        .expect("the claim succeeds");
    assert!(again.is_empty());
}

async fn an_available_row_beyond_max_attempts_is_discarded_too(kind: Kind) {
    let db = Db::new(kind).await;
    let normal = db.insert(nap()).await;
    let beyond = db.insert(nap().priority(0)).await;
    let update = format!(
        "UPDATE oban_jobs SET attempt = 7, max_attempts = 2 WHERE id = {}",
        beyond.id
    );
    // Both schemas check `attempt <= max_attempts`; a schema without the check (another
    // installer's, or the check dropped) can hold such a row.
    match kind {
        Kind::Postgres | Kind::PostgresPrefix => {
            exec(
                &db,
                &format!("ALTER TABLE oban_jobs DROP CONSTRAINT attempt_range; {update}"),
            )
            .await;
        }
        Kind::Sqlite => {
            exec(
                &db,
                &format!(
                    "PRAGMA ignore_check_constraints = ON; {update}; \
                     PRAGMA ignore_check_constraints = OFF"
                ),
            )
            .await;
        }
    }
    let by = vec!["defects-fetch".to_owned(), "p1".to_owned()];
    let claimed = db
        .engine
        .job_fetch_available("default", 5, &by, None)
        .await
        .expect("the claim succeeds");
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        [normal.id]
    );
    assert_discarded_by_the_claim(&db.job(beyond.id).await, 7, 2);
}

async fn unique_replace_of_max_attempts_cannot_exhaust_a_runnable_job(kind: Kind) {
    let db = Db::new(kind).await;
    let unique = UniqueOptions::new().keys(&["id"]);
    let job = |id: i64| NewJob::new("Test.Nap", json!({"id": id, "ms": 0})).unique(unique);

    // A job that will run again and has made two attempts; a duplicate lowers max_attempts to 1.
    let mut first = None;
    for (n, state) in [
        JobState::Available,
        JobState::Scheduled,
        JobState::Retryable,
    ]
    .into_iter()
    .enumerate()
    {
        let id = i64::try_from(n).unwrap();
        let existing = db.insert(job(id).max_attempts(5)).await;
        exec(
            &db,
            &format!(
                "UPDATE oban_jobs SET state = '{}', attempt = 2 WHERE id = {}",
                state.as_str(),
                existing.id
            ),
        )
        .await;
        let replaced = db
            .insert(
                job(id)
                    .max_attempts(1)
                    .replace(state, &[ReplaceField::MaxAttempts]),
            )
            .await;
        assert!(replaced.conflict);
        assert_eq!(replaced.id, existing.id);
        assert_eq!(
            (replaced.state, replaced.attempt, replaced.max_attempts),
            (state, 2, 3),
            "a {state:?} job keeps one attempt to run"
        );
        first.get_or_insert(replaced);
    }

    // A running job's attempt is already counted: it may become its last.
    let running = db.insert(job(10).max_attempts(5)).await;
    exec(
        &db,
        &format!(
            "UPDATE oban_jobs SET state = 'executing', attempt = 2 WHERE id = {}",
            running.id
        ),
    )
    .await;
    let replaced = db
        .insert(
            job(10)
                .max_attempts(1)
                .replace(JobState::Executing, &[ReplaceField::MaxAttempts]),
        )
        .await;
    assert_eq!(
        (replaced.state, replaced.attempt, replaced.max_attempts),
        (JobState::Executing, 2, 2)
    );

    // Raising it is taken as asked.
    let raised = db
        .insert(
            job(1)
                .max_attempts(9)
                .replace(JobState::Scheduled, &[ReplaceField::MaxAttempts]),
        )
        .await;
    assert_eq!(raised.max_attempts, 9);

    // The available one runs: its third attempt, within max_attempts.
    let oban = db
        .builder("defects-fetch")
        .queue("default", 2)
        .register::<Nap>()
        .start()
        .await
        .unwrap();
    let first = first.expect("the available job");
    let done = db.wait_for_state(first.id, JobState::Completed).await;
    assert_eq!((done.attempt, done.max_attempts), (3, 3));
    oban.shutdown(Duration::from_secs(2)).await;
}
