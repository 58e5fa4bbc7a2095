//! The worker of the design doc: stored and injected arguments, `Result<Outcome, E>`.
#![deny(
    warnings,
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    unused_results
)]
#![deny(clippy::pedantic)]

use std::fmt;
use std::time::Duration;

use oban::{worker, Job, Outcome, State};

/// Sends mail.
pub struct Mailer;

impl Mailer {
    async fn send(&self, recipient: &str, template: &str) -> Result<(), MailError> {
        std::future::ready(()).await;
        if recipient.contains('@') && !template.is_empty() {
            Ok(())
        } else {
            Err(MailError::InvalidAddress)
        }
    }
}

/// What can go wrong when sending.
#[derive(Debug)]
pub enum MailError {
    /// The address is not one.
    InvalidAddress,
    /// Try again in this many seconds.
    RateLimited(u64),
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for MailError {}

/// Sends the receipt.
///
/// # Errors
///
/// When the mail server turns the message down; the job is retried.
#[worker(queue = "mailers", max_attempts = 10, unique(period = 300, keys = [recipient, template]))]
pub async fn send_receipt(
    recipient: String,
    template: String,
    job: &Job,
    mailer: State<Mailer>,
) -> Result<Outcome, MailError> {
    if job.attempt > 5 {
        return Ok(Outcome::Snooze(Duration::from_secs(90)));
    }
    match mailer.send(&recipient, &template).await {
        Ok(()) => Ok(Outcome::Complete),
        Err(MailError::InvalidAddress) => Ok(Outcome::Discard("invalid address".into())),
        Err(MailError::RateLimited(secs)) => Ok(Outcome::Snooze(Duration::from_secs(secs))),
    }
}

fn main() {
    let job = SendReceipt::new("ada@example.com".to_owned(), "receipt".to_owned())
        .priority(1)
        .schedule_in(Duration::from_secs(90));
    assert_eq!(job.args().recipient, "ada@example.com");
    assert_eq!(<SendReceipt as oban::Worker>::NAME, "SendReceipt");
}
