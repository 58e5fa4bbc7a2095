//! Leader election: which node runs which maintenance duty, in a cluster of Rust nodes alone or
//! beside Elixir and Python Oban nodes on the same tables.
//!
//! # Two rows
//!
//! Leadership is a row in `oban_peers` (Elixir Oban's table and algorithm), held for a TTL and
//! renewed at a third of it. Rust nodes hold two such rows:
//!
//! - **Their own, [`RUST_LEADER_NAME`] (`"Oban.rust"`)**: every Rust node contends for it, and
//!   only Rust nodes do. Its holder is *the Rust leader*. Elixir Oban names its row
//!   `inspect(name)` of its instance name, which is an alias such as `Oban` or `MyApp.Oban`, an
//!   atom written with a leading `:`, or another term; `inspect` writes an atom bare only when
//!   every dotted segment is capitalised, so no Elixir instance can be named `Oban.rust`.
//! - **The shared row, [`SHARED_LEADER_NAME`] (`"Oban"`)**: Elixir Oban's row for an instance
//!   named `Oban` (the default). Only the Rust leader contends for it, against Elixir nodes.
//!
//! The duties are split by who else can do them:
//!
//! | duty | runs on |
//! | --- | --- |
//! | this runtime's cron entries, the heartbeat lifeline, the reindexer | the Rust leader, always |
//! | staging scheduled and retryable jobs, pruning finished jobs | the Rust leader while it also holds `"Oban"` |
//!
//! Cron entries declared on Rust workers and the heartbeat lifeline (which reads the heartbeats
//! of Rust producers) are things no other implementation does, so they run whoever leads
//! `"Oban"`. Staging and pruning are done by every Oban implementation's leader for the whole
//! table, so Rust nodes do them only while they hold the shared row: each runs on one node per
//! interval across Rust and Elixir nodes (Elixir's pruner is its optional `Pruner` plugin; a
//! cluster whose Elixir leader runs none keeps finished jobs while that node leads).
//!
//! # What holds
//!
//! - **Among Rust nodes there is never more than one Rust leader.** A node counts itself leader
//!   only until `start of its last successful renewal + TTL`, a moment no later than the row's
//!   expiry in the database, so a node that cannot renew (partitioned, paused) steps down before
//!   any other node can take over. The same bound applies to the shared row, which a node
//!   counts as held only while it is also the Rust leader.
//! - **A clean stop resigns both rows** (the shared one first) and announces each on the leader
//!   channel as Elixir does (`{"down": "Oban"}`, `{"down": "Oban.rust"}`), so Rust and Elixir
//!   nodes elect a successor at once instead of waiting for the TTL. A Rust leader that loses
//!   its own row gives up the shared one too.
//! - **Elixir nodes** elect on `"Oban"` with their own interval. While one of them holds it,
//!   staging and pruning are Elixir's, and Rust cron and the heartbeat lifeline still run on the
//!   Rust leader. An Elixir instance with another name (`MyApp.Oban`) elects its own leader on
//!   its own row, and that leader stages and prunes as well.
//! - **Python Oban (0.7)** elects in its own `oban_leaders` table and never reads `oban_peers`:
//!   its leader stages, prunes and rescues whatever Rust or Elixir nodes do, so with Python nodes
//!   in the cluster those duties run once per interval on each side (staging and pruning are
//!   idempotent; rescue is discussed next).
//! - **Other implementations' lifelines are time-based.** Python Oban's lifeline always runs
//!   and makes any job `executing` for longer than its `rescue_after` (default 300 s) available
//!   again; Elixir Oban's `Lifeline` plugin, when configured, does the same after its
//!   `rescue_after` (default 60 minutes). Neither reads Rust heartbeats, so a Rust job that runs
//!   longer than that is rescued while it still runs, and may run twice: give such jobs a
//!   timeout below those ages, or raise them. Rust's heartbeat lifeline, in turn, rescues only
//!   jobs of Rust producers (see `maintenance/lifeline.rs`).
//! - **Rust nodes of a version before this one** contend for `"Oban"` directly and run all
//!   duties when they win it. During a rolling upgrade a cron minute may then be inserted by an
//!   old and a new node, and the unique key of each cron minute keeps it to one job.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::engine::{Engine, StopSignal};
use crate::events::{Event, Events};
use crate::maintenance::until_stopped;
use crate::notifier::Channel;

/// The leadership row of Rust nodes alone: its holder is the Rust leader.
pub(crate) const RUST_LEADER_NAME: &str = "Oban.rust";

/// The leadership row shared with Elixir Oban nodes (`inspect(Oban)`).
pub(crate) const SHARED_LEADER_NAME: &str = "Oban";

/// Until when this node holds each row, as far as it may count on it.
#[derive(Debug, Default, Clone, Copy)]
struct Terms {
    rust: Option<Instant>,
    shared: Option<Instant>,
}

/// This node's view of leadership.
#[derive(Debug, Default)]
pub(crate) struct Leadership {
    terms: std::sync::Mutex<Terms>,
    /// Poked when a leader is known to be gone: elect now.
    pub(crate) elect_now: Notify,
}

