//! Acks: every outcome of an attempt, and stale or repeated acks.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use oban::engine::Ack;
use oban::{JobState, NewJob};
use serde_json::json;

use crate::harness::{Db, Kind};
use crate::helpers::{ack, close, error_entry, fetch, ids};

pub(crate) async fn acks_record_every_outcome_and_ignore_stale_attempts(kind: Kind) {
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
