//! Leader election: one node per database runs the maintenance services.
//!
//! Leadership is a row in `oban_peers` (Elixir Oban's table and algorithm) held for a TTL and
//! renewed at a third of it. A node counts itself leader only until `start of its last successful
//! renewal + TTL`, a moment no later than the row's expiry in the database, so a node that cannot
//! renew (partitioned, paused) steps down before any other node can take over: there are never
//! two leaders at once. A node that stops cleanly deletes the row and notifies the others, who
//! elect a successor at once instead of waiting for the TTL.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::engine::{Engine, StopSignal};
use crate::maintenance::until_stopped;
use crate::notifier::Channel;

/// The leadership key shared with Elixir Oban nodes (`inspect(Oban)`).
pub(crate) const LEADER_NAME: &str = "Oban";

/// This node's view of leadership.
#[derive(Debug, Default)]
pub(crate) struct Leadership {
    until: std::sync::Mutex<Option<Instant>>,
    /// Poked when the leader is known to be gone: elect now.
    pub(crate) elect_now: Notify,
}

impl Leadership {
    /// Whether this node leads right now.
    pub(crate) fn is_leader(&self) -> bool {
        self.until
            .lock()
            .expect("leadership lock")
            .is_some_and(|until| Instant::now() < until)
    }

    fn set(&self, until: Option<Instant>) {
        *self.until.lock().expect("leadership lock") = until;
    }
}

/// How long a stopping leader tries to resign before it leaves the row to expire.
const RESIGN_TIMEOUT: Duration = Duration::from_secs(2);

/// How leadership is held.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaderConfig {
    pub(crate) ttl: Duration,
}

/// Takes part in elections until the node stops, then resigns.
pub(crate) async fn run(
    engine: Arc<dyn Engine>,
    node: Arc<str>,
    leadership: Arc<Leadership>,
    config: LeaderConfig,
    mut stop: StopSignal,
) {
    let renew = config.ttl / 3;
    loop {
        if until_stopped(&mut stop, run_once(&*engine, &node, &leadership, config))
            .await
            .is_none()
        {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(renew) => {}
            () = leadership.elect_now.notified() => {}
            _ = stop.changed() => break,
        }
    }
    if leadership.is_leader() {
        leadership.set(None);
        // Bounded: shutdown waits for this task.
        let resigned: Result<crate::error::Result<()>, _> =
            tokio::time::timeout(RESIGN_TIMEOUT, async {
                engine.leader_resign(LEADER_NAME, &node).await?;
                if let Err(error) = engine
                    .notify(Channel::Leader, json!({ "down": LEADER_NAME }))
                    .await
                {
                    tracing::debug!(%error, "could not announce the resignation");
                }
                Ok(())
            })
            .await;
        match resigned {
            Ok(Ok(())) => tracing::info!(node = %node, "resigned leadership"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not resign leadership; another node takes over after the TTL");
            }
            Err(_) => {
                tracing::warn!(timeout = ?RESIGN_TIMEOUT, "resigning leadership timed out; another node takes over after the TTL");
            }
        }
    }
}

/// One election round; returns whether this node leads afterwards.
pub(crate) async fn run_once(
    engine: &dyn Engine,
    node: &str,
    leadership: &Leadership,
    config: LeaderConfig,
) -> bool {
    let was = leadership.is_leader();
    let started = Instant::now();
    match engine.leader_elect(LEADER_NAME, node, config.ttl).await {
        Ok(true) => {
            leadership.set(Some(crate::clock::saturating_add(started, config.ttl)));
            if !was {
                tracing::info!(node = %node, "became leader");
            }
            true
        }
        Ok(false) => {
            leadership.set(None);
            if was {
                tracing::info!(node = %node, "lost leadership");
            }
            false
        }
        Err(error) => {
            // Keep what we had until it runs out on its own.
            tracing::warn!(%error, "leader election failed");
            leadership.is_leader()
        }
    }
}
