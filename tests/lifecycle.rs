//! Every row of the job lifecycle (DESIGN.md section 3) against a real PostgreSQL.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::wait::{self, wait_until_every};
use oban::{
    Backoff, JobBuilder, JobContext, JobError, JobState, NewJob, Oban, Outcome, Worker,
    WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

/// A worker whose behaviour is chosen by its args.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Probe {
    Ok,
    Fail {
        times: i32,
    },
    Panic,
    Sleep {
        ms: u64,
    },
    Discard,
    Cancel,
    Snooze {
        ms: u64,
        times: i64,
    },
    Record {
        label: String,
    },
    /// Records `label` once it runs, then sleeps for `ms`.
    Hold {
        label: String,
        ms: u64,
    },
}

/// Labels in the order jobs ran, for ordering tests.
#[derive(Default, Clone)]
struct Log {
    order: Arc<Mutex<Vec<String>>>,
}

impl Worker for Probe {
    const NAME: &'static str = "Test.Probe";

    fn options() -> WorkerOptions {
        WorkerOptions::new()
            .max_attempts(3)
            .timeout(Duration::from_secs(2))
            .backoff(Backoff::Constant(Duration::from_millis(100)))
    }

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        let job = ctx.job();
        match self {
            Probe::Ok => Ok(Outcome::Complete),
            Probe::Fail { times } if job.attempt <= times => {
                Err(JobError::new(format!("failure #{}", job.attempt)))
            }
            Probe::Fail { .. } => Ok(Outcome::Complete),
            Probe::Panic => panic!("boom at attempt {}", job.attempt),
            Probe::Sleep { ms } => {
                // The job's work: a job that takes time.
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Outcome::Complete)
            }
            Probe::Discard => Ok(Outcome::Discard("bad address".into())),
            Probe::Cancel => Ok(Outcome::Cancel("order withdrawn".into())),
            Probe::Snooze { ms, times } => {
                let snoozed = job
                    .meta
                    .get("snoozed")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0);
                if snoozed < times {
                    Ok(Outcome::Snooze(Duration::from_millis(ms)))
                } else {
                    Ok(Outcome::Complete)
                }
            }
            Probe::Record { label } => {
                ctx.state::<Log>().order.lock().unwrap().push(label);
                Ok(Outcome::Complete)
            }
            Probe::Hold { label, ms } => {
                ctx.state::<Log>().order.lock().unwrap().push(label);
                // The job's work: a job that takes time.
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Outcome::Complete)
            }
        }
    }
}

async fn node(pool: &PgPool, limit: u32) -> Oban {
    node_with_log(pool, limit).await.0
}

/// A node, and the log its `Record` and `Hold` jobs write to.
async fn node_with_log(pool: &PgPool, limit: u32) -> (Oban, Log) {
    let log = Log::default();
    let oban = Oban::builder()
        .pool(pool.clone())
        .node("test-node")
        .queue("default", limit)
        .register::<Probe>()
        .state(log.clone())
        .poll_interval(Duration::from_millis(50))
        .stage_interval(Duration::from_millis(50))
        .start()
        .await
        .expect("start node");
    (oban, log)
}

/// Waits until every label is in the log: those jobs run (`executing` in the database only
/// says they were claimed).
async fn wait_started(log: &Log, labels: &[&str]) {
    wait_until_every(
        format!("jobs {labels:?} to start"),
        Duration::from_secs(10),
        Duration::from_millis(10),
        async || {
            let order = log.order.lock().unwrap();
            labels.iter().all(|label| order.iter().any(|l| l == label))
        },
    )
    .await;
}

async fn insert(oban: &Oban, probe: Probe) -> i64 {
    JobBuilder::new(probe)
        .insert(oban)
        .await
        .expect("insert")
        .id
}

