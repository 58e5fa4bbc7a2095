//! Race-free unique jobs: every option, every states group, replace, insert_all, and a stress
//! test of concurrent inserting transactions.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::wait;
use oban::{
    JobBuilder, JobContext, JobError, JobState, NewJob, Oban, Outcome, ReplaceField, UniqueField,
    UniqueOptions, UniqueStates, UniqueTimestamp, Worker, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

async fn count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM oban_jobs")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn job(args: serde_json::Value, unique: UniqueOptions) -> NewJob {
    NewJob::new("Test.Unique", args).unique(unique)
}

#[tokio::test]
async fn a_duplicate_returns_the_existing_job_with_conflict_set() {
    let pool = common::test_pool().await;
    let first = job(json!({"id": 1}), UniqueOptions::new())
        .insert(&pool)
        .await
        .unwrap();
    assert!(!first.conflict);
    let second = job(json!({"id": 1}), UniqueOptions::new())
        .insert(&pool)
        .await
        .unwrap();
    assert!(second.conflict);
    assert_eq!(second.id, first.id);
    let other = job(json!({"id": 2}), UniqueOptions::new())
        .insert(&pool)
        .await
        .unwrap();
    assert!(!other.conflict);
    let plain = NewJob::new("Test.Unique", json!({"id": 1}))
        .insert(&pool)
        .await
        .unwrap();
    assert!(
        !plain.conflict,
        "jobs without unique options are never duplicates"
    );
    assert_eq!(count(&pool).await, 3);
}

#[tokio::test]
async fn fields_choose_what_is_compared() {
    let pool = common::test_pool().await;
    let default = UniqueOptions::new();
    job(json!({"id": 1}), default)
        .queue("a")
        .insert(&pool)
        .await
        .unwrap();
    let other_queue = job(json!({"id": 1}), default)
        .queue("b")
        .insert(&pool)
        .await
        .unwrap();
    assert!(!other_queue.conflict, "queue is compared by default");
    let other_worker = NewJob::new("Test.Other", json!({"id": 1}))
        .queue("a")
        .unique(default)
        .insert(&pool)
        .await
        .unwrap();
    assert!(!other_worker.conflict, "worker is compared by default");

    let args_only = UniqueOptions::new().fields(&[UniqueField::Args]);
    job(json!({"id": 7}), args_only)
        .queue("a")
        .insert(&pool)
        .await
        .unwrap();
    let across = NewJob::new("Test.Other", json!({"id": 7}))
        .queue("b")
        .unique(args_only)
        .insert(&pool)
        .await
        .unwrap();
    assert!(
        across.conflict,
        "with fields = [args], worker and queue do not matter"
    );

    let meta = UniqueOptions::new()
        .fields(&[UniqueField::Worker, UniqueField::Meta])
        .keys(&["tenant"]);
    job(json!({"id": 1}), meta)
        .meta("tenant", 5)
        .meta("trace", "a")
        .insert(&pool)
        .await
        .unwrap();
    let same_tenant = job(json!({"id": 2}), meta)
        .meta("tenant", 5)
        .meta("trace", "b")
        .insert(&pool)
        .await
        .unwrap();
    assert!(same_tenant.conflict, "meta keys compared, args ignored");
    let other_tenant = job(json!({"id": 2}), meta)
        .meta("tenant", 6)
        .insert(&pool)
        .await
        .unwrap();
    assert!(!other_tenant.conflict);
}

#[tokio::test]
async fn keys_compare_a_subset_of_args_and_missing_keys_match_each_other() {
    let pool = common::test_pool().await;
    let by_recipient = UniqueOptions::new().keys(&["recipient", "template"]);
    job(
        json!({"recipient": "a@x", "template": "receipt", "order": 1}),
        by_recipient,
    )
    .insert(&pool)
    .await
    .unwrap();
    let dup = job(
        json!({"template": "receipt", "recipient": "a@x", "order": 2}),
        by_recipient,
    )
    .insert(&pool)
    .await
    .unwrap();
    assert!(dup.conflict, "other args do not matter");
    let other = job(
        json!({"recipient": "b@x", "template": "receipt"}),
        by_recipient,
    )
    .insert(&pool)
    .await
    .unwrap();
    assert!(!other.conflict);

    let missing1 = job(json!({"template": "welcome"}), by_recipient)
        .insert(&pool)
        .await
        .unwrap();
    assert!(!missing1.conflict);
    let missing2 = job(json!({"template": "welcome", "note": 1}), by_recipient)
        .insert(&pool)
        .await
        .unwrap();
    assert!(missing2.conflict, "two jobs lacking a key agree on it");
    let null_value = job(
        json!({"template": "welcome", "recipient": null}),
        by_recipient,
    )
    .insert(&pool)
    .await
    .unwrap();
    assert!(!null_value.conflict, "a null value is not a missing key");
}

