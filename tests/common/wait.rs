//! Bounded waits: every helper here polls a condition (or waits on a channel) and fails the test
//! with a message naming what it waited for once its time limit is up. Tests use these instead
//! of sleeping for a guessed while.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use oban::engine::Engine;
use oban::{Job, JobFilter, JobState};
use sqlx::PgPool;
use tokio::sync::mpsc::UnboundedReceiver;

/// How often the helpers poll unless told otherwise.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `check` every 20 ms until it holds; fails naming `what` after `limit`.
pub async fn wait_until(what: impl Display, limit: Duration, check: impl AsyncFnMut() -> bool) {
    wait_until_every(what, limit, POLL, check).await;
}

/// Polls `check` every `every` until it holds; fails naming `what` after `limit`.
pub async fn wait_until_every(
    what: impl Display,
    limit: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> bool,
) {
    poll(what, limit, every, async || {
        if check().await {
            Ok(())
        } else {
            Err(String::new())
        }
    })
    .await;
}

/// Polls `probe` every `every` until it returns `Ok`, returning its value; fails naming `what`
/// and the last `Err` (what was seen instead) after `limit`.
pub async fn poll<T>(
    what: impl Display,
    limit: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        let seen = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if started.elapsed() >= limit {
            let seen = if seen.is_empty() {
                String::new()
            } else {
                format!("; last seen: {seen}")
            };
            panic!("timed out after {limit:?} waiting for {what}{seen}");
        }
        tokio::time::sleep(every).await;
    }
}

/// `future`'s output, if it comes within `limit`; fails naming `what` otherwise.
pub async fn within<T>(what: impl Display, limit: Duration, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// The next message on `rx`, within `limit`; fails naming `what` on a timeout or a closed
/// channel.
pub async fn recv<T>(rx: &mut UnboundedReceiver<T>, what: impl Display, limit: Duration) -> T {
    let what = what.to_string();
    within(&what, limit, rx.recv())
        .await
        .unwrap_or_else(|| panic!("the channel closed while waiting for {what}"))
}

/// Waits until `rx` is closed (its senders are gone), within `limit`; fails naming `what` if a
/// message comes instead or time runs out.
pub async fn closed<T: std::fmt::Debug>(
    rx: &mut UnboundedReceiver<T>,
    what: impl Display,
    limit: Duration,
) {
    let what = what.to_string();
    if let Some(message) = within(&what, limit, rx.recv()).await {
        panic!("waiting for {what}, got a message instead: {message:?}");
    }
}

/// An observation window, not a wait: calls `sample` every `every` until `window` has passed
/// (at least once), for a test that asserts in `sample` what must hold throughout.
pub async fn sample_for(window: Duration, every: Duration, mut sample: impl AsyncFnMut()) {
    let started = Instant::now();
    loop {
        sample().await;
        if started.elapsed() >= window {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs in PostgreSQL, by SQL

/// Polls until job `id` is in `state` (10 s at most), returning the job.
pub async fn wait_for_state(pool: &PgPool, id: i64, state: &str) -> Job {
    wait_for_state_within(pool, id, state, Duration::from_secs(10)).await
}

/// Polls until job `id` is in `state`, at most `limit`, returning the job.
pub async fn wait_for_state_within(pool: &PgPool, id: i64, state: &str, limit: Duration) -> Job {
    poll(
        format!("job {id} to reach state `{state}`"),
        limit,
        POLL,
        async || {
            let current: Option<String> =
                sqlx::query_scalar("SELECT state::text FROM oban_jobs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .expect("query job state");
            if current.as_deref() == Some(state) {
                Ok(())
            } else {
                Err(format!(
                    "it is {current:?}: {:?}",
                    super::fetch_job(pool, id).await
                ))
            }
        },
    )
    .await;
    super::fetch_job(pool, id).await
}

/// Polls until `sql` (a `SELECT count(*)`) returns `expected`, at most `limit`.
pub async fn wait_for_count(pool: &PgPool, sql: &str, expected: i64, limit: Duration) {
    poll(
        format!("`{sql}` to count {expected}"),
        limit,
        Duration::from_millis(25),
        async || {
            let count: i64 = sqlx::query_scalar(sql)
                .fetch_one(pool)
                .await
                .expect("count query");
            if count == expected {
                Ok(())
            } else {
                Err(format!("{count}"))
            }
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Jobs on any engine, through the `Engine` trait

/// Polls until job `id` is in `state`, at most `limit`, returning the job.
pub async fn wait_for_job_state(
    engine: &dyn Engine,
    id: i64,
    state: JobState,
    limit: Duration,
) -> Job {
    poll(
        format!("job {id} to reach {state}"),
        limit,
        POLL,
        async || {
            let job = engine
                .job_get(id)
                .await
                .expect("read job")
                .expect("job exists");
            if job.state == state {
                Ok(job)
            } else {
                Err(format!("{job:?}"))
            }
        },
    )
    .await
}

/// Polls until `filter` matches `expected` jobs, at most `limit`.
pub async fn wait_for_job_count(
    engine: &dyn Engine,
    filter: &JobFilter,
    expected: usize,
    limit: Duration,
) {
    poll(
        format!("{expected} jobs to match {filter:?}"),
        limit,
        Duration::from_millis(25),
        async || {
            let count = engine
                .job_list(filter, 1_000_000)
                .await
                .expect("list")
                .len();
            if count == expected {
                Ok(())
            } else {
                Err(format!("{count} match"))
            }
        },
    )
    .await;
}
