//! Queues: depth by state and each node's view ([`Admin::queues`]), and the queue commands
//! ([`Admin::pause`], [`Admin::resume`], [`Admin::scale`]) sent as the same signals a node sends
//! (`control.rs`), which Rust and Elixir nodes alike obey.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{opt_secs, secs, Admin, QueueLimits};
use crate::engine::{Channel, Command, Signal};
use crate::error::{Error, Result};
use crate::job::JobState;

/// How many jobs per queue and state are counted row by row before an engine may estimate (see
/// [`Engine::job_count_depths`](crate::engine::Engine::job_count_depths)).
const EXACT_UP_TO: u64 = 100_000;

/// How many partitions' counts the overview reads per limited queue (the fullest first).
const OVERVIEW_TOP: u32 = 3;

/// One queue: its jobs by state, how long its oldest available job has waited, and the nodes
/// running it.
///
/// JSON: `{"queue": "mailers", "total": 12, "states": [{"state": "available", "count": 10,
/// "exact": true}, ..], "oldest_available_secs": 3.5, "nodes": [..], "limits": null}` (`limits`
/// a [`QueueLimits`] when the queue has limits across the fleet).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct QueueOverview {
    /// The queue's name.
    pub queue: String,
    /// The sum of [`states`](Self::states).
    pub total: u64,
    /// Jobs by state, in lifecycle order; a state without jobs is absent.
    pub states: Vec<StateTally>,
    /// How long the oldest available job has been due (JSON `oldest_available_secs`, seconds);
    /// `None` (`null`) when none is available.
    #[serde(rename = "oldest_available_secs", serialize_with = "opt_secs")]
    pub oldest_available: Option<Duration>,
    /// The producers of this queue, one per node, by node name: as their last heartbeats
    /// recorded them (a node that stopped without cleaning up stays until the leader forgets
    /// it; see [`NodeQueue::heartbeat_age`]).
    pub nodes: Vec<NodeQueue>,
    /// The queue's limits across the fleet and what they count now (at most three partitions
    /// each, the fullest first); `None` (`null`) when it has none.
    pub limits: Option<QueueLimits>,
}

impl QueueOverview {
    /// How many jobs are in `state` (0 when none).
    pub fn count(&self, state: JobState) -> u64 {
        self.states
            .iter()
            .find(|s| s.state == state)
            .map_or(0, |s| s.count)
    }
}

/// How many jobs of a queue are in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StateTally {
    /// The state (JSON: lowercase, `"retryable"`).
    pub state: JobState,
    /// How many jobs.
    pub count: u64,
    /// Whether `count` was counted row by row; `false` on PostgreSQL beyond 100,000 jobs, where
    /// it is the planner's estimate.
    pub exact: bool,
}

/// One node's producer of a queue, from its heartbeat in `oban_producers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct NodeQueue {
    /// The node's name.
    pub node: String,
    /// The producer's id (the second element of its jobs' `attempted_by`; JSON: a hyphenated
    /// string).
    #[serde(serialize_with = "super::display")]
    pub producer: uuid::Uuid,
    /// Its concurrency limit (0 when the heartbeat does not say).
    pub limit: u32,
    /// Jobs it was running at its last heartbeat.
    pub running: u32,
    /// Whether it is paused.
    pub paused: bool,
    /// When it started (RFC 3339).
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (RFC 3339).
    pub last_heartbeat_at: DateTime<Utc>,
    /// How long ago that was, on this machine's clock (JSON `heartbeat_age_secs`): a live Rust
    /// node beats every second or so; tens of seconds mean the node is gone or stuck.
    #[serde(rename = "heartbeat_age_secs", serialize_with = "secs")]
    pub heartbeat_age: Duration,
}

impl Admin {
    /// Every queue that holds jobs, has a producer or has limits: jobs by state
    /// ([`Engine::job_count_depths`](crate::engine::Engine::job_count_depths), exact up to
    /// 100,000 per state), the age of the oldest available job, per node the limit, running
    /// jobs and paused flag of its producer (from the heartbeats), and the queue's limits across
    /// the fleet with what they count (see [`Admin::limits`]: one read of every queue's limits,
    /// then one count per limited queue), sorted by queue name.
    pub async fn queues(&self) -> Result<Vec<QueueOverview>> {
        self.queues_counting(EXACT_UP_TO).await
    }

