//! The operator's view of queue limits across the fleet (`Admin::limits`, `queue_limits`,
//! `set_queue_limits`, `clear_queue_limits`, the limits in `Admin::queues`) against real
//! PostgreSQL (also in a prefix) and SQLite, each case on a database of its own: limits checked,
//! stored and read back with what they count, and a change reaching a running node's producer.

mod common;
#[path = "conformance/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "conformance/helpers.rs"]
mod helpers;
#[path = "conformance/probe.rs"]
mod probe;

use std::time::Duration;

use oban::admin::{Admin, QueueLimits};
use oban::limits::{GlobalLimit, Limits, Partition, RateLimit};
use oban::{DbPool, NewJob, Prefix};
use serde_json::json;

use common::wait::wait_until;
use harness::{Db, Kind};
use helpers::attempted_by;
use probe::node;

/// An admin on `db` as the CLI makes one (on SQLite, the test's own pool, so that signals reach
/// the nodes of this process through its hub).
async fn admin(db: &Db) -> Admin {
    match db.sqlite_pool() {
        Some(pool) => Admin::new(DbPool::from(pool.clone()), Prefix::PUBLIC).unwrap(),
        None => Admin::connect(&db.url(), db.prefix().name())
            .await
            .expect("admin connects"),
    }
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() { super::$case(super::Kind::Postgres).await }
            )*
        }
        mod postgres_prefix {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() { super::$case(super::Kind::PostgresPrefix).await }
            )*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() { super::$case(super::Kind::Sqlite).await }
            )*
        }
    };
}

cases!(
    set_read_and_clear,
    usage_counts_running_and_started,
    a_change_reaches_the_running_node,
);

fn per_tenant() -> Limits {
    Limits::new()
        .global(GlobalLimit::new(2).partitioned(Partition::args(["tenant_id"])))
        .rate(RateLimit::new(100, Duration::from_secs(60)))
}

/// Refused limits store nothing; set ones read back (one queue, every queue, in the queues
/// overview, also a queue without jobs or nodes); clearing removes them.
async fn set_read_and_clear(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    assert!(admin.limits(QueueLimits::TOP).await.unwrap().is_empty());
    assert!(admin.queue_limits("emails", 5).await.unwrap().is_none());

    let zero = Limits::new().global(GlobalLimit::new(0));
    let error = admin.set_queue_limits("emails", zero).await.unwrap_err();
    assert!(error.to_string().contains("pause the queue"), "{error}");
    let short = Limits::new().rate(RateLimit::new(5, Duration::from_millis(10)));
    assert!(admin.set_queue_limits("emails", short).await.is_err());
    assert!(admin.set_queue_limits(" ", per_tenant()).await.is_err());
    assert!(admin.limits(QueueLimits::TOP).await.unwrap().is_empty());

    admin
        .set_queue_limits("emails", per_tenant())
        .await
        .unwrap();
    let provider = Limits::new().global(GlobalLimit::new(10));
    admin
        .set_queue_limits("provider", provider.clone())
        .await
        .unwrap();
    let all = admin.limits(QueueLimits::TOP).await.unwrap();
    let names: Vec<&str> = all.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(names, ["emails", "provider"]);
    let emails = admin.queue_limits("emails", 5).await.unwrap().unwrap();
    assert_eq!(emails.limits, per_tenant());
    assert_eq!(
        emails.summary(),
        "global 0/2 by args:tenant_id, rate 0/100 per 60s"
    );
    let value = serde_json::to_value(&emails).unwrap();
    assert_eq!(value["queue"], "emails");
    assert_eq!(value["limits"]["global"]["allowed"], 2);
    assert_eq!(value["limits"]["rate"]["period_secs"], 60);
    assert!(value["usage"]["running"].is_array());

    // Replacing: the rate limit goes with the old limits.
    admin
        .set_queue_limits("emails", Limits::new().global(GlobalLimit::new(3)))
        .await
        .unwrap();
    let emails = admin.queue_limits("emails", 5).await.unwrap().unwrap();
    assert_eq!(emails.limits.rate, None);
    assert_eq!(emails.summary(), "global 0/3");

    // In the overview, with a queue that holds jobs and one that holds nothing.
    db.insert(NewJob::new("A", json!({})).queue("emails")).await;
    let queues = admin.queues().await.unwrap();
    let names: Vec<&str> = queues.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(names, ["emails", "provider"]);
    assert_eq!(
        queues[0]
            .limits
            .as_ref()
            .unwrap()
            .limits
            .global
            .as_ref()
            .unwrap()
            .allowed,
        3
    );
    assert_eq!(queues[1].limits.as_ref().unwrap().limits, provider);
    assert_eq!(queues[1].total, 0);

    admin.clear_queue_limits("provider").await.unwrap();
    admin.clear_queue_limits("provider").await.unwrap();
    let queues = admin.queues().await.unwrap();
    let names: Vec<&str> = queues.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(names, ["emails"]);
    let value = serde_json::to_value(&queues[0]).unwrap();
    assert_eq!(value["limits"]["limits"]["global"]["allowed"], 3);
    admin.clear_queue_limits("emails").await.unwrap();
    assert!(admin.limits(QueueLimits::TOP).await.unwrap().is_empty());
    let value = serde_json::to_value(&admin.queues().await.unwrap()[0]).unwrap();
    assert!(value["limits"].is_null());
}

