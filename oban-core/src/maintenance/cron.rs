//! The cron service: inserts periodic jobs once a minute while this node leads the Rust nodes
//! (whoever holds the leadership shared with Elixir Oban: no other implementation runs these
//! entries).

use std::sync::Arc;

use chrono::Utc;

use crate::cron::{until_next_minute, CronScheduler};
use crate::engine::{Engine, StopSignal};
use crate::events::{Event, Events};
use crate::maintenance::leader::Leadership;
use crate::maintenance::until_stopped;

/// Runs `scheduler` at every minute this node leads; forgets its place when it does not.
pub(crate) async fn run(
    engine: Arc<dyn Engine>,
    leadership: Arc<Leadership>,
    mut scheduler: CronScheduler,
    events: Events,
    mut stop: StopSignal,
) {
    loop {
        if leadership.is_leader() {
            let Some(inserted) =
                until_stopped(&mut stop, scheduler.run_at(&*engine, Utc::now())).await
            else {
                return;
            };
            match inserted {
                Ok(0) => {}
                Ok(inserted) => {
                    tracing::debug!(inserted, "inserted cron jobs");
                    events.emit(|| Event::CronInserted { count: inserted });
                    crate::measure::jobs::cron_inserted(inserted);
                }
                Err(error) => tracing::warn!(%error, "inserting cron jobs failed"),
            }
        } else {
            scheduler.reset();
        }
        tokio::select! {
            () = tokio::time::sleep(until_next_minute(Utc::now())) => {}
            _ = stop.changed() => return,
        }
    }
}
