//! Uniqueness: fields and keys, periods, state groups, replace, batches, concurrency.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use oban::engine::Ack;
use oban::{
    JobFilter, JobState, NewJob, ReplaceField, UniqueField, UniqueOptions, UniqueStates,
    UniqueTimestamp,
};
use serde_json::json;

use crate::harness::{Db, Kind};
use crate::helpers::{ack, backdate_jobs, error_entry, fetch, finish_as, ms, unique_job};

pub(crate) async fn unique_conflict_returns_the_existing_job(kind: Kind) {
    let db = Db::new(kind).await;
    let first = db
        .insert(unique_job(json!({"id": 1}), UniqueOptions::new()))
        .await;
    assert!(!first.conflict);
    assert_eq!(
        first.meta["uniq_states"].as_array().unwrap().len(),
        6,
        "states recorded"
    );
    let second = db
        .insert(unique_job(json!({"id": 1}), UniqueOptions::new()))
        .await;
    assert!(second.conflict);
    assert_eq!(second.id, first.id);
    let mut stored = second.clone();
    stored.conflict = false;
    assert_eq!(stored, first, "the existing job as stored");
    let other = db
        .insert(unique_job(json!({"id": 2}), UniqueOptions::new()))
        .await;
    assert!(!other.conflict);
    let plain = db
        .insert(NewJob::new("Test.Unique", json!({"id": 1})))
        .await;
    assert!(
        !plain.conflict,
        "jobs without unique options are never duplicates"
    );
    assert_eq!(db.count(JobFilter::new()).await, 3);
    // Through the pool inserter too.
    let via_pool = db
        .insert_via_pool(vec![unique_job(json!({"id": 1}), UniqueOptions::new())])
        .await;
    assert!(via_pool[0].conflict && via_pool[0].id == first.id);
}

pub(crate) async fn unique_fields_and_keys_choose_what_is_compared(kind: Kind) {
    let db = Db::new(kind).await;
    let default = UniqueOptions::new();
    db.insert(unique_job(json!({"id": 1}), default).queue("a"))
        .await;
    assert!(
        !db.insert(unique_job(json!({"id": 1}), default).queue("b"))
            .await
            .conflict
    );
    assert!(
        !db.insert(
            NewJob::new("Test.Other", json!({"id": 1}))
                .queue("a")
                .unique(default)
        )
        .await
        .conflict
    );
    let args_only = UniqueOptions::new().fields(&[UniqueField::Args]);
    db.insert(unique_job(json!({"id": 7}), args_only).queue("a"))
        .await;
    assert!(
        db.insert(
            NewJob::new("Test.Other", json!({"id": 7}))
                .queue("b")
                .unique(args_only)
        )
        .await
        .conflict,
        "with fields = [args], worker and queue do not matter"
    );
    let meta = UniqueOptions::new()
        .fields(&[UniqueField::Worker, UniqueField::Meta])
        .keys(&["tenant"]);
    db.insert(
        unique_job(json!({"id": 1}), meta)
            .meta("tenant", 5)
            .meta("trace", "a"),
    )
    .await;
    assert!(
        db.insert(unique_job(json!({"id": 2}), meta).meta("tenant", 5))
            .await
            .conflict
    );
    assert!(
        !db.insert(unique_job(json!({"id": 2}), meta).meta("tenant", 6))
            .await
            .conflict
    );

    let by_recipient = UniqueOptions::new().keys(&["recipient", "template"]);
    db.insert(unique_job(
        json!({"recipient": "a@x", "template": "r", "order": 1}),
        by_recipient,
    ))
    .await;
    assert!(
        db.insert(unique_job(
            json!({"template": "r", "recipient": "a@x", "order": 2}),
            by_recipient
        ))
        .await
        .conflict,
        "other args and key order do not matter"
    );
    assert!(
        !db.insert(unique_job(json!({"template": "welcome"}), by_recipient))
            .await
            .conflict
    );
    assert!(
        db.insert(unique_job(
            json!({"template": "welcome", "note": 1}),
            by_recipient
        ))
        .await
        .conflict,
        "two jobs lacking a key agree on it"
    );
    assert!(
        !db.insert(unique_job(
            json!({"template": "welcome", "recipient": null}),
            by_recipient
        ))
        .await
        .conflict,
        "a null value is not a missing key"
    );
}