#[tokio::test]
async fn the_period_expires_and_a_new_job_may_be_inserted() {
    let pool = common::test_pool().await;
    let minute = UniqueOptions::new().period(60);
    let first = job(json!({"id": 1}), minute).insert(&pool).await.unwrap();
    assert!(
        job(json!({"id": 1}), minute)
            .insert(&pool)
            .await
            .unwrap()
            .conflict
    );
    sqlx::query(
        "UPDATE oban_jobs SET inserted_at = inserted_at - interval '61 seconds' WHERE id = $1",
    )
    .bind(first.id)
    .execute(&pool)
    .await
    .unwrap();
    let after = job(json!({"id": 1}), minute).insert(&pool).await.unwrap();
    assert!(!after.conflict, "the first job is outside the period");
    assert_ne!(after.id, first.id);
    assert!(
        job(json!({"id": 1}), minute)
            .insert(&pool)
            .await
            .unwrap()
            .conflict,
        "the new one blocks in turn"
    );

    let forever = UniqueOptions::new().infinite();
    let kept = job(json!({"id": 2}), forever).insert(&pool).await.unwrap();
    sqlx::query(
        "UPDATE oban_jobs SET inserted_at = inserted_at - interval '10 years' WHERE id = $1",
    )
    .bind(kept.id)
    .execute(&pool)
    .await
    .unwrap();
    assert!(
        job(json!({"id": 2}), forever)
            .insert(&pool)
            .await
            .unwrap()
            .conflict,
        "infinity never expires"
    );
}

#[tokio::test]
async fn the_period_can_be_measured_from_scheduled_at() {
    let pool = common::test_pool().await;
    let by_schedule = UniqueOptions::new()
        .period(60)
        .timestamp(UniqueTimestamp::ScheduledAt);
    let first = job(json!({"id": 1}), by_schedule)
        .insert(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE oban_jobs SET scheduled_at = scheduled_at - interval '2 minutes', inserted_at = timezone('UTC', now()) WHERE id = $1",
    )
    .bind(first.id)
    .execute(&pool)
    .await
    .unwrap();
    assert!(
        !job(json!({"id": 1}), by_schedule)
            .insert(&pool)
            .await
            .unwrap()
            .conflict,
        "scheduled_at is past the period"
    );

    let by_insert = UniqueOptions::new().period(60);
    let second = job(json!({"id": 2}), by_insert)
        .insert(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE oban_jobs SET scheduled_at = scheduled_at - interval '2 minutes' WHERE id = $1",
    )
    .bind(second.id)
    .execute(&pool)
    .await
    .unwrap();
    assert!(
        job(json!({"id": 2}), by_insert)
            .insert(&pool)
            .await
            .unwrap()
            .conflict,
        "inserted_at is within the period"
    );
}

/// A worker that ends the way its args say.
#[derive(Serialize, Deserialize)]
struct Ends {
    id: i64,
    how: String,
}

impl Worker for Ends {
    const NAME: &'static str = "Test.Ends";
    fn options() -> WorkerOptions {
        WorkerOptions::new().unique(
            UniqueOptions::new()
                .keys(&["id"])
                .states(UniqueStates::Successful),
        )
    }
    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(match self.how.as_str() {
            "discard" => Outcome::Discard("no".into()),
            "cancel" => Outcome::Cancel("no".into()),
            _ => Outcome::Complete,
        })
    }
}

async fn run_to(pool: &PgPool, builder: JobBuilder<Ends>, state: &str) -> i64 {
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("default", 2)
        .register::<Ends>()
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let job = builder.insert(&oban).await.unwrap();
    assert!(!job.conflict);
    wait::wait_for_state(pool, job.id, state).await;
    oban.shutdown(Duration::from_secs(1)).await;
    job.id
}

fn ends(id: i64, how: &str) -> JobBuilder<Ends> {
    JobBuilder::new(Ends {
        id,
        how: how.into(),
    })
}

