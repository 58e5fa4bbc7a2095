//! [`Notifier`]: messages between the nodes on one database.

use async_trait::async_trait;
use serde_json::Value;

use crate::error::Result;
use crate::notifier::{Channel, Notice};

/// The node's stop signal: `Some(deadline)` once it is stopping.
pub type StopSignal = tokio::sync::watch::Receiver<Option<tokio::time::Instant>>;

/// Sends and receives notifications among the nodes sharing a database (Elixir Oban's
/// `Oban.Notifier`): inserts that wake queues, queue and job control, leadership changes.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends a notification to every node on this database.
    async fn notify(&self, channel: Channel, payload: Value) -> Result<()>;

    /// Listens on every channel, sending decoded notices to `sink` until `stop`; reconnects on
    /// its own. Returns `false` (and listens to nothing) when notifications do not reach this
    /// node, e.g. behind a transaction-mode pooler: the node then relies on polling.
    async fn listen(
        &self,
        sink: tokio::sync::mpsc::UnboundedSender<Notice>,
        stop: StopSignal,
    ) -> Result<bool>;
}
