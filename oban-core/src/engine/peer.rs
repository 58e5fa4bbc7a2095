//! [`Peer`]: leader election among the nodes on one database.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

/// Elects one leader among the nodes sharing a database (Elixir Oban's `Oban.Peer`, on its
/// `oban_peers` table): the leader runs the stager, lifeline, pruner, reindexer and cron.
#[async_trait]
pub trait Peer: Send + Sync {
    /// Claims or renews leadership `name` for `node` for `ttl`; returns whether `node` leads.
    async fn leader_elect(&self, name: &str, node: &str, ttl: Duration) -> Result<bool>;

    /// Gives up leadership `name` if `node` holds it.
    async fn leader_resign(&self, name: &str, node: &str) -> Result<()>;
}