impl Leadership {
    /// Whether this node is the Rust leader right now: it runs cron, the heartbeat lifeline
    /// and the reindexer.
    pub(crate) fn is_leader(&self) -> bool {
        let now = Instant::now();
        self.terms().rust.is_some_and(|until| now < until)
    }

    /// Whether this node is the Rust leader and holds the row shared with Elixir Oban right
    /// now: it stages and prunes.
    pub(crate) fn leads_shared(&self) -> bool {
        let now = Instant::now();
        let terms = self.terms();
        terms.rust.is_some_and(|until| now < until) && terms.shared.is_some_and(|until| now < until)
    }

    /// Whether a leader-down notice for `name` concerns an election this node takes part in.
    pub(crate) fn is_ours(name: &str) -> bool {
        name == RUST_LEADER_NAME || name == SHARED_LEADER_NAME
    }

    fn terms(&self) -> Terms {
        *self.terms.lock().expect("leadership lock")
    }

    fn update(&self, change: impl FnOnce(&mut Terms)) {
        change(&mut self.terms.lock().expect("leadership lock"));
    }
}

/// How long a stopping leader tries to resign before it leaves the rows to expire.
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
    events: Events,
    mut stop: StopSignal,
) {
    let renew = config.ttl / 3;
    loop {
        if until_stopped(
            &mut stop,
            run_once(&*engine, &node, &leadership, config, &events),
        )
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
    let held = leadership.terms();
    leadership.update(|terms| *terms = Terms::default());
    // Bounded: shutdown waits for this task.
    let resigned: Result<crate::error::Result<()>, _> =
        tokio::time::timeout(RESIGN_TIMEOUT, async {
            if held.shared.is_some() {
                resign(&*engine, SHARED_LEADER_NAME, &node).await?;
            }
            if held.rust.is_some() {
                resign(&*engine, RUST_LEADER_NAME, &node).await?;
            }
            Ok(())
        })
        .await;
    if held.rust.is_some() {
        events.emit(|| Event::LeadershipLost);
    }
    if held.rust.is_none() && held.shared.is_none() {
        return;
    }
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

/// Deletes `node`'s row `name` and tells every node (Elixir's `{"down": name}`).
async fn resign(engine: &dyn Engine, name: &str, node: &str) -> crate::error::Result<()> {
    engine.leader_resign(name, node).await?;
    if let Err(error) = engine
        .notify(Channel::Leader, json!({ "down": name }))
        .await
    {
        tracing::debug!(%error, name, "could not announce the resignation");
    }
    Ok(())
}

/// One election round: this runtime's row, then, for its holder, the shared row. Returns
/// whether this node is the Rust leader afterwards.
pub(crate) async fn run_once(
    engine: &dyn Engine,
    node: &str,
    leadership: &Leadership,
    config: LeaderConfig,
    events: &Events,
) -> bool {
    let was = leadership.terms();
    let started = Instant::now();
    match engine
        .leader_elect(RUST_LEADER_NAME, node, config.ttl)
        .await
    {
        Ok(true) => {
            leadership.update(|terms| {
                terms.rust = Some(crate::clock::saturating_add(started, config.ttl));
            });
            if was.rust.is_none() {
                tracing::info!(node = %node, "became leader");
                events.emit(|| Event::LeadershipGained);
            }
        }
        Ok(false) => {
            leadership.update(|terms| *terms = Terms::default());
            if was.rust.is_some() {
                tracing::info!(node = %node, "lost leadership");
                events.emit(|| Event::LeadershipLost);
            }
            if was.shared.is_some() {
                // Another node leads Rust nodes now; let it (or an Elixir node) have the shared
                // row at once rather than after its TTL.
                if let Err(error) = resign(engine, SHARED_LEADER_NAME, node).await {
                    tracing::debug!(%error, "could not give up the shared leadership row");
                }
            }
            return false;
        }
        Err(error) => {
            // Keep what we had until it runs out on its own.
            tracing::warn!(%error, "leader election failed");
        }
    }
    if !leadership.is_leader() {
        return false;
    }
    let started = Instant::now();
    match engine
        .leader_elect(SHARED_LEADER_NAME, node, config.ttl)
        .await
    {
        Ok(true) => {
            leadership.update(|terms| {
                terms.shared = Some(crate::clock::saturating_add(started, config.ttl));
            });
            if was.shared.is_none() {
                tracing::info!(node = %node, "holds the leadership shared with Elixir Oban: staging and pruning run here");
            }
        }
        Ok(false) => {
            leadership.update(|terms| terms.shared = None);
            if was.shared.is_some() || was.rust.is_none() {
                tracing::info!(node = %node, "another node (Elixir Oban?) holds the shared leadership row `Oban`: it stages and prunes; cron and the lifeline run here");
            }
        }
        Err(error) => tracing::warn!(%error, "election for the shared leadership row failed"),
    }
    true
}
