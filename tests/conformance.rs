//! The engine conformance suite: every behaviour the runtime needs from a database, written once
//! and run against each engine (PostgreSQL and SQLite), through the `Engine` trait and through
//! `Oban` nodes. `conformance!` below stamps out one `#[tokio::test]` per engine per behaviour,
//! named `postgres::<behaviour>` and `sqlite::<behaviour>`.
//!
//! What an engine cannot do is tested as its documented degradation: SQLite's notifications
//! reach the nodes of one process (here, every node is in this process).

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use harness::{wait_until, Db, Kind};
use oban::cron::{CronEntry, CronScheduler};
use oban::engine::{Ack, Channel, Notice};
use oban::{
    Backoff, Job, JobBuilder, JobContext, JobError, JobFilter, JobState, NewJob, Nodes, Oban,
    Outcome, ReplaceField, UniqueField, UniqueOptions, UniqueStates, UniqueTimestamp, Worker,
    WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One `#[tokio::test]` per engine for every behaviour named.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Sqlite).await
                }
            )*
        }
    };
}

conformance!(
    schema_migrate_is_idempotent_and_reindex_works,
    insert_many_keeps_input_order_and_every_field,
    insert_refuses_invalid_jobs_and_accepts_an_empty_batch,
    fetch_takes_available_jobs_in_priority_scheduled_at_id_order,
    concurrent_fetchers_never_get_the_same_job,
    acks_record_every_outcome_and_ignore_stale_attempts,
    staging_makes_due_jobs_available_within_the_limit,
    rescue_returns_orphaned_jobs_and_forgets_dead_producers,
    prune_deletes_old_finished_jobs_in_batches,
    list_retry_cancel_and_delete_by_filter,
    unique_conflict_returns_the_existing_job,
    unique_fields_and_keys_choose_what_is_compared,
    unique_period_expires_by_inserted_at_or_scheduled_at,
    unique_states_groups_follow_every_state_change,
    unique_replace_updates_the_duplicate_by_its_state,
    unique_insert_all_dedups_within_the_batch,
    unique_concurrent_inserts_never_duplicate,
    pool_and_transaction_inserters,
    leader_election_holds_renews_and_hands_over,
    notify_reaches_every_listener_on_the_database,
    producer_heartbeats_are_listed_and_deleted,
    cron_scheduler_inserts_each_minute_once,
    node_runs_every_outcome,
    nodes_share_queue_control_and_cancel_running_jobs,
    node_hands_back_unfinished_jobs_at_shutdown,
    node_leadership_moves_when_the_leader_stops,
    node_runs_a_thousand_jobs_exactly_once,
);

// ---------------------------------------------------------------------------------------------
// Helpers

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn attempted_by(producer: &str) -> Vec<String> {
    vec!["conformance".to_owned(), producer.to_owned()]
}

/// Fetches everything available in `queue`.
async fn fetch(db: &Db, queue: &str, demand: u32) -> Vec<Job> {
    db.engine
        .job_fetch_available(queue, demand, &attempted_by("p1"), None)
        .await
        .expect("fetch")
}

fn ack(job: &Job, state: JobState) -> Ack {
    Ack {
        id: job.id,
        attempted_at: job.attempted_at.expect("fetched").naive_utc(),
        state,
        schedule_in: None,
        give_back_attempt: false,
        error: None,
        meta: None,
    }
}

fn error_entry(attempt: i32, message: &str) -> Value {
    json!({"attempt": attempt, "at": Utc::now().to_rfc3339(), "error": message})
}

fn close(a: DateTime<Utc>, b: DateTime<Utc>, within: Duration) -> bool {
    (a - b).abs() <= chrono::Duration::from_std(within).unwrap()
}

fn ids(jobs: &[Job]) -> Vec<i64> {
    jobs.iter().map(|j| j.id).collect()
}

fn unique_job(args: Value, unique: UniqueOptions) -> NewJob {
    NewJob::new("Test.Unique", args).unique(unique)
}

/// Runs `job` through fetch and an ack to `state` (cancelled through `job_cancel_many`).
async fn finish_as(db: &Db, job: &Job, state: JobState) {
    if state == JobState::Cancelled {
        db.engine
            .job_cancel_many(&JobFilter::id(job.id))
            .await
            .unwrap();
        return;
    }
    let fetched = fetch(db, &job.queue, 1).await;
    assert_eq!(ids(&fetched), [job.id], "the job is the one fetched");
    let acked = db
        .engine
        .job_ack_many(&[ack(&fetched[0], state)])
        .await
        .unwrap();
    assert_eq!(acked, [job.id]);
}

// ---------------------------------------------------------------------------------------------
// Schema

