//! The test helpers themselves: perform_job, assert/refute/all_enqueued, drain_queue, manual mode.

mod common;

use std::time::Duration;

use oban::testing::{self, Drain, Enqueued, Perform, Testing};
use oban::{
    Backoff, JobBuilder, JobContext, JobError, JobState, Oban, Outcome, Worker, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

#[derive(Debug, Serialize, Deserialize)]
struct Greet {
    #[serde(rename = "who")]
    name: String,
    times: u32,
}

struct Greeting(&'static str);

impl Worker for Greet {
    const NAME: &'static str = "Test.Greet";
    fn options() -> WorkerOptions {
        WorkerOptions::new()
            .queue("greetings")
            .max_attempts(2)
            .backoff(Backoff::Constant(Duration::from_secs(1)))
    }
    fn required_state() -> Vec<oban::StateKey> {
        vec![oban::StateKey::of::<Greeting>()]
    }
    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        let greeting = ctx.state::<Greeting>();
        match self.name.as_str() {
            "error" => Err(JobError::new(format!("{} failed", greeting.0))),
            "panic" => panic!("{} exploded", greeting.0),
            "snooze" => Ok(Outcome::Snooze(Duration::from_secs(5))),
            "discard" => Ok(Outcome::Discard("nobody home".into())),
            "cancel" => Ok(Outcome::Cancel("never mind".into())),
            "retry-once" if ctx.job().attempt == 1 => Err(JobError::new("flaky")),
            "spawn" => {
                // Enqueues a follow-up job, for recursion.
                let pool = ctx.state::<PgPool>();
                if self.times > 0 {
                    JobBuilder::new(Greet {
                        name: "spawn".into(),
                        times: self.times - 1,
                    })
                    .insert(&*pool)
                    .await
                    .unwrap();
                }
                Ok(Outcome::Complete)
            }
            _ => Ok(Outcome::Complete),
        }
    }
}

fn greet(name: &str) -> Greet {
    Greet {
        name: name.into(),
        times: 1,
    }
}

#[tokio::test]
async fn perform_job_runs_the_worker_with_json_round_tripped_args() {
    let hello = || Perform::new(greet("ok")).state(Greeting("hello"));
    assert_eq!(hello().run().await, Ok(Outcome::Complete));
    assert_eq!(
        Perform::new(greet("error"))
            .state(Greeting("hi"))
            .run()
            .await,
        Err(JobError::new("hi failed"))
    );
    let panicked = Perform::new(greet("panic"))
        .state(Greeting("hi"))
        .run()
        .await
        .unwrap_err();
    assert_eq!(panicked.message(), "panicked: hi exploded");
    assert_eq!(
        Perform::new(greet("snooze"))
            .state(Greeting("x"))
            .run()
            .await,
        Ok(Outcome::Snooze(Duration::from_secs(5)))
    );
    assert_eq!(
        Perform::new(greet("discard"))
            .state(Greeting("x"))
            .run()
            .await,
        Ok(Outcome::Discard("nobody home".into()))
    );
    assert_eq!(
        Perform::new(greet("cancel"))
            .state(Greeting("x"))
            .run()
            .await,
        Ok(Outcome::Cancel("never mind".into()))
    );
    assert_eq!(
        Perform::new(greet("retry-once"))
            .state(Greeting("x"))
            .attempt(2)
            .run()
            .await,
        Ok(Outcome::Complete)
    );
}

#[tokio::test]
async fn perform_job_insists_on_the_state_a_worker_needs() {
    let outcome = tokio::spawn(testing::perform_job(greet("ok"))).await;
    let panic = outcome.unwrap_err().into_panic();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("Test.Greet")
            && message.contains("Greeting")
            && message.contains(".state(value)"),
        "{message}"
    );
}

async fn manual(pool: &PgPool) -> Oban {
    Oban::builder()
        .pool(pool.clone())
        .queue("greetings", 5)
        .register::<Greet>()
        .state(Greeting("hey"))
        .state(pool.clone())
        .testing(Testing::Manual)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn manual_mode_inserts_but_never_runs() {
    let pool = common::test_pool().await;
    let oban = manual(&pool).await;
    let job = JobBuilder::new(greet("ok")).insert(&oban).await.unwrap();
    // Not synchronisation: a window in which a node that was not in manual mode would run it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        common::fetch_job(&pool, job.id).await.state,
        JobState::Available
    );
}

