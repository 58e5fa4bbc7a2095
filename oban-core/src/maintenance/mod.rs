//! Maintenance services: small loops that keep the job table healthy. Only the Rust leader runs
//! them, staging and pruning only while it also holds the leadership shared with Elixir Oban
//! (see [`leader`]).
//!
//! Each service has a config with defaults and a `run_once` that returns what it did, so tests
//! can drive it step by step.

pub(crate) mod cron;
pub(crate) mod leader;
pub(crate) mod lifeline;
pub(crate) mod pruner;
pub(crate) mod reindexer;
pub(crate) mod stager;
pub(crate) mod waiting;

use std::future::Future;

use crate::engine::StopSignal;

/// Runs `work` (a statement, a pass) unless the node stops first: then `work` is dropped where it
/// stands and `None` comes back. Every maintenance pass is a transaction of its own, so a dropped
/// one is rolled back or, when the database already ran it to the end, simply done; nothing is
/// left half-way. (A `REINDEX CONCURRENTLY` whose client went away runs on to completion on the
/// server.)
pub(crate) async fn until_stopped<T>(
    stop: &mut StopSignal,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        _ = stop.wait_for(Option::is_some) => None,
        done = work => Some(done),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::until_stopped;

    #[tokio::test]
    async fn a_pass_in_flight_is_dropped_when_the_node_stops() {
        let (stop, mut rx) = tokio::sync::watch::channel(None);
        let pass = until_stopped(&mut rx, std::future::pending::<()>());
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = stop.send(Some(tokio::time::Instant::now()));
        };
        let (done, ()) = tokio::time::timeout(Duration::from_secs(2), async {
            tokio::join!(pass, stopper)
        })
        .await
        .expect("the stop ends the pass");
        assert_eq!(done, None);
        // Once stopped, no pass starts.
        assert_eq!(until_stopped(&mut rx, async { 1 }).await, None);
    }
}