pub(crate) async fn unique_period_expires_by_inserted_at_or_scheduled_at(kind: Kind) {
    let db = Db::new(kind).await;
    let minute = UniqueOptions::new().period(60);
    let first = db.insert(unique_job(json!({"id": 1}), minute)).await;
    assert!(
        db.insert(unique_job(json!({"id": 1}), minute))
            .await
            .conflict
    );
    // The period runs out: the first job is made two minutes old in the table rather than
    // waited for, so no margin depends on the machine's speed.
    backdate_jobs(&db, "inserted_at", &[first.id], ms(120_000)).await;
    let after = db.insert(unique_job(json!({"id": 1}), minute)).await;
    assert!(!after.conflict, "the first job is outside the period");
    assert_ne!(after.id, first.id);
    assert!(
        db.insert(unique_job(json!({"id": 1}), minute))
            .await
            .conflict,
        "the new one blocks in turn"
    );
    let forever = UniqueOptions::new().infinite();
    db.insert(unique_job(json!({"id": 3}), forever)).await;
    assert!(
        db.insert(unique_job(json!({"id": 3}), forever))
            .await
            .conflict
    );

    // Measured from scheduled_at: a job scheduled two minutes ago is out of a 60 s period...
    let two_minutes_ago = Utc::now() - chrono::Duration::minutes(2);
    let by_schedule = UniqueOptions::new()
        .period(60)
        .timestamp(UniqueTimestamp::ScheduledAt);
    let old = db
        .insert(unique_job(json!({"id": 2}), by_schedule).scheduled_at(two_minutes_ago))
        .await;
    assert_eq!(old.state, JobState::Available);
    assert!(
        !db.insert(unique_job(json!({"id": 2}), by_schedule))
            .await
            .conflict,
        "scheduled_at is past the period"
    );
    // ...while measured from inserted_at it is within it.
    let by_insert = UniqueOptions::new().period(60);
    db.insert(unique_job(json!({"id": 4}), by_insert).scheduled_at(two_minutes_ago))
        .await;
    assert!(
        db.insert(unique_job(json!({"id": 4}), by_insert))
            .await
            .conflict,
        "inserted_at is within the period"
    );
}

