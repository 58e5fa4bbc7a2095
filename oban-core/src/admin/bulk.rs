//! Bulk changes in keyset batches: [`Admin::retry`], [`Admin::cancel`], [`Admin::delete`],
//! [`Admin::replay`], and [`Admin::prune`].
//!
//! A bulk operation walks the matching ids in id order (`id > last`, at most `batch` per step,
//! [`Engine::job_ids`](crate::engine::Engine::job_ids)) and changes each step's jobs with one
//! short statement of its own, restricted to those ids and re-checking the filter: no statement
//! touches more than `batch` rows, and no lock on the table outlives one batch, so nodes keep
//! fetching and acking while millions of rows change. Jobs inserted during the walk with higher
//! ids are included when they match; a job changed by someone else between the listing and its
//! batch's statement is changed only if it still matches.
//!
//! `progress` is called after every batch of a walk with the number of jobs changed so far
//! (so a batch whose jobs no longer qualify, for a retry of available jobs say, repeats the
//! previous number); [`Admin::prune`] calls it after each batch that deleted something. A
//! failure stops the walk: the batches before it stay done and the error is returned.

use crate::engine::{Command, Signal};
use crate::error::{Error, Result};
use crate::job::JobState;

use super::{Admin, JobQuery};

/// What a walk does to each batch.
#[derive(Debug, Clone, Copy)]
enum Change {
    Retry,
    Cancel,
    Delete,
}

impl Admin {
    /// Makes matching jobs that are neither executing nor available available now, raising
    /// `max_attempts` to `attempt + 1` where it is spent (as `Oban::retry_jobs` does), in
    /// batches of `batch` ids; `progress` receives the number changed so far after each batch.
    /// Returns how many changed.
    ///
    /// ```no_run
    /// # async fn demo(admin: oban_core::admin::Admin) -> oban_core::Result<()> {
    /// use oban_core::admin::JobQuery;
    /// use oban_core::{JobFilter, JobState};
    ///
    /// let stuck = JobQuery::new(JobFilter::new().queue("mailers").state(JobState::Retryable));
    /// let retried = admin.retry(&stuck, 1_000, &mut |done| eprintln!("{done}")).await?;
    /// # let _ = retried;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A query with no condition ([`Error::EmptyFilter`]: use [`JobFilter::all`](crate::JobFilter::all)
    /// to mean every job); a batch of 0; a database error (the batches before it stay done).
    pub async fn retry(
        &self,
        query: &JobQuery,
        batch: u32,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64> {
        self.walk(Change::Retry, "retry", query, batch, progress)
            .await
    }

    /// Cancels matching jobs that have not finished, in batches (see [`Admin::retry`]). Jobs
    /// that were executing are stopped on their nodes by the same `pkill` signal
    /// `Oban::cancel_jobs` sends (on SQLite, only nodes of this process hear it; on another
    /// process's node the job runs to its end and its outcome is not recorded).
    pub async fn cancel(
        &self,
        query: &JobQuery,
        batch: u32,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64> {
        self.walk(Change::Cancel, "cancel", query, batch, progress)
            .await
    }

    /// Deletes matching jobs that are not executing, in batches (see [`Admin::retry`]).
    pub async fn delete(
        &self,
        query: &JobQuery,
        batch: u32,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64> {
        self.walk(Change::Delete, "delete", query, batch, progress)
            .await
    }

    /// Brings discarded and cancelled jobs back: [`Admin::retry`] limited to those two states,
    /// so each runs again with at least one more attempt. A query without states means both.
    ///
    /// # Errors
    /// A query naming another state (say what to use instead: `retry` for the others).
    pub async fn replay(
        &self,
        query: &JobQuery,
        batch: u32,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64> {
        let replayable = [JobState::Discarded, JobState::Cancelled];
        let others: Vec<&str> = query
            .filter
            .states
            .iter()
            .filter(|s| !replayable.contains(s))
            .map(|s| s.as_str())
            .collect();
        if !others.is_empty() {
            return Err(Error::Config(format!(
                "replay brings back discarded and cancelled jobs only, and the query names {}: use retry for other states",
                others.join(", ")
            )));
        }
        let mut query = query.clone();
        if query.filter.states.is_empty() {
            query.filter.states = replayable.to_vec();
        }
        self.walk(Change::Retry, "replay", &query, batch, progress)
            .await
    }

    /// Deletes completed, cancelled and discarded jobs that finished more than `older_than`
    /// ago, as the leader's pruner does, `batch` at most per statement; `progress` receives the
    /// number deleted so far after each. Returns how many.
    ///
    /// # Errors
    /// A batch of 0; a database error (the batches before it stay done).
    pub async fn prune(
        &self,
        older_than: std::time::Duration,
        batch: u32,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64> {
        check_batch(batch)?;
        let mut done = 0;
        loop {
            let pruned = self.engine.job_prune(older_than, batch).await?;
            done += pruned;
            if pruned > 0 {
                progress(done);
            }
            if pruned < u64::from(batch) {
                return Ok(done);
            }
        }
    }

    async fn walk(
        &self,
        change: Change,
        operation: &'static str,
        query: &JobQuery,
        batch: u32,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64> {
        check_batch(batch)?;
        let filter = query.filter();
        filter.check_bulk(operation)?;
        let mut left = query.limit.unwrap_or(u64::MAX);
        let mut after = 0_i64;
        let mut done = 0;
        while left > 0 {
            let step = u32::try_from(left).unwrap_or(u32::MAX).min(batch);
            let ids = self.engine.job_ids(&filter, after, step).await?;
            let Some(&last) = ids.last() else {
                break;
            };
            after = last;
            left -= ids.len() as u64;
            let listed = ids.len();
            let mut this = filter.clone();
            this.ids = Some(ids);
            done += match change {
                Change::Retry => self.engine.job_retry_many(&this).await?,
                Change::Delete => self.engine.job_delete_many(&this).await?,
                Change::Cancel => {
                    let (cancelled, executing) = self.engine.job_cancel_many(&this).await?;
                    self.kill(executing).await;
                    cancelled
                }
            };
            progress(done);
            if listed < step as usize {
                break;
            }
        }
        Ok(done)
    }

    /// Tells the nodes to stop these cancelled jobs (`pkill`), as `Oban::cancel_jobs` does.
    async fn kill(&self, executing: Vec<i64>) {
        for job_id in executing {
            let signal = Signal {
                command: Command::Kill(job_id),
                queue: None,
                ident: None,
            };
            if let Err(error) = self.send(signal).await {
                tracing::warn!(%error, job_id, "cancelled, but the nodes could not be told to stop the running job; it runs to its end and its outcome is not recorded");
                return;
            }
        }
    }
}

fn check_batch(batch: u32) -> Result<()> {
    if batch == 0 {
        return Err(Error::Config("a batch needs at least 1 job".into()));
    }
    Ok(())
}
