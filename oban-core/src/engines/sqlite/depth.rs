//! Queue depths for the depth gauges: a plain grouped count.
//!
//! A SQLite database is embedded and small next to a PostgreSQL server's tables, so every count
//! is exact ([`StateCount::exact`] is always true and the bound is not used): one scan of the
//! table per pass, grouped by queue and state, and the oldest available job of each queue
//! through the fetch index.

use std::str::FromStr;
use std::time::Duration;

use super::row::{now, parse_ts};
use super::SqliteEngine;
use crate::engine::{QueueDepths, StateCount};
use crate::error::Result;
use crate::job::JobState;

/// See [`Engine::job_count_depths`](crate::engine::Engine::job_count_depths).
pub(super) async fn count_depths(engine: &SqliteEngine) -> Result<QueueDepths> {
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT queue, state, count(*) FROM oban_jobs GROUP BY queue, state")
            .fetch_all(&engine.pool)
            .await?;
    let mut counts = Vec::with_capacity(rows.len());
    for (queue, state, count) in rows {
        // A state this runtime does not know (written by hand) is not a gauge it reports.
        let Ok(state) = JobState::from_str(&state) else {
            continue;
        };
        counts.push(StateCount {
            queue,
            state,
            count: u64::try_from(count).unwrap_or_default(),
            exact: true,
        });
    }
    let oldest: Vec<(String, String)> = sqlx::query_as(
        "SELECT queue, min(scheduled_at) FROM oban_jobs WHERE state = 'available' GROUP BY queue",
    )
    .fetch_all(&engine.pool)
    .await?;
    let now = now();
    let mut oldest_available = Vec::with_capacity(oldest.len());
    for (queue, at) in oldest {
        let age = (now - parse_ts(&at)?).to_std().unwrap_or(Duration::ZERO);
        oldest_available.push((queue, age));
    }
    Ok(QueueDepths {
        counts,
        oldest_available,
    })
}
