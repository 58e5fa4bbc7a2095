//! Setting and reading a queue's limits, the one path that [`Oban::set_queue_limits`] and
//! [`Admin::set_queue_limits`] (and their readers) share: checked, stored through the engine,
//! and the `rust_limits` signal that tells every node to read them again.
//!
//! [`Oban::set_queue_limits`]: crate::Oban::set_queue_limits
//! [`Admin::set_queue_limits`]: crate::admin::Admin::set_queue_limits

use super::Limits;
use crate::engine::{Command, Engine, LimitsUsage, Signal};
use crate::error::{Error, Result};

/// Checks `limits` for `queue` and stores them (empty limits remove the queue's row); returns
/// the signal to send to every node, which the caller sends its own way (a node applies it
/// here too; an admin only notifies).
pub(crate) async fn store(engine: &dyn Engine, queue: &str, limits: &Limits) -> Result<Signal> {
    if queue.trim().is_empty() {
        return Err(Error::Config("queue limits need a queue name".into()));
    }
    limits.check(queue)?;
    engine.queue_limits_put(queue, Some(limits)).await?;
    Ok(Signal {
        command: Command::Limits,
        queue: Some(queue.to_owned()),
        ident: None,
    })
}

/// `queue`'s stored limits and what they count now (at most `top` partitions each, the
/// fullest first); `None` when the queue has no limits.
pub(crate) async fn read(
    engine: &dyn Engine,
    queue: &str,
    top: u32,
) -> Result<Option<(Limits, LimitsUsage)>> {
    let Some((_, limits)) = engine.queue_limits_get(Some(queue)).await?.pop() else {
        return Ok(None);
    };
    let usage = engine.queue_limits_usage(queue, &limits, top).await?;
    Ok(Some((limits, usage)))
}

/// Every limited queue's limits and what they count now, by queue name: one read of the
/// limits, then one of the usage per limited queue.
pub(crate) async fn read_all(
    engine: &dyn Engine,
    top: u32,
) -> Result<Vec<(String, Limits, LimitsUsage)>> {
    let stored = engine.queue_limits_get(None).await?;
    let mut all = Vec::with_capacity(stored.len());
    for (queue, limits) in stored {
        let usage = engine.queue_limits_usage(&queue, &limits, top).await?;
        all.push((queue, limits, usage));
    }
    Ok(all)
}