pub(crate) async fn unique_states_groups_follow_every_state_change(kind: Kind) {
    let db = Db::new(kind).await;
    let with = |states| UniqueOptions::new().keys(&["id"]).states(states);
    let ins = |id: i64, unique: UniqueOptions| {
        let db = &db;
        async move {
            db.insert(unique_job(json!({"id": id}), unique).queue(format!("q{id}")))
                .await
        }
    };

    // successful: a completed job blocks, a discarded one does not.
    let ok = with(UniqueStates::Successful);
    let job = ins(1, ok).await;
    finish_as(&db, &job, JobState::Completed).await;
    assert!(ins(1, ok).await.conflict);
    let job = ins(2, ok).await;
    finish_as(&db, &job, JobState::Discarded).await;
    assert!(!ins(2, ok).await.conflict);
    // executing blocks under successful
    let job = ins(10, ok).await;
    fetch(&db, "q10", 1).await;
    assert!(ins(10, ok).await.conflict);
    let _ = job;

    // incomplete: once completed (or cancelled), a new one may be inserted.
    let inc = with(UniqueStates::Incomplete);
    let job = ins(3, inc).await;
    assert!(ins(3, inc).await.conflict, "available blocks");
    finish_as(&db, &job, JobState::Completed).await;
    assert!(!ins(3, inc).await.conflict);
    let job = ins(4, inc).await;
    finish_as(&db, &job, JobState::Cancelled).await;
    assert!(!ins(4, inc).await.conflict, "a cancel releases the key");
    // retryable (after a failed attempt) still blocks; a rescued one too
    let job = ins(5, inc).await;
    let fetched = fetch(&db, "q5", 1).await;
    db.engine
        .job_ack_many(&[Ack {
            schedule_in: Some(Duration::from_secs(60)),
            error: Some(error_entry(1, "x")),
            ..ack(&fetched[0], JobState::Retryable)
        }])
        .await
        .unwrap();
    assert!(ins(5, inc).await.conflict, "retryable blocks");
    db.engine
        .job_retry_many(&JobFilter::id(job.id))
        .await
        .unwrap();
    assert!(
        ins(5, inc).await.conflict,
        "retried: available again, still blocks"
    );

    // scheduled: only a scheduled job blocks; an available one does not hold the key.
    let sched = with(UniqueStates::Scheduled);
    let later = db
        .insert(
            unique_job(json!({"id": 6}), sched)
                .queue("q6")
                .schedule_in(ms(300)),
        )
        .await;
    assert_eq!(later.state, JobState::Scheduled);
    assert!(ins(6, sched).await.conflict, "a scheduled duplicate blocks");
    // Not synchronisation: time passes until the job is due (300 ms), to stage it here.
    tokio::time::sleep(ms(400)).await;
    db.engine.job_stage_due(100).await.unwrap();
    assert_eq!(db.job(later.id).await.state, JobState::Available);
    assert!(
        !ins(6, sched).await.conflict,
        "staged to available: the key is released"
    );
    let now1 = ins(7, sched).await;
    let now2 = ins(7, sched).await;
    assert!(
        !now1.conflict && !now2.conflict,
        "available jobs do not hold the key"
    );

    // all: even cancelled and discarded jobs block.
    let all = with(UniqueStates::All);
    let job = ins(8, all).await;
    finish_as(&db, &job, JobState::Cancelled).await;
    assert!(
        ins(8, all).await.conflict,
        "cancelled still blocks under all"
    );
    let job = ins(9, all).await;
    finish_as(&db, &job, JobState::Discarded).await;
    assert!(ins(9, all).await.conflict);
    // A snooze (executing -> scheduled) keeps the key under all.
    let job = ins(11, all).await;
    let fetched = fetch(&db, "q11", 1).await;
    db.engine
        .job_ack_many(&[Ack {
            schedule_in: Some(Duration::from_secs(60)),
            give_back_attempt: true,
            meta: Some(json!({"snoozed": 1})),
            ..ack(&fetched[0], JobState::Scheduled)
        }])
        .await
        .unwrap();
    assert_eq!(db.job(job.id).await.state, JobState::Scheduled);
    assert!(ins(11, all).await.conflict);
}

pub(crate) async fn unique_replace_updates_the_duplicate_by_its_state(kind: Kind) {
    let db = Db::new(kind).await;
    let unique = UniqueOptions::new().keys(&["id"]);
    let scheduled = db
        .insert(unique_job(json!({"id": 1, "v": 1}), unique).schedule_in(Duration::from_secs(3600)))
        .await;
    let moved = db
        .insert(
            unique_job(json!({"id": 1, "v": 2}), unique)
                .schedule_in(Duration::from_secs(60))
                .replace(JobState::Scheduled, &[ReplaceField::ScheduledAt])
                .replace(JobState::Available, &[ReplaceField::Args]),
        )
        .await;
    assert!(moved.conflict);
    assert_eq!(moved.id, scheduled.id);
    assert!(moved.scheduled_at < scheduled.scheduled_at - chrono::Duration::minutes(50));
    assert_eq!(
        moved.args["v"], 1,
        "args are replaced only for available jobs"
    );

    let available = db
        .insert(unique_job(json!({"id": 2, "v": 1}), unique))
        .await;
    let replaced = db
        .insert(
            unique_job(json!({"id": 2, "v": 2}), unique)
                .priority(3)
                .max_attempts(7)
                .tag("new")
                .meta("extra", "x")
                .queue("default")
                .replace(
                    JobState::Available,
                    &[
                        ReplaceField::Args,
                        ReplaceField::Priority,
                        ReplaceField::MaxAttempts,
                        ReplaceField::Tags,
                        ReplaceField::Meta,
                    ],
                ),
        )
        .await;
    assert!(replaced.conflict);
    assert_eq!(replaced.id, available.id);
    assert_eq!(replaced.args, json!({"id": 2, "v": 2}));
    assert_eq!((replaced.priority, replaced.max_attempts), (3, 7));
    assert_eq!(replaced.tags, ["new"]);
    assert_eq!(replaced.meta["extra"], "x");
    assert!(
        replaced.meta["uniq_states"].is_array(),
        "unique bookkeeping kept"
    );
    let mut stored = replaced.clone();
    stored.conflict = false;
    assert_eq!(db.job(available.id).await, stored);
    assert_eq!(db.count(JobFilter::new()).await, 2);
}

