//! The receipts domain: a fake mail provider, the application's delivery log, and the worker.
//! Shared by the example (`main.rs`) and its tests (`tests/email_receipts.rs`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use oban::{worker, Job, Outcome, State};
use sqlx::{PgPool, SqlitePool};

/// Why the provider refused a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MailError {
    /// The address can never receive mail: retrying is pointless.
    InvalidAddress,
    /// Too many messages: try again after this many seconds.
    RateLimited(u64),
    /// The provider had a hiccup: retrying will likely work.
    Unavailable,
    /// Our own bookkeeping failed.
    Database(String),
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailError::InvalidAddress => f.write_str("invalid address"),
            MailError::RateLimited(secs) => write!(f, "rate limited for {secs} s"),
            MailError::Unavailable => f.write_str("provider unavailable (503)"),
            MailError::Database(e) => write!(f, "delivery log: {e}"),
        }
    }
}

impl std::error::Error for MailError {}

/// A stand-in for an email API. Its behaviour follows the recipient's address so runs are
/// reproducible: `flaky-*` fails once then works, `busy-*` is rate limited once, anything
/// without an `@` is rejected, everything else is delivered.
#[derive(Default)]
pub(crate) struct FakeProvider {
    calls: Mutex<HashMap<String, u32>>,
}

impl FakeProvider {
    /// "Sends" a message; returns the provider's message id.
    pub(crate) async fn send(&self, recipient: &str, template: &str) -> Result<String, MailError> {
        tokio::time::sleep(Duration::from_millis(5)).await; // a network round trip
        let call = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(format!("{recipient}/{template}")).or_default();
            *n += 1;
            *n
        };
        if !recipient.contains('@') {
            return Err(MailError::InvalidAddress);
        }
        if recipient.starts_with("flaky-") && call == 1 {
            return Err(MailError::Unavailable);
        }
        if recipient.starts_with("busy-") && call == 1 {
            return Err(MailError::RateLimited(1));
        }
        Ok(format!("msg-{:x}", fxhash(recipient, template)))
    }
}

fn fxhash(a: &str, b: &str) -> u64 {
    a.bytes()
        .chain(b.bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, c| {
            (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3)
        })
}

/// The application's delivery log, in the same database as the jobs.
#[derive(Clone)]
pub(crate) enum DeliveryLog {
    /// On PostgreSQL.
    Postgres(PgPool),
    /// On the embedded SQLite file.
    Sqlite(SqlitePool),
}

impl DeliveryLog {
    /// Creates the application's table if needed.
    pub(crate) async fn migrate(&self) -> Result<(), sqlx::Error> {
        let ddl = "CREATE TABLE IF NOT EXISTS receipt_deliveries (
            job_id BIGINT NOT NULL,
            attempt INTEGER NOT NULL,
            recipient TEXT NOT NULL,
            template TEXT NOT NULL,
            status TEXT NOT NULL,
            detail TEXT NOT NULL,
            PRIMARY KEY (job_id, attempt))";
        match self {
            DeliveryLog::Postgres(pool) => sqlx::query(ddl).execute(pool).await.map(drop),
            DeliveryLog::Sqlite(pool) => sqlx::query(ddl).execute(pool).await.map(drop),
        }
    }

    /// Records one delivery attempt (idempotent: a repeated attempt overwrites its row).
    pub(crate) async fn record(
        &self,
        job: &Job,
        recipient: &str,
        template: &str,
        status: &str,
        detail: &str,
    ) -> Result<(), MailError> {
        let result = match self {
            DeliveryLog::Postgres(pool) => sqlx::query(
                "INSERT INTO receipt_deliveries VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (job_id, attempt) DO UPDATE SET status = excluded.status, detail = excluded.detail",
            )
            .bind(job.id)
            .bind(job.attempt)
            .bind(recipient)
            .bind(template)
            .bind(status)
            .bind(detail)
            .execute(pool)
            .await
            .map(drop),
            DeliveryLog::Sqlite(pool) => sqlx::query(
                "INSERT INTO receipt_deliveries VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (job_id, attempt) DO UPDATE SET status = excluded.status, detail = excluded.detail",
            )
            .bind(job.id)
            .bind(job.attempt)
            .bind(recipient)
            .bind(template)
            .bind(status)
            .bind(detail)
            .execute(pool)
            .await
            .map(drop),
        };
        result.map_err(|e| MailError::Database(e.to_string()))
    }

    /// `(status, count)` of the last attempt of every job.
    pub(crate) async fn final_statuses(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let sql = "SELECT status, count(*) FROM receipt_deliveries d
                   WHERE attempt = (SELECT max(attempt) FROM receipt_deliveries e WHERE e.job_id = d.job_id)
                   GROUP BY status ORDER BY status";
        match self {
            DeliveryLog::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
            DeliveryLog::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        }
    }
}

/// Sends a transactional email. One job per recipient and template: inserting the same
/// receipt again within an hour, whatever became of the first (`states = all`: even a discarded
/// receipt is not re-sent by a duplicate request), is a no-op that returns the first job.
#[worker(
    queue = "mailers",
    max_attempts = 5,
    backoff = constant(1),
    unique(period = 3600, keys = [recipient, template], states = all)
)]
pub(crate) async fn send_receipt(
    order_id: i64,
    recipient: String,
    template: String,
    job: &Job,
    provider: State<FakeProvider>,
    log: State<DeliveryLog>,
) -> Result<Outcome, MailError> {
    let _ = order_id;
    match provider.send(&recipient, &template).await {
        Ok(message_id) => {
            log.record(job, &recipient, &template, "sent", &message_id)
                .await?;
            Ok(Outcome::Complete)
        }
        Err(MailError::InvalidAddress) => {
            log.record(job, &recipient, &template, "discarded", "invalid address")
                .await?;
            Ok(Outcome::Discard(format!(
                "{recipient} is not a valid address"
            )))
        }
        Err(MailError::RateLimited(secs)) => {
            log.record(
                job,
                &recipient,
                &template,
                "snoozed",
                &format!("rate limited for {secs} s"),
            )
            .await?;
            Ok(Outcome::Snooze(Duration::from_secs(secs)))
        }
        Err(error) => {
            log.record(job, &recipient, &template, "failed", &error.to_string())
                .await?;
            Err(error) // retried with backoff
        }
    }
}
