//! The operator's API (`oban::admin`) against real PostgreSQL and SQLite, each case on a
//! database of its own: every operation, bulk operations in batches of at most `batch` rows per
//! statement, replay making discarded jobs run again on a node, a cancel reaching the node that
//! runs the job, a queue command for one node reaching only that node, and newest-first pages
//! with a text search.

mod common;
#[path = "conformance/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "conformance/helpers.rs"]
mod helpers;
#[path = "conformance/probe.rs"]
mod probe;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use oban::admin::{Admin, JobQuery};
use oban::engine::{
    Ack, Channel, CronSeen, Engine, FailureCount, FetchCursor, Notice, Notifier, Peer,
    ProducerInfo, QueueDepths, SchemaVersions, StopSignal, WorkflowTally,
};
use oban::{DbPool, Job, JobBuilder, JobFilter, JobState, NewJob, Prefix};
use serde_json::{json, Value};

use common::wait::wait_until;
use harness::{Db, Kind};
use helpers::{backdate_jobs, error_entry, fetch, finish_as, ids};
use probe::{node, Probe, Runs};

/// An admin on `db` as the CLI makes one: its own pool, from the URL and the prefix (on SQLite,
/// the test's own pool, so that signals reach the nodes of this process through its hub).
async fn admin(db: &Db) -> Admin {
    match db.sqlite_pool() {
        Some(pool) => Admin::new(DbPool::from(pool.clone()), Prefix::PUBLIC).unwrap(),
        None => Admin::connect(&db.url(), db.prefix().name())
            .await
            .expect("admin connects"),
    }
}

fn job(worker: &str, queue: &str) -> NewJob {
    NewJob::new(worker, json!({"n": 1})).queue(queue)
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
    reads,
    queues_and_nodes,
    bulk_batches,
    every_statement_is_bounded_by_the_batch,
    replay_runs_discarded_jobs_again,
    cancel_reaches_the_node,
    pause_for_one_node,
    failing_workers,
    prune_in_batches,
    migration_status_and_migrate,
    cron_entries,
    pages_walk_newest_first,
    search_finds_worker_args_errors_and_id,
    search_wildcards_are_literal,
    search_with_other_conditions_and_in_bulk,
    retry_workflow_releases_what_it_suspended,
);

/// jobs, job, count, `since`, limits, and the JSON shape of a job.
async fn reads(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let a = db.insert(job("A", "mailers").tag("billing")).await;
    let b = db.insert(job("B", "mailers")).await;
    let c = db.insert(job("A", "reports")).await;
    backdate_jobs(&db, "inserted_at", &[a.id], Duration::from_secs(7200)).await;

    let all = JobQuery::new(JobFilter::new());
    assert_eq!(admin.count(&all).await.unwrap(), 3);
    let listed = admin.jobs(&all).await.unwrap();
    assert_eq!(
        listed.iter().map(|j| j.id).collect::<Vec<_>>(),
        [a.id, b.id, c.id]
    );
    assert_eq!(admin.jobs(&all.clone().limit(2)).await.unwrap().len(), 2);

    let worker_a = JobQuery::new(JobFilter::new().worker("A"));
    assert_eq!(admin.count(&worker_a).await.unwrap(), 2);
    let recent_a = worker_a.clone().since(Duration::from_secs(3600));
    assert_eq!(
        admin.count(&recent_a).await.unwrap(),
        1,
        "a is two hours old"
    );
    assert_eq!(admin.jobs(&recent_a).await.unwrap()[0].id, c.id);
    let tagged = JobQuery::new(JobFilter::new().tag("billing"));
    assert_eq!(admin.count(&tagged).await.unwrap(), 1);
    let args = JobQuery::new(
        JobFilter::new()
            .args_contain(json!({"n": 1}))
            .queue("mailers"),
    );
    assert_eq!(admin.count(&args).await.unwrap(), 2);
    let none = JobQuery::new(JobFilter::new().args_contain(json!({"n": 2})));
    assert_eq!(admin.count(&none).await.unwrap(), 0);
    assert!(admin.jobs(&none).await.unwrap().is_empty());

    let one = admin.job(b.id).await.unwrap().expect("b exists");
    assert_eq!(one.worker, "B");
    assert!(admin.job(b.id + 1000).await.unwrap().is_none());
    let value = serde_json::to_value(&one).unwrap();
    assert_eq!(value["state"], "available");
    assert_eq!(value["queue"], "mailers");
    assert!(value["inserted_at"].as_str().unwrap().ends_with('Z'));
}

/// Depth by queue and state with the oldest available age, and each node's producer.
async fn queues_and_nodes(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let avail = db.insert(job("A", "mailers")).await;
    db.insert(job("A", "mailers").schedule_in(Duration::from_secs(3600)))
        .await;
    db.insert(job("A", "reports")).await;
    backdate_jobs(&db, "scheduled_at", &[avail.id], Duration::from_secs(90)).await;

    let queues = admin.queues().await.unwrap();
    let names: Vec<&str> = queues.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(names, ["mailers", "reports"]);
    let mailers = &queues[0];
    assert_eq!(mailers.total, 2);
    assert_eq!(mailers.count(JobState::Available), 1);
    assert_eq!(mailers.count(JobState::Scheduled), 1);
    assert!(mailers.states.iter().all(|s| s.exact));
    let age = mailers.oldest_available.expect("an available job");
    assert!(age >= Duration::from_secs(89), "{age:?}");
    assert!(mailers.nodes.is_empty());
    let value = serde_json::to_value(mailers).unwrap();
    assert!(value["oldest_available_secs"].as_f64().unwrap() >= 89.0);
    assert_eq!(value["states"][0]["state"], "available");

    // A node running `idle` (no jobs) appears with its limit.
    let oban = node(&db, "n1").queue("idle", 3).start().await.unwrap();
    wait_until("n1's heartbeat", Duration::from_secs(10), async || {
        admin
            .queues()
            .await
            .unwrap()
            .iter()
            .any(|q| q.queue == "idle" && q.nodes.len() == 1)
    })
    .await;
    let queues = admin.queues().await.unwrap();
    let idle = queues.iter().find(|q| q.queue == "idle").unwrap();
    assert_eq!(idle.total, 0);
    assert_eq!(idle.nodes[0].node, "n1");
    assert_eq!(idle.nodes[0].limit, 3);
    assert!(!idle.nodes[0].paused);
    let value = serde_json::to_value(idle).unwrap();
    assert!(value["nodes"][0]["heartbeat_age_secs"].is_f64());
    assert!(value["nodes"][0]["producer"].is_string());
    oban.shutdown(Duration::from_secs(2)).await;
}

