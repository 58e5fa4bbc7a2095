//! The stager: scheduled and retryable jobs whose time has come become available.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::engine::Engine;
use crate::error::Result;

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

/// Stages every `interval` and wakes this node's producers of the queues that received jobs.
pub(crate) async fn run(
    engine: Arc<dyn Engine>,
    config: StagerConfig,
    wakers: Arc<HashMap<String, Arc<Notify>>>,
    mut stop: watch::Receiver<Option<tokio::time::Instant>>,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match run_once(&*engine, &config).await {
            Ok(queues) => {
                for queue in &queues {
                    if let Some(wake) = wakers.get(queue) {
                        wake.notify_one();
                    }
                }
                if !queues.is_empty() {
                    tracing::debug!(?queues, "staged jobs");
                }
            }
            Err(error) => tracing::warn!(%error, "staging jobs failed"),
        }
    }
}