pub(crate) async fn unique_insert_all_dedups_within_the_batch(kind: Kind) {
    let db = Db::new(kind).await;
    let unique = UniqueOptions::new().keys(&["id"]);
    let existing = db.insert(unique_job(json!({"id": 0}), unique)).await;
    let out = db
        .engine
        .job_insert_many(vec![
            unique_job(json!({"id": 1}), unique),
            unique_job(json!({"id": 2}), unique),
            unique_job(json!({"id": 1, "again": true}), unique),
            NewJob::new("Test.Unique", json!({"id": 1})),
            unique_job(json!({"id": 0}), unique),
            unique_job(json!({"id": 3}), unique),
            unique_job(json!({"id": 2}), unique),
        ])
        .await
        .unwrap();
    let conflicts: Vec<bool> = out.iter().map(|j| j.conflict).collect();
    assert_eq!(conflicts, [false, false, true, false, true, false, true]);
    assert_eq!(
        out[2].id, out[0].id,
        "the in-batch duplicate reports the first"
    );
    assert_eq!(out[6].id, out[1].id);
    assert_eq!(out[4].id, existing.id);
    assert_eq!(
        out[3].args,
        json!({"id": 1}),
        "non-unique rows keep their place"
    );
    assert_eq!(db.count(JobFilter::new()).await, 5);

    // A batch job inserted outside its states does not block its batch twin.
    let sched = UniqueOptions::new()
        .keys(&["id"])
        .states(UniqueStates::Scheduled);
    let out = db
        .engine
        .job_insert_many(vec![
            unique_job(json!({"id": 9}), sched),
            unique_job(json!({"id": 9}), sched),
        ])
        .await
        .unwrap();
    assert!(!out[0].conflict && !out[1].conflict && out[0].id != out[1].id);
}

pub(crate) async fn unique_concurrent_inserts_never_duplicate(kind: Kind) {
    let db = Db::new(kind).await;
    const TASKS: usize = 6;
    const ROUNDS: usize = 6;
    const LOGICAL: i64 = 40;
    let unique = UniqueOptions::new().keys(&["n"]).infinite();
    let engines = [Arc::clone(&db.engine), db.another_engine().await];
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let engine = Arc::clone(&engines[task % 2]);
            tokio::spawn(async move {
                let mut seen: Vec<(i64, i64, bool)> = Vec::new();
                for round in 0..ROUNDS {
                    if round % 2 == 0 {
                        let jobs = (0..LOGICAL)
                            .map(|n| unique_job(json!({"n": n, "task": task}), unique))
                            .collect();
                        let out = engine.job_insert_many(jobs).await.expect("insert_all");
                        seen.extend(
                            out.iter()
                                .enumerate()
                                .map(|(n, j)| (n as i64, j.id, j.conflict)),
                        );
                    } else {
                        for n in (0..LOGICAL).step_by(3) {
                            let mut out = engine
                                .job_insert_many(vec![unique_job(
                                    json!({"n": n, "round": round}),
                                    unique,
                                )])
                                .await
                                .expect("insert");
                            let job = out.pop().unwrap();
                            seen.push((n, job.id, job.conflict));
                        }
                    }
                }
                seen
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.extend(task.await.unwrap());
    }
    let rows = db.jobs(JobFilter::new()).await;
    assert_eq!(
        rows.len(),
        LOGICAL as usize,
        "exactly one row per logical job"
    );
    let row_of: HashMap<i64, i64> = rows
        .iter()
        .map(|j| (j.args["n"].as_i64().unwrap(), j.id))
        .collect();
    assert_eq!(row_of.len(), LOGICAL as usize);
    let mut winners: HashMap<i64, Vec<i64>> = HashMap::new();
    for (n, id, conflict) in seen {
        if conflict {
            assert_eq!(row_of[&n], id, "a conflict names the job in the table");
        } else {
            winners.entry(n).or_default().push(id);
        }
    }
    assert_eq!(winners.len(), LOGICAL as usize);
    assert!(
        winners.iter().all(|(n, ids)| ids == &vec![row_of[n]]),
        "one winner each"
    );
}
