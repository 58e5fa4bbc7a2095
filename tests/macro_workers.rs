//! `#[worker]` end to end: workers declared in several modules are found by a node that never
//! lists them, run against PostgreSQL, and share their args with other Oban clients in the JSON
//! shape those clients write (`{"order_id": 42}`), jobs inserted by plain SQL included.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::wait;
use oban::{JobState, Oban, Worker};
use serde_json::json;
use sqlx::PgPool;

/// What the workers did: a `State` the workers of this binary share. Clones share the lines, so
/// a test can keep one and register another.
#[derive(Default, Clone)]
pub struct Outbox {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Outbox {
    fn record(&self, line: String) {
        self.lines.lock().unwrap().push(line);
    }
}

mod mailers {
    use oban::{worker, Job, Outcome, State};

    use super::Outbox;

    /// Sends the receipt of an order.
    #[worker(queue = "mailers", max_attempts = 3, unique(period = 300, keys = [order_id]))]
    pub(crate) async fn send_receipt(
        order_id: i64,
        recipient: String,
        job: &Job,
        outbox: State<Outbox>,
    ) -> Result<Outcome, String> {
        outbox.record(format!(
            "receipt {order_id} to {recipient}, attempt {}",
            job.attempt
        ));
        Ok(Outcome::Complete)
    }
}

mod billing {
    pub(crate) mod invoices {
        use oban::{worker, State};

        use crate::Outbox;

        /// Charges an invoice; stored under the name an Elixir app would use.
        #[worker(
            queue = "billing",
            name = "MyApp.Workers.ChargeInvoice",
            args = ChargeInvoiceArgs,
            derive(Debug, Clone, PartialEq)
        )]
        pub(crate) async fn charge(
            invoice_id: i64,
            amount_cents: u64,
            note: Option<String>,
            outbox: State<Outbox>,
        ) -> Result<(), String> {
            let note = note.unwrap_or_else(|| "no note".to_owned());
            outbox.record(format!(
                "charged invoice {invoice_id}: {amount_cents} cents ({note})"
            ));
            Ok(())
        }
    }
}

mod maintenance {
    use oban::{worker, Job, State};

    use crate::Outbox;

    /// No stored arguments at all: its args are `{}`.
    #[worker]
    pub(crate) async fn vacuum(job: Job, outbox: State<Outbox>) {
        outbox.record(format!("vacuumed in queue {}", job.queue));
    }