/// Retry, delete and cancel walk the matching ids in batches: each statement changes at most
/// `batch` jobs (the progress steps), one progress call per batch, a limit caps the total, an
/// empty filter is refused.
async fn bulk_batches(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let scheduled: Vec<NewJob> = (0..25)
        .map(|_| job("A", "bulk").schedule_in(Duration::from_secs(3600)))
        .collect();
    db.insert_via_pool(scheduled).await;
    db.insert(job("B", "bulk").schedule_in(Duration::from_secs(3600)))
        .await;
    let a = JobQuery::new(JobFilter::new().worker("A"));

    let mut steps = Vec::new();
    let retried = admin
        .retry(&a, 10, &mut |done| steps.push(done))
        .await
        .unwrap();
    assert_eq!(retried, 25);
    assert_eq!(steps, [10, 20, 25], "three statements of at most 10");
    let available = JobQuery::new(JobFilter::new().state(JobState::Available));
    assert_eq!(admin.count(&available).await.unwrap(), 25, "B untouched");

    // Available jobs are not retried: every batch changes nothing.
    let mut steps = Vec::new();
    assert_eq!(
        admin.retry(&a, 10, &mut |d| steps.push(d)).await.unwrap(),
        0
    );
    assert_eq!(steps, [0, 0, 0]);

    let mut steps = Vec::new();
    let cancelled = admin
        .cancel(&a.clone().limit(12), 5, &mut |d| steps.push(d))
        .await
        .unwrap();
    assert_eq!(cancelled, 12);
    assert_eq!(steps, [5, 10, 12], "a limit of 12 in batches of 5");
    let cancelled_q = JobQuery::new(JobFilter::new().state(JobState::Cancelled));
    assert_eq!(admin.count(&cancelled_q).await.unwrap(), 12);

    let mut steps = Vec::new();
    let deleted = admin.delete(&a, 7, &mut |d| steps.push(d)).await.unwrap();
    assert_eq!(deleted, 25);
    assert_eq!(steps, [7, 14, 21, 25]);
    assert!(steps.windows(2).all(|w| w[1] - w[0] <= 7));
    assert_eq!(
        admin.count(&JobQuery::new(JobFilter::all())).await.unwrap(),
        1
    );

    let empty = JobQuery::new(JobFilter::new());
    assert!(matches!(
        admin.delete(&empty, 10, &mut |_| {}).await,
        Err(oban::Error::EmptyFilter { .. })
    ));
    assert!(admin.delete(&a, 0, &mut |_| {}).await.is_err(), "batch 0");
    assert_eq!(
        admin.count(&JobQuery::new(JobFilter::all())).await.unwrap(),
        1
    );
}

/// Replay brings discarded jobs back with an attempt more, and a node runs them again; a query
/// naming another state is refused.
async fn replay_runs_discarded_jobs_again(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let runs = Arc::new(Runs::default());
    let oban = node(&db, "n1")
        .queue("default", 5)
        .state(runs.clone())
        .start()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        // Fails its first attempt, which is its last: discarded.
        let job = JobBuilder::new(Probe::Fail { times: 1 })
            .max_attempts(1)
            .insert(&oban)
            .await
            .unwrap();
        ids.push(job.id);
    }
    for id in &ids {
        db.wait_for_state(*id, JobState::Discarded).await;
    }
    let retryable = JobQuery::new(JobFilter::new().state(JobState::Retryable));
    let refused = admin.replay(&retryable, 10, &mut |_| {}).await.unwrap_err();
    assert!(refused.to_string().contains("retryable"), "{refused}");

    let probes = JobQuery::new(JobFilter::new().worker("Conformance.Probe"));
    let mut steps = Vec::new();
    assert_eq!(
        admin
            .replay(&probes, 2, &mut |d| steps.push(d))
            .await
            .unwrap(),
        3
    );
    assert_eq!(steps, [2, 3]);
    for id in &ids {
        let job = db.wait_for_state(*id, JobState::Completed).await;
        assert_eq!(job.attempt, 2, "ran a second time");
        assert_eq!(job.max_attempts, 2, "attempts raised");
    }
    assert_eq!(runs.finished.load(Ordering::SeqCst), 6);
    oban.shutdown(Duration::from_secs(2)).await;
}

/// Cancelling an executing job from the admin stops it on the node that runs it.
async fn cancel_reaches_the_node(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let runs = Arc::new(Runs::default());
    let oban = node(&db, "n1")
        .queue("default", 2)
        .state(runs.clone())
        .start()
        .await
        .unwrap();
    let long = JobBuilder::new(Probe::Sleep { ms: 60_000 })
        .insert(&oban)
        .await
        .unwrap();
    db.wait_for_state(long.id, JobState::Executing).await;
    let query = JobQuery::new(JobFilter::id(long.id));
    assert_eq!(admin.cancel(&query, 100, &mut |_| {}).await.unwrap(), 1);
    assert_eq!(db.job(long.id).await.state, JobState::Cancelled);
    wait_until(
        "the node's slot is freed",
        Duration::from_secs(10),
        async || {
            oban.check_queue("default")
                .await
                .unwrap()
                .iter()
                .all(|q| q.running == 0)
        },
    )
    .await;
    assert_eq!(
        runs.finished.load(Ordering::SeqCst),
        0,
        "aborted, not finished"
    );
    assert_eq!(db.job(long.id).await.state, JobState::Cancelled);
    oban.shutdown(Duration::from_secs(2)).await;
}

