//! Several nodes on one database: leadership, notifications, queue and job control, pruning,
//! cron hand-over. Nodes here are in one process; `multiprocess.rs` uses real processes.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::wait::{self, wait_until};
use oban::cron::{CronEntry, CronScheduler};
use oban::engines::postgres::PostgresEngine;
use oban::{
    JobBuilder, JobContext, JobError, JobFilter, JobState, NewJob, Nodes, Oban, Outcome, Worker,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

#[derive(Serialize, Deserialize)]
struct Nap {
    ms: u64,
}

/// Counts attempts that ran to their end.
#[derive(Default)]
struct Finished {
    count: AtomicUsize,
}

impl Worker for Nap {
    const NAME: &'static str = "Test.Nap";
    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        // The job's work: a job that takes time.
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        if let Some(finished) = ctx.try_state::<Arc<Finished>>() {
            finished.count.fetch_add(1, Ordering::SeqCst);
        }
        Ok(Outcome::Complete)
    }
}

fn builder(pool: &PgPool, node: &str) -> oban::Builder {
    Oban::builder()
        .pool(pool.clone())
        .node(node)
        .register::<Nap>()
        .leader_ttl(Duration::from_millis(900))
        .heartbeat_interval(Duration::from_millis(200))
        .stage_interval(Duration::from_millis(100))
}