    /// A keyword as a parameter name: the JSON key is `type`.
    #[worker(queue = "imports")]
    pub(crate) async fn import(r#type: String, rows: Vec<u32>, outbox: State<Outbox>) {
        outbox.record(format!("imported {} {} rows", rows.len(), r#type));
    }

    /// Fails its only attempt with its argument as the message.
    #[worker(max_attempts = 1)]
    pub(crate) async fn always_fails(reason: String) -> Result<(), String> {
        Err(reason)
    }
}

use billing::invoices::ChargeInvoiceArgs;
use mailers::SendReceipt;
use maintenance::{AlwaysFails, Import, Vacuum};

/// A node running every queue the workers above use, with no worker registered by hand.
async fn start(pool: &PgPool) -> Oban {
    Oban::builder()
        .pool(pool.clone())
        .queue("mailers", 2)
        .queue("billing", 2)
        .queue("imports", 2)
        .queue("default", 2)
        .state(Outbox::default())
        .start()
        .await
        .expect("the node starts: every worker's state is registered")
}

/// A job's stored `worker`, `queue`, `args` and `max_attempts`, read with plain SQL.
async fn job_row(pool: &PgPool, id: i64) -> (String, String, serde_json::Value, i32) {
    sqlx::query_as("SELECT worker, queue, args, max_attempts FROM oban_jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn macro_workers_in_several_modules_run_without_registration() {
    let pool = common::test_pool().await;
    let oban = start(&pool).await;

    let receipt = SendReceipt::new(42, "ada@example.com".into())
        .insert(&oban)
        .await
        .unwrap();
    let invoice = ChargeInvoiceArgs::new(7, 1999, Some("first".into()))
        .insert(&oban)
        .await
        .unwrap();
    let vacuum = Vacuum::new().insert(&oban).await.unwrap();
    let import = Import::new("csv".into(), vec![1, 2, 3])
        .insert(&oban)
        .await
        .unwrap();

    for job in [&receipt, &invoice, &vacuum, &import] {
        let done = wait::wait_for_state(&pool, job.id, "completed").await;
        assert_eq!(
            done.state,
            JobState::Completed,
            "{} did not complete",
            done.worker
        );
    }

    // The rows hold the stored names, the worker's queue and attempts, and the args as JSON.
    assert_eq!(
        job_row(&pool, receipt.id).await,
        (
            "SendReceipt".to_owned(),
            "mailers".to_owned(),
            json!({"order_id": 42, "recipient": "ada@example.com"}),
            3
        )
    );
    assert_eq!(
        job_row(&pool, invoice.id).await,
        (
            "MyApp.Workers.ChargeInvoice".to_owned(),
            "billing".to_owned(),
            json!({"invoice_id": 7, "amount_cents": 1999, "note": "first"}),
            20
        )
    );
    assert_eq!(
        job_row(&pool, vacuum.id).await,
        ("Vacuum".to_owned(), "default".to_owned(), json!({}), 20)
    );
    assert_eq!(
        job_row(&pool, import.id).await.2,
        json!({"type": "csv", "rows": [1, 2, 3]})
    );

    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn workers_see_the_injected_job_and_state() {
    let pool = common::test_pool().await;
    let outbox = Outbox::default();
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("mailers", 1)
        .queue("default", 1)
        .state(outbox.clone())
        .start()
        .await
        .unwrap();

    let receipt = SendReceipt::new(5, "bob@example.com".into())
        .insert(&oban)
        .await
        .unwrap();
    let vacuum = Vacuum::new().insert(&oban).await.unwrap();
    wait::wait_for_state(&pool, receipt.id, "completed").await;
    wait::wait_for_state(&pool, vacuum.id, "completed").await;
    oban.shutdown(Duration::from_secs(5)).await;

    let mut lines = outbox.lines.lock().unwrap().clone();
    lines.sort();
    assert_eq!(
        lines,
        [
            "receipt 5 to bob@example.com, attempt 1",
            "vacuumed in queue default"
        ]
    );
}

#[tokio::test]
async fn a_job_inserted_by_plain_sql_in_obans_format_is_run_by_its_macro_worker() {
    let pool = common::test_pool().await;
    // What Elixir's `Oban.insert(MyApp.Workers.ChargeInvoice.new(%{invoice_id: 9, ...}))` writes:
    // the stored worker name, the queue, string-keyed args, the column defaults for the rest.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO oban_jobs (worker, queue, args, max_attempts) \
         VALUES ('MyApp.Workers.ChargeInvoice', 'billing', '{\"invoice_id\": 9, \"amount_cents\": 500}', 5) \
         RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let oban = start(&pool).await;

    let job = wait::wait_for_state(&pool, id, "completed").await;
    assert_eq!(job.attempt, 1);
    // The missing `note` key decoded as `None`, as it would for an `Option` field under serde.
    assert_eq!(
        job.decode_args::<ChargeInvoiceArgs>().unwrap(),
        ChargeInvoiceArgs {
            invoice_id: 9,
            amount_cents: 500,
            note: None
        }
    );
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn args_that_do_not_decode_discard_the_job() {
    let pool = common::test_pool().await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO oban_jobs (worker, queue, args) \
         VALUES ('SendReceipt', 'mailers', '{\"order_id\": \"forty-two\"}') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let oban = start(&pool).await;

    let job = wait::wait_for_state(&pool, id, "discarded").await;
    assert_eq!(job.errors.len(), 1, "{:?}", job.errors);
    assert!(
        job.errors[0].error.contains("SendReceipt"),
        "{:?}",
        job.errors
    );
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_error_returned_by_the_fn_is_kept_as_the_attempts_error() {
    let pool = common::test_pool().await;
    let oban = start(&pool).await;

    let job = AlwaysFails::new("smtp is down".into())
        .insert(&oban)
        .await
        .unwrap();
    let job = wait::wait_for_state(&pool, job.id, "discarded").await;
    assert_eq!(job.max_attempts, 1);
    assert_eq!(job.errors.len(), 1);
    assert!(
        job.errors[0].error.contains("smtp is down"),
        "{:?}",
        job.errors
    );
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_unique_option_of_the_macro_applies_on_insert() {
    let pool = common::test_pool().await;
    let first = SendReceipt::new(77, "cy@example.com".into())
        .insert(&pool)
        .await
        .unwrap();
    // Same `order_id`, another recipient: `keys = [order_id]` makes it a duplicate.
    let second = SendReceipt::new(77, "dee@example.com".into())
        .insert(&pool)
        .await
        .unwrap();
    let other = SendReceipt::new(78, "cy@example.com".into())
        .insert(&pool)
        .await
        .unwrap();
    assert!(!first.conflict);
    assert!(second.conflict, "a duplicate within the unique period");
    assert_eq!(second.id, first.id);
    assert_ne!(other.id, first.id);
}

#[tokio::test]
async fn a_node_refuses_to_start_without_a_workers_state() {
    let pool = common::test_pool().await;
    let result = Oban::builder()
        .pool(pool.clone())
        .queue("default", 1)
        .start()
        .await;
    let error = match result {
        Ok(oban) => {
            oban.shutdown(Duration::from_secs(1)).await;
            panic!("started without `State<Outbox>`");
        }
        Err(error) => error.to_string(),
    };
    assert!(error.contains("Outbox"), "{error}");
    assert!(error.contains(".state("), "the error says the fix: {error}");
}

#[test]
fn args_structs_use_the_parameter_names_as_json_keys() {
    // What a Python or Elixir client sends, decoded into the args struct...
    let receipt: SendReceipt =
        serde_json::from_value(json!({"order_id": 42, "recipient": "ada@example.com"})).unwrap();
    assert_eq!(
        (receipt.order_id, receipt.recipient.as_str()),
        (42, "ada@example.com")
    );
    // ...and encoded back the same way.
    assert_eq!(
        serde_json::to_value(&receipt).unwrap(),
        json!({"order_id": 42, "recipient": "ada@example.com"})
    );

    let invoice = ChargeInvoiceArgs {
        invoice_id: 1,
        amount_cents: 2,
        note: None,
    };
    assert_eq!(
        serde_json::to_value(&invoice).unwrap(),
        json!({"invoice_id": 1, "amount_cents": 2, "note": null})
    );
    let decoded: ChargeInvoiceArgs =
        serde_json::from_value(json!({"invoice_id": 1, "amount_cents": 2})).unwrap();
    assert!(decoded.note.is_none());

    // Keys other clients add are ignored; a missing required key is an error naming it.
    let extra: SendReceipt =
        serde_json::from_value(json!({"order_id": 1, "recipient": "x", "locale": "de"})).unwrap();
    assert_eq!(extra.order_id, 1);
    let Err(missing) = serde_json::from_value::<SendReceipt>(json!({"order_id": 1})) else {
        panic!("decoded without `recipient`");
    };
    assert!(missing.to_string().contains("recipient"), "{missing}");

    assert_eq!(serde_json::to_value(Vacuum {}).unwrap(), json!({}));
    let import: Import = serde_json::from_value(json!({"type": "csv", "rows": [1]})).unwrap();
    assert_eq!(import.r#type, "csv");

    // The builder carries the same args.
    assert_eq!(SendReceipt::new(3, "x".into()).args().order_id, 3);
}

#[test]
fn the_worker_impls_carry_the_options() {
    assert_eq!(SendReceipt::NAME, "SendReceipt");
    assert_eq!(ChargeInvoiceArgs::NAME, "MyApp.Workers.ChargeInvoice");
    let options = SendReceipt::options();
    assert_eq!((options.queue, options.max_attempts), ("mailers", 3));
    let unique = options.unique.expect("unique");
    assert_eq!(unique.keys, &["order_id"]);
    assert_eq!(unique.period_duration(), Some(Duration::from_secs(300)));
    assert_eq!(Vacuum::options().queue, "default");
    assert_eq!(
        SendReceipt::required_state(),
        [oban::StateKey::of::<Outbox>()]
    );
    assert!(AlwaysFails::required_state().is_empty());
}