/// `pause(queue, Some(node))` reaches only that node; without a node, every node; scale and
/// resume alike.
async fn pause_for_one_node(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let a = node(&db, "a").queue("default", 2).start().await.unwrap();
    let b = node(&db, "b").queue("default", 2).start().await.unwrap();
    let view = async |node: &str| {
        let queues = admin.queues().await.unwrap();
        queues
            .iter()
            .find(|q| q.queue == "default")
            .and_then(|q| q.nodes.iter().find(|n| n.node == node).cloned())
    };
    wait_until(
        "both nodes heartbeat",
        Duration::from_secs(10),
        async || view("a").await.is_some() && view("b").await.is_some(),
    )
    .await;

    admin.pause("default", Some("a")).await.unwrap();
    wait_until("a paused", Duration::from_secs(10), async || {
        view("a").await.is_some_and(|n| n.paused)
    })
    .await;
    // b's own view, not only its heartbeat: the signal did not reach it.
    let b_info = b.check_queue("default").await.unwrap();
    assert!(b_info.iter().any(|q| q.node == "b" && !q.paused));
    assert!(!view("b").await.unwrap().paused);

    admin.scale("default", 7, Some("b")).await.unwrap();
    wait_until("b scaled", Duration::from_secs(10), async || {
        view("b").await.is_some_and(|n| n.limit == 7)
    })
    .await;
    assert_eq!(view("a").await.unwrap().limit, 2, "a not scaled");
    assert!(admin.scale("default", 0, None).await.is_err());

    admin.pause("default", None).await.unwrap();
    wait_until("both paused", Duration::from_secs(10), async || {
        view("b").await.is_some_and(|n| n.paused)
    })
    .await;
    admin.resume("default", None).await.unwrap();
    wait_until("both resumed", Duration::from_secs(10), async || {
        !view("a").await.unwrap().paused && !view("b").await.unwrap().paused
    })
    .await;
    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
}

/// Fetches `job` and acks it to `state` with an error entry of `message`.
async fn fail_as(db: &Db, queue: &str, state: JobState, message: &str) {
    let fetched = fetch(db, queue, 1).await;
    let job = &fetched[0];
    let ack = Ack {
        id: job.id,
        attempted_at: job.attempted_at.unwrap().naive_utc(),
        state,
        schedule_in: (state == JobState::Retryable).then(|| Duration::from_secs(3600)),
        give_back_attempt: false,
        error: Some(error_entry(job.attempt, message)),
        meta: None,
    };
    assert_eq!(db.engine.job_ack_many(&[ack]).await.unwrap(), [job.id]);
}

/// Failing workers: retryable against discarded per worker and queue, top errors by count,
/// most failures first; old failures outside the window.
async fn failing_workers(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    for (worker, queue, state, message) in [
        ("Mailer", "m", JobState::Retryable, "smtp timeout"),
        ("Mailer", "m", JobState::Retryable, "smtp timeout"),
        ("Mailer", "m", JobState::Discarded, "bad address"),
        ("Mailer", "m", JobState::Retryable, "dns"),
        ("Report", "r", JobState::Discarded, "oom"),
    ] {
        db.insert(job(worker, queue)).await;
        fail_as(&db, queue, state, message).await;
    }
    let old = db.insert(job("Old", "o")).await;
    fail_as(&db, "o", JobState::Discarded, "long ago").await;
    backdate_jobs(&db, "discarded_at", &[old.id], Duration::from_secs(7200)).await;
    db.insert(job("Fine", "m")).await;

    let failing = admin.failing(Duration::from_secs(3600), 2).await.unwrap();
    assert_eq!(failing.len(), 2, "{failing:?}");
    let mailer = &failing[0];
    assert_eq!(
        (mailer.worker.as_str(), mailer.queue.as_str()),
        ("Mailer", "m")
    );
    assert_eq!((mailer.retryable, mailer.discarded), (3, 1));
    let errors: Vec<(&str, u64)> = mailer
        .errors
        .iter()
        .map(|e| (e.message.as_str(), e.count))
        .collect();
    assert_eq!(errors, [("smtp timeout", 2), ("bad address", 1)], "top 2");
    assert_eq!(
        (failing[1].worker.as_str(), failing[1].discarded),
        ("Report", 1)
    );
    let value = serde_json::to_value(&failing).unwrap();
    assert_eq!(value[0]["errors"][0]["message"], "smtp timeout");

    let all = admin
        .failing(Duration::from_secs(3 * 3600), 5)
        .await
        .unwrap();
    assert!(all.iter().any(|w| w.worker == "Old"));
}

/// Prune deletes finished jobs older than the cutoff, at most `batch` per statement.
async fn prune_in_batches(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let mut old = Vec::new();
    for _ in 0..5 {
        let job = db.insert(job("A", "p")).await;
        finish_as(&db, &job, JobState::Completed).await;
        old.push(job.id);
    }
    let recent = db.insert(job("A", "p")).await;
    finish_as(&db, &recent, JobState::Completed).await;
    let waiting = db.insert(job("A", "p")).await;
    backdate_jobs(&db, "completed_at", &old, Duration::from_secs(7200)).await;

    let mut steps = Vec::new();
    let pruned = admin
        .prune(Duration::from_secs(3600), 2, &mut |d| steps.push(d))
        .await
        .unwrap();
    assert_eq!(pruned, 5);
    assert_eq!(steps, [2, 4, 5]);
    let left: Vec<i64> = admin
        .jobs(&JobQuery::new(JobFilter::new()))
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(left, [recent.id, waiting.id]);
}