    /// [`Admin::queues`], counting at most `exact_up_to` jobs per queue and state row by row
    /// before PostgreSQL's estimate stands in: what a page refreshed every few seconds wants,
    /// since counting is what the call costs (the dashboard's `/queues` on a million jobs, on a
    /// loaded 2-core machine: about 290 ms at 100,000, about 170 ms at 10,000).
    ///
    /// ```no_run
    /// # async fn demo(admin: oban_core::admin::Admin) -> oban_core::Result<()> {
    /// let queues = admin.queues_counting(10_000).await?;
    /// # let _ = queues;
    /// # Ok(()) }
    /// ```
    pub async fn queues_counting(&self, exact_up_to: u64) -> Result<Vec<QueueOverview>> {
        let depths = self.engine.job_count_depths(exact_up_to).await?;
        let producers = self.engine.producer_list(None).await?;
        let now = Utc::now();
        let mut queues: BTreeMap<String, QueueOverview> = BTreeMap::new();
        let entry = |queues: &mut BTreeMap<String, QueueOverview>, name: &str| {
            queues
                .entry(name.to_owned())
                .or_insert_with(|| QueueOverview {
                    queue: name.to_owned(),
                    total: 0,
                    states: Vec::new(),
                    oldest_available: None,
                    nodes: Vec::new(),
                    limits: None,
                })
                .queue
                .clone()
        };
        for count in depths.counts {
            let name = entry(&mut queues, &count.queue);
            let queue = queues.get_mut(&name).expect("just inserted");
            queue.total += count.count;
            queue.states.push(StateTally {
                state: count.state,
                count: count.count,
                exact: count.exact,
            });
        }
        for (name, age) in depths.oldest_available {
            let name = entry(&mut queues, &name);
            queues
                .get_mut(&name)
                .expect("just inserted")
                .oldest_available = Some(age);
        }
        for producer in producers {
            let name = entry(&mut queues, &producer.queue);
            let meta = &producer.meta;
            let count = |key: &str| {
                meta.get(key)
                    .and_then(Value::as_u64)
                    .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
            };
            queues
                .get_mut(&name)
                .expect("just inserted")
                .nodes
                .push(NodeQueue {
                    limit: count("limit"),
                    running: count("running"),
                    paused: meta.get("paused").and_then(Value::as_bool).unwrap_or(false),
                    node: producer.node,
                    producer: producer.uuid,
                    started_at: producer.started_at,
                    last_heartbeat_at: producer.updated_at,
                    heartbeat_age: (now - producer.updated_at).to_std().unwrap_or_default(),
                });
        }
        for limited in self.limits(OVERVIEW_TOP).await? {
            let name = entry(&mut queues, &limited.queue);
            queues.get_mut(&name).expect("just inserted").limits = Some(limited);
        }
        let mut queues: Vec<QueueOverview> = queues.into_values().collect();
        for queue in &mut queues {
            queue.states.sort_by_key(|s| s.state);
            queue
                .nodes
                .sort_by(|a, b| a.node.cmp(&b.node).then(a.producer.cmp(&b.producer)));
        }
        Ok(queues)
    }

    /// Tells the nodes running `queue` to stop fetching its jobs (running ones finish): every
    /// node, or only the node named `node`. The signal is the one `Oban::pause_queue` and Oban
    /// Web send; on PostgreSQL it reaches every node listening on the database, on SQLite only
    /// the nodes of this process (SQLite has no notifications between processes).
    pub async fn pause(&self, queue: &str, node: Option<&str>) -> Result<()> {
        self.signal(Command::Pause, queue, node).await
    }

    /// Tells the nodes running `queue` (all, or `node`) to fetch again. See [`Admin::pause`].
    pub async fn resume(&self, queue: &str, node: Option<&str>) -> Result<()> {
        self.signal(Command::Resume, queue, node).await
    }

    /// Sets the concurrency limit of `queue` on every node running it, or on `node`. See
    /// [`Admin::pause`].
    ///
    /// # Errors
    /// A limit of 0 (pause the queue instead).
    pub async fn scale(&self, queue: &str, limit: u32, node: Option<&str>) -> Result<()> {
        if limit == 0 {
            return Err(Error::Config(format!(
                "cannot scale queue `{queue}` to 0: pause it instead"
            )));
        }
        self.signal(Command::Scale(limit), queue, node).await
    }

    async fn signal(&self, command: Command, queue: &str, node: Option<&str>) -> Result<()> {
        if queue.is_empty() {
            return Err(Error::Config("a queue command needs a queue name".into()));
        }
        let signal = Signal {
            command,
            queue: Some(queue.to_owned()),
            ident: node.map(|node| format!("Oban.{node}")),
        };
        self.send(signal).await
    }

    /// Sends a signal on the signal channel, as `Shared::broadcast` does for other nodes.
    pub(super) async fn send(&self, signal: Signal) -> Result<()> {
        let payload = serde_json::to_value(&signal).map_err(|e| Error::Config(e.to_string()))?;
        self.engine.notify(Channel::Signal, payload).await
    }
}
