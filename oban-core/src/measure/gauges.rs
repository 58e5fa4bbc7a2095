//! The gauges, set on an interval by every node: its producers' running jobs and limits, whether
//! it leads, and, on the Rust leader alone, the depth of every queue in every state and the age
//! of each queue's oldest available job ([`Engine::job_count_depths`]).
//!
//! A series whose subject went away (a queue this node stopped, a (queue, state) pair that left
//! the table, the depths of a node that stopped leading) is set to zero once rather than left
//! at its last value.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use metrics::gauge;

use super::DEPTH_EXACT_UP_TO;
use crate::engine::{Engine, QueueDepths, StopSignal};
use crate::job::JobState;
use crate::maintenance::until_stopped;
use crate::node::Shared;

/// The series this node set last time, to zero those that went away.
#[derive(Debug, Default)]
pub(crate) struct Reported {
    queues: HashSet<String>,
    depths: HashSet<(String, JobState)>,
    oldest: HashSet<String>,
}

/// Sets the gauges every `interval` until the node stops.
pub(crate) async fn run(shared: Weak<Shared>, interval: Duration, mut stop: StopSignal) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = Reported::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(node) = shared.upgrade() else {
            return;
        };
        set_producers(&node, &mut reported);
        let leader = node.leadership.is_leader();
        let node_label = node.node.to_string();
        gauge!("oban_leader", "node" => node_label).set(if leader { 1.0 } else { 0.0 });
        if !leader {
            set_depths(&QueueDepths::default(), &mut reported);
            continue;
        }
        let engine = Arc::clone(&node.engine);
        drop(node);
        match until_stopped(&mut stop, depths(&*engine)).await {
            None => return,
            Some(Ok(depths)) => set_depths(&depths, &mut reported),
            Some(Err(error)) => tracing::warn!(%error, "could not count the queues' depths"),
        }
    }
}

/// The depth query, as the leader runs it.
pub(crate) async fn depths(engine: &dyn Engine) -> crate::error::Result<QueueDepths> {
    engine.job_count_depths(DEPTH_EXACT_UP_TO).await
}

/// `oban_queue_executing` and `oban_queue_limit` of this node's producers.
fn set_producers(node: &Shared, reported: &mut Reported) {
    let loads: Vec<(String, u32, u32)> = node
        .producers
        .lock()
        .expect("producers lock")
        .iter()
        .map(|(queue, handle)| (queue.clone(), handle.load.executing(), handle.load.limit()))
        .collect();
    let name = node.node.to_string();
    let mut now = HashSet::with_capacity(loads.len());
    for (queue, executing, limit) in loads {
        let labels = [("queue", queue.clone()), ("node", name.clone())];
        gauge!("oban_queue_executing", &labels).set(f64::from(executing));
        gauge!("oban_queue_limit", &labels).set(f64::from(limit));
        now.insert(queue);
    }
    for gone in reported.queues.difference(&now) {
        let labels = [("queue", gone.clone()), ("node", name.clone())];
        gauge!("oban_queue_executing", &labels).set(0.0);
        gauge!("oban_queue_limit", &labels).set(0.0);
    }
    reported.queues = now;
}

/// `oban_queue_depth` and `oban_queue_oldest_available_age_seconds` from `depths`; those set
/// last time and absent now go to zero.
pub(crate) fn set_depths(depths: &QueueDepths, reported: &mut Reported) {
    let mut now = HashSet::with_capacity(depths.counts.len());
    for count in &depths.counts {
        gauge!("oban_queue_depth", "queue" => count.queue.clone(), "state" => count.state.as_str())
            .set(count.count as f64);
        now.insert((count.queue.clone(), count.state));
    }
    for (queue, state) in reported.depths.difference(&now) {
        gauge!("oban_queue_depth", "queue" => queue.clone(), "state" => state.as_str()).set(0.0);
    }
    reported.depths = now;
    let mut now = HashSet::with_capacity(depths.oldest_available.len());
    for (queue, age) in &depths.oldest_available {
        gauge!("oban_queue_oldest_available_age_seconds", "queue" => queue.clone())
            .set(age.as_secs_f64());
        now.insert(queue.clone());
    }
    for queue in reported.oldest.difference(&now) {
        gauge!("oban_queue_oldest_available_age_seconds", "queue" => queue.clone()).set(0.0);
    }
    reported.oldest = now;
}