#[tokio::test]
async fn assert_enqueued_matches_partially_and_explains_a_miss() {
    let pool = common::test_pool().await;
    let oban = manual(&pool).await;
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    JobBuilder::new(greet("ada"))
        .meta("source", "signup")
        .scheduled_at(in_an_hour)
        .insert(&oban)
        .await
        .unwrap();
    JobBuilder::new(greet("bob"))
        .queue("other")
        .insert(&oban)
        .await
        .unwrap();

    let found = testing::assert_enqueued(
        &oban,
        Enqueued::worker::<Greet>().args(json!({"who": "ada"})),
    )
    .await;
    assert_eq!(found.state, JobState::Scheduled);
    testing::assert_enqueued(
        &oban,
        Enqueued::worker::<Greet>()
            .queue("greetings")
            .meta(json!({"source": "signup"})),
    )
    .await;
    testing::assert_enqueued(
        &oban,
        Enqueued::any().scheduled_at(in_an_hour, Duration::from_secs(1)),
    )
    .await;
    testing::refute_enqueued(
        &oban,
        Enqueued::worker::<Greet>()
            .args(json!({"who": "ada"}))
            .queue("other"),
    )
    .await;
    testing::refute_enqueued(
        &oban,
        Enqueued::any().scheduled_at(
            in_an_hour + chrono::Duration::minutes(5),
            Duration::from_secs(60),
        ),
    )
    .await;
    let all = testing::all_enqueued(&oban, &Enqueued::worker::<Greet>())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);

    let oban2 = oban.clone();
    let miss = tokio::spawn(async move {
        testing::assert_enqueued(
            &oban2,
            Enqueued::worker::<Greet>().args(json!({"who": "eve"})),
        )
        .await;
    })
    .await
    .unwrap_err()
    .into_panic();
    let message = miss.downcast_ref::<String>().unwrap();
    assert!(
        message.contains(
            r#"expected an enqueued job with worker ["Test.Greet"], args containing {"who":"eve"}"#
        ),
        "{message}"
    );
    assert!(message.contains("the enqueued jobs are:"), "{message}");
    assert!(
        message.contains(r#"args={"times":1,"who":"ada"}"#),
        "shows what was enqueued instead: {message}"
    );
    assert!(message.contains(r#""who":"bob""#), "{message}");

    let oban3 = oban.clone();
    let found = tokio::spawn(async move {
        testing::refute_enqueued(&oban3, Enqueued::named("Test.Greet")).await
    })
    .await
    .unwrap_err()
    .into_panic();
    assert!(
        found
            .downcast_ref::<String>()
            .unwrap()
            .contains("expected no enqueued job"),
        "{found:?}"
    );
}

#[tokio::test]
async fn assert_enqueued_can_wait_for_another_task() {
    let pool = common::test_pool().await;
    let oban = manual(&pool).await;
    let inserter = oban.clone();
    tokio::spawn(async move {
        // Not synchronisation: the insert comes after `assert_enqueued` below started looking,
        // which is what is tested.
        tokio::time::sleep(Duration::from_millis(300)).await;
        JobBuilder::new(greet("late"))
            .insert(&inserter)
            .await
            .unwrap();
    });
    testing::assert_enqueued(
        &oban,
        Enqueued::worker::<Greet>()
            .args(json!({"who": "late"}))
            .within(Duration::from_secs(5)),
    )
    .await;
    testing::refute_enqueued(
        &oban,
        Enqueued::named("Never.Enqueued").within(Duration::from_millis(200)),
    )
    .await;
}

#[tokio::test]
async fn drain_queue_counts_each_outcome() {
    let pool = common::test_pool().await;
    let oban = manual(&pool).await;
    for name in ["ok", "ok", "error", "panic", "discard", "cancel", "snooze"] {
        JobBuilder::new(greet(name)).insert(&oban).await.unwrap();
    }
    let result = testing::drain_queue(&oban, Drain::queue("greetings"))
        .await
        .unwrap();
    assert_eq!(
        (
            result.completed,
            result.failed,
            result.discarded,
            result.cancelled,
            result.snoozed
        ),
        (2, 2, 1, 1, 1)
    );
    let done: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_jobs WHERE state = 'completed'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(done, 2, "outcomes are recorded as a queue would");
}

#[tokio::test]
async fn drain_queue_with_scheduled_recursion_limit_and_safety() {
    let pool = common::test_pool().await;
    let oban = manual(&pool).await;
    JobBuilder::new(greet("ok"))
        .schedule_in(Duration::from_secs(3600))
        .insert(&oban)
        .await
        .unwrap();
    assert_eq!(
        testing::drain_queue(&oban, Drain::queue("greetings"))
            .await
            .unwrap()
            .completed,
        0,
        "scheduled jobs wait"
    );
    let with_scheduled =
        testing::drain_queue(&oban, Drain::queue("greetings").with_scheduled(true))
            .await
            .unwrap();
    assert_eq!(with_scheduled.completed, 1);

    JobBuilder::new(Greet {
        name: "spawn".into(),
        times: 3,
    })
    .insert(&oban)
    .await
    .unwrap();
    assert_eq!(
        testing::drain_queue(&oban, Drain::queue("greetings"))
            .await
            .unwrap()
            .completed,
        1,
        "one pass"
    );
    let rest = testing::drain_queue(&oban, Drain::queue("greetings").with_recursion(true))
        .await
        .unwrap();
    assert_eq!(rest.completed, 3, "jobs enqueued by jobs");

    JobBuilder::new(greet("retry-once"))
        .insert(&oban)
        .await
        .unwrap();
    let retried = testing::drain_queue(
        &oban,
        Drain::queue("greetings")
            .with_scheduled(true)
            .with_recursion(true),
    )
    .await
    .unwrap();
    assert_eq!(
        (retried.failed, retried.completed),
        (1, 1),
        "the retry ran too"
    );

    for _ in 0..5 {
        JobBuilder::new(greet("ok")).insert(&oban).await.unwrap();
    }
    assert_eq!(
        testing::drain_queue(&oban, Drain::queue("greetings").with_limit(2))
            .await
            .unwrap()
            .completed,
        2
    );

    JobBuilder::new(greet("error"))
        .priority(0)
        .insert(&oban)
        .await
        .unwrap();
    let unsafe_drain = Drain::queue("greetings")
        .with_recursion(true)
        .with_safety(false);
    let err = testing::drain_queue(&oban, unsafe_drain).await.unwrap_err();
    assert!(err.to_string().contains("hey failed"), "{err}");
    assert_eq!(err.worker, "Test.Greet");
}

#[tokio::test]
async fn inline_mode_runs_each_job_at_insert_without_a_database() {
    let oban = Oban::builder()
        .register::<Greet>()
        .state(Greeting("yo"))
        .queue("greetings", 5)
        .testing(Testing::Inline)
        .start()
        .await
        .unwrap();
    assert!(oban.db_pool().is_none(), "no database at all");

    let done = JobBuilder::new(greet("ok")).insert(&oban).await.unwrap();
    assert_eq!((done.state, done.attempt), (JobState::Completed, 1));
    assert!(done.completed_at.is_some());
    let failed = JobBuilder::new(greet("error")).insert(&oban).await.unwrap();
    assert_eq!(failed.state, JobState::Retryable, "one attempt, no retry");
    assert_eq!(failed.errors[0].error, "yo failed");
    let discarded = JobBuilder::new(greet("discard"))
        .insert(&oban)
        .await
        .unwrap();
    assert_eq!(discarded.state, JobState::Discarded);
    let later = JobBuilder::new(greet("ok"))
        .schedule_in(Duration::from_secs(3600))
        .insert(&oban)
        .await
        .unwrap();
    assert_eq!(
        later.state,
        JobState::Completed,
        "inline runs scheduled jobs at once"
    );

    assert_eq!(
        oban.job(done.id).await.unwrap().unwrap().state,
        JobState::Completed
    );
    let retryable = testing::assert_enqueued(
        &oban,
        Enqueued::worker::<Greet>().args(json!({"who": "error"})),
    )
    .await;
    assert_eq!(retryable.id, failed.id);
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn manual_mode_needs_no_state_and_drain_names_the_missing_state() {
    let pool = common::test_pool().await;
    // A web server's test: it only inserts, so it gives no worker state.
    let oban = Oban::builder()
        .pool(pool.clone())
        .register::<Greet>()
        .testing(Testing::Manual)
        .start()
        .await
        .expect("manual mode needs no state to start");
    let job = JobBuilder::new(greet("ok")).insert(&oban).await.unwrap();
    testing::assert_enqueued(&oban, Enqueued::worker::<Greet>()).await;
    // Draining runs the worker, which needs `State<Greeting>`: a clear error, not a panic.
    let err = testing::drain_queue(&oban, Drain::queue("greetings").with_safety(false))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("State<") && message.contains("Greeting>`"),
        "{message}"
    );
    assert_eq!(err.job_id, job.id);
    let stored = common::fetch_job(&pool, job.id).await;
    assert_eq!((stored.state, stored.attempt), (JobState::Scheduled, 0));
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn inline_mode_still_needs_every_workers_state() {
    let err = Oban::builder()
        .register::<Greet>()
        .testing(Testing::Inline)
        .start()
        .await
        .expect_err("inline mode runs every job at insert");
    assert!(err.to_string().contains("Greeting"), "{err}");
}
