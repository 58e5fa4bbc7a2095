//! Bulk operations by filter: list, cancel, retry, delete.

use std::time::Duration;

use chrono::Utc;
use oban::{JobFilter, JobState, NewJob};
use serde_json::json;

use crate::harness::{Db, Kind};
use crate::helpers::{close, fetch, finish_as, ids};

pub(crate) async fn list_retry_cancel_and_delete_by_filter(kind: Kind) {
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
