//! Queue control: pausing, resuming, scaling, starting and stopping queues and killing running
//! jobs, on this node or across nodes, and each node's view of a queue.
//!
//! A command becomes a [`Signal`], applied here at once when it concerns this node and sent to
//! the others over the signal channel; signals from other nodes (Rust or Elixir Oban, Oban Web)
//! arrive through [`dispatch`] and take the same path. Queues that the leader's stager filled
//! are woken on every node by [`wake_staged`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::engine::{LimitsUsage, ProducerInfo};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::limits::Limits;
use crate::maintenance::leader::Leadership;
use crate::node::{Oban, Shared};
use crate::notifier::{Channel, Command, Notice, Signal};
use crate::queue::producer::Control;

/// Which nodes a queue command applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nodes {
    /// Every node running the queue (through a notification).
    All,
    /// Only this node.
    Local,
    /// Only the node with this name.
    Only(String),
}

/// One node's view of a queue, from its producer's heartbeat.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// The node running it.
    pub node: String,
    /// The queue.
    pub queue: String,
    /// Its concurrency limit (on this node).
    pub limit: u32,
    /// The queue's fleet-wide limits as this producer last read them.
    pub limits: Option<Limits>,
    /// Whether it is paused.
    pub paused: bool,
    /// Jobs running at the last heartbeat.
    pub running: u32,
    /// When the producer started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Its last heartbeat.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl QueueInfo {
    /// Reads a producer's heartbeat meta (`limit`, `paused`, `running`; missing ones are 0 and
    /// false).
    fn from_producer(producer: ProducerInfo) -> Self {
        let meta = &producer.meta;
        QueueInfo {
            limit: meta.get("limit").and_then(Value::as_u64).unwrap_or(0) as u32,
            limits: crate::limits::heartbeat::read(meta),
            paused: meta.get("paused").and_then(Value::as_bool).unwrap_or(false),
            running: meta.get("running").and_then(Value::as_u64).unwrap_or(0) as u32,
            node: producer.node,
            queue: producer.queue,
            started_at: producer.started_at,
            updated_at: producer.updated_at,
        }
    }
}

impl Oban {
    /// Stops fetching new jobs of `queue` (running ones finish).
    pub async fn pause_queue(&self, queue: &str, nodes: Nodes) -> Result<()> {
        self.queue_signal(Command::Pause, queue, nodes).await
    }

    /// Resumes a paused queue.
    pub async fn resume_queue(&self, queue: &str, nodes: Nodes) -> Result<()> {
        self.queue_signal(Command::Resume, queue, nodes).await
    }

    /// Changes a queue's concurrency limit.
    pub async fn scale_queue(&self, queue: &str, limit: u32, nodes: Nodes) -> Result<()> {
        if limit == 0 {
            return Err(Error::Config(format!(
                "cannot scale queue `{queue}` to 0: pause it instead"
            )));
        }
        self.queue_signal(Command::Scale(limit), queue, nodes).await
    }

    /// Starts running `queue` with `limit` on the chosen nodes (where it is not running yet).
    ///
    /// A node refuses to start a queue whose workers need a `State<T>` it was not given (as
    /// [`Builder::start`](crate::Builder::start) refuses such a queue): with
    /// [`Nodes::Local`], or [`Nodes::Only`] naming this node, the refusal is this call's error,
    /// naming the worker and the missing type; other nodes log it at error level. With
    /// [`Nodes::All`] the other nodes are told in any case (they may have the state), and this
    /// node's refusal is logged.
    ///
    /// # Errors
    /// A limit of 0 or an empty name; this node's refusal as above; a notification that could
    /// not be sent.
    pub async fn start_queue(&self, queue: &str, limit: u32, nodes: Nodes) -> Result<()> {
        if limit == 0 || queue.is_empty() {
            return Err(Error::Config(format!(
                "queue `{queue}` needs a name and a limit of at least 1"
            )));
        }
        let only_here = match &nodes {
            Nodes::Local => true,
            Nodes::Only(node) => **node == *self.shared().node,
            Nodes::All => false,
        };
        if only_here {
            self.shared().check_queue_state(queue)?;
        }
        self.queue_signal(Command::Start(limit), queue, nodes).await
    }

    /// Stops running `queue` on the chosen nodes; their running jobs get 15 s to finish.
    pub async fn stop_queue(&self, queue: &str, nodes: Nodes) -> Result<()> {
        self.queue_signal(Command::Stop, queue, nodes).await
    }

    async fn queue_signal(&self, command: Command, queue: &str, nodes: Nodes) -> Result<()> {
        let signal = Signal {
            command,
            queue: Some(queue.into()),
            ident: None,
        };
        self.shared().broadcast(signal, nodes).await
    }

    /// Sets `queue`'s limits across the fleet (see [`crate::limits`]): stored at once, obeyed by
    /// the next fetch of every node, and announced so that every producer of the queue reads
    /// them (claiming nothing ahead while limited); empty limits remove them. Limits set here
    /// last until changed again: a node starting with
    /// [`Builder::queue_limits`](crate::Builder::queue_limits) for the queue replaces them.
    ///
    /// ```no_run
    /// # async fn run(oban: oban_core::Oban) -> oban_core::Result<()> {
    /// use oban_core::limits::{GlobalLimit, Limits};
    /// oban.set_queue_limits("provider", Limits::new().global(GlobalLimit::new(5))).await?;
    /// // and without any
    /// oban.set_queue_limits("provider", Limits::new()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Limits that [`Limits::check`] refuses; the database's error; a notification that could
    /// not be sent (the limits are stored then, and producers read them within a heartbeat).
    pub async fn set_queue_limits(&self, queue: &str, limits: Limits) -> Result<()> {
        let shared = self.shared();
        let signal = crate::limits::store::store(shared.engine.as_ref(), queue, &limits).await?;
        shared.broadcast(signal, Nodes::All).await
    }