/// On an empty database every step is pending; after migrate none is.
async fn migration_status_and_migrate(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let status = admin.migration_status().await.unwrap();
    assert!(status.up_to_date(), "{status:?}");
    assert!(status.steps.iter().all(|s| s.applied));
    assert!(status.pending.is_empty() && status.unknown.is_empty());
    let value = serde_json::to_value(&status).unwrap();
    assert_eq!(value["up_to_date"], true);
    assert_eq!(value["steps"][0]["version"], 1);

    // A database with nothing installed.
    let fresh = match kind {
        Kind::Sqlite => {
            let dir = harness::TempDir::new();
            let url = format!("sqlite://{}", dir.0.join("fresh.db").display());
            let admin = Admin::connect(&url, "public").await.unwrap();
            check_fresh(&admin).await;
            return;
        }
        Kind::Postgres => ("public", common::empty_database().await),
        Kind::PostgresPrefix => ("fresh", common::empty_database().await),
    };
    let (prefix, (_pool, name)) = fresh;
    let admin = Admin::connect(&common::database_url_for(&name), prefix)
        .await
        .unwrap();
    check_fresh(&admin).await;
}

async fn check_fresh(admin: &Admin) {
    let status = admin.migration_status().await.unwrap();
    assert!(!status.up_to_date());
    assert!(!status.steps.is_empty());
    assert_eq!(status.pending.len(), status.steps.len());
    admin.migrate().await.unwrap();
    let status = admin.migration_status().await.unwrap();
    assert!(status.up_to_date(), "{status:?}");
    admin.migrate().await.unwrap();
    assert_eq!(
        admin.count(&JobQuery::new(JobFilter::new())).await.unwrap(),
        0
    );
}

/// Cron entries from the meta of recent jobs, as this runtime and Elixir Oban write it, with
/// their next run.
async fn cron_entries(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let rust = |at: &str| {
        NewJob::new("Daily", json!({}))
            .queue("reports")
            .meta("cron", true)
            .meta("cron_expr", "0 9 * * *")
            .meta("cron_tz", "Europe/Paris")
            .meta("cron_name", "Daily 0 9 * * * Europe/Paris")
            .meta("cron_at", at)
    };
    db.insert(rust("a")).await;
    db.insert(rust("b")).await;
    // Elixir Oban's Cron plugin: cron, cron_expr, and cron_tz only with a zone.
    db.insert(
        NewJob::new("MyApp.Hourly", json!({}))
            .meta("cron", true)
            .meta("cron_expr", "@hourly"),
    )
    .await;
    db.insert(NewJob::new("Odd", json!({})).meta("cron_expr", "not an expression"))
        .await;
    let stale = db
        .insert(NewJob::new("Gone", json!({})).meta("cron_expr", "* * * * *"))
        .await;
    backdate_jobs(&db, "inserted_at", &[stale.id], Duration::from_secs(7200)).await;
    db.insert(job("NotCron", "default")).await;

    let cron = admin.cron(Duration::from_secs(3600)).await.unwrap();
    let workers: Vec<&str> = cron.iter().map(|c| c.worker.as_str()).collect();
    assert_eq!(workers, ["Daily", "MyApp.Hourly", "Odd"]);
    let daily = &cron[0];
    assert_eq!(daily.jobs, 2);
    assert_eq!(daily.queue, "reports");
    assert_eq!(daily.expression.as_deref(), Some("0 9 * * *"));
    assert_eq!(daily.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(daily.name.as_deref(), Some("Daily 0 9 * * * Europe/Paris"));
    let next = daily.next_run_at.expect("parses");
    assert!(next > chrono::Utc::now());
    use chrono::Timelike;
    assert!(matches!(next.hour(), 7 | 8), "09:00 in Paris: {next}");
    assert_eq!(next.minute(), 0);
    let hourly = &cron[1];
    assert_eq!(hourly.timezone, None);
    assert_eq!(hourly.next_run_at.unwrap().minute(), 0);
    assert_eq!(cron[2].next_run_at, None, "does not parse");
    let value: Value = serde_json::to_value(&cron).unwrap();
    assert!(value[0]["last_inserted_at"].is_string());
    assert!(value[2]["next_run_at"].is_null());
}

/// Every page of `query` from the newest job on, each page's ids in order.
async fn walk_pages(admin: &Admin, query: &JobQuery, mut before: Option<i64>) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    loop {
        let page = ids(&admin.page(query, before).await.unwrap());
        let Some(&last) = page.last() else {
            return pages;
        };
        before = Some(last);
        pages.push(page);
        assert!(pages.len() <= 1_000, "the walk ends");
    }
}

/// Pages walk every matching job newest first, `limit` at a time, with neither a gap nor a
/// repeat: unfiltered, filtered in SQL (worker), filtered after it on SQLite (args containment,
/// checked in Rust), and while jobs are inserted between two pages.
async fn pages_walk_newest_first(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let jobs: Vec<NewJob> = (0..23)
        .map(|i| {
            let worker = if i % 3 == 0 { "B" } else { "A" };
            NewJob::new(worker, json!({"i": i, "even": i % 2 == 0})).queue("pages")
        })
        .collect();
    let stored = db.insert_via_pool(jobs).await;
    let newest_first = |keep: &dyn Fn(&Job) -> bool| -> Vec<i64> {
        let mut ids: Vec<i64> = stored.iter().filter(|j| keep(j)).map(|j| j.id).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids
    };
    let every = newest_first(&|_| true);

    let all = JobQuery::new(JobFilter::new()).limit(5);
    let pages = walk_pages(&admin, &all, None).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [5, 5, 5, 5, 3]
    );
    assert_eq!(pages.concat(), every);

    let a = JobQuery::new(JobFilter::new().worker("A")).limit(4);
    let pages = walk_pages(&admin, &a, None).await;
    assert!(pages.iter().all(|p| p.len() <= 4));
    assert_eq!(pages.concat(), newest_first(&|j| j.worker == "A"));

    let even = JobQuery::new(JobFilter::new().args_contain(json!({"even": true}))).limit(3);
    let pages = walk_pages(&admin, &even, None).await;
    assert_eq!(pages.concat(), newest_first(&|j| j.args["even"] == true));

    // Without a limit, JobQuery::DEFAULT_LIMIT (more than 23): one page.
    let unlimited = JobQuery::new(JobFilter::new());
    assert_eq!(ids(&admin.page(&unlimited, None).await.unwrap()), every);
    // Before the oldest job: nothing.
    let oldest = *every.last().unwrap();
    assert!(admin.page(&all, Some(oldest)).await.unwrap().is_empty());

    // A job inserted after the first page is newer than all of it: the walk goes on from the
    // first page's last id, neither repeating nor skipping one.
    let first = ids(&admin.page(&all, None).await.unwrap());
    let newer = db.insert(job("A", "pages")).await;
    assert!(newer.id > first[0]);
    let rest = walk_pages(&admin, &all, first.last().copied()).await;
    assert_eq!([vec![first], rest].concat().concat(), every);
    assert_eq!(admin.page(&all, None).await.unwrap()[0].id, newer.id);
}

