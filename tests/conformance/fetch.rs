//! Fetching: order, and concurrent fetchers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use oban::{Job, JobFilter, JobState, NewJob};
use serde_json::json;

use crate::harness::{Db, Kind};
use crate::helpers::{attempted_by, close, fetch};

pub(crate) async fn fetch_takes_available_jobs_in_priority_scheduled_at_id_order(kind: Kind) {
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

pub(crate) async fn concurrent_fetchers_never_get_the_same_job(kind: Kind) {
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