#[tokio::test]
async fn states_groups_decide_which_existing_jobs_block() {
    let pool = common::test_pool().await;
    let with = |states| UniqueOptions::new().keys(&["id"]).states(states);

    // successful (the worker's default): a completed job blocks, a discarded one does not.
    run_to(&pool, ends(1, "ok"), "completed").await;
    assert!(ends(1, "ok").insert(&pool).await.unwrap().conflict);
    run_to(&pool, ends(2, "discard"), "discarded").await;
    assert!(!ends(2, "ok").insert(&pool).await.unwrap().conflict);

    // incomplete: once completed, a new one may be inserted.
    run_to(
        &pool,
        ends(3, "ok").unique(with(UniqueStates::Incomplete)),
        "completed",
    )
    .await;
    assert!(
        !ends(3, "ok")
            .unique(with(UniqueStates::Incomplete))
            .insert(&pool)
            .await
            .unwrap()
            .conflict
    );
    let waiting = ends(4, "ok")
        .unique(with(UniqueStates::Incomplete))
        .insert(&pool)
        .await
        .unwrap();
    assert!(
        ends(4, "ok")
            .unique(with(UniqueStates::Incomplete))
            .insert(&pool)
            .await
            .unwrap()
            .conflict,
        "available blocks"
    );
    assert_eq!(waiting.state, JobState::Available);

    // scheduled: only a scheduled job blocks; an available one does not.
    let sched = with(UniqueStates::Scheduled);
    let later = ends(5, "ok")
        .unique(sched)
        .schedule_in(Duration::from_secs(3600))
        .insert(&pool)
        .await
        .unwrap();
    assert_eq!(later.state, JobState::Scheduled);
    assert!(
        ends(5, "ok")
            .unique(sched)
            .insert(&pool)
            .await
            .unwrap()
            .conflict,
        "a scheduled duplicate blocks"
    );
    let now1 = ends(6, "ok").unique(sched).insert(&pool).await.unwrap();
    let now2 = ends(6, "ok").unique(sched).insert(&pool).await.unwrap();
    assert!(
        !now1.conflict && !now2.conflict,
        "available jobs do not hold the key"
    );

    // all: even cancelled and discarded jobs block.
    let all = with(UniqueStates::All);
    run_to(&pool, ends(7, "cancel").unique(all), "cancelled").await;
    assert!(
        ends(7, "ok")
            .unique(all)
            .insert(&pool)
            .await
            .unwrap()
            .conflict
    );
    let pending = ends(8, "ok")
        .unique(all)
        .schedule_in(Duration::from_secs(60))
        .insert(&pool)
        .await
        .unwrap();
    let oban = Oban::builder()
        .pool(pool.clone())
        .migrate(false)
        .start()
        .await
        .unwrap();
    assert!(oban.cancel_job(pending.id).await.unwrap());
    assert!(
        ends(8, "ok")
            .unique(all)
            .insert(&pool)
            .await
            .unwrap()
            .conflict,
        "cancelled still blocks under all"
    );
    // ...but the cancel releases an incomplete job's key.
    let inc = ends(9, "ok")
        .unique(with(UniqueStates::Incomplete))
        .schedule_in(Duration::from_secs(60))
        .insert(&pool)
        .await
        .unwrap();
    assert!(oban.cancel_job(inc.id).await.unwrap());
    assert!(
        !ends(9, "ok")
            .unique(with(UniqueStates::Incomplete))
            .insert(&pool)
            .await
            .unwrap()
            .conflict
    );
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn replace_updates_chosen_fields_of_the_duplicate_by_its_state() {
    let pool = common::test_pool().await;
    let unique = UniqueOptions::new().keys(&["id"]);
    let scheduled = job(json!({"id": 1, "v": 1}), unique)
        .schedule_in(Duration::from_secs(3600))
        .insert(&pool)
        .await
        .unwrap();
    let moved = job(json!({"id": 1, "v": 2}), unique)
        .schedule_in(Duration::from_secs(60))
        .replace(JobState::Scheduled, &[ReplaceField::ScheduledAt])
        .replace(JobState::Available, &[ReplaceField::Args])
        .insert(&pool)
        .await
        .unwrap();
    assert!(moved.conflict);
    assert_eq!(moved.id, scheduled.id);
    assert!(
        moved.scheduled_at < scheduled.scheduled_at - chrono::Duration::minutes(50),
        "scheduled_at replaced"
    );
    assert_eq!(
        moved.args["v"], 1,
        "args are replaced only for available jobs"
    );

    let available = job(json!({"id": 2, "v": 1}), unique)
        .insert(&pool)
        .await
        .unwrap();
    let replaced = job(json!({"id": 2, "v": 2}), unique)
        .priority(3)
        .replace(
            JobState::Available,
            &[ReplaceField::Args, ReplaceField::Priority],
        )
        .insert(&pool)
        .await
        .unwrap();
    assert!(replaced.conflict);
    assert_eq!(replaced.id, available.id);
    assert_eq!(replaced.args["v"], 2);
    assert_eq!(replaced.priority, 3);
    let stored = common::fetch_job(&pool, available.id).await;
    assert_eq!(stored.args["v"], 2);
    assert_eq!(count(&pool).await, 2);
}

#[tokio::test]
async fn insert_all_honours_uniqueness_in_the_table_and_within_the_batch() {
    let pool = common::test_pool().await;
    let unique = UniqueOptions::new().keys(&["id"]);
    let existing = job(json!({"id": 0}), unique).insert(&pool).await.unwrap();
    let batch = vec![
        job(json!({"id": 1}), unique),
        job(json!({"id": 2}), unique),
        job(json!({"id": 1, "again": true}), unique),
        NewJob::new("Test.Unique", json!({"id": 1})),
        job(json!({"id": 0}), unique),
        job(json!({"id": 3}), unique),
        job(json!({"id": 2}), unique),
    ];
    let out = oban::insert_all(&pool, batch).await.unwrap();
    let conflicts: Vec<bool> = out.iter().map(|j| j.conflict).collect();
    assert_eq!(conflicts, [false, false, true, false, true, false, true]);
    assert_eq!(
        out[2].id, out[0].id,
        "the in-batch duplicate reports the first of the batch"
    );
    assert_eq!(out[6].id, out[1].id);
    assert_eq!(out[4].id, existing.id);
    assert_eq!(
        out[3].args,
        json!({"id": 1}),
        "non-unique rows keep their place"
    );
    assert_eq!(count(&pool).await, 5);
}

#[tokio::test]
async fn worker_options_make_every_job_unique_unless_told_otherwise() {
    let pool = common::test_pool().await;
    let a = ends(1, "ok").insert(&pool).await.unwrap();
    let b = ends(1, "other").insert(&pool).await.unwrap();
    assert!(
        b.conflict && b.id == a.id,
        "keys = [id] from the worker's options"
    );
    let c = ends(1, "ok").not_unique().insert(&pool).await.unwrap();
    assert!(!c.conflict);
}

#[tokio::test]
async fn concurrent_transactions_never_insert_duplicates_and_callers_are_told_the_truth() {
    let pool = common::test_pool().await;
    const TASKS: usize = 16;
    const ROUNDS: usize = 50;
    const LOGICAL: i64 = 100;
    let unique = UniqueOptions::new().keys(&["n"]).infinite();

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                // (logical n, job id, conflict) from transactions that committed.
                let mut committed: Vec<(i64, i64, bool)> = Vec::new();
                let mut conflicts_in_rollbacks: Vec<(i64, i64)> = Vec::new();
                for round in 0..ROUNDS {
                    let rollback = (task + round) % 5 == 0;
                    let mut tx = pool.begin().await.unwrap();
                    let mut seen = Vec::new();
                    if round % 2 == 0 {
                        let jobs = (0..LOGICAL)
                            .map(|n| job(json!({"n": n, "task": task}), unique))
                            .collect();
                        for (n, job) in oban::insert_all(&mut *tx, jobs)
                            .await
                            .unwrap()
                            .into_iter()
                            .enumerate()
                        {
                            seen.push((n as i64, job.id, job.conflict));
                        }
                    } else {
                        for n in 0..LOGICAL {
                            let job = job(json!({"n": n, "round": round}), unique)
                                .insert(&mut *tx)
                                .await
                                .unwrap();
                            seen.push((n, job.id, job.conflict));
                        }
                    }
                    if rollback {
                        tx.rollback().await.unwrap();
                        conflicts_in_rollbacks
                            .extend(seen.iter().filter(|s| s.2).map(|s| (s.0, s.1)));
                    } else {
                        tx.commit().await.unwrap();
                        committed.extend(seen);
                    }
                }
                (committed, conflicts_in_rollbacks)
            })
        })
        .collect();

    let mut committed = Vec::new();
    let mut rolled_back_conflicts = Vec::new();
    for task in tasks {
        let (c, r) = task.await.unwrap();
        committed.extend(c);
        rolled_back_conflicts.extend(r);
    }

    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT (args->>'n')::int8, id FROM oban_jobs ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows.len(),
        LOGICAL as usize,
        "exactly one row per logical job"
    );
    let row_of: HashMap<i64, i64> = rows.into_iter().collect();
    assert_eq!(row_of.len(), LOGICAL as usize);

    let mut winners: HashMap<i64, Vec<i64>> = HashMap::new();
    for (n, id, conflict) in &committed {
        if *conflict {
            assert_eq!(
                row_of[n], *id,
                "a conflict names the job that is in the table"
            );
        } else {
            winners.entry(*n).or_default().push(*id);
        }
    }
    for (n, ids) in &winners {
        assert_eq!(
            ids,
            &vec![row_of[n]],
            "one committed insert per logical job, and it is the row"
        );
    }
    assert_eq!(winners.len(), LOGICAL as usize);
    for (n, id) in rolled_back_conflicts {
        assert_eq!(
            row_of[&n], id,
            "conflicts are reported against committed jobs only"
        );
    }
}