/// Fetches the next job of `queue` and acks it to `state` with an error entry whose text is
/// `message` (its `at` a fixed word, so no digit of a timestamp is searchable).
async fn fail_with(db: &Db, queue: &str, state: JobState, message: &str) -> i64 {
    let fetched = fetch(db, queue, 1).await;
    let job = &fetched[0];
    let ack = Ack {
        id: job.id,
        attempted_at: job.attempted_at.unwrap().naive_utc(),
        state,
        schedule_in: (state == JobState::Retryable).then(|| Duration::from_secs(3600)),
        give_back_attempt: false,
        error: Some(json!({"attempt": job.attempt, "at": "earlier", "error": message})),
        meta: None,
    };
    assert_eq!(db.engine.job_ack_many(&[ack]).await.unwrap(), [job.id]);
    job.id
}

/// The ids a search finds (with `filter`'s other conditions), newest first.
async fn found(admin: &Admin, filter: JobFilter) -> Vec<i64> {
    let query = JobQuery::new(filter);
    let page = ids(&admin.page(&query, None).await.unwrap());
    assert_eq!(
        admin.count(&query).await.unwrap(),
        page.len() as u64,
        "count agrees with the page"
    );
    page
}

fn search(text: &str) -> JobFilter {
    JobFilter::new().search(text)
}

/// A search finds its text, ignoring the case of ASCII letters, in the worker, in the args' JSON
/// and in the errors' JSON, and an integer finds the job of that id; blank text is no condition.
async fn search_finds_worker_args_errors_and_id(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let mail = db
        .insert(NewJob::new("Mailer.SendReceipt", json!({"to": "Ada@Example.com"})).queue("m"))
        .await;
    let report = db
        .insert(NewJob::new("Reports.Daily", json!({"day": "monday"})).queue("r"))
        .await;
    let failed = db
        .insert(NewJob::new("Sync.Pull", json!({"source": "crm", "city": "Zürich"})).queue("s"))
        .await;
    assert_eq!(
        fail_with(&db, "s", JobState::Retryable, "SMTP Timeout on relay").await,
        failed.id
    );

    assert_eq!(found(&admin, search("sendreceipt")).await, [mail.id]);
    assert_eq!(found(&admin, search("REPORTS.")).await, [report.id]);
    assert_eq!(found(&admin, search("ada@example")).await, [mail.id]);
    assert_eq!(found(&admin, search("EXAMPLE.COM")).await, [mail.id]);
    assert_eq!(found(&admin, search("Monday")).await, [report.id]);
    assert_eq!(found(&admin, search("smtp timeout")).await, [failed.id]);
    assert_eq!(found(&admin, search("relay")).await, [failed.id]);
    assert_eq!(
        found(&admin, search("  crm  ")).await,
        [failed.id],
        "trimmed"
    );
    assert!(found(&admin, search("nowhere")).await.is_empty());
    // ASCII letters fold on every engine, others match only themselves.
    assert_eq!(found(&admin, search("zürICH")).await, [failed.id]);
    assert!(found(&admin, search("zÜrich")).await.is_empty());
    // No text holds a digit but the error's `"attempt": 1`, so the id of the second job (2 in a
    // fresh database, and never 1) finds that job alone.
    assert_eq!(
        found(&admin, search(&report.id.to_string())).await,
        [report.id]
    );
    assert_eq!(
        found(
            &admin,
            search(&format!(" {} ", mail.id)).worker("Mailer.SendReceipt")
        )
        .await,
        [mail.id]
    );
    let every = vec![failed.id, report.id, mail.id];
    assert_eq!(
        found(&admin, search("")).await,
        every,
        "empty: no condition"
    );
    assert_eq!(found(&admin, search(" \t ")).await, every);
    assert!(JobFilter::new().search(" ").is_empty());
    assert!(!JobFilter::new().search("x").is_empty());
}

/// `%`, `_` and `\` in the text are the characters themselves, not `LIKE` wildcards or its
/// escape.
async fn search_wildcards_are_literal(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let percent = db
        .insert(NewJob::new("Shop.Discount", json!({"off": "ten%"})))
        .await;
    let no_percent = db
        .insert(NewJob::new("Shop.Price", json!({"off": "tenx"})))
        .await;
    let underscore = db
        .insert(NewJob::new("Shop.Code", json!({"code": "a_b"})))
        .await;
    let no_underscore = db
        .insert(NewJob::new("Shop.Other", json!({"code": "axb"})))
        .await;
    let backslash = db
        .insert(NewJob::new("Shop.Path", json!({"path": "c:\\tmp"})))
        .await;

    assert_eq!(found(&admin, search("%")).await, [percent.id]);
    assert_eq!(found(&admin, search("ten%")).await, [percent.id]);
    assert_eq!(found(&admin, search("_")).await, [underscore.id]);
    assert_eq!(found(&admin, search("a_b")).await, [underscore.id]);
    assert_eq!(found(&admin, search("%_%")).await, Vec::<i64>::new());
    // The path is `c:\tmp` in JSON text: one backslash finds it, and a lone escape character
    // at the end of the pattern is no error.
    assert_eq!(found(&admin, search("\\")).await, [backslash.id]);
    assert_eq!(found(&admin, search("tenx")).await, [no_percent.id]);
    assert_eq!(found(&admin, search("axb")).await, [no_underscore.id]);
}