/// What the limits count: running jobs per partition of the global limit (the fullest first,
/// at most `top`), starts in the rate limit's window.
async fn usage_counts_running_and_started(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    admin
        .set_queue_limits("emails", per_tenant())
        .await
        .unwrap();
    let jobs: Vec<NewJob> = [1, 1, 1, 2, 3]
        .into_iter()
        .map(|tenant| NewJob::new("A", json!({"tenant_id": tenant})).queue("emails"))
        .collect();
    db.insert_via_pool(jobs).await;
    let claimed = db
        .engine
        .job_fetch_limited("emails", 10, &attempted_by("p1"))
        .await
        .unwrap();
    // Two of tenant 1 (its limit), one each of 2 and 3.
    assert_eq!(claimed.len(), 4);

    let emails = admin.queue_limits("emails", 2).await.unwrap().unwrap();
    assert_eq!(emails.usage.running.len(), 2, "at most top");
    assert_eq!(emails.usage.running_max(), 2);
    assert_eq!(emails.usage.running[0].label(), "[1]");
    assert_eq!(emails.usage.running[0].count, 2);
    assert_eq!(emails.usage.started_max(), 4);
    assert_eq!(
        emails.summary(),
        "global 2/2 by args:tenant_id, rate 4/100 per 60s"
    );
    let overview = admin.queues().await.unwrap();
    let limited = overview[0].limits.as_ref().unwrap();
    assert_eq!(limited.usage.running.len(), 3);
    assert_eq!(limited.global_summary().unwrap(), "2/2 by args:tenant_id");
    assert_eq!(limited.rate_summary().unwrap(), "4/100 per 60s");
}

/// A change made by the admin reaches a running node: its producer reads the new limits (its
/// `check_queue` view) and obeys them; clearing reaches it too.
async fn a_change_reaches_the_running_node(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let oban = node(&db, "n1").queue("emails", 5).start().await.unwrap();
    let view = async || -> Option<Option<Limits>> {
        let info = oban.check_queue("emails").await.unwrap();
        info.into_iter().find(|q| q.node == "n1").map(|q| q.limits)
    };
    wait_until("n1's heartbeat", Duration::from_secs(10), async || {
        view().await.is_some()
    })
    .await;
    assert_eq!(view().await, Some(None));

    admin
        .set_queue_limits("emails", per_tenant())
        .await
        .unwrap();
    wait_until("n1 reads the limits", Duration::from_secs(10), async || {
        view().await == Some(Some(per_tenant()))
    })
    .await;
    // The node's own reader sees what the admin stored.
    let (limits, _) = oban.queue_limits("emails", 5).await.unwrap().unwrap();
    assert_eq!(limits, per_tenant());

    admin.clear_queue_limits("emails").await.unwrap();
    wait_until(
        "n1 forgets the limits",
        Duration::from_secs(10),
        async || view().await == Some(None),
    )
    .await;
    assert!(oban.queue_limits("emails", 5).await.unwrap().is_none());
    oban.shutdown(Duration::from_secs(2)).await;
}