    /// `queue`'s stored limits across the fleet and what they count now (jobs running per
    /// partition of the global limit, starts in the window per partition of the rate limit, at
    /// most `top` partitions each, the fullest first); `None` when the queue has no limits.
    pub async fn queue_limits(
        &self,
        queue: &str,
        top: u32,
    ) -> Result<Option<(Limits, LimitsUsage)>> {
        crate::limits::store::read(self.shared().engine.as_ref(), queue, top).await
    }

    /// Every live node's view of `queue`: limit, paused, running jobs, fleet-wide limits.
    pub async fn check_queue(&self, queue: &str) -> Result<Vec<QueueInfo>> {
        let shared = self.shared();
        let live_since = chrono::Utc::now()
            - chrono::Duration::from_std(shared.stale_after).unwrap_or(chrono::Duration::MAX);
        let producers = shared.engine.producer_list(Some(queue)).await?;
        Ok(producers
            .into_iter()
            .filter(|p| p.updated_at >= live_since)
            .map(QueueInfo::from_producer)
            .collect())
    }
}

impl Shared {
    /// Acts on a signal meant for this node (idempotent: a signal may arrive twice).
    pub(crate) fn apply(self: &Arc<Self>, signal: &Signal) {
        if !signal.is_for(&self.node) {
            return;
        }
        let queue = signal.queue.as_deref().unwrap_or("*");
        let control = match signal.command {
            Command::Pause => Control::Pause,
            Command::Resume => Control::Resume,
            Command::Scale(limit) if limit > 0 => Control::Scale(limit),
            Command::Start(limit) => {
                if limit == 0 {
                    return;
                }
                if let Err(error) = self.check_queue_state(queue) {
                    tracing::error!(queue, %error, "queue not started");
                } else if self.start_producer(queue, limit, false) {
                    tracing::info!(queue, limit, "queue started");
                }
                return;
            }
            Command::Stop => {
                self.stop_producer(queue);
                return;
            }
            Command::Kill(job_id) => Control::Kill(job_id),
            Command::Limits => Control::Limits,
            Command::Scale(_) | Command::Ignored(_) => return,
        };
        for (name, producer) in self.producers.lock().expect("producers lock").iter() {
            if queue == "*" || name == queue || matches!(control, Control::Kill(_)) {
                let _ = producer.control.send(control);
            }
        }
    }

    /// Whether this node has the `State<T>` of every worker of `queue`; the error names the
    /// worker, the queue and the missing type.
    pub(crate) fn check_queue_state(&self, queue: &str) -> Result<()> {
        self.registry
            .check_state_of(&self.state, |declared| declared == queue)
            .map_err(|error| match error {
                Error::Config(why) => Error::Config(format!(
                    "node `{}` cannot start queue `{queue}`: {why}",
                    self.node
                )),
                other => other,
            })
    }

    /// Stops `queue`'s producer, if it runs here: its running jobs get 15 s to finish.
    fn stop_producer(&self, queue: &str) {
        if let Some(producer) = self.producers.lock().expect("producers lock").remove(queue) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            let _ = producer.control.send(Control::Stop(deadline));
            self.retired
                .lock()
                .expect("retired lock")
                .push(producer.task);
            tracing::info!(queue, "queue stopped");
        }
    }

    /// Applies a signal here if it concerns this node, and tells the other nodes.
    pub(crate) async fn broadcast(self: &Arc<Self>, signal: Signal, nodes: Nodes) -> Result<()> {
        let signal = match nodes {
            Nodes::Local => {
                self.apply(&signal);
                return Ok(());
            }
            Nodes::All => signal,
            Nodes::Only(node) => Signal {
                ident: Some(format!("Oban.{node}")),
                ..signal
            },
        };
        self.apply(&signal);
        let payload = serde_json::to_value(&signal).map_err(|e| Error::Config(e.to_string()))?;
        self.engine.notify(Channel::Signal, payload).await?;
        if !self.notifications.load(Ordering::Relaxed) {
            tracing::warn!(action = %signal.command.action(), "notifications do not reach this node; other nodes may not have received this signal");
        }
        Ok(())
    }
}

/// Routes notices from the listener to this node's producers and leader task.
pub(crate) async fn dispatch(shared: Weak<Shared>, mut notices: mpsc::UnboundedReceiver<Notice>) {
    while let Some(notice) = notices.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match notice {
            Notice::Insert { queue } => shared.wake(&queue),
            Notice::Signal(signal) => shared.apply(&signal),
            Notice::LeaderDown { name } if Leadership::is_ours(&name) => {
                shared.leadership.elect_now.notify_one();
            }
            Notice::LeaderDown { .. } => {}
            Notice::Reconnected => {
                shared.events.emit(|| Event::NotifierLost);
                shared.wake_all();
            }
        }
    }
}

/// What the stager calls with the queues that received jobs: wakes them here and, when
/// notifications work, on the other nodes.
pub(crate) fn wake_staged(
    shared: Weak<Shared>,
) -> impl Fn(Vec<String>) -> BoxFuture<'static, ()> + Send + Sync + 'static {
    move |queues: Vec<String>| {
        let shared = shared.clone();
        async move {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            for queue in &queues {
                shared.wake(queue);
                if shared.notifications.load(Ordering::Relaxed) {
                    let _ = shared
                        .engine
                        .notify(Channel::Insert, json!({ "queue": queue }))
                        .await;
                }
            }
        }
        .boxed()
    }
}
