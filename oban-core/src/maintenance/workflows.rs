//! The workflow pass: the leader re-checks the workflows that have waiting steps, releasing or
//! cancelling what the acks did not (see [`crate::workflow`]): steps whose dependencies an
//! operator cancelled or deleted, that another implementation finished, or whose node stopped
//! between an ack and its check.
//!
//! Each pass takes the next `limit` workflows with suspended steps (in id order, from where the
//! last pass stopped, starting over at the end), read from the index of suspended steps, and
//! checks their waiting steps; its cost is bounded by the steps waiting in those workflows, never
//! by the size of the job table.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, StopSignal};
use crate::error::Result;
use crate::maintenance::leader::Leadership;
use crate::maintenance::until_stopped;

/// How often and how many workflows a pass checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkflowPassConfig {
    pub(crate) interval: Duration,
    pub(crate) limit: u32,
}

/// One pass from `after`: returns where the next starts (`None`: from the first) and how many
/// steps changed.
pub(crate) async fn run_once(
    engine: &dyn Engine,
    config: &WorkflowPassConfig,
    after: Option<String>,
) -> Result<(Option<String>, u64)> {
    let ids = engine
        .workflow_waiting(after.as_deref(), config.limit)
        .await?;
    if ids.is_empty() {
        return Ok((None, 0));
    }
    let changed = engine.workflow_release(&ids).await?;
    let next = (ids.len() as u32 == config.limit)
        .then(|| ids.last().cloned())
        .flatten();
    Ok((next, changed))
}

/// Runs a pass every `interval` while this node is the Rust leader, until the node stops.
pub(crate) async fn run(
    engine: Arc<dyn Engine>,
    leadership: Arc<Leadership>,
    config: WorkflowPassConfig,
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
            Ok((next, changed)) => {
                if changed > 0 {
                    tracing::debug!(changed, "released or cancelled waiting workflow steps");
                }
                after = next;
            }
            Err(error) => tracing::warn!(%error, "checking waiting workflow steps failed"),
        }
    }
}
