//! Inserting: through the engine, the pool inserter and the caller's transactions.

use std::time::{Duration, Instant};

use chrono::Utc;
use oban::{JobFilter, JobState, NewJob, Prefixed, UniqueOptions};
use serde_json::json;

use crate::harness::{Db, Kind};
use crate::helpers::{close, ids, ms};

pub(crate) async fn insert_many_keeps_input_order_and_every_field(kind: Kind) {
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

pub(crate) async fn insert_refuses_invalid_jobs_and_accepts_an_empty_batch(kind: Kind) {
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

pub(crate) async fn pool_and_transaction_inserters(kind: Kind) {
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
        Kind::PostgresPrefix => {
            let prefix = db.prefix();
            let pool = db.pg_pool().unwrap();
            let mut tx = pool.begin().await.unwrap();
            let kept = NewJob::new("W", json!({"k": 1}))
                .unique(unique)
                .insert(Prefixed::new(prefix, &mut *tx))
                .await
                .unwrap();
            let dup = NewJob::new("W", json!({"k": 1}))
                .unique(unique)
                .insert(Prefixed::new(prefix, &mut tx))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            let lost = NewJob::new("W", json!({"k": 2}))
                .unique(unique)
                .insert(Prefixed::new(prefix, &mut tx))
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
