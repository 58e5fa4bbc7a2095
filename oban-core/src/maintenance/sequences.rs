//! The sequence pass: the leader starts the next job of the sequences whose holder ended without
//! an ack of this runtime's (see [`crate::sequence`]): deleted or cancelled by an operator,
//! acked by an Elixir or Python node, or whose node stopped between its ack and the release.
//!
//! Each pass takes the next `limit` sequences with `suspended` jobs (in key order, from where
//! the last pass stopped, starting over at the end), read from the index of waiting sequenced
//! jobs, and releases those that nothing holds; its cost is a few index lookups per sequence.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, StopSignal};
use crate::error::Result;
use crate::maintenance::leader::Leadership;
use crate::maintenance::until_stopped;

/// How often and how many sequences a pass checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SequencePassConfig {
    pub(crate) interval: Duration,
    pub(crate) limit: u32,
}

/// One pass from `after`: returns where the next starts (`None`: from the first) and how many
/// jobs started.
pub(crate) async fn run_once(
    engine: &dyn Engine,
    config: &SequencePassConfig,
    after: Option<String>,
) -> Result<(Option<String>, u64)> {
    let keys = engine
        .sequence_waiting(after.as_deref(), config.limit)
        .await?;
    if keys.is_empty() {
        return Ok((None, 0));
    }
    let released = engine.sequence_release(&keys).await?;
    let next = (keys.len() as u32 == config.limit)
        .then(|| keys.last().cloned())
        .flatten();
    Ok((next, released))
}

/// Runs a pass every `interval` while this node is the Rust leader, until the node stops.
pub(crate) async fn run(
    engine: Arc<dyn Engine>,
    leadership: Arc<Leadership>,
    config: SequencePassConfig,
    mut stop: StopSignal,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut after = None;
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
            Ok((next, released)) => {
                if released > 0 {
                    tracing::debug!(released, "started the next jobs of idle sequences");
                }
                after = next;
            }
            Err(error) => tracing::warn!(%error, "checking waiting sequences failed"),
        }
    }
}
