//! Tests of the flagship example's worker, written the way we tell users to test theirs: the
//! worker alone with `Perform`, and the whole flow with a manual-mode node and `drain_queue`.

mod common;

// The example's own module; the tests use its PostgreSQL side only.
#[allow(dead_code)]
#[path = "../examples/email_receipts/receipts.rs"]
mod receipts;

use oban::testing::{self, Drain, Enqueued, Perform, Testing};
use oban::{JobState, Oban, Outcome};
use receipts::{DeliveryLog, FakeProvider, SendReceipt};
use serde_json::json;
use sqlx::PgPool;

async fn setup() -> (PgPool, DeliveryLog, Oban) {
    let pool = common::test_pool().await;
    let log = DeliveryLog::Postgres(pool.clone());
    log.migrate().await.unwrap();
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("mailers", 5)
        .state(FakeProvider::default())
        .state(log.clone())
        .testing(Testing::Manual)
        .start()
        .await
        .unwrap();
    (pool, log, oban)
}

async fn statuses(pool: &PgPool) -> Vec<(i32, String)> {
    sqlx::query_as("SELECT attempt, status FROM receipt_deliveries ORDER BY job_id, attempt")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_receipt_is_sent_and_logged() {
    let (pool, log, _oban) = setup().await;
    let outcome = Perform::new(SendReceipt {
        order_id: 1,
        recipient: "ada@example.com".into(),
        template: "receipt".into(),
    })
    .state(FakeProvider::default())
    .state(log)
    .run()
    .await;
    assert_eq!(outcome, Ok(Outcome::Complete));
    assert_eq!(statuses(&pool).await, [(1, "sent".to_owned())]);
}

#[tokio::test]
async fn a_provider_hiccup_is_retried_with_backoff() {
    let (pool, _log, oban) = setup().await;
    let job = SendReceipt::new(2, "flaky-bob@example.com".into(), "receipt".into())
        .insert(&oban)
        .await
        .unwrap();
    let first = testing::drain_queue(&oban, Drain::queue("mailers"))
        .await
        .unwrap();
    assert_eq!((first.failed, first.completed), (1, 0));
    let retry = testing::assert_enqueued(
        &oban,
        Enqueued::worker::<SendReceipt>().state(JobState::Retryable),
    )
    .await;
    assert_eq!(retry.id, job.id);
    assert_eq!(retry.errors[0].error, "provider unavailable (503)");
    let rest = testing::drain_queue(&oban, Drain::queue("mailers").with_scheduled(true))
        .await
        .unwrap();
    assert_eq!(rest.completed, 1);
    assert_eq!(
        statuses(&pool).await,
        [(1, "failed".to_owned()), (2, "sent".to_owned())]
    );
}

#[tokio::test]
async fn an_invalid_address_is_discarded_without_retry() {
    let (pool, _log, oban) = setup().await;
    let job = SendReceipt::new(4, "dee-at-example.com".into(), "receipt".into())
        .insert(&oban)
        .await
        .unwrap();
    let result = testing::drain_queue(
        &oban,
        Drain::queue("mailers")
            .with_scheduled(true)
            .with_recursion(true),
    )
    .await
    .unwrap();
    assert_eq!((result.discarded, result.failed), (1, 0));
    let job = oban.job(job.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Discarded);
    assert_eq!(job.attempt, 1);
    assert!(
        job.errors[0].error.contains("not a valid address"),
        "{:?}",
        job.errors
    );
    assert_eq!(statuses(&pool).await, [(1, "discarded".to_owned())]);
}

#[tokio::test]
async fn a_rate_limit_snoozes_the_receipt() {
    let (pool, _log, oban) = setup().await;
    SendReceipt::new(3, "busy-cy@example.com".into(), "receipt".into())
        .insert(&oban)
        .await
        .unwrap();
    let result = testing::drain_queue(
        &oban,
        Drain::queue("mailers")
            .with_scheduled(true)
            .with_recursion(true),
    )
    .await
    .unwrap();
    assert_eq!((result.snoozed, result.completed, result.failed), (1, 1, 0));
    assert_eq!(
        statuses(&pool).await,
        [(1, "sent".to_owned())],
        "the snoozed attempt was given back"
    );
}

#[tokio::test]
async fn the_same_receipt_enqueued_twice_is_one_job() {
    let (_pool, _log, oban) = setup().await;
    let first = SendReceipt::new(5, "eve@example.com".into(), "receipt".into())
        .insert(&oban)
        .await
        .unwrap();
    let again = SendReceipt::new(6, "eve@example.com".into(), "receipt".into())
        .insert(&oban)
        .await
        .unwrap();
    assert!(!first.conflict);
    assert!(again.conflict, "same recipient and template");
    assert_eq!(again.id, first.id);
    let other = SendReceipt::new(5, "eve@example.com".into(), "welcome".into())
        .insert(&oban)
        .await
        .unwrap();
    assert!(!other.conflict, "another template is another email");
    let queued = testing::all_enqueued(
        &oban,
        &Enqueued::worker::<SendReceipt>().args(json!({"recipient": "eve@example.com"})),
    )
    .await
    .unwrap();
    assert_eq!(queued.len(), 2);
}
