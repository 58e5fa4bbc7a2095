//! The reindexer: rebuilds the job table's indexes on a schedule (default daily at midnight
//! UTC), concurrently, so bloat from the queue's constant churn does not pile up.

use std::sync::Arc;

use chrono::Utc;

use crate::cron::{floor_minute, until_next_minute};
use crate::engine::{Engine, StopSignal};
use crate::maintenance::leader::Leadership;
use crate::maintenance::until_stopped;

/// Reindexes at the minutes `due` says, while this node leads, until the node stops (a reindex
/// in flight then is dropped: see [`until_stopped`]).
pub(crate) async fn run(
    engine: Arc<dyn Engine>,
    leadership: Arc<Leadership>,
    due: impl Fn(chrono::DateTime<Utc>) -> bool + Send + Sync + 'static,
    mut stop: StopSignal,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(until_next_minute(Utc::now())) => {}
            _ = stop.changed() => return,
        }
        if leadership.is_leader() && due(floor_minute(Utc::now())) {
            tracing::info!("reindexing oban_jobs");
            match until_stopped(&mut stop, engine.schema_reindex()).await {
                None => {
                    tracing::info!("node stopping: reindexing abandoned");
                    return;
                }
                Some(Err(error)) => tracing::warn!(%error, "reindexing failed"),
                Some(Ok(())) => {}
            }
        }
    }
}
