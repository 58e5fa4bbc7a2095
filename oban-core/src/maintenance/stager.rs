//! The stager: scheduled and retryable jobs whose time has come become available, and the
//! queues that received them are woken on every node.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, StopSignal};
use crate::error::Result;
use crate::events::{Event, Events};
use crate::maintenance::leader::Leadership;
use crate::maintenance::until_stopped;

/// How often and how much the stager moves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StagerConfig {
    pub(crate) interval: Duration,
    pub(crate) limit: u32,
}

/// Stages one batch; returns the queues that received jobs.
pub(crate) async fn run_once(engine: &dyn Engine, config: &StagerConfig) -> Result<Vec<String>> {
    engine.job_stage_due(config.limit).await
}

/// Stages every `interval` while this node leads Rust nodes and holds the leadership row shared
/// with Elixir Oban (see [`leader`](crate::maintenance::leader)), then calls `staged` with the queues that
/// received jobs; until the node stops (a pass in flight then is dropped).
pub(crate) async fn run(
    engine: Arc<dyn Engine>,
    leadership: Arc<Leadership>,
    config: StagerConfig,
    staged: impl Fn(Vec<String>) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync + 'static,
    events: Events,
    mut stop: StopSignal,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if !leadership.leads_shared() {
            continue;
        }
        let Some(staged_now) = until_stopped(&mut stop, run_once(&*engine, &config)).await else {
            return;
        };
        match staged_now {
            Ok(queues) if queues.is_empty() => {}
            Ok(queues) => {
                tracing::debug!(?queues, "staged jobs");
                events.emit(|| Event::Staged {
                    queues: queues.clone(),
                });
                if until_stopped(&mut stop, staged(queues)).await.is_none() {
                    return;
                }
            }
            Err(error) => tracing::warn!(%error, "staging jobs failed"),
        }
    }
}
