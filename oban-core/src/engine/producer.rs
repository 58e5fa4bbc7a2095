//! [`ProducerInfo`]: a producer as its heartbeat recorded it.

use serde_json::Value;

/// The key every producer heartbeat written by this runtime carries in `meta`, with the value
/// [`PRODUCER_RUNTIME`]: `"runtime": "rust"`. Elixir Oban Pro and Python Oban write rows in
/// `oban_producers` too, with heartbeats of their own pace; the heartbeat lifeline judges only
/// rows so marked (or, from Rust nodes of earlier versions, rows with a `held` snapshot) and
/// forgets no other row.
pub const PRODUCER_RUNTIME_KEY: &str = "runtime";

/// The value of [`PRODUCER_RUNTIME_KEY`] in this runtime's heartbeats.
pub const PRODUCER_RUNTIME: &str = "rust";

/// `meta` with this runtime's mark added (an engine's `producer_heartbeat` stores this).
pub fn mark_producer_meta(mut meta: Value) -> Value {
    if let Value::Object(map) = &mut meta {
        map.insert(PRODUCER_RUNTIME_KEY.into(), PRODUCER_RUNTIME.into());
    }
    meta
}

/// A producer as recorded by its heartbeat.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProducerInfo {
    /// The producer's id (second element of a job's `attempted_by`).
    pub uuid: uuid::Uuid,
    /// Its node.
    pub node: String,
    /// Its queue.
    pub queue: String,
    /// `limit`, `paused`, `running` as of the last heartbeat.
    pub meta: Value,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Its last heartbeat.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}
