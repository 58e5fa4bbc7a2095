//! The passes over waiting jobs: the leader releases what no ack of this runtime released.
//!
//! - **Workflows** ([`crate::workflow`]): steps whose dependencies an operator cancelled or
//!   deleted, that another implementation finished, or whose node stopped between an ack and its
//!   check, are released or cancelled.
//! - **Sequences** ([`crate::sequence`]): the next job of a sequence whose holder was deleted or
//!   cancelled by an operator, acked by an Elixir or Python node, or whose node stopped between
//!   its ack and the release, is started.
//!
//! Each pass takes the next `limit` workflows (by id) or sequences (by key) with `suspended`
//! jobs, from where the last pass stopped and starting over at the end, read from the index of
//! waiting jobs, and checks them; its cost is bounded by the jobs waiting in those, never by the
//! size of the job table.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, StopSignal};
use crate::error::Result;
use crate::maintenance::leader::Leadership;
use crate::maintenance::until_stopped;

/// What waits: the groups a pass walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// Workflows with suspended steps.
    Workflows,
    /// Sequences with suspended jobs.
    Sequences,
}

impl Waiting {
    /// The next `limit` groups after `after`, in order.
    async fn list(
        self,
        engine: &dyn Engine,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        match self {
            Waiting::Workflows => engine.workflow_waiting(after, limit).await,
            Waiting::Sequences => engine.sequence_waiting(after, limit).await,
        }
    }

    /// Releases what is ready in `groups`; returns how many jobs changed.
    async fn release(self, engine: &dyn Engine, groups: &[String]) -> Result<u64> {
        match self {
            Waiting::Workflows => engine.workflow_release(groups).await,
            Waiting::Sequences => engine.sequence_release(groups).await,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Waiting::Workflows => "workflows",
            Waiting::Sequences => "sequences",
        }
    }
}

/// Which groups, how often and how many a pass checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitingPassConfig {
    pub(crate) waiting: Waiting,
    pub(crate) interval: Duration,
    pub(crate) limit: u32,
}

/// One pass from `after`: returns where the next starts (`None`: from the first) and how many
/// jobs changed.
pub(crate) async fn run_once(
    engine: &dyn Engine,
    config: &WaitingPassConfig,
    after: Option<String>,
) -> Result<(Option<String>, u64)> {
    let groups = config
        .waiting
        .list(engine, after.as_deref(), config.limit)
        .await?;
    if groups.is_empty() {
        return Ok((None, 0));
    }
    let changed = config.waiting.release(engine, &groups).await?;
    let next = (groups.len() as u32 == config.limit)
        .then(|| groups.last().cloned())
        .flatten();
    Ok((next, changed))
}

/// Runs a pass every `interval` while this node is the Rust leader, until the node stops.
pub(crate) async fn run(
    engine: Arc<dyn Engine>,
    leadership: Arc<Leadership>,
    config: WaitingPassConfig,
    mut stop: StopSignal,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut after = None;
    let waiting = config.waiting.name();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if !leadership.is_leader() {
            continue;
        }
        let Some(pass) = until_stopped(&mut stop, run_once(&*engine, &config, after.take())).await
        else {
            return;
        };
        match pass {
            Ok((next, changed)) => {
                if changed > 0 {
                    tracing::debug!(waiting, changed, "released or cancelled waiting jobs");
                }
                after = next;
            }
            Err(error) => tracing::warn!(waiting, %error, "checking waiting jobs failed"),
        }
    }
}