/// A search narrows the other conditions (state, queue) and they narrow it; the bulk operations
/// (retry through the admin's id walk, cancel and delete on the engine) touch only what it finds,
/// and a blank search does not make a filter non-empty for them.
async fn search_with_other_conditions_and_in_bulk(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let mut smtp = Vec::new();
    let mut oom = Vec::new();
    for i in 0..5 {
        db.insert(job("Mailer.Deliver", "mail")).await;
        smtp.push(
            fail_with(
                &db,
                "mail",
                JobState::Discarded,
                &format!("SMTP refused {i}"),
            )
            .await,
        );
        db.insert(job("Report.Build", "reports")).await;
        oom.push(fail_with(&db, "reports", JobState::Discarded, "out of memory").await);
    }
    let waiting_mail = db.insert(job("Mailer.Deliver", "mail")).await;
    let other_queue = db.insert(job("Mailer.Digest", "digests")).await;
    smtp.reverse();

    let mailer = || search("mailer");
    assert_eq!(
        found(&admin, mailer().state(JobState::Discarded)).await,
        smtp
    );
    assert_eq!(
        found(&admin, mailer().state(JobState::Available)).await,
        [other_queue.id, waiting_mail.id]
    );
    assert_eq!(
        found(&admin, mailer().queue("digests")).await,
        [other_queue.id]
    );
    assert_eq!(
        found(&admin, mailer().queue("mail").state(JobState::Available)).await,
        [waiting_mail.id]
    );
    assert!(found(&admin, mailer().queue("reports")).await.is_empty());
    let query = JobQuery::new(search("smtp").state(JobState::Discarded)).limit(2);
    let pages = walk_pages(&admin, &query, None).await;
    assert_eq!(pages.concat(), smtp);

    // Retry in batches of 2: the discarded jobs whose errors say SMTP, none of the others.
    let smtp_discarded = JobQuery::new(search("smtp").state(JobState::Discarded));
    let mut steps = Vec::new();
    let retried = admin
        .retry(&smtp_discarded, 2, &mut |done| steps.push(done))
        .await
        .unwrap();
    assert_eq!(retried, 5);
    assert_eq!(steps, [2, 4, 5]);
    for id in &smtp {
        assert_eq!(db.job(*id).await.state, JobState::Available);
    }
    for id in &oom {
        assert_eq!(db.job(*id).await.state, JobState::Discarded);
    }
    assert_eq!(db.job(other_queue.id).await.state, JobState::Available);

    // The engine's own bulk statements take the search too.
    let (cancelled, _) = db
        .engine
        .job_cancel_many(&search("refused 3"))
        .await
        .unwrap();
    assert_eq!(cancelled, 1);
    assert_eq!(db.job(smtp[1]).await.state, JobState::Cancelled);
    let deleted = db.engine.job_delete_many(&search("MEMORY")).await.unwrap();
    assert_eq!(deleted, 5);
    assert!(found(&admin, search("memory")).await.is_empty());
    let retried = db
        .engine
        .job_retry_many(&search("refused 3"))
        .await
        .unwrap();
    assert_eq!(retried, 1, "the cancelled one");
    assert_eq!(db.job(smtp[1]).await.state, JobState::Available);

    let blank = JobQuery::new(search("   "));
    assert!(matches!(
        admin.delete(&blank, 10, &mut |_| {}).await,
        Err(oban::Error::EmptyFilter { .. })
    ));
    assert_eq!(
        admin.count(&JobQuery::new(JobFilter::all())).await.unwrap(),
        7
    );
}

/// An engine that records the size of every bulk statement the admin sends through it: the ids
/// a retry, cancel or delete is restricted to, and the limit of each id page.
struct Recording {
    inner: Arc<dyn Engine>,
    /// (operation, rows it may touch) per call.
    calls: std::sync::Mutex<Vec<(&'static str, usize)>>,
}

impl Recording {
    fn record(&self, operation: &'static str, rows: usize) {
        self.calls.lock().unwrap().push((operation, rows));
    }
    fn bound(filter: &JobFilter) -> usize {
        filter.ids.as_ref().map_or(usize::MAX, Vec::len)
    }
}

#[async_trait::async_trait]
impl Notifier for Recording {
    async fn notify(&self, channel: Channel, payload: Value) -> oban::Result<()> {
        self.inner.notify(channel, payload).await
    }
    async fn listen(
        &self,
        sink: tokio::sync::mpsc::UnboundedSender<Notice>,
        stop: StopSignal,
    ) -> oban::Result<bool> {
        self.inner.listen(sink, stop).await
    }
}

#[async_trait::async_trait]
impl Peer for Recording {
    async fn leader_elect(&self, name: &str, node: &str, ttl: Duration) -> oban::Result<bool> {
        self.inner.leader_elect(name, node, ttl).await
    }
    async fn leader_resign(&self, name: &str, node: &str) -> oban::Result<()> {
        self.inner.leader_resign(name, node).await
    }
}

#[async_trait::async_trait]
impl Engine for Recording {
    async fn schema_migrate(&self) -> oban::Result<()> {
        self.inner.schema_migrate().await
    }
    async fn schema_reindex(&self) -> oban::Result<()> {
        self.inner.schema_reindex().await
    }
    async fn job_insert_many(&self, jobs: Vec<NewJob>) -> oban::Result<Vec<Job>> {
        self.inner.job_insert_many(jobs).await
    }
    async fn job_fetch_available(
        &self,
        queue: &str,
        demand: u32,
        attempted_by: &[String],
        after: Option<FetchCursor>,
    ) -> oban::Result<Vec<Job>> {
        self.inner
            .job_fetch_available(queue, demand, attempted_by, after)
            .await
    }

    async fn job_fetch_limited(
        &self,
        queue: &str,
        demand: u32,
        attempted_by: &[String],
    ) -> oban::Result<Vec<Job>> {
        self.inner
            .job_fetch_limited(queue, demand, attempted_by)
            .await
    }

    async fn queue_limits_put(
        &self,
        queue: &str,
        limits: Option<&oban::limits::Limits>,
    ) -> oban::Result<()> {
        self.inner.queue_limits_put(queue, limits).await
    }

