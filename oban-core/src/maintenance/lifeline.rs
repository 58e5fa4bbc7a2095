//! The lifeline: rescues jobs left `executing` by a node that is gone, or lost on their way to
//! a producer that lives.
//!
//! A node is gone when its producers stopped heartbeating. A live producer's heartbeat lists
//! the jobs it holds (`queue/held.rs`): a job claimed before that list was taken and missing
//! from it never reached the producer (a connection lost while the rows streamed, a row that
//! did not decode) and is rescued too. Jobs a live producer holds are never touched, however
//! long they run.
//!
//! It judges only this runtime's producers: rows in `oban_producers` that Rust heartbeats
//! write (marked, see [`PRODUCER_RUNTIME_KEY`](crate::engine::PRODUCER_RUNTIME_KEY)), and jobs
//! whose `attempted_by` names a producer that has no row at all, after `unknown_after`. Jobs
//! executing on Elixir Oban nodes (`attempted_by` is `[node]` without Pro; Pro's producers have
//! rows) and on Python Oban nodes (rows of their own) are never rescued here, however long
//! they run: their own lifelines do that. The reverse does not hold: those lifelines are
//! time-based and rescue long Rust jobs (see [`leader`](crate::maintenance::leader)).
//!
//! The lifeline runs on the Rust leader whichever implementation holds the leadership shared
//! with Elixir Oban.
//!
//! Every 5 s by default, the same pace as heartbeats, so a lost claim comes back within about
//! 10 s; the pass reads executing jobs only, through an index, and the producers' rows.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, StopSignal};
use crate::error::Result;
use crate::events::{Event, Events};
use crate::maintenance::leader::Leadership;
use crate::maintenance::until_stopped;

/// When a job counts as orphaned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LifelineConfig {
    pub(crate) interval: Duration,
    /// A producer silent for this long is gone.
    pub(crate) stale_after: Duration,
    /// Jobs fetched by a producer the table never knew are rescued after running this long.
    pub(crate) unknown_after: Duration,
}

/// Rescues once; returns how many jobs were rescued.
pub(crate) async fn run_once(engine: &dyn Engine, config: &LifelineConfig) -> Result<u64> {
    engine
        .job_rescue_orphaned(config.stale_after, config.unknown_after)
        .await
}

/// Rescues every `interval` while this node leads.
pub(crate) async fn run(
    engine: Arc<dyn Engine>,
    leadership: Arc<Leadership>,
    config: LifelineConfig,
    events: Events,
    mut stop: StopSignal,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if !leadership.is_leader() {
            continue;
        }
        let Some(rescued) = until_stopped(&mut stop, run_once(&*engine, &config)).await else {
            return;
        };
        match rescued {
            Ok(0) => {}
            Ok(rescued) => {
                tracing::warn!(
                    rescued,
                    "rescued executing jobs that no live producer holds"
                );
                events.emit(|| Event::Rescued { count: rescued });
                crate::measure::jobs::jobs_rescued(rescued);
            }
            Err(error) => tracing::warn!(%error, "rescuing orphaned jobs failed"),
        }
    }
}
