//! One producer per queue per node: keeps up to `limit` jobs of its queue running.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::engine::Engine;
use crate::queue::completer::Completer;
use crate::queue::executor;
use crate::registry::Registry;
use crate::state::StateMap;

/// What a producer needs, shared with its node.
pub(crate) struct ProducerConfig {
    pub(crate) queue: String,
    pub(crate) limit: u32,
    pub(crate) node: Arc<str>,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) state: Arc<StateMap>,
    pub(crate) completer: Completer,
    pub(crate) poll_interval: Duration,
    pub(crate) heartbeat_interval: Duration,
    /// Wakes the producer: jobs were inserted or staged for its queue.
    pub(crate) wake: Arc<Notify>,
    /// Turns true when the node stops: stop fetching, finish or hand back running jobs.
    pub(crate) stop: watch::Receiver<Option<tokio::time::Instant>>,
}

/// Runs the producer until the node stops.
pub(crate) async fn run(config: ProducerConfig) {
    let uuid = uuid::Uuid::new_v4();
    let attempted_by = vec![config.node.to_string(), uuid.to_string()];
    let mut stop = config.stop.clone();
    let mut running: JoinSet<crate::engine::Ack> = JoinSet::new();
    // task id -> (job id, attempt, attempted_at), to hand back jobs still running at shutdown.
    let mut in_flight: HashMap<tokio::task::Id, (i64, i32, chrono::NaiveDateTime)> = HashMap::new();
    let mut heartbeat = tokio::time::interval(config.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut fetch_now = true;
    // The node handle was dropped without `shutdown`: stop at once.
    let mut orphaned = false;
    let mut error_delay = Duration::from_millis(100);
    let meta = json!({ "limit": config.limit });

    tracing::debug!(queue = %config.queue, limit = config.limit, %uuid, "producer started");
    // The heartbeat precedes the first fetch so the lifeline never mistakes our jobs for orphans.
    if let Err(error) = config
        .engine
        .producer_heartbeat(uuid, &config.node, &config.queue, meta.clone())
        .await
    {
        tracing::warn!(queue = %config.queue, %error, "producer heartbeat failed");
    }

    loop {
        if !fetch_now {
            tokio::select! {
                () = config.wake.notified() => {}
                () = tokio::time::sleep(config.poll_interval) => {}
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    finish(done, &mut in_flight, &config.completer);
                }
                _ = heartbeat.tick() => {
                    if let Err(error) = config.engine.producer_heartbeat(uuid, &config.node, &config.queue, meta.clone()).await {
                        tracing::warn!(queue = %config.queue, %error, "producer heartbeat failed");
                    }
                    continue;
                }
                changed = stop.changed() => orphaned = changed.is_err(),
            }
        }
        fetch_now = false;
        // Reap whatever else finished meanwhile, so demand is current.
        while let Some(done) = running.try_join_next_with_id() {
            finish(done, &mut in_flight, &config.completer);
        }
        if orphaned || stop.borrow().is_some() {
            break;
        }
        let demand = config.limit.saturating_sub(running.len() as u32);
        if demand == 0 {
            continue;
        }
        match config
            .engine
            .job_fetch_available(&config.queue, demand, &attempted_by)
            .await
        {
            Ok(jobs) => {
                error_delay = Duration::from_millis(100);
                // A full batch means more may be waiting.
                fetch_now = jobs.len() as u32 == demand;
                for job in jobs {
                    let info = (
                        job.id,
                        job.attempt,
                        job.attempted_at
                            .map(|at| at.naive_utc())
                            .unwrap_or_default(),
                    );
                    let handle = running.spawn(executor::execute(
                        job,
                        Arc::clone(&config.registry),
                        Arc::clone(&config.state),
                        Arc::clone(&config.node),
                    ));
                    in_flight.insert(handle.id(), info);
                }
            }
            Err(error) => {
                tracing::warn!(queue = %config.queue, %error, retry_in = ?error_delay, "fetching jobs failed; backing off");
                tokio::select! {
                    () = tokio::time::sleep(error_delay) => {}
                    changed = stop.changed() => orphaned = changed.is_err(),
                }
                error_delay = (error_delay * 2).min(Duration::from_secs(5));
                fetch_now = true;
            }
        }
    }

    // Shutdown: let running jobs finish until the deadline, then hand the rest back.
    let deadline = (*stop.borrow()).unwrap_or_else(tokio::time::Instant::now);
    tracing::debug!(queue = %config.queue, running = running.len(), "producer stopping");
    while !running.is_empty() {
        match tokio::time::timeout_at(deadline, running.join_next_with_id()).await {
            Ok(Some(done)) => finish(done, &mut in_flight, &config.completer),
            Ok(None) => break,
            Err(_) => {
                running.abort_all();
                while let Some(done) = running.join_next_with_id().await {
                    finish(done, &mut in_flight, &config.completer);
                }
            }
        }
    }
    for (_, (id, attempt, attempted_at)) in in_flight.drain() {
        config.completer.push(executor::interrupted(
            id,
            attempt,
            attempted_at,
            &config.node,
        ));
    }
    if let Err(error) = config.engine.producer_delete(uuid).await {
        tracing::warn!(queue = %config.queue, %error, "could not remove the producer's heartbeat row");
    }
    tracing::debug!(queue = %config.queue, "producer stopped");
}

fn finish(
    done: Result<(tokio::task::Id, crate::engine::Ack), tokio::task::JoinError>,
    in_flight: &mut HashMap<tokio::task::Id, (i64, i32, chrono::NaiveDateTime)>,
    completer: &Completer,
) {
    match done {
        Ok((id, ack)) => {
            in_flight.remove(&id);
            completer.push(ack);
        }
        // Aborted at shutdown (panics are caught inside the task): left in `in_flight`, handed
        // back below.
        Err(error) => {
            if !error.is_cancelled() {
                tracing::error!(%error, "job task failed outside the worker");
            }
        }
    }
}