    async fn queue_limits_get(
        &self,
        queue: Option<&str>,
    ) -> oban::Result<Vec<(String, oban::limits::Limits)>> {
        self.inner.queue_limits_get(queue).await
    }

    async fn queue_limits_usage(
        &self,
        queue: &str,
        limits: &oban::limits::Limits,
        top: u32,
    ) -> oban::Result<oban::engine::LimitsUsage> {
        self.inner.queue_limits_usage(queue, limits, top).await
    }
    async fn job_ack_many(&self, acks: &[Ack]) -> oban::Result<Vec<i64>> {
        self.inner.job_ack_many(acks).await
    }
    async fn job_stage_due(&self, limit: u32) -> oban::Result<Vec<String>> {
        self.inner.job_stage_due(limit).await
    }
    async fn job_rescue_orphaned(
        &self,
        stale_after: Duration,
        unknown_after: Duration,
    ) -> oban::Result<u64> {
        self.inner
            .job_rescue_orphaned(stale_after, unknown_after)
            .await
    }
    async fn job_prune(&self, max_age: Duration, limit: u32) -> oban::Result<u64> {
        self.record("prune", limit as usize);
        self.inner.job_prune(max_age, limit).await
    }
    async fn job_count_depths(&self, exact_up_to: u64) -> oban::Result<QueueDepths> {
        self.inner.job_count_depths(exact_up_to).await
    }
    async fn job_get(&self, id: i64) -> oban::Result<Option<Job>> {
        self.inner.job_get(id).await
    }
    async fn job_list(&self, filter: &JobFilter, limit: u32) -> oban::Result<Vec<Job>> {
        self.inner.job_list(filter, limit).await
    }
    async fn job_page(
        &self,
        filter: &JobFilter,
        before: Option<i64>,
        limit: u32,
    ) -> oban::Result<Vec<Job>> {
        self.inner.job_page(filter, before, limit).await
    }
    async fn job_retry_many(&self, filter: &JobFilter) -> oban::Result<u64> {
        self.record("retry", Self::bound(filter));
        self.inner.job_retry_many(filter).await
    }
    async fn job_cancel_many(&self, filter: &JobFilter) -> oban::Result<(u64, Vec<i64>)> {
        self.record("cancel", Self::bound(filter));
        self.inner.job_cancel_many(filter).await
    }
    async fn job_delete_many(&self, filter: &JobFilter) -> oban::Result<u64> {
        self.record("delete", Self::bound(filter));
        self.inner.job_delete_many(filter).await
    }
    async fn job_ids(&self, filter: &JobFilter, after: i64, limit: u32) -> oban::Result<Vec<i64>> {
        self.record("ids", limit as usize);
        self.inner.job_ids(filter, after, limit).await
    }
    async fn job_count(&self, filter: &JobFilter) -> oban::Result<u64> {
        self.inner.job_count(filter).await
    }
    async fn job_failures(&self, since: Duration) -> oban::Result<Vec<FailureCount>> {
        self.inner.job_failures(since).await
    }
    async fn job_cron_seen(&self, since: Duration) -> oban::Result<Vec<CronSeen>> {
        self.inner.job_cron_seen(since).await
    }
    async fn workflow_release(&self, workflow_ids: &[String]) -> oban::Result<u64> {
        self.record("workflow_release", workflow_ids.len());
        self.inner.workflow_release(workflow_ids).await
    }
    async fn workflow_recent_steps(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> oban::Result<Vec<(i64, String)>> {
        self.inner.workflow_recent_steps(before, limit).await
    }
    async fn workflow_tally(&self, workflow_ids: &[String]) -> oban::Result<Vec<WorkflowTally>> {
        self.inner.workflow_tally(workflow_ids).await
    }
    async fn workflow_subs(
        &self,
        workflow_id: &str,
        from_id: i64,
        rows: u32,
    ) -> oban::Result<Vec<String>> {
        self.inner.workflow_subs(workflow_id, from_id, rows).await
    }
    async fn workflow_suspend_failed(&self, workflow_ids: &[String]) -> oban::Result<u64> {
        self.record("workflow_suspend_failed", workflow_ids.len());
        self.inner.workflow_suspend_failed(workflow_ids).await
    }
    async fn schema_versions(&self) -> oban::Result<SchemaVersions> {
        self.inner.schema_versions().await
    }
    async fn producer_list(&self, queue: Option<&str>) -> oban::Result<Vec<ProducerInfo>> {
        self.inner.producer_list(queue).await
    }
    async fn producer_heartbeat(
        &self,
        uuid: uuid::Uuid,
        node: &str,
        queue: &str,
        meta: Value,
    ) -> oban::Result<()> {
        self.inner.producer_heartbeat(uuid, node, queue, meta).await
    }
    async fn producer_delete(&self, uuid: uuid::Uuid) -> oban::Result<()> {
        self.inner.producer_delete(uuid).await
    }

    async fn workflow_waiting(&self, after: Option<&str>, limit: u32) -> oban::Result<Vec<String>> {
        self.inner.workflow_waiting(after, limit).await
    }

    async fn sequence_release(&self, keys: &[String]) -> oban::Result<u64> {
        self.inner.sequence_release(keys).await
    }

    async fn sequence_waiting(&self, after: Option<&str>, limit: u32) -> oban::Result<Vec<String>> {
        self.inner.sequence_waiting(after, limit).await
    }

    async fn workflow_steps(
        &self,
        workflow_id: &str,
        names: &[String],
    ) -> oban::Result<Vec<oban::Job>> {
        self.inner.workflow_steps(workflow_id, names).await
    }
}

/// `Admin::retry_workflow` moves the failed steps back to suspended and then asks the engine to
/// release the workflow, which makes a step whose dependencies are met available.
async fn retry_workflow_releases_what_it_suspended(kind: Kind) {
    let db = Db::new(kind).await;
    let recording = Arc::new(Recording {
        inner: db.engine.clone(),
        calls: std::sync::Mutex::new(Vec::new()),
    });
    let admin = Admin::with_engine(recording.clone());
    let step = |name: &str| {
        job("Step", "wf")
            .meta("workflow", true)
            .meta("workflow_id", "wf-1")
            .meta("name", name)
            .meta("deps", json!([]))
    };
    let stored = db.insert_via_pool(vec![step("a"), step("b")]).await;
    finish_as(&db, &stored[0], JobState::Cancelled).await;
    let retried = admin.retry_workflow("wf-1").await.unwrap();
    assert_eq!(retried.suspended, 1);
    // Its dependencies (none) are met: the release made it runnable again.
    assert_eq!(retried.released, 1);
    assert_eq!(db.job(stored[0].id).await.state, JobState::Available);
    let calls = recording.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [("workflow_suspend_failed", 1), ("workflow_release", 1)],
        "suspended, then released, the one workflow"
    );
}

/// Every statement of a bulk walk is bounded by `batch`: each page of ids asks for at most
/// `batch`, and each retry, cancel, delete and replay is restricted to at most `batch` ids.
async fn every_statement_is_bounded_by_the_batch(kind: Kind) {
    let db = Db::new(kind).await;
    let recording = Arc::new(Recording {
        inner: db.engine.clone(),
        calls: std::sync::Mutex::new(Vec::new()),
    });
    let admin = Admin::with_engine(recording.clone());
    let jobs: Vec<NewJob> = (0..23)
        .map(|_| job("A", "bulk").schedule_in(Duration::from_secs(3600)))
        .collect();
    db.insert_via_pool(jobs).await;
    let a = JobQuery::new(JobFilter::new().worker("A"));
    assert_eq!(admin.retry(&a, 4, &mut |_| {}).await.unwrap(), 23);
    assert_eq!(admin.cancel(&a, 5, &mut |_| {}).await.unwrap(), 23);
    assert_eq!(admin.replay(&a, 6, &mut |_| {}).await.unwrap(), 23);
    assert_eq!(admin.delete(&a, 7, &mut |_| {}).await.unwrap(), 23);
    let calls = recording.calls.lock().unwrap().clone();
    let per = |op: &str| -> Vec<usize> {
        calls
            .iter()
            .filter(|(o, _)| *o == op)
            .map(|(_, n)| *n)
            .collect()
    };
    assert_eq!(
        per("retry"),
        [4, 4, 4, 4, 4, 3, 6, 6, 6, 5],
        "retry, then replay"
    );
    assert_eq!(per("cancel"), [5, 5, 5, 5, 3]);
    assert_eq!(per("delete"), [7, 7, 7, 2]);
    assert!(per("ids").iter().all(|&n| n <= 7), "{:?}", per("ids"));
    assert_eq!(
        admin.count(&JobQuery::new(JobFilter::all())).await.unwrap(),
        0
    );
}

/// The inline engine (no database) answers the admin's reads from memory: counts, pages of ids
/// in id order, `since`, failures.
#[tokio::test]
async fn inline_engine_answers_the_reads() {
    use oban::engines::inline::InlineEngine;
    let engine = Arc::new(InlineEngine::new(
        Arc::new(oban::Registry::default()),
        Arc::new(oban::StateMap::new()),
        "inline".into(),
    ));
    let stored = engine
        .job_insert_many(vec![job("A", "q"), job("A", "q"), job("B", "r")])
        .await
        .unwrap();
    let ids: Vec<i64> = stored.iter().map(|j| j.id).collect();
    let admin = Admin::with_engine(engine.clone());
    let a = JobQuery::new(JobFilter::new().worker("A"));
    assert_eq!(admin.count(&a).await.unwrap(), 2);
    assert_eq!(
        admin
            .count(&a.clone().since(Duration::from_secs(60)))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        engine.job_ids(&JobFilter::all(), 0, 2).await.unwrap(),
        ids[..2]
    );
    assert_eq!(
        engine.job_ids(&JobFilter::all(), ids[1], 2).await.unwrap(),
        ids[2..]
    );
    assert_eq!(admin.jobs(&a.clone().limit(1)).await.unwrap().len(), 1);
    assert!(admin
        .cron(Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
    assert!(admin.migration_status().await.unwrap().up_to_date());
    let _ = admin.failing(Duration::from_secs(60), 3).await.unwrap();
}

/// The inline engine pages newest first and searches as the databases do: worker, args and
/// errors, ignoring case, an id, wildcards taken literally.
#[tokio::test]
async fn inline_engine_pages_and_searches() {
    use oban::engines::inline::InlineEngine;
    let engine = Arc::new(InlineEngine::new(
        Arc::new(oban::Registry::default()),
        Arc::new(oban::StateMap::new()),
        "inline".into(),
    ));
    let stored = engine
        .job_insert_many(
            (0..7)
                .map(|i| NewJob::new(format!("W{i}"), json!({"tag": format!("v{i}_x")})))
                .chain([NewJob::new("Shop.Discount", json!({"off": "TEN%"}))])
                .collect(),
        )
        .await
        .unwrap();
    let mut newest_first = ids(&stored);
    newest_first.reverse();
    let admin = Admin::with_engine(engine.clone());
    let all = JobQuery::new(JobFilter::new()).limit(3);
    let pages = walk_pages(&admin, &all, None).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2]);
    assert_eq!(pages.concat(), newest_first);

    let last = stored.last().unwrap().id;
    let page = |filter: JobFilter| {
        let admin = admin.clone();
        async move { ids(&admin.page(&JobQuery::new(filter), None).await.unwrap()) }
    };
    assert_eq!(page(search("ten%")).await, [last]);
    assert_eq!(page(search("%")).await, [last]);
    assert_eq!(page(search("shop.")).await, [last]);
    assert_eq!(page(search("V3_X")).await, [stored[3].id]);
    assert!(page(search("v3%x")).await.is_empty());
    // With no worker registered, each job was deferred with an error naming its worker (and a
    // timestamp, whose digits any id may be among).
    assert_eq!(page(search("NOT KNOWN to node")).await, newest_first);
    assert_eq!(page(search("`w2`")).await, [stored[2].id]);
    assert!(page(search(&last.to_string())).await.contains(&last));
    assert_eq!(page(search(" ")).await, newest_first);
}
