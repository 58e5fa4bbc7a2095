//! Issue 17: an error a worker returns is recorded with its whole source chain, `"top: cause:
//! root"`, in the job's `errors` and in the `JobStop` event, on PostgreSQL and SQLite; a source
//! the message already includes is not repeated.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::error::Error;
use std::fmt;
use std::time::Duration;

use oban::{worker, Event, JobOutcome, JobState, JobStop};

use harness::{Db, Kind};

const LIMIT: Duration = Duration::from_secs(20);

/// The provider's refusal, caused by the connection.
#[derive(Debug)]
struct ProviderError(std::io::Error);

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the payment provider refused")
    }
}

impl Error for ProviderError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

/// The worker's own error: what it was doing, caused by the provider.
#[derive(Debug)]
enum ChargeError {
    /// Says only what it was doing.
    Charging(i64, ProviderError),
    /// Writes its source into its own message too (as `#[error("..: {0}")]` does).
    Refunding(ProviderError),
}

impl fmt::Display for ChargeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Charging(order, _) => write!(f, "charging order {order}"),
            Self::Refunding(source) => write!(f, "refunding: {source}"),
        }
    }
}

impl Error for ChargeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Charging(_, source) | Self::Refunding(source) => Some(source),
        }
    }
}

fn refused() -> ProviderError {
    ProviderError(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "connection reset by peer",
    ))
}

#[worker(queue = "payments", max_attempts = 1)]
async fn charge(order: i64, refund: bool) -> Result<(), ChargeError> {
    Err(if refund {
        ChargeError::Refunding(refused())
    } else {
        ChargeError::Charging(order, refused())
    })
}

async fn the_whole_source_chain_is_recorded(kind: Kind) {
    let db = Db::new(kind).await;
    let builder = db
        .builder("errors")
        .queue("payments", 5)
        .register::<Charge>();
    let mut events = builder.events();
    let oban = builder.start().await.expect("start the node");
    let charged = Charge::new(7, false).insert(&oban).await.expect("insert");
    let refunded = Charge::new(8, true).insert(&oban).await.expect("insert");
    let expected = [
        (
            charged.id,
            "charging order 7: the payment provider refused: connection reset by peer",
        ),
        (
            refunded.id,
            "refunding: the payment provider refused: connection reset by peer",
        ),
    ];

    let mut stops: Vec<JobStop> = Vec::new();
    common::wait::within("both jobs to stop", LIMIT, async {
        while stops.len() < 2 {
            if let Event::JobStop(stop) = events.recv().await.expect("receive events") {
                stops.push(stop);
            }
        }
    })
    .await;
    for (id, message) in expected {
        let stop = stops.iter().find(|stop| stop.job.id == id).unwrap();
        assert_eq!(stop.outcome, JobOutcome::Discarded);
        assert_eq!(stop.error.as_deref(), Some(message), "{stop:?}");
        let job = db.wait_for_state(id, JobState::Discarded).await;
        assert_eq!(job.errors.len(), 1, "{job:?}");
        assert_eq!(job.errors[0].error, message);
    }
    oban.shutdown(Duration::from_secs(5)).await;
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn the_whole_source_chain_is_recorded() {
        super::the_whole_source_chain_is_recorded(Kind::Postgres).await;
    }
}

mod sqlite {
    use super::*;

    #[tokio::test]
    async fn the_whole_source_chain_is_recorded() {
        super::the_whole_source_chain_is_recorded(Kind::Sqlite).await;
    }
}