#[tokio::test]
async fn one_leader_at_a_time_and_a_quick_hand_over() {
    let pool = common::test_pool().await;
    let nodes = vec![
        builder(&pool, "a").start().await.unwrap(),
        builder(&pool, "b").start().await.unwrap(),
        builder(&pool, "c").start().await.unwrap(),
    ];
    let leaders = |nodes: &[Oban]| nodes.iter().filter(|n| n.is_leader()).count();
    // Sample for a few TTLs: never two leaders.
    let mut led = 0;
    wait::sample_for(
        Duration::from_secs(3),
        Duration::from_millis(10),
        async || {
            let count = leaders(&nodes);
            assert!(count <= 1, "{count} leaders at once");
            led += count;
        },
    )
    .await;
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
    let hand_over = stopped.elapsed();
    assert!(
        hand_over < Duration::from_millis(900),
        "hand-over {hand_over:?} is quicker than the TTL"
    );
    wait::sample_for(
        Duration::from_secs(1),
        Duration::from_millis(10),
        async || assert!(leaders(&rest) <= 1),
    )
    .await;
    for node in rest {
        node.shutdown(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn an_insert_wakes_a_queue_on_another_node_at_once() {
    let pool = common::test_pool().await;
    // Polling every minute: only the notification can start the job quickly.
    let worker = builder(&pool, "worker")
        .queue("default", 5)
        .poll_interval(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    assert!(worker.notifications_enabled());
    // Not synchronisation (`start` returns once listening; nothing below needs this to pass):
    // the producer's start-up fetch goes by first, so that only the insert's notification can
    // start the job below rather than that fetch.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let job = JobBuilder::new(Nap { ms: 0 }).insert(&pool).await.unwrap();
    wait::wait_for_state(&pool, job.id, "completed").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Inside a transaction, the notification goes out on commit.
    let mut tx = pool.begin().await.unwrap();
    let job = JobBuilder::new(Nap { ms: 0 })
        .insert(&mut *tx)
        .await
        .unwrap();
    // Not synchronisation: a window in which a notification sent before the commit would make
    // the queue fetch (and find nothing, and then wait out its 60 s poll).
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    wait::wait_for_state(&pool, job.id, "completed").await;

    // Through a node: it wakes its own queues and notifies the others after the commit.
    let inserter = builder(&pool, "inserter")
        .queue("elsewhere", 1)
        .start()
        .await
        .unwrap();
    let started = Instant::now();
    let job = JobBuilder::new(Nap { ms: 0 })
        .insert(&inserter)
        .await
        .unwrap();
    wait::wait_for_state(&pool, job.id, "completed").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    inserter.shutdown(Duration::from_secs(1)).await;
    worker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn without_notifications_queues_poll() {
    let pool = common::test_pool().await;
    let worker = builder(&pool, "poller")
        .queue("default", 5)
        .notifications(false)
        .poll_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    assert!(!worker.notifications_enabled());
    let job = JobBuilder::new(Nap { ms: 0 }).insert(&pool).await.unwrap();
    wait::wait_for_state(&pool, job.id, "completed").await;
    worker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn staged_jobs_wake_queues_on_other_nodes() {
    let pool = common::test_pool().await;
    let leader = builder(&pool, "leader").start().await.unwrap();
    assert!(leader.is_leader());
    let worker = builder(&pool, "worker")
        .queue("default", 5)
        .poll_interval(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let job = JobBuilder::new(Nap { ms: 0 })
        .schedule_in(Duration::from_millis(300))
        .insert(&pool)
        .await
        .unwrap();
    wait::wait_for_state(&pool, job.id, "completed").await;
    worker.shutdown(Duration::from_secs(1)).await;
    leader.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn pause_resume_scale_start_and_stop_queues_across_nodes() {
    let pool = common::test_pool().await;
    let a = builder(&pool, "a")
        .queue("default", 2)
        .start()
        .await
        .unwrap();
    let b = builder(&pool, "b")
        .queue("default", 3)
        .start()
        .await
        .unwrap();

    a.pause_queue("default", Nodes::All).await.unwrap();
    wait_until("both paused", Duration::from_secs(5), async || {
        let info = a.check_queue("default").await.unwrap();
        info.len() == 2 && info.iter().all(|q| q.paused)
    })
    .await;
    let job = JobBuilder::new(Nap { ms: 0 }).insert(&a).await.unwrap();
    // Not synchronisation: a window in which a queue that was not paused would run the job.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        common::fetch_job(&pool, job.id).await.state,
        JobState::Available,
        "paused queues fetch nothing"
    );

    b.resume_queue("default", Nodes::Only("b".into()))
        .await
        .unwrap();
    wait::wait_for_state(&pool, job.id, "completed").await;
    let job = common::fetch_job(&pool, job.id).await;
    assert_eq!(job.attempted_by[0], "b", "only b was resumed");
    wait_until(
        "a still paused, b resumed",
        Duration::from_secs(5),
        async || {
            let info = a.check_queue("default").await.unwrap();
            info.iter().any(|q| q.node == "a" && q.paused)
                && info.iter().any(|q| q.node == "b" && !q.paused)
        },
    )
    .await;

    a.scale_queue("default", 7, Nodes::All).await.unwrap();
    wait_until("scaled", Duration::from_secs(5), async || {
        a.check_queue("default")
            .await
            .unwrap()
            .iter()
            .all(|q| q.limit == 7)
    })
    .await;
    assert!(a.scale_queue("default", 0, Nodes::All).await.is_err());

    a.start_queue("reports", 4, Nodes::Only("b".into()))
        .await
        .unwrap();
    wait_until("reports on b only", Duration::from_secs(5), async || {
        let info = a.check_queue("reports").await.unwrap();
        info.len() == 1 && info[0].node == "b" && info[0].limit == 4
    })
    .await;
    let report = JobBuilder::new(Nap { ms: 0 })
        .queue("reports")
        .insert(&pool)
        .await
        .unwrap();
    wait::wait_for_state(&pool, report.id, "completed").await;

    b.stop_queue("reports", Nodes::All).await.unwrap();
    wait_until("reports stopped", Duration::from_secs(5), async || {
        a.check_queue("reports").await.unwrap().is_empty()
    })
    .await;
    a.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn cancelling_a_running_job_stops_it_on_the_node_that_runs_it() {
    let pool = common::test_pool().await;
    let finished = Arc::new(Finished::default());
    let runner = builder(&pool, "runner")
        .queue("default", 2)
        .state(Arc::clone(&finished))
        .start()
        .await
        .unwrap();
    let other = builder(&pool, "other").start().await.unwrap();
    let job = JobBuilder::new(Nap { ms: 3_000 })
        .insert(&pool)
        .await
        .unwrap();
    wait::wait_for_state(&pool, job.id, "executing").await;
    assert!(
        other.cancel_job(job.id).await.unwrap(),
        "cancelled from another node"
    );
    let cancelled = wait::wait_for_state(&pool, job.id, "cancelled").await;
    assert!(cancelled.cancelled_at.is_some());
    wait_until(
        "the running slot is freed",
        Duration::from_secs(5),
        async || {
            runner
                .check_queue("default")
                .await
                .unwrap()
                .iter()
                .all(|q| q.running == 0)
        },
    )
    .await;
    // Not synchronisation: past the 3 s the attempt would take, had it not been aborted.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    assert_eq!(
        finished.count.load(Ordering::SeqCst),
        0,
        "the attempt was aborted, not left to finish"
    );
    assert_eq!(
        common::fetch_job(&pool, job.id).await.state,
        JobState::Cancelled,
        "nothing overwrote the cancel"
    );
    runner.shutdown(Duration::from_secs(1)).await;
    other.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn bulk_cancel_retry_and_delete_by_filter() {
    let pool = common::test_pool().await;
    let oban = builder(&pool, "ops").start().await.unwrap();
    let later = Duration::from_secs(3600);
    let mut jobs = Vec::new();
    for (queue, worker, tag, tenant) in [
        ("mailers", "Mail.Send", "billing", 1),
        ("mailers", "Mail.Send", "billing", 2),
        ("mailers", "Mail.Digest", "marketing", 1),
        ("reports", "Report.Build", "billing", 1),
    ] {
        jobs.push(
            NewJob::new(worker, json!({"tenant": tenant}))
                .queue(queue)
                .tag(tag)
                .schedule_in(later),
        );
    }
    let ids: Vec<i64> = oban::insert_all(&pool, jobs)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();

    let filter = JobFilter::new()
        .queue("mailers")
        .tag("billing")
        .args_contain(json!({"tenant": 1}));
    assert_eq!(oban.cancel_jobs(&filter).await.unwrap(), 1);
    assert_eq!(
        common::fetch_job(&pool, ids[0]).await.state,
        JobState::Cancelled
    );
    assert_eq!(
        common::fetch_job(&pool, ids[1]).await.state,
        JobState::Scheduled
    );

    assert_eq!(
        oban.cancel_jobs(
            &JobFilter::new()
                .worker("Mail.Digest")
                .worker("Report.Build")
        )
        .await
        .unwrap(),
        2
    );
    assert_eq!(
        oban.retry_jobs(&JobFilter::new().state(JobState::Cancelled).queue("mailers"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        common::fetch_job(&pool, ids[0]).await.state,
        JobState::Available
    );
    assert_eq!(
        common::fetch_job(&pool, ids[3]).await.state,
        JobState::Cancelled
    );

    assert_eq!(
        oban.delete_jobs(&JobFilter::new().state(JobState::Cancelled))
            .await
            .unwrap(),
        1
    );
    assert!(oban.job(ids[3]).await.unwrap().is_none());
    assert_eq!(
        oban.delete_jobs(&JobFilter::ids([ids[0], ids[1]]))
            .await
            .unwrap(),
        2
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 1);
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_pruner_deletes_old_finished_jobs_only() {
    let pool = common::test_pool().await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO oban_jobs (state, worker, args, completed_at, cancelled_at, discarded_at, attempt) VALUES
           ('completed', 'W', '{}', timezone('UTC', now()) - interval '2 days', NULL, NULL, 1),
           ('cancelled', 'W', '{}', NULL, timezone('UTC', now()) - interval '2 days', NULL, 0),
           ('discarded', 'W', '{}', NULL, NULL, timezone('UTC', now()) - interval '2 days', 1),
           ('completed', 'W', '{}', timezone('UTC', now()) - interval '1 hour', NULL, NULL, 1),
           ('scheduled', 'W', '{}', NULL, NULL, NULL, 0)
         RETURNING id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let oban = builder(&pool, "pruner")
        .prune(
            Some(Duration::from_secs(86_400)),
            Duration::from_millis(100),
        )
        .start()
        .await
        .unwrap();
    wait::wait_for_count(
        &pool,
        "SELECT count(*) FROM oban_jobs",
        2,
        Duration::from_secs(5),
    )
    .await;
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM oban_jobs ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, vec![ids[3], ids[4]]);
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn reindexing_rebuilds_the_indexes_concurrently() {
    use oban::engine::Engine as _;
    let pool = common::test_pool().await;
    PostgresEngine::new(pool.clone())
        .schema_reindex()
        .await
        .unwrap();
    let invalid: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = 'oban_jobs' AND NOT i.indisvalid",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(invalid, 0);
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn cron_minutes(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT meta->>'cron_at' FROM oban_jobs ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn cron_across_a_leader_hand_over_has_no_duplicate_and_no_miss() {
    let pool = common::test_pool().await;
    let engine = PostgresEngine::new(pool.clone());
    let entries =
        || vec![CronEntry::new("* * * * *", NewJob::new("Cron.Tick", json!({}))).unwrap()];
    let catch_up = Duration::from_secs(180);

    // The first leader runs at 12:00 and 12:01, then dies before 12:02.
    let mut first = CronScheduler::new(entries(), catch_up);
    assert_eq!(
        first
            .run_at(&engine, at("2026-06-01T12:00:00.050Z"))
            .await
            .unwrap(),
        3,
        "its first run looks back 3 minutes"
    );
    assert_eq!(
        first
            .run_at(&engine, at("2026-06-01T12:01:00.050Z"))
            .await
            .unwrap(),
        1
    );
    // The next leader is elected at 12:03:10 and looks back over the catch-up window.
    let mut second = CronScheduler::new(entries(), catch_up);
    assert_eq!(
        second
            .run_at(&engine, at("2026-06-01T12:03:10Z"))
            .await
            .unwrap(),
        2,
        "12:02 and 12:03 only"
    );
    // For a moment both believe they lead: the database refuses the duplicates.
    assert_eq!(
        first
            .run_at(&engine, at("2026-06-01T12:04:00.050Z"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        second
            .run_at(&engine, at("2026-06-01T12:04:00.080Z"))
            .await
            .unwrap(),
        0
    );
    let minutes = cron_minutes(&pool).await;
    let expected: Vec<String> = (58..60)
        .map(|m| format!("2026-06-01T11:{m}:00+00:00"))
        .chain((0..5).map(|m| format!("2026-06-01T12:0{m}:00+00:00")))
        .collect();
    assert_eq!(minutes, expected, "every minute exactly once");
    let meta: serde_json::Value = sqlx::query_scalar("SELECT meta FROM oban_jobs LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(meta["cron_expr"], "* * * * *");
}

#[tokio::test]
async fn cron_in_a_time_zone_over_a_dst_change() {
    let pool = common::test_pool().await;
    let engine = PostgresEngine::new(pool.clone());
    let entry = CronEntry::new("30 2 * * *", NewJob::new("Cron.Nightly", json!({})))
        .unwrap()
        .timezone("America/New_York")
        .unwrap();
    let mut scheduler = CronScheduler::new(vec![entry], Duration::from_secs(60));
    // Run every minute-ish across 2026-03-08 (02:00 -> 03:00 EDT) and the day after.
    let mut now = at("2026-03-08T00:00:30Z");
    while now < at("2026-03-10T00:00:00Z") {
        scheduler.run_at(&engine, now).await.unwrap();
        now += chrono::Duration::minutes(7);
    }
    assert_eq!(
        cron_minutes(&pool).await,
        ["2026-03-09T06:30:00+00:00"],
        "02:30 did not exist on the 8th"
    );
}

#[tokio::test]
async fn reboot_entries_run_once_when_the_scheduler_starts() {
    let pool = common::test_pool().await;
    let engine = PostgresEngine::new(pool.clone());
    let entry = CronEntry::new("@reboot", NewJob::new("Cron.Boot", json!({}))).unwrap();
    let mut scheduler = CronScheduler::new(vec![entry], Duration::from_secs(60));
    assert_eq!(
        scheduler
            .run_at(&engine, at("2026-06-01T12:00:00Z"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        scheduler
            .run_at(&engine, at("2026-06-01T12:01:00Z"))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_bad_cron_expression_or_time_zone_fails_start() {
    let pool = common::test_pool().await;
    let err = builder(&pool, "x")
        .cron("* * * *", NewJob::new("W", json!({})))
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`* * * *`"), "{err}");
    let err = builder(&pool, "x")
        .cron_in("Nowhere/City", "0 * * * *", NewJob::new("W", json!({})))
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Nowhere/City"), "{err}");
    let err = builder(&pool, "x")
        .reindex(Some("every day"))
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("every day"), "{err}");
}
