//! [`ProducerInfo`]: a producer as its heartbeat recorded it.

use serde_json::Value;

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