#[tokio::test]
async fn available_job_completes() {
    let pool = common::test_pool().await;
    let oban = node(&pool, 5).await;
    let inserted = JobBuilder::new(Probe::Ok).insert(&oban).await.unwrap();
    assert_eq!(inserted.state, JobState::Available);
    let job = wait::wait_for_state(&pool, inserted.id, "completed").await;
    assert_eq!(job.attempt, 1);
    assert!(job.completed_at.is_some());
    assert_eq!(job.attempted_by[0], "test-node");
    assert_eq!(
        job.attempted_by.len(),
        2,
        "attempted_by is [node, producer]"
    );
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn scheduled_job_waits_then_is_staged_and_runs() {
    let pool = common::test_pool().await;
    let oban = node(&pool, 5).await;
    let inserted = JobBuilder::new(Probe::Ok)
        .schedule_in(Duration::from_millis(600))
        .insert(&oban)
        .await
        .unwrap();
    assert_eq!(inserted.state, JobState::Scheduled);
    // Not synchronisation: a window, well before the job is due, in which it must not run.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        common::fetch_job(&pool, inserted.id).await.state,
        JobState::Scheduled
    );
    let job = wait::wait_for_state(&pool, inserted.id, "completed").await;
    assert!(job.attempted_at.unwrap() >= inserted.scheduled_at);
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn error_makes_job_retryable_with_backoff_then_it_succeeds() {
    let pool = common::test_pool().await;
    // A long stage interval keeps the job visibly `retryable` for a moment.
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("default", 5)
        .register::<Probe>()
        .poll_interval(Duration::from_millis(50))
        .stage_interval(Duration::from_millis(700))
        .start()
        .await
        .unwrap();
    let id = insert(&oban, Probe::Fail { times: 1 }).await;
    let retryable = wait::wait_for_state(&pool, id, "retryable").await;
    assert_eq!(retryable.attempt, 1);
    assert_eq!(retryable.errors.len(), 1);
    assert_eq!(retryable.errors[0].attempt, 1);
    assert_eq!(retryable.errors[0].error, "failure #1");
    assert!(!retryable.errors[0].at.is_empty());
    let delay = retryable.scheduled_at - retryable.attempted_at.unwrap();
    assert!(
        delay >= chrono::Duration::milliseconds(90),
        "backoff applied: {delay}"
    );
    let done = wait::wait_for_state(&pool, id, "completed").await;
    assert_eq!(done.attempt, 2);
    assert_eq!(done.errors.len(), 1, "the error of attempt 1 is kept");
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn error_on_last_attempt_discards() {
    let pool = common::test_pool().await;
    let oban = node(&pool, 5).await;
    let id = insert(&oban, Probe::Fail { times: 99 }).await;
    let job = wait::wait_for_state(&pool, id, "discarded").await;
    assert_eq!(job.attempt, 3);
    assert_eq!(job.errors.len(), 3);
    assert_eq!(
        job.errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(job.discarded_at.is_some());
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn discard_and_cancel_outcomes() {
    let pool = common::test_pool().await;
    let oban = node(&pool, 5).await;
    let discard = insert(&oban, Probe::Discard).await;
    let cancel = insert(&oban, Probe::Cancel).await;
    let discarded = wait::wait_for_state(&pool, discard, "discarded").await;
    assert_eq!(discarded.attempt, 1);
    assert!(discarded.errors[0].error.contains("bad address"));
    let cancelled = wait::wait_for_state(&pool, cancel, "cancelled").await;
    assert!(cancelled.cancelled_at.is_some());
    assert!(cancelled.errors[0].error.contains("order withdrawn"));
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn snooze_reschedules_and_gives_the_attempt_back() {
    let pool = common::test_pool().await;
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("default", 5)
        .register::<Probe>()
        .poll_interval(Duration::from_millis(50))
        .stage_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let id = insert(
        &oban,
        Probe::Snooze {
            ms: 2_000,
            times: 1,
        },
    )
    .await;
    let snoozed = wait::wait_for_state(&pool, id, "scheduled").await;
    assert_eq!(snoozed.attempt, 0, "the attempt is given back");
    assert_eq!(snoozed.meta["snoozed"], 1);
    assert!(snoozed.errors.is_empty(), "a snooze is no error");
    let delay = snoozed.scheduled_at - snoozed.attempted_at.unwrap();
    assert!(
        delay >= chrono::Duration::milliseconds(1_900),
        "snoozed for its delay: {delay}"
    );
    let done = wait::wait_for_state(&pool, id, "completed").await;
    assert_eq!(done.attempt, 1);
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn panic_is_caught_and_retried() {
    let pool = common::test_pool().await;
    let oban = node(&pool, 5).await;
    let id = insert(&oban, Probe::Panic).await;
    let job = wait::wait_for_state(&pool, id, "discarded").await;
    assert_eq!(job.errors.len(), 3);
    assert!(
        job.errors[0].error.contains("panicked: boom at attempt 1"),
        "{:?}",
        job.errors
    );
    // the queue survived its panicking job
    let ok = insert(&oban, Probe::Ok).await;
    wait::wait_for_state(&pool, ok, "completed").await;
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn timeout_stops_the_attempt_and_counts_as_failure() {
    let pool = common::test_pool().await;
    let oban = node(&pool, 5).await;
    let id = insert(&oban, Probe::Sleep { ms: 60_000 }).await;
    let job = wait::wait_for_state(&pool, id, "retryable").await;
    assert!(
        job.errors[0].error.contains("timed out after 2s"),
        "{:?}",
        job.errors
    );
    oban.shutdown(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn malformed_args_discard_with_worker_and_serde_message() {
    let pool = common::test_pool().await;
    let oban = node(&pool, 5).await;
    let job = NewJob::new("Test.Probe", json!({"action": "sleep", "ms": "soon"}))
        .insert(&oban)
        .await
        .unwrap();
    let job = wait::wait_for_state(&pool, job.id, "discarded").await;
    assert_eq!(job.attempt, 1, "no retry: the args cannot change");
    let message = &job.errors[0].error;
    assert!(message.contains("Test.Probe"), "{message}");
    assert!(
        message.contains("invalid type: string \"soon\", expected u64"),
        "{message}"
    );
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn unknown_worker_is_deferred_without_spending_an_attempt() {
    let pool = common::test_pool().await;
    let oban = node(&pool, 5).await;
    let job = NewJob::new("Elsewhere.Worker", json!({}))
        .insert(&oban)
        .await
        .unwrap();
    let job = wait::wait_for_state(&pool, job.id, "scheduled").await;
    assert_eq!(job.attempt, 0, "the attempt was given back");
    assert_eq!(job.meta[oban::deferral::META_KEY], 1);
    assert!(
        job.errors[0]
            .error
            .contains("worker `Elsewhere.Worker` is not known to node"),
        "{:?}",
        job.errors
    );
    // the queue keeps working
    let ok = insert(&oban, Probe::Ok).await;
    wait::wait_for_state(&pool, ok, "completed").await;
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn jobs_run_in_priority_then_insertion_order() {
    let pool = common::test_pool().await;
    let mut jobs = Vec::new();
    for (label, priority) in [
        ("p9-a", 9),
        ("p0-a", 0),
        ("p5-a", 5),
        ("p0-b", 0),
        ("p9-b", 9),
        ("p3-a", 3),
    ] {
        jobs.push(
            JobBuilder::new(Probe::Record {
                label: label.into(),
            })
            .priority(priority)
            .build()
            .unwrap(),
        );
    }
    oban::insert_all(&pool, jobs).await.unwrap();
    let log = Log::default();
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("default", 1)
        .register::<Probe>()
        .state(log.clone())
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    wait::wait_for_count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE state = 'completed'",
        6,
        Duration::from_secs(10),
    )
    .await;
    let order = log.order.lock().unwrap().clone();
    assert_eq!(order, ["p0-a", "p0-b", "p3-a", "p5-a", "p9-a", "p9-b"]);
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn transactional_insert_commits_and_rolls_back_with_the_callers_data() {
    let pool = common::test_pool().await;
    sqlx::query("CREATE TABLE orders (id bigint PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO orders VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let kept = JobBuilder::new(Probe::Ok).insert(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO orders VALUES (2)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let lost = JobBuilder::new(Probe::Ok).insert(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();

    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM oban_jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, vec![kept.id]);
    assert_ne!(kept.id, lost.id);
    let orders: Vec<i64> = sqlx::query_scalar("SELECT id FROM orders")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(orders, vec![1]);

    let oban = node(&pool, 5).await;
    wait::wait_for_state(&pool, kept.id, "completed").await;
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn insert_all_of_ten_thousand_jobs_is_one_statement() {
    let pool = common::test_pool().await;
    let jobs: Vec<NewJob> = (0..10_000)
        .map(|i| {
            NewJob::new("Test.Probe", json!({"action": "ok", "n": i}))
                .queue(if i % 2 == 0 { "even" } else { "odd" })
                .tag("bulk")
                .meta("batch", 7)
        })
        .collect();
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&pool)
        .await
        .ok();
    let inserted = oban::insert_all(&pool, jobs).await.unwrap();
    assert_eq!(inserted.len(), 10_000);
    assert_eq!(inserted[0].args["n"], 0, "rows come back in input order");
    assert_eq!(inserted[9_999].args["n"], 9_999);
    assert!(inserted.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(inserted[1].queue, "odd");
    assert_eq!(inserted[1].tags, vec!["bulk".to_owned()]);
    assert_eq!(inserted[1].meta["batch"], 7);
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM oban_jobs WHERE state = 'available' AND 'bulk' = ANY(tags)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(count, 10_000);
}

#[tokio::test]
async fn invalid_jobs_are_refused_before_reaching_the_database() {
    let pool = common::test_pool().await;
    let err = NewJob::new("Test.Probe", json!({}))
        .priority(10)
        .insert(&pool)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("priority 10 is out of range"),
        "{err}"
    );
    let err = NewJob::new("Test.Probe", json!([1, 2]))
        .insert(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("must be a JSON object"), "{err}");
    let err = NewJob::new("Test.Probe", json!({}))
        .max_attempts(0)
        .insert(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_attempts is 0"), "{err}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn shutdown_waits_for_a_running_job_within_the_grace_period() {
    let pool = common::test_pool().await;
    let (oban, log) = node_with_log(&pool, 5).await;
    let id = insert(
        &oban,
        Probe::Hold {
            label: "long".into(),
            ms: 500,
        },
    )
    .await;
    wait_started(&log, &["long"]).await;
    oban.shutdown(Duration::from_secs(5)).await;
    let job = common::fetch_job(&pool, id).await;
    assert_eq!(
        job.state,
        JobState::Completed,
        "finished within the grace period"
    );
    let producers: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_producers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        producers, 0,
        "a clean stop removes the producer's heartbeat row"
    );
}

#[tokio::test]
async fn shutdown_hands_back_a_job_that_outlives_the_grace_period() {
    let pool = common::test_pool().await;
    let (oban, log) = node_with_log(&pool, 5).await;
    let hold = |label: &str| Probe::Hold {
        label: label.into(),
        ms: 1_800,
    };
    let id = insert(&oban, hold("one")).await;
    let other = insert(&oban, hold("other")).await;
    wait_started(&log, &["one", "other"]).await;
    oban.shutdown(Duration::from_millis(200)).await;
    for id in [id, other] {
        let job = common::fetch_job(&pool, id).await;
        assert_eq!(
            job.state,
            JobState::Available,
            "nothing is left stuck in executing"
        );
        assert_eq!(job.attempt, 0, "the interrupted attempt is given back");
        assert!(
            job.errors[0]
                .error
                .contains("shut down before the attempt finished"),
            "{:?}",
            job.errors
        );
    }
    // another node picks them up
    let next = node(&pool, 5).await;
    wait::wait_for_state(&pool, id, "completed").await;
    next.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn lifeline_rescues_jobs_of_a_node_that_stopped_heartbeating() {
    let pool = common::test_pool().await;
    // A dead Rust node's producer (heartbeat long ago) left two jobs executing; a live producer
    // holds a third. Rust heartbeats mark their rows (`"runtime": "rust"`): the lifeline judges
    // only those.
    sqlx::query(
        "INSERT INTO oban_producers (uuid, node, queue, meta, updated_at) VALUES
           ('00000000-0000-0000-0000-000000000001', 'dead', 'other', '{\"runtime\": \"rust\"}', timezone('UTC', now()) - interval '10 minutes'),
           ('00000000-0000-0000-0000-000000000002', 'alive', 'other', '{\"runtime\": \"rust\"}', timezone('UTC', now()) + interval '1 hour')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO oban_jobs (state, queue, worker, args, attempt, max_attempts, attempted_at, attempted_by) VALUES
           ('executing', 'other', 'Test.Probe', '{\"action\":\"ok\"}', 1, 3, timezone('UTC', now()) - interval '10 minutes', ARRAY['dead', '00000000-0000-0000-0000-000000000001']),
           ('executing', 'other', 'Test.Probe', '{\"action\":\"ok\"}', 3, 3, timezone('UTC', now()) - interval '10 minutes', ARRAY['dead', '00000000-0000-0000-0000-000000000001']),
           ('executing', 'other', 'Test.Probe', '{\"action\":\"ok\"}', 1, 3, timezone('UTC', now()) - interval '10 minutes', ARRAY['alive', '00000000-0000-0000-0000-000000000002'])
         RETURNING id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let oban = Oban::builder()
        .pool(pool.clone())
        .register::<Probe>()
        .rescue(Duration::from_millis(100), Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let rescued = wait::wait_for_state(&pool, ids[0], "available").await;
    assert_eq!(rescued.meta["rescued"], 1);
    let spent = wait::wait_for_state(&pool, ids[1], "discarded").await;
    assert!(spent.discarded_at.is_some());
    // Not synchronisation: a window of several rescue passes (every 100 ms) in which the live
    // node's job must stay as it is.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        common::fetch_job(&pool, ids[2]).await.state,
        JobState::Executing,
        "a live node's job is left alone"
    );
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn retry_makes_a_finished_job_available_and_cancel_stops_a_waiting_one() {
    let pool = common::test_pool().await;
    let oban = node(&pool, 5).await;
    let id = insert(&oban, Probe::Discard).await;
    wait::wait_for_state(&pool, id, "discarded").await;
    sqlx::query("UPDATE oban_jobs SET args = '{\"action\":\"ok\"}' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert!(oban.retry_job(id).await.unwrap());
    let job = wait::wait_for_state(&pool, id, "completed").await;
    assert_eq!(job.attempt, 2);

    // max_attempts is raised when a job with spent attempts is retried
    let spent = insert(&oban, Probe::Fail { times: 3 }).await;
    wait::wait_for_state(&pool, spent, "discarded").await;
    assert!(oban.retry_job(spent).await.unwrap());
    let job = wait::wait_for_state(&pool, spent, "completed").await;
    assert_eq!((job.attempt, job.max_attempts), (4, 4));

    let later = JobBuilder::new(Probe::Ok)
        .schedule_in(Duration::from_secs(3600))
        .insert(&oban)
        .await
        .unwrap();
    assert!(oban.cancel_job(later.id).await.unwrap());
    let job = common::fetch_job(&pool, later.id).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert!(
        !oban.cancel_job(later.id).await.unwrap(),
        "cancelling twice changes nothing"
    );
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_job_inserted_by_plain_sql_in_obans_format_runs() {
    let pool = common::test_pool().await;
    // What an Elixir or Python Oban client writes.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO oban_jobs (worker, queue, args) VALUES ('Test.Probe', 'default', '{\"action\": \"ok\"}') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let oban = node(&pool, 5).await;
    let job = wait::wait_for_state(&pool, id, "completed").await;
    assert_eq!(job.max_attempts, 20, "the table's default applies");
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn ten_thousand_jobs_on_two_queues_complete_exactly_once() {
    let pool = common::test_pool().await;
    #[derive(Serialize, Deserialize)]
    struct Count {
        n: i64,
    }
    #[derive(Default)]
    struct Seen {
        runs: Mutex<HashMap<i64, u32>>,
    }
    impl Worker for Count {
        const NAME: &'static str = "Test.Count";
        async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
            *ctx.state::<Arc<Seen>>()
                .runs
                .lock()
                .unwrap()
                .entry(ctx.job().id)
                .or_default() += 1;
            let _ = self.n;
            Ok(Outcome::Complete)
        }
    }
    let jobs: Vec<NewJob> = (0..10_000)
        .map(|n| {
            JobBuilder::new(Count { n })
                .queue(if n % 2 == 0 { "alpha" } else { "beta" })
                .build()
                .unwrap()
        })
        .collect();
    oban::insert_all(&pool, jobs).await.unwrap();
    let seen = Arc::new(Seen::default());
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("alpha", 20)
        .queue("beta", 20)
        .register::<Count>()
        .state(Arc::clone(&seen))
        .start()
        .await
        .unwrap();
    wait::wait_for_count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE state = 'completed' AND attempt = 1",
        10_000,
        Duration::from_secs(120),
    )
    .await;
    oban.shutdown(Duration::from_secs(5)).await;
    let stats: (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE state = 'completed'), count(DISTINCT attempted_by[2]) FROM oban_jobs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stats.0, 10_000);
    assert_eq!(stats.1, 10_000);
    assert_eq!(stats.2, 2, "both queues' producers worked");
    let seen = seen.runs.lock().unwrap();
    assert_eq!(seen.len(), 10_000);
    assert!(
        seen.values().all(|&runs| runs == 1),
        "every job ran exactly once"
    );
}

#[tokio::test]
async fn start_fails_when_a_workers_state_is_missing() {
    let pool = common::test_pool().await;
    #[derive(Serialize, Deserialize)]
    struct NeedsMailer {}
    struct Mailer;
    impl Worker for NeedsMailer {
        const NAME: &'static str = "Test.NeedsMailer";
        fn required_state() -> Vec<oban::StateKey> {
            vec![oban::StateKey::of::<Mailer>()]
        }
        async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
            Ok(Outcome::Complete)
        }
    }
    let err = Oban::builder()
        .pool(pool.clone())
        .register::<NeedsMailer>()
        .queue("default", 1)
        .start()
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("Test.NeedsMailer"), "{message}");
    assert!(message.contains("queue `default`"), "{message}");
    assert!(message.contains("Mailer"), "{message}");
    assert!(message.contains(".state("), "{message}");
    let ok = Oban::builder()
        .pool(pool)
        .register::<NeedsMailer>()
        .queue("default", 1)
        .state(Mailer)
        .start()
        .await
        .unwrap();
    ok.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn start_refuses_bad_queue_configuration() {
    let pool = common::test_pool().await;
    let err = Oban::builder()
        .pool(pool.clone())
        .queue("default", 0)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit 0"), "{err}");
    let err = Oban::builder()
        .pool(pool)
        .queue("a", 1)
        .queue("a", 2)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("declared twice"), "{err}");
}