async fn schema_migrate_is_idempotent_and_reindex_works(kind: Kind) {
    let db = Db::new(kind).await;
    db.engine.schema_migrate().await.unwrap();
    db.engine.schema_migrate().await.unwrap();
    let job = db.insert(NewJob::new("W", json!({}))).await;
    db.engine.schema_reindex().await.unwrap();
    assert_eq!(db.job(job.id).await, job);
    // Migrations from many nodes at once.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let engine = db.another_engine().await;
        tasks.push(tokio::spawn(async move { engine.schema_migrate().await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(db.count(JobFilter::new()).await, 1);
}

// ---------------------------------------------------------------------------------------------
// Insert

async fn insert_many_keeps_input_order_and_every_field(kind: Kind) {
    let db = Db::new(kind).await;
    let later = Utc::now() + chrono::Duration::hours(1);
    let before = Utc::now();
    let out = db
        .engine
        .job_insert_many(vec![
            NewJob::new(
                "W.A",
                json!({"n": 1, "nested": {"x": [1, 2.5, "y", null, true]}}),
            )
            .queue("alpha")
            .priority(3)
            .max_attempts(5)
            .tag("t1")
            .tag("t2")
            .meta("m", "v"),
            NewJob::new("W.B", json!({"n": 2})).scheduled_at(later),
            NewJob::new("W.C", json!({"text": "quote ' and \" and ünïcode"})).queue("beta"),
        ])
        .await
        .unwrap();
    let after = Utc::now();
    assert_eq!(out.len(), 3);
    assert!(
        out.windows(2).all(|w| w[0].id < w[1].id),
        "ids in input order"
    );
    let a = &out[0];
    assert_eq!(a.state, JobState::Available);
    assert_eq!((a.queue.as_str(), a.worker.as_str()), ("alpha", "W.A"));
    assert_eq!((a.priority, a.max_attempts, a.attempt), (3, 5, 0));
    assert_eq!(
        a.args,
        json!({"n": 1, "nested": {"x": [1, 2.5, "y", null, true]}})
    );
    assert_eq!(a.tags, ["t1", "t2"]);
    assert_eq!(a.meta, json!({"m": "v"}));
    assert!(a.errors.is_empty() && a.attempted_by.is_empty());
    assert!(a.attempted_at.is_none() && a.completed_at.is_none());
    assert!(a.discarded_at.is_none() && a.cancelled_at.is_none());
    assert!(!a.conflict);
    let slack = Duration::from_secs(2);
    assert!(
        a.inserted_at >= before - chrono::Duration::from_std(slack).unwrap()
            && a.inserted_at <= after + chrono::Duration::from_std(slack).unwrap(),
        "inserted now: {}",
        a.inserted_at
    );
    assert!(close(a.scheduled_at, a.inserted_at, ms(5)), "runnable now");

    let b = &out[1];
    assert_eq!(b.state, JobState::Scheduled);
    assert!(
        close(b.scheduled_at, later, ms(1)),
        "{} vs {later}",
        b.scheduled_at
    );
    assert_eq!(b.queue, "default");
    assert_eq!((b.priority, b.max_attempts), (0, 20), "Oban's defaults");
    assert_eq!(out[2].args["text"], "quote ' and \" and ünïcode");

    for job in &out {
        assert_eq!(&db.job(job.id).await, job, "stored as returned");
    }

    // A big batch: one call, input order.
    let jobs: Vec<NewJob> = (0..5_000)
        .map(|n| {
            NewJob::new("W.Bulk", json!({"n": n}))
                .queue(if n % 2 == 0 { "even" } else { "odd" })
                .tag("bulk")
        })
        .collect();
    let started = Instant::now();
    let bulk = db.engine.job_insert_many(jobs).await.unwrap();
    eprintln!(
        "{kind:?}: insert_many of 5,000 jobs took {:?}",
        started.elapsed()
    );
    assert_eq!(bulk.len(), 5_000);
    assert!(bulk.iter().enumerate().all(|(i, j)| j.args["n"] == i));
    assert!(bulk.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(bulk[1].queue, "odd");
    assert_eq!(db.count(JobFilter::new().tag("bulk")).await, 5_000);
}

async fn insert_refuses_invalid_jobs_and_accepts_an_empty_batch(kind: Kind) {
    let db = Db::new(kind).await;
    assert!(db
        .engine
        .job_insert_many(Vec::new())
        .await
        .unwrap()
        .is_empty());
    let err = db
        .engine
        .job_insert_many(vec![
            NewJob::new("W", json!({})),
            NewJob::new("W", json!({})).priority(10),
        ])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("priority 10"), "{err}");
    let err = db
        .engine
        .job_insert_many(vec![NewJob::new("W", json!([1, 2]))])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("JSON object"), "{err}");
    let err = db
        .engine
        .job_insert_many(vec![NewJob::new("W", json!({})).queue("")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("queue"), "{err}");
    assert_eq!(db.count(JobFilter::new()).await, 0, "nothing of the batch");
}

// ---------------------------------------------------------------------------------------------
// Fetch

async fn fetch_takes_available_jobs_in_priority_scheduled_at_id_order(kind: Kind) {
    let db = Db::new(kind).await;
    let now = Utc::now();
    let past = |s: i64| now - chrono::Duration::seconds(s);
    let out = db
        .engine
        .job_insert_many(vec![
            NewJob::new("W", json!({"l": "a"}))
                .priority(5)
                .scheduled_at(past(1)),
            NewJob::new("W", json!({"l": "b"}))
                .priority(0)
                .scheduled_at(past(5)),
            NewJob::new("W", json!({"l": "c"}))
                .priority(0)
                .scheduled_at(past(10)),
            NewJob::new("W", json!({"l": "d"}))
                .priority(0)
                .scheduled_at(past(10)),
            NewJob::new("W", json!({"l": "e"})).priority(9),
            NewJob::new("W", json!({"l": "other"})).queue("other"),
            NewJob::new("W", json!({"l": "later"})).schedule_in(Duration::from_secs(3600)),
        ])
        .await
        .unwrap();
    let label = |jobs: &[Job]| -> Vec<String> {
        jobs.iter()
            .map(|j| j.args["l"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = db
        .engine
        .job_fetch_available("default", 2, &attempted_by("p1"), None)
        .await
        .unwrap();
    assert_eq!(
        label(&first),
        ["c", "d"],
        "priority, then scheduled_at, then id"
    );
    for job in &first {
        assert_eq!(job.state, JobState::Executing);
        assert_eq!(job.attempt, 1);
        assert_eq!(job.attempted_by, attempted_by("p1"));
        assert!(close(
            job.attempted_at.unwrap(),
            Utc::now(),
            Duration::from_secs(2)
        ));
        assert_eq!(&db.job(job.id).await, job);
    }
    let rest = db
        .engine
        .job_fetch_available("default", 10, &attempted_by("p2"), None)
        .await
        .unwrap();
    assert_eq!(label(&rest), ["b", "a", "e"]);
    assert!(fetch(&db, "default", 10).await.is_empty(), "none left");
    assert!(fetch(&db, "default", 0).await.is_empty(), "no demand");
    assert_eq!(db.job(out[6].id).await.state, JobState::Scheduled);
    assert_eq!(label(&fetch(&db, "other", 10).await), ["other"]);
}

async fn concurrent_fetchers_never_get_the_same_job(kind: Kind) {
    let db = Db::new(kind).await;
    let jobs: Vec<NewJob> = (0..1_500)
        .map(|n| NewJob::new("W", json!({"n": n})).queue("shared"))
        .collect();
    db.engine.job_insert_many(jobs).await.unwrap();
    let engines = [
        Arc::clone(&db.engine),
        db.another_engine().await,
        db.another_engine().await,
    ];
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let engine = Arc::clone(&engines[i % engines.len()]);
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let jobs = engine
                        .job_fetch_available("shared", 7, &attempted_by(&format!("p{i}")), None)
                        .await
                        .expect("fetch under contention");
                    if jobs.is_empty() {
                        return got;
                    }
                    got.extend(jobs.iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut busy = 0;
    for task in tasks {
        let got = task.await.unwrap();
        busy += usize::from(!got.is_empty());
        all.extend(got);
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 1_500, "every job fetched once");
    assert_eq!(distinct.len(), 1_500, "no job fetched twice");
    assert!(busy >= 2, "fetchers interleaved ({busy} got jobs)");
    let executing = db.jobs(JobFilter::new().state(JobState::Executing)).await;
    assert_eq!(executing.len(), 1_500);
    assert!(executing.iter().all(|j| j.attempt == 1));
}

// ---------------------------------------------------------------------------------------------
// Acks

async fn acks_record_every_outcome_and_ignore_stale_attempts(kind: Kind) {
    let db = Db::new(kind).await;
    let jobs: Vec<NewJob> = (0..8)
        .map(|n| {
            NewJob::new("W", json!({"n": n}))
                .max_attempts(3)
                .meta("keep", true)
        })
        .collect();
    db.engine.job_insert_many(jobs).await.unwrap();
    let fetched = fetch(&db, "default", 8).await;
    assert_eq!(fetched.len(), 8);
    let job = |n: i64| {
        fetched
            .iter()
            .find(|j| j.args["n"] == n)
            .expect("fetched")
            .clone()
    };
    let (complete, retry, discard, cancel, snooze, stale, interrupted, twice) = (
        job(0),
        job(1),
        job(2),
        job(3),
        job(4),
        job(5),
        job(6),
        job(7),
    );
    let mut acks = vec![
        ack(&complete, JobState::Completed),
        Ack {
            schedule_in: Some(Duration::from_secs(60)),
            error: Some(error_entry(1, "boom")),
            ..ack(&retry, JobState::Retryable)
        },
        Ack {
            error: Some(error_entry(1, "discarded: bad address")),
            ..ack(&discard, JobState::Discarded)
        },
        Ack {
            error: Some(error_entry(1, "cancelled: withdrawn")),
            ..ack(&cancel, JobState::Cancelled)
        },
        Ack {
            schedule_in: Some(Duration::from_secs(30)),
            give_back_attempt: true,
            meta: Some(json!({"snoozed": 1})),
            ..ack(&snooze, JobState::Scheduled)
        },
        Ack {
            attempted_at: stale.attempted_at.unwrap().naive_utc() - chrono::Duration::seconds(1),
            ..ack(&stale, JobState::Completed)
        },
        Ack {
            schedule_in: Some(Duration::ZERO),
            give_back_attempt: true,
            error: Some(error_entry(1, "interrupted")),
            ..ack(&interrupted, JobState::Available)
        },
        ack(&twice, JobState::Completed),
    ];
    let acked: HashSet<i64> = db
        .engine
        .job_ack_many(&acks)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let expected: HashSet<i64> = [
        &complete,
        &retry,
        &discard,
        &cancel,
        &snooze,
        &interrupted,
        &twice,
    ]
    .iter()
    .map(|j| j.id)
    .collect();
    assert_eq!(acked, expected, "the stale attempt is not acked");
    let now = Utc::now();

    let done = db.job(complete.id).await;
    assert_eq!((done.state, done.attempt), (JobState::Completed, 1));
    assert!(close(
        done.completed_at.unwrap(),
        now,
        Duration::from_secs(2)
    ));
    assert!(done.errors.is_empty());

    let retried = db.job(retry.id).await;
    assert_eq!((retried.state, retried.attempt), (JobState::Retryable, 1));
    assert!(close(
        retried.scheduled_at,
        now + chrono::Duration::seconds(60),
        Duration::from_secs(3)
    ));
    assert_eq!(retried.errors.len(), 1);
    assert_eq!(
        (retried.errors[0].attempt, retried.errors[0].error.as_str()),
        (1, "boom")
    );
    assert!(!retried.errors[0].at.is_empty());

    let discarded = db.job(discard.id).await;
    assert_eq!(discarded.state, JobState::Discarded);
    assert!(discarded.discarded_at.is_some());
    assert!(discarded.errors[0].error.contains("bad address"));

    let cancelled = db.job(cancel.id).await;
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.cancelled_at.is_some());

    let snoozed = db.job(snooze.id).await;
    assert_eq!((snoozed.state, snoozed.attempt), (JobState::Scheduled, 0));
    assert_eq!(
        snoozed.meta,
        json!({"keep": true, "snoozed": 1}),
        "meta merged"
    );
    assert!(snoozed.errors.is_empty(), "a snooze is no error");
    assert!(close(
        snoozed.scheduled_at,
        now + chrono::Duration::seconds(30),
        Duration::from_secs(3)
    ));

    let left = db.job(stale.id).await;
    assert_eq!(left, stale, "an ack for another attempt changes nothing");

    let back = db.job(interrupted.id).await;
    assert_eq!((back.state, back.attempt), (JobState::Available, 0));
    assert_eq!(back.errors.len(), 1);
    assert!(back.scheduled_at <= Utc::now());

    // A second ack of a finished attempt changes nothing.
    acks.truncate(0);
    acks.push(Ack {
        error: Some(error_entry(1, "late")),
        ..ack(&twice, JobState::Discarded)
    });
    assert!(db.engine.job_ack_many(&acks).await.unwrap().is_empty());
    assert_eq!(db.job(twice.id).await.state, JobState::Completed);
    assert!(db.engine.job_ack_many(&[]).await.unwrap().is_empty());

    // The next attempt of the retried job appends its error after the first.
    let again = fetch(&db, "default", 10).await;
    assert_eq!(
        ids(&again),
        [interrupted.id],
        "only the interrupted one is available"
    );
    assert_eq!(again[0].attempt, 1, "its attempt was given back");
    db.engine
        .job_ack_many(&[Ack {
            error: Some(error_entry(1, "second")),
            ..ack(&again[0], JobState::Discarded)
        }])
        .await
        .unwrap();
    let errors: Vec<String> = db
        .job(interrupted.id)
        .await
        .errors
        .into_iter()
        .map(|e| e.error)
        .collect();
    assert_eq!(errors, ["interrupted", "second"]);
}

// ---------------------------------------------------------------------------------------------
// Staging, rescue, pruning

async fn staging_makes_due_jobs_available_within_the_limit(kind: Kind) {
    let db = Db::new(kind).await;
    let soon = db
        .insert(NewJob::new("W", json!({})).schedule_in(ms(300)))
        .await;
    let other = db
        .insert(
            NewJob::new("W", json!({}))
                .queue("other")
                .schedule_in(ms(310)),
        )
        .await;
    let later = db
        .insert(NewJob::new("W", json!({})).schedule_in(Duration::from_secs(3600)))
        .await;
    assert_eq!(soon.state, JobState::Scheduled);
    assert!(
        db.engine.job_stage_due(100).await.unwrap().is_empty(),
        "nothing due yet"
    );
    tokio::time::sleep(ms(450)).await;
    assert_eq!(
        db.engine.job_stage_due(1).await.unwrap(),
        ["default"],
        "oldest first"
    );
    assert_eq!(db.job(soon.id).await.state, JobState::Available);
    assert_eq!(db.job(other.id).await.state, JobState::Scheduled, "limit 1");
    assert_eq!(db.engine.job_stage_due(100).await.unwrap(), ["other"]);
    assert_eq!(db.job(later.id).await.state, JobState::Scheduled);

    // Retryable jobs are staged too.
    let fetched = fetch(&db, "default", 1).await;
    db.engine
        .job_ack_many(&[Ack {
            schedule_in: Some(Duration::ZERO),
            error: Some(error_entry(1, "retry me")),
            ..ack(&fetched[0], JobState::Retryable)
        }])
        .await
        .unwrap();
    assert_eq!(db.job(soon.id).await.state, JobState::Retryable);
    assert_eq!(db.engine.job_stage_due(100).await.unwrap(), ["default"]);
    let next = fetch(&db, "default", 1).await;
    assert_eq!((next[0].id, next[0].attempt), (soon.id, 2));
}

async fn rescue_returns_orphaned_jobs_and_forgets_dead_producers(kind: Kind) {
    let db = Db::new(kind).await;
    let (live, dead, unknown) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    for uuid in [live, dead] {
        db.engine
            .producer_heartbeat(uuid, "conformance", "q", json!({}))
            .await
            .unwrap();
    }
    let mut held = Vec::new();
    for (queue, producer, max_attempts) in [
        ("q1", dead, 3),
        ("q2", dead, 1),
        ("q3", live, 3),
        ("q4", unknown, 3),
    ] {
        db.insert(
            NewJob::new("W", json!({}))
                .queue(queue)
                .max_attempts(max_attempts)
                .meta("keep", 1),
        )
        .await;
        let by = attempted_by(&producer.to_string());
        let jobs = db
            .engine
            .job_fetch_available(queue, 1, &by, None)
            .await
            .unwrap();
        held.push(jobs[0].clone());
    }
    tokio::time::sleep(ms(300)).await;
    db.engine
        .producer_heartbeat(live, "conformance", "q", json!({}))
        .await
        .unwrap();
    let rescued = db
        .engine
        .job_rescue_orphaned(ms(200), ms(200))
        .await
        .unwrap();
    assert_eq!(rescued, 3);

    let back = db.job(held[0].id).await;
    assert_eq!(back.state, JobState::Available);
    assert_eq!(
        back.attempt, 1,
        "the attempt counts: the node may have run it"
    );
    assert_eq!(back.meta["rescued"], 1);
    assert_eq!(back.meta["keep"], 1);
    assert_eq!(back.meta["rescued_from"], json!(held[0].attempted_by));
    let spent = db.job(held[1].id).await;
    assert_eq!(spent.state, JobState::Discarded);
    assert!(spent.discarded_at.is_some());
    assert_eq!(
        db.job(held[2].id).await.state,
        JobState::Executing,
        "a live producer's job"
    );
    assert_eq!(
        db.job(held[3].id).await.state,
        JobState::Available,
        "unknown producer, started long ago"
    );

    // Rescued again later: the counter grows.
    let refetched = fetch(&db, "q1", 1).await;
    assert_eq!(refetched[0].attempt, 2);
    tokio::time::sleep(ms(700)).await;
    db.engine
        .producer_heartbeat(live, "conformance", "q", json!({}))
        .await
        .unwrap();
    assert_eq!(
        db.engine
            .job_rescue_orphaned(ms(200), ms(200))
            .await
            .unwrap(),
        1
    );
    assert_eq!(db.job(held[0].id).await.meta["rescued"], 2);
    // The dead producer, silent for 3x the threshold with nothing executing, is forgotten.
    let producers: Vec<uuid::Uuid> = db
        .engine
        .producer_list(None)
        .await
        .unwrap()
        .iter()
        .map(|p| p.uuid)
        .collect();
    assert_eq!(producers, [live]);
    assert_eq!(
        db.engine
            .job_rescue_orphaned(ms(200), ms(200))
            .await
            .unwrap(),
        0
    );
}

async fn prune_deletes_old_finished_jobs_in_batches(kind: Kind) {
    let db = Db::new(kind).await;
    let mut old = Vec::new();
    for (queue, state) in [
        ("a", JobState::Completed),
        ("b", JobState::Cancelled),
        ("c", JobState::Discarded),
        ("d", JobState::Completed),
        ("e", JobState::Completed),
    ] {
        let job = db.insert(NewJob::new("W", json!({})).queue(queue)).await;
        finish_as(&db, &job, state).await;
        old.push(job.id);
    }
    let waiting = db.insert(NewJob::new("W", json!({})).queue("f")).await;
    let running = db.insert(NewJob::new("W", json!({})).queue("g")).await;
    fetch(&db, "g", 1).await;
    tokio::time::sleep(ms(800)).await;
    let recent = db.insert(NewJob::new("W", json!({})).queue("h")).await;
    finish_as(&db, &recent, JobState::Completed).await;

    assert_eq!(db.engine.job_prune(ms(500), 2).await.unwrap(), 2, "a batch");
    assert_eq!(db.engine.job_prune(ms(500), 10).await.unwrap(), 3);
    assert_eq!(db.engine.job_prune(ms(500), 10).await.unwrap(), 0);
    let mut left = ids(&db.jobs(JobFilter::new()).await);
    left.sort_unstable();
    assert_eq!(left, [waiting.id, running.id, recent.id]);
}

// ---------------------------------------------------------------------------------------------
// Bulk operations by filter

async fn list_retry_cancel_and_delete_by_filter(kind: Kind) {
    let db = Db::new(kind).await;
    let later = Duration::from_secs(3600);
    let mut jobs = Vec::new();
    for (queue, worker, tags, tenant, region) in [
        ("mailers", "Mail.Send", vec!["billing", "eu"], 1, "eu"),
        ("mailers", "Mail.Send", vec!["billing"], 2, "us"),
        ("mailers", "Mail.Digest", vec!["marketing"], 1, "eu"),
        ("reports", "Report.Build", vec!["billing", "eu"], 1, "us"),
    ] {
        let mut job = NewJob::new(
            worker,
            json!({"tenant": tenant, "opts": {"lang": "fr", "list": [1, 2, 3]}}),
        )
        .queue(queue)
        .meta("region", region)
        .schedule_in(later);
        for tag in tags {
            job = job.tag(tag);
        }
        jobs.push(job);
    }
    let jid: Vec<i64> = ids(&db.engine.job_insert_many(jobs).await.unwrap());
    let listed = |filter: JobFilter| {
        let db = &db;
        async move { ids(&db.engine.job_list(&filter, 100).await.unwrap()) }
    };

    assert_eq!(listed(JobFilter::new()).await, jid, "oldest first");
    assert_eq!(
        db.engine
            .job_list(&JobFilter::new(), 2)
            .await
            .unwrap()
            .len(),
        2,
        "limit"
    );
    assert_eq!(listed(JobFilter::new().queue("reports")).await, [jid[3]]);
    assert_eq!(
        listed(
            JobFilter::new()
                .worker("Mail.Digest")
                .worker("Report.Build")
        )
        .await,
        [jid[2], jid[3]]
    );
    assert_eq!(
        listed(JobFilter::new().tag("billing").tag("eu")).await,
        [jid[0], jid[3]],
        "every tag required"
    );
    assert_eq!(
        listed(JobFilter::new().args_contain(json!({"tenant": 1}))).await,
        [jid[0], jid[2], jid[3]]
    );
    assert_eq!(
        listed(JobFilter::new().args_contain(json!({"opts": {"list": [3]}}))).await,
        jid,
        "nested containment"
    );
    assert!(
        listed(JobFilter::new().args_contain(json!({"opts": {"lang": "de"}})))
            .await
            .is_empty()
    );
    assert_eq!(
        listed(JobFilter::new().meta_contain(json!({"region": "us"}))).await,
        [jid[1], jid[3]]
    );
    assert_eq!(
        listed(JobFilter::ids([jid[3], jid[1]]).state(JobState::Scheduled)).await,
        [jid[1], jid[3]]
    );
    assert!(listed(JobFilter::ids(Vec::new())).await.is_empty());
    assert!(listed(JobFilter::new().state(JobState::Available))
        .await
        .is_empty());
    assert_eq!(
        db.engine
            .job_list(&JobFilter::new().args_contain(json!({"tenant": 1})), 2)
            .await
            .unwrap()
            .len(),
        2,
        "limit with containment"
    );

    // cancel, retry, delete
    let filter = JobFilter::new()
        .queue("mailers")
        .tag("billing")
        .args_contain(json!({"tenant": 1}));
    assert_eq!(
        db.engine.job_cancel_many(&filter).await.unwrap(),
        (1, vec![])
    );
    assert_eq!(db.job(jid[0]).await.state, JobState::Cancelled);
    assert!(db.job(jid[0]).await.cancelled_at.is_some());
    assert_eq!(db.job(jid[1]).await.state, JobState::Scheduled);
    assert_eq!(
        db.engine.job_cancel_many(&filter).await.unwrap().0,
        0,
        "cancelled jobs are not cancelled again"
    );
    let (cancelled, _) = db
        .engine
        .job_cancel_many(
            &JobFilter::new()
                .worker("Mail.Digest")
                .worker("Report.Build"),
        )
        .await
        .unwrap();
    assert_eq!(cancelled, 2);
    assert_eq!(
        db.engine
            .job_retry_many(&JobFilter::new().state(JobState::Cancelled).queue("mailers"))
            .await
            .unwrap(),
        2
    );
    let retried = db.job(jid[0]).await;
    assert_eq!(retried.state, JobState::Available);
    assert!(retried.cancelled_at.is_none());
    assert!(close(
        retried.scheduled_at,
        Utc::now(),
        Duration::from_secs(2)
    ));
    assert_eq!(db.job(jid[3]).await.state, JobState::Cancelled);
    assert_eq!(
        db.engine
            .job_retry_many(&JobFilter::id(jid[0]))
            .await
            .unwrap(),
        0,
        "available jobs are not retried"
    );

    // Running jobs: cancel reports them, delete leaves them, retry leaves them.
    let running = fetch(&db, "mailers", 1).await;
    assert_eq!(ids(&running), [jid[0]]);
    assert_eq!(
        db.engine
            .job_retry_many(&JobFilter::id(jid[0]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.engine
            .job_delete_many(&JobFilter::id(jid[0]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.engine
            .job_cancel_many(&JobFilter::id(jid[0]))
            .await
            .unwrap(),
        (1, vec![jid[0]])
    );

    // Retrying a job whose attempts are spent raises max_attempts.
    let spent = db
        .insert(NewJob::new("W", json!({})).queue("spent").max_attempts(1))
        .await;
    finish_as(&db, &spent, JobState::Discarded).await;
    assert_eq!(
        db.engine
            .job_retry_many(&JobFilter::id(spent.id))
            .await
            .unwrap(),
        1
    );
    let spent = db.job(spent.id).await;
    assert_eq!(
        (spent.state, spent.max_attempts, spent.attempt),
        (JobState::Available, 2, 1)
    );

    assert_eq!(
        db.engine
            .job_delete_many(&JobFilter::new().state(JobState::Cancelled))
            .await
            .unwrap(),
        2
    );
    assert!(db.engine.job_get(jid[3]).await.unwrap().is_none());
    assert_eq!(
        db.engine
            .job_delete_many(&JobFilter::new().meta_contain(json!({"region": "us"})))
            .await
            .unwrap(),
        1
    );
    assert_eq!(db.count(JobFilter::new()).await, 2);
    assert_eq!(
        db.engine.job_delete_many(&JobFilter::new()).await.unwrap(),
        2
    );
}

// ---------------------------------------------------------------------------------------------
// Uniqueness

async fn unique_conflict_returns_the_existing_job(kind: Kind) {
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

async fn unique_fields_and_keys_choose_what_is_compared(kind: Kind) {
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

async fn unique_period_expires_by_inserted_at_or_scheduled_at(kind: Kind) {
    let db = Db::new(kind).await;
    let second = UniqueOptions::new().period(1);
    let first = db.insert(unique_job(json!({"id": 1}), second)).await;
    assert!(
        db.insert(unique_job(json!({"id": 1}), second))
            .await
            .conflict
    );
    tokio::time::sleep(ms(1_200)).await;
    let after = db.insert(unique_job(json!({"id": 1}), second)).await;
    assert!(!after.conflict, "the first job is outside the period");
    assert_ne!(after.id, first.id);
    assert!(
        db.insert(unique_job(json!({"id": 1}), second))
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

async fn unique_states_groups_follow_every_state_change(kind: Kind) {
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

async fn unique_replace_updates_the_duplicate_by_its_state(kind: Kind) {
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

async fn unique_insert_all_dedups_within_the_batch(kind: Kind) {
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

async fn unique_concurrent_inserts_never_duplicate(kind: Kind) {
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

async fn pool_and_transaction_inserters(kind: Kind) {
    let db = Db::new(kind).await;
    let unique = UniqueOptions::new().keys(&["k"]);
    let (kept, lost, dup_in_tx) = match kind {
        Kind::Postgres => {
            let pool = db.pg_pool().unwrap();
            let mut tx = pool.begin().await.unwrap();
            let kept = NewJob::new("W", json!({"k": 1}))
                .unique(unique)
                .insert(&mut *tx)
                .await
                .unwrap();
            let dup = NewJob::new("W", json!({"k": 1}))
                .unique(unique)
                .insert(&mut tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            let lost = NewJob::new("W", json!({"k": 2}))
                .unique(unique)
                .insert(&mut tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            (kept, lost, dup)
        }
        Kind::Sqlite => {
            let pool = db.sqlite_pool().unwrap();
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            let kept = NewJob::new("W", json!({"k": 1}))
                .unique(unique)
                .insert(&mut *tx)
                .await
                .unwrap();
            let dup = NewJob::new("W", json!({"k": 1}))
                .unique(unique)
                .insert(&mut tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            // A deferred transaction of the caller's works too.
            let mut tx = pool.begin().await.unwrap();
            let lost = NewJob::new("W", json!({"k": 2}))
                .unique(unique)
                .insert(&mut tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            (kept, lost, dup)
        }
    };
    assert!(!kept.conflict && dup_in_tx.conflict && dup_in_tx.id == kept.id);
    assert_eq!(ids(&db.jobs(JobFilter::new()).await), [kept.id]);
    assert!(db.engine.job_get(lost.id).await.unwrap().is_none());
    // The rolled-back key is free again.
    let again = db
        .insert_via_pool(vec![NewJob::new("W", json!({"k": 2})).unique(unique)])
        .await;
    assert!(!again[0].conflict);
    let plain = db
        .insert_via_pool(vec![NewJob::new("W", json!({"p": 1})); 3])
        .await;
    assert_eq!(plain.len(), 3);
    assert_eq!(db.count(JobFilter::new()).await, 5);
}

// ---------------------------------------------------------------------------------------------
// Leadership, notifications, producers, cron

async fn leader_election_holds_renews_and_hands_over(kind: Kind) {
    let db = Db::new(kind).await;
    let other = db.another_engine().await;
    let ttl = ms(600);
    assert!(db.engine.leader_elect("Oban", "a", ttl).await.unwrap());
    assert!(
        !other.leader_elect("Oban", "b", ttl).await.unwrap(),
        "a leads"
    );
    assert!(
        db.engine.leader_elect("Oban", "a", ttl).await.unwrap(),
        "renewed"
    );
    assert!(
        other.leader_elect("Other", "b", ttl).await.unwrap(),
        "names are separate"
    );
    tokio::time::sleep(ms(350)).await;
    assert!(db.engine.leader_elect("Oban", "a", ttl).await.unwrap());
    tokio::time::sleep(ms(350)).await;
    assert!(
        !other.leader_elect("Oban", "b", ttl).await.unwrap(),
        "the renewal extended the lease"
    );
    other.leader_resign("Oban", "b").await.unwrap();
    assert!(
        !other.leader_elect("Oban", "b", ttl).await.unwrap(),
        "resigning what one does not hold changes nothing"
    );
    db.engine.leader_resign("Oban", "a").await.unwrap();
    assert!(
        other.leader_elect("Oban", "b", ttl).await.unwrap(),
        "taken over at once"
    );
    tokio::time::sleep(ms(700)).await;
    assert!(
        db.engine.leader_elect("Oban", "a", ttl).await.unwrap(),
        "after the TTL"
    );

    // Many contenders at once: exactly one wins.
    let mut tasks = Vec::new();
    let name = format!("race-{}", uuid::Uuid::new_v4().simple());
    for i in 0..6 {
        let engine = if i % 2 == 0 {
            Arc::clone(&db.engine)
        } else {
            Arc::clone(&other)
        };
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            engine
                .leader_elect(&name, &format!("n{i}"), Duration::from_secs(5))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn notify_reaches_every_listener_on_the_database(kind: Kind) {
    let db = Db::new(kind).await;
    let other = db.another_engine().await;
    let (stop, stop_rx) = tokio::sync::watch::channel(None);
    let mut sinks = Vec::new();
    for engine in [&db.engine, &other] {
        let (sink, notices) = tokio::sync::mpsc::unbounded_channel();
        assert!(
            engine.listen(sink, stop_rx.clone()).await.unwrap(),
            "notifications work"
        );
        sinks.push(notices);
    }
    other
        .notify(
            Channel::Signal,
            json!({"action": "pause", "queue": "mailers"}),
        )
        .await
        .unwrap();
    for rx in &mut sinks {
        let Notice::Signal(signal) = recv(rx).await else {
            panic!("a signal")
        };
        assert_eq!(
            (signal.command.action(), signal.queue.as_deref()),
            ("pause", Some("mailers"))
        );
    }
    db.engine
        .notify(Channel::Leader, json!({"down": "Oban"}))
        .await
        .unwrap();
    for rx in &mut sinks {
        assert_eq!(recv(rx).await, Notice::LeaderDown);
    }
    // An insert of runnable jobs notifies their queues, once each.
    other
        .job_insert_many(vec![
            NewJob::new("W", json!({})).queue("alpha"),
            NewJob::new("W", json!({})).queue("alpha"),
            NewJob::new("W", json!({}))
                .queue("beta")
                .schedule_in(Duration::from_secs(60)),
        ])
        .await
        .unwrap();
    for rx in &mut sinks {
        assert_eq!(
            recv(rx).await,
            Notice::Insert {
                queue: "alpha".into()
            }
        );
    }
    tokio::time::sleep(ms(200)).await;
    for rx in &mut sinks {
        assert!(
            rx.try_recv().is_err(),
            "no notice for a scheduled job, none twice"
        );
    }
    // Stopping ends listening.
    stop.send(Some(tokio::time::Instant::now())).unwrap();
    for rx in &mut sinks {
        let closed = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(closed.expect("closes"), None);
    }
}

async fn recv(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notice>) -> Notice {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a notice within 5 s")
        .expect("listening")
}

async fn producer_heartbeats_are_listed_and_deleted(kind: Kind) {
    let db = Db::new(kind).await;
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    db.engine
        .producer_heartbeat(
            a,
            "node-1",
            "mailers",
            json!({"limit": 5, "paused": false, "running": 0}),
        )
        .await
        .unwrap();
    db.engine
        .producer_heartbeat(b, "node-2", "default", json!({"limit": 1}))
        .await
        .unwrap();
    let first = db.engine.producer_list(Some("mailers")).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (
            first[0].uuid,
            first[0].node.as_str(),
            first[0].queue.as_str()
        ),
        (a, "node-1", "mailers")
    );
    assert_eq!(first[0].meta["limit"], 5);
    assert!(close(
        first[0].updated_at,
        Utc::now(),
        Duration::from_secs(2)
    ));
    tokio::time::sleep(ms(20)).await;
    db.engine
        .producer_heartbeat(
            a,
            "node-1",
            "mailers",
            json!({"limit": 9, "paused": true, "running": 2}),
        )
        .await
        .unwrap();
    let beat = db.engine.producer_list(Some("mailers")).await.unwrap();
    assert_eq!(
        beat[0].meta,
        json!({"limit": 9, "paused": true, "running": 2})
    );
    assert_eq!(
        beat[0].started_at, first[0].started_at,
        "started_at is kept"
    );
    assert!(beat[0].updated_at > first[0].updated_at);
    let all: Vec<String> = db
        .engine
        .producer_list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.queue)
        .collect();
    assert_eq!(all, ["default", "mailers"], "ordered by queue");
    db.engine.producer_delete(a).await.unwrap();
    db.engine.producer_delete(a).await.unwrap();
    assert!(db
        .engine
        .producer_list(Some("mailers"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(db.engine.producer_list(None).await.unwrap().len(), 1);
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn cron_scheduler_inserts_each_minute_once(kind: Kind) {
    let db = Db::new(kind).await;
    let other = db.another_engine().await;
    let entries =
        || vec![CronEntry::new("* * * * *", NewJob::new("Cron.Tick", json!({}))).unwrap()];
    let catch_up = Duration::from_secs(180);
    let mut first = CronScheduler::new(entries(), catch_up);
    assert_eq!(
        first
            .run_at(&*db.engine, at("2026-06-01T12:00:00.050Z"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        first
            .run_at(&*db.engine, at("2026-06-01T12:01:00.050Z"))
            .await
            .unwrap(),
        1
    );
    let mut second = CronScheduler::new(entries(), catch_up);
    assert_eq!(
        second
            .run_at(&*other, at("2026-06-01T12:03:10Z"))
            .await
            .unwrap(),
        2,
        "12:02 and 12:03 only"
    );
    assert_eq!(
        first
            .run_at(&*db.engine, at("2026-06-01T12:04:00.050Z"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        second
            .run_at(&*other, at("2026-06-01T12:04:00.080Z"))
            .await
            .unwrap(),
        0
    );
    let mut minutes: Vec<String> = db
        .jobs(JobFilter::new().worker("Cron.Tick"))
        .await
        .iter()
        .map(|j| j.meta["cron_at"].as_str().unwrap().to_owned())
        .collect();
    minutes.sort();
    let expected: Vec<String> = (58..60)
        .map(|m| format!("2026-06-01T11:{m}:00+00:00"))
        .chain((0..5).map(|m| format!("2026-06-01T12:0{m}:00+00:00")))
        .collect();
    assert_eq!(minutes, expected, "every minute exactly once");

    let boot = CronEntry::new("@reboot", NewJob::new("Cron.Boot", json!({}))).unwrap();
    let mut scheduler = CronScheduler::new(vec![boot], Duration::from_secs(60));
    assert_eq!(
        scheduler
            .run_at(&*db.engine, at("2026-06-01T12:00:00Z"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        scheduler
            .run_at(&*db.engine, at("2026-06-01T12:01:00Z"))
            .await
            .unwrap(),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// A worker whose behaviour is chosen by its args.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Probe {
    Ok,
    Fail { times: i32 },
    Sleep { ms: u64 },
    Discard,
    Cancel,
    Snooze { ms: u64 },
    Count,
}

/// Attempts that ran to their end, by job id.
#[derive(Default)]
struct Runs {
    by_job: Mutex<HashMap<i64, u32>>,
    finished: AtomicUsize,
}

impl Worker for Probe {
    const NAME: &'static str = "Conformance.Probe";

    fn options() -> WorkerOptions {
        WorkerOptions::new()
            .max_attempts(3)
            .backoff(Backoff::Constant(ms(100)))
    }

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        let job = ctx.job();
        let outcome = match self {
            Probe::Ok => Ok(Outcome::Complete),
            Probe::Fail { times } if job.attempt <= times => {
                Err(JobError::new(format!("failure #{}", job.attempt)))
            }
            Probe::Fail { .. } => Ok(Outcome::Complete),
            Probe::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Outcome::Complete)
            }
            Probe::Discard => Ok(Outcome::Discard("bad address".into())),
            Probe::Cancel => Ok(Outcome::Cancel("withdrawn".into())),
            Probe::Snooze { ms } => {
                if job.meta.get("snoozed").is_none() {
                    Ok(Outcome::Snooze(Duration::from_millis(ms)))
                } else {
                    Ok(Outcome::Complete)
                }
            }
            Probe::Count => Ok(Outcome::Complete),
        };
        if let Some(runs) = ctx.try_state::<Arc<Runs>>() {
            *runs.by_job.lock().unwrap().entry(job.id).or_default() += 1;
            runs.finished.fetch_add(1, Ordering::SeqCst);
        }
        outcome
    }
}

fn node(db: &Db, name: &str) -> oban::Builder {
    db.builder(name)
        .register::<Probe>()
        .poll_interval(ms(50))
        .stage_interval(ms(50))
        .heartbeat_interval(ms(200))
        .leader_ttl(ms(900))
}

async fn node_runs_every_outcome(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "runner")
        .queue("default", 5)
        .start()
        .await
        .unwrap();
    assert_eq!(oban.pg_pool().is_some(), kind == Kind::Postgres);
    assert_eq!(oban.sqlite_pool().is_some(), kind == Kind::Sqlite);
    assert!(oban.notifications_enabled());
    let insert = |probe: Probe| {
        let oban = &oban;
        async move { JobBuilder::new(probe).insert(oban).await.unwrap() }
    };
    let ok = insert(Probe::Ok).await;
    let flaky = insert(Probe::Fail { times: 1 }).await;
    let failing = insert(Probe::Fail { times: 9 }).await;
    let discard = insert(Probe::Discard).await;
    let cancel = insert(Probe::Cancel).await;
    let snooze = insert(Probe::Snooze { ms: 300 }).await;
    let scheduled = JobBuilder::new(Probe::Ok)
        .schedule_in(ms(400))
        .insert(&oban)
        .await
        .unwrap();
    assert_eq!(scheduled.state, JobState::Scheduled);

    let done = db.wait_for_state(ok.id, JobState::Completed).await;
    assert_eq!(done.attempt, 1);
    assert_eq!(done.attempted_by[0], "runner");
    let done = db.wait_for_state(flaky.id, JobState::Completed).await;
    assert_eq!((done.attempt, done.errors.len()), (2, 1));
    assert_eq!(done.errors[0].error, "failure #1");
    let spent = db.wait_for_state(failing.id, JobState::Discarded).await;
    assert_eq!(
        spent.errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let discarded = db.wait_for_state(discard.id, JobState::Discarded).await;
    assert!(discarded.errors[0].error.contains("bad address"));
    let cancelled = db.wait_for_state(cancel.id, JobState::Cancelled).await;
    assert!(cancelled.cancelled_at.is_some());
    let snoozed = db.wait_for_state(snooze.id, JobState::Completed).await;
    assert_eq!(
        (snoozed.attempt, snoozed.meta["snoozed"].as_i64()),
        (1, Some(1))
    );
    let ran = db.wait_for_state(scheduled.id, JobState::Completed).await;
    assert!(ran.attempted_at.unwrap() >= scheduled.scheduled_at);

    // Operator commands through the node.
    assert!(oban.retry_job(discard.id).await.unwrap());
    wait_until(
        "the retried job ran again",
        Duration::from_secs(10),
        async || {
            let job = db.job(discard.id).await;
            job.state == JobState::Discarded && job.attempt == 2
        },
    )
    .await;
    let later = JobBuilder::new(Probe::Ok)
        .schedule_in(Duration::from_secs(3600))
        .insert(&oban)
        .await
        .unwrap();
    assert!(oban.cancel_job(later.id).await.unwrap());
    assert!(!oban.cancel_job(later.id).await.unwrap());
    assert_eq!(oban.delete_jobs(&JobFilter::id(later.id)).await.unwrap(), 1);
    assert!(oban.job(later.id).await.unwrap().is_none());
    oban.shutdown(Duration::from_secs(2)).await;
    assert!(
        db.engine.producer_list(None).await.unwrap().is_empty(),
        "a clean stop removes the producer rows"
    );
}

async fn nodes_share_queue_control_and_cancel_running_jobs(kind: Kind) {
    let db = Db::new(kind).await;
    let runs = Arc::new(Runs::default());
    let a = node(&db, "a")
        .queue("default", 2)
        .state(Arc::clone(&runs))
        .start()
        .await
        .unwrap();
    let b = node(&db, "b")
        .queue("default", 3)
        .state(Arc::clone(&runs))
        .start()
        .await
        .unwrap();
    a.pause_queue("default", Nodes::All).await.unwrap();
    wait_until("both paused", Duration::from_secs(5), async || {
        let info = a.check_queue("default").await.unwrap();
        info.len() == 2 && info.iter().all(|q| q.paused)
    })
    .await;
    let job = JobBuilder::new(Probe::Ok).insert(&a).await.unwrap();
    tokio::time::sleep(ms(400)).await;
    assert_eq!(
        db.job(job.id).await.state,
        JobState::Available,
        "paused queues fetch nothing"
    );
    b.resume_queue("default", Nodes::Only("b".into()))
        .await
        .unwrap();
    let done = db.wait_for_state(job.id, JobState::Completed).await;
    assert_eq!(done.attempted_by[0], "b", "only b was resumed");

    a.scale_queue("default", 7, Nodes::All).await.unwrap();
    wait_until("scaled", Duration::from_secs(5), async || {
        a.check_queue("default")
            .await
            .unwrap()
            .iter()
            .all(|q| q.limit == 7)
    })
    .await;
    a.start_queue("reports", 4, Nodes::Only("b".into()))
        .await
        .unwrap();
    wait_until("reports on b", Duration::from_secs(5), async || {
        let info = a.check_queue("reports").await.unwrap();
        info.len() == 1 && info[0].node == "b" && info[0].limit == 4
    })
    .await;
    let report = JobBuilder::new(Probe::Ok)
        .queue("reports")
        .insert(&a)
        .await
        .unwrap();
    db.wait_for_state(report.id, JobState::Completed).await;
    b.stop_queue("reports", Nodes::All).await.unwrap();
    wait_until("reports stopped", Duration::from_secs(5), async || {
        a.check_queue("reports").await.unwrap().is_empty()
    })
    .await;

    // Cancelling a running job from the other node stops it where it runs.
    let before = runs.finished.load(Ordering::SeqCst);
    let long = JobBuilder::new(Probe::Sleep { ms: 3_000 })
        .insert(&b)
        .await
        .unwrap();
    let running = db.wait_for_state(long.id, JobState::Executing).await;
    let runner = if running.attempted_by[0] == "a" {
        &a
    } else {
        &b
    };
    let other = if running.attempted_by[0] == "a" {
        &b
    } else {
        &a
    };
    assert!(other.cancel_job(long.id).await.unwrap());
    db.wait_for_state(long.id, JobState::Cancelled).await;
    wait_until("the slot is freed", Duration::from_secs(5), async || {
        runner
            .check_queue("default")
            .await
            .unwrap()
            .iter()
            .all(|q| q.running == 0)
    })
    .await;
    tokio::time::sleep(ms(200)).await;
    assert_eq!(
        runs.finished.load(Ordering::SeqCst),
        before,
        "aborted, not finished"
    );
    assert_eq!(
        db.job(long.id).await.state,
        JobState::Cancelled,
        "nothing overwrote the cancel"
    );
    a.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
}

async fn node_hands_back_unfinished_jobs_at_shutdown(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "stopper")
        .queue("default", 5)
        .start()
        .await
        .unwrap();
    let quick = JobBuilder::new(Probe::Sleep { ms: 300 })
        .insert(&oban)
        .await
        .unwrap();
    let slow = JobBuilder::new(Probe::Sleep { ms: 5_000 })
        .insert(&oban)
        .await
        .unwrap();
    db.wait_for_state(quick.id, JobState::Executing).await;
    db.wait_for_state(slow.id, JobState::Executing).await;
    oban.shutdown(ms(1_000)).await;
    assert_eq!(
        db.job(quick.id).await.state,
        JobState::Completed,
        "finished within grace"
    );
    let back = db.job(slow.id).await;
    assert_eq!(
        (back.state, back.attempt),
        (JobState::Available, 0),
        "handed back"
    );
    assert!(
        back.errors[0].error.contains("shut down"),
        "{:?}",
        back.errors
    );
    assert!(db.engine.producer_list(None).await.unwrap().is_empty());
}

async fn node_leadership_moves_when_the_leader_stops(kind: Kind) {
    let db = Db::new(kind).await;
    let nodes = vec![
        node(&db, "n1").start().await.unwrap(),
        node(&db, "n2").start().await.unwrap(),
        node(&db, "n3").start().await.unwrap(),
    ];
    let leaders = |nodes: &[Oban]| nodes.iter().filter(|n| n.is_leader()).count();
    let started = Instant::now();
    let mut led = 0;
    while started.elapsed() < Duration::from_secs(2) {
        let count = leaders(&nodes);
        assert!(count <= 1, "{count} leaders at once");
        led += count;
        tokio::time::sleep(ms(10)).await;
    }
    assert!(led > 0, "somebody leads");
    let leader = nodes.iter().position(Oban::is_leader).expect("a leader");
    let stopped = Instant::now();
    nodes[leader].shutdown(Duration::from_secs(1)).await;
    let rest: Vec<Oban> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, n)| n.clone())
        .collect();
    wait_until("a new leader", Duration::from_secs(3), async || {
        leaders(&rest) == 1
    })
    .await;
    assert!(
        stopped.elapsed() < ms(900),
        "hand-over {:?} is quicker than the TTL (the resignation is announced)",
        stopped.elapsed()
    );
    // The new leader stages.
    let job = JobBuilder::new(Probe::Ok)
        .schedule_in(ms(200))
        .insert(&rest[0])
        .await
        .unwrap();
    tokio::time::sleep(ms(600)).await;
    assert_eq!(
        db.job(job.id).await.state,
        JobState::Available,
        "staged by the new leader"
    );
    for node in rest {
        node.shutdown(Duration::from_secs(1)).await;
    }
}

async fn node_runs_a_thousand_jobs_exactly_once(kind: Kind) {
    let db = Db::new(kind).await;
    let runs = Arc::new(Runs::default());
    let jobs: Vec<NewJob> = (0..1_000)
        .map(|n| {
            JobBuilder::new(Probe::Count)
                .queue(if n % 2 == 0 { "alpha" } else { "beta" })
                .build()
                .unwrap()
        })
        .collect();
    let oban = node(&db, "worker")
        .queue("alpha", 10)
        .queue("beta", 10)
        .state(Arc::clone(&runs))
        .start()
        .await
        .unwrap();
    let started = Instant::now();
    // Half before, half in small batches while the queues work.
    oban.insert_all(jobs[..500].to_vec()).await.unwrap();
    for chunk in jobs[500..].chunks(50) {
        oban.insert_all(chunk.to_vec()).await.unwrap();
    }
    db.wait_for_count(
        JobFilter::new().state(JobState::Completed),
        1_000,
        Duration::from_secs(60),
    )
    .await;
    eprintln!(
        "{kind:?}: 1,000 jobs inserted and completed in {:?}",
        started.elapsed()
    );
    oban.shutdown(Duration::from_secs(5)).await;
    let all = db.jobs(JobFilter::new()).await;
    assert_eq!(all.len(), 1_000);
    assert!(all
        .iter()
        .all(|j| j.state == JobState::Completed && j.attempt == 1));
    let producers: HashSet<&str> = all.iter().map(|j| j.attempted_by[1].as_str()).collect();
    assert_eq!(producers.len(), 2, "both queues worked");
    let runs = runs.by_job.lock().unwrap();
    assert_eq!(runs.len(), 1_000);
    assert!(runs.values().all(|&n| n == 1), "every job ran exactly once");
}

// ---------------------------------------------------------------------------------------------
// Choosing the engine (SQLite only: PostgreSQL is chosen by `.pool` and `postgres://` URLs in
// every other test file).

mod engine_choice {
    use super::*;

    /// Runs this test binary again as a child process, running only the ignored test `name`.
    fn child(name: &str) -> std::process::Command {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command.args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ]);
        command
    }

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
        let output = child("engine_choice::child_default_database")
            .current_dir(&dir.0)
            .env_remove("DATABASE_URL")
            .env("OBAN_CONFORMANCE_CHILD", "default")
            .output()
            .unwrap();
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
        let output = child("engine_choice::child_default_database")
            .current_dir(&dir.0)
            .env("DATABASE_URL", format!("sqlite://{}", chosen.display()))
            .env("OBAN_CONFORMANCE_CHILD", "url")
            .output()
            .unwrap();
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
        let started = Instant::now();
        while oban.job(job.id).await.unwrap().unwrap().state != JobState::Completed {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the job completes"
            );
            tokio::time::sleep(ms(20)).await;
        }
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
        let children: Vec<_> = (0..3)
            .map(|i| {
                child("engine_choice::child_inserter")
                    .env("OBAN_CONFORMANCE_CHILD", "inserter")
                    .env("OBAN_CONFORMANCE_FILE", &path)
                    .env("OBAN_CONFORMANCE_TAG", format!("child-{i}"))
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
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
            let output = child.wait_with_output().unwrap();
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
        let pool =
            oban::engines::sqlite::connect_with(oban::engines::sqlite::file_options(path), 4)
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
}
