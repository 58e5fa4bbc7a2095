//! The pruner: deletes finished jobs (completed, cancelled, discarded) past a maximum age, in
//! bounded batches so it never holds many locks or bloats one transaction.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, StopSignal};
use crate::error::Result;
use crate::events::{Event, Events};
use crate::maintenance::leader::Leadership;
use crate::maintenance::until_stopped;

/// What is pruned, and how fast.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrunerConfig {
    pub(crate) interval: Duration,
    pub(crate) max_age: Duration,
    pub(crate) limit: u32,
}

/// Prunes until a batch comes back short; returns how many jobs were deleted.
pub(crate) async fn run_once(engine: &dyn Engine, config: &PrunerConfig) -> Result<u64> {
    let mut total = 0;
    loop {
        let deleted = engine.job_prune(config.max_age, config.limit).await?;
        total += deleted;
        if deleted < u64::from(config.limit) {
            return Ok(total);
        }
    }
}

/// Prunes every `interval` while this node leads Rust nodes and holds the leadership row shared
/// with Elixir Oban (see [`leader`](crate::maintenance::leader)), until the node stops (a pass in flight then
/// is dropped).
pub(crate) async fn run(
    engine: Arc<dyn Engine>,
    leadership: Arc<Leadership>,
    config: PrunerConfig,
    events: Events,
    mut stop: StopSignal,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(config.interval) => {}
            _ = stop.changed() => return,
        }
        if !leadership.leads_shared() {
            continue;
        }
        let Some(pruned) = until_stopped(&mut stop, run_once(&*engine, &config)).await else {
            return;
        };
        match pruned {
            Ok(0) => {}
            Ok(pruned) => {
                tracing::debug!(pruned, "pruned finished jobs");
                events.emit(|| Event::Pruned { count: pruned });
                crate::measure::jobs::jobs_pruned(pruned);
            }
            Err(error) => tracing::warn!(%error, "pruning failed"),
        }
    }
}
