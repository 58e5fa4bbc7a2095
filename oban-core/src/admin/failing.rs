//! The top failing workers: [`Admin::failing`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Admin;
use crate::error::Result;
use crate::job::JobState;

/// One worker of one queue with recent failures: how many of its jobs wait for another attempt
/// (transient failures, so far) against how many were discarded (out of attempts or discarded
/// by the worker), and its most frequent last errors.
///
/// JSON: `{"worker": "SendReceipt", "queue": "mailers", "retryable": 12, "discarded": 3,
/// "errors": [{"message": "smtp timeout", "count": 14}, ..]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FailingWorker {
    /// The worker's stored name.
    pub worker: String,
    /// The queue.
    pub queue: String,
    /// Retryable jobs whose last attempt started within the window.
    pub retryable: u64,
    /// Jobs discarded within the window.
    pub discarded: u64,
    /// The most frequent messages of the jobs' last error, most frequent first (ties by
    /// message), at most the `top_errors` asked for. Jobs without a recorded error are not
    /// listed here but are counted above.
    pub errors: Vec<ErrorCount>,
}

impl FailingWorker {
    /// `retryable + discarded`.
    pub fn failures(&self) -> u64 {
        self.retryable + self.discarded
    }
}

/// A last-error message and how many of a worker's failed jobs end with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ErrorCount {
    /// The `error` of the last entry of the jobs' `errors` (as the worker's error rendered it,
    /// with its source chain: `"top: cause: root"`).
    pub message: String,
    /// How many jobs.
    pub count: u64,
}

impl Admin {
    /// Workers with failures within `since` (retryable jobs attempted, discarded jobs
    /// discarded), most failures first, each with its `top_errors` most frequent last-error
    /// messages. One grouped statement
    /// ([`Engine::job_failures`](crate::engine::Engine::job_failures)).
    ///
    /// ```no_run
    /// # async fn demo(admin: oban_core::admin::Admin) -> oban_core::Result<()> {
    /// use std::time::Duration;
    ///
    /// for worker in admin.failing(Duration::from_secs(3600), 3).await? {
    ///     println!("{} ({}): {} retryable, {} discarded", worker.worker, worker.queue, worker.retryable, worker.discarded);
    ///     for error in &worker.errors {
    ///         println!("  {} x {}", error.count, error.message);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn failing(&self, since: Duration, top_errors: usize) -> Result<Vec<FailingWorker>> {
        let groups = self.engine.job_failures(since).await?;
        let mut workers: BTreeMap<(String, String), (FailingWorker, BTreeMap<String, u64>)> =
            BTreeMap::new();
        for group in groups {
            let (worker, errors) = workers
                .entry((group.worker.clone(), group.queue.clone()))
                .or_insert_with(|| {
                    (
                        FailingWorker {
                            worker: group.worker.clone(),
                            queue: group.queue.clone(),
                            retryable: 0,
                            discarded: 0,
                            errors: Vec::new(),
                        },
                        BTreeMap::new(),
                    )
                });
            match group.state {
                JobState::Retryable => worker.retryable += group.count,
                JobState::Discarded => worker.discarded += group.count,
                _ => continue,
            }
            if let Some(message) = group.error {
                *errors.entry(message).or_default() += group.count;
            }
        }
        let mut failing: Vec<FailingWorker> = workers
            .into_values()
            .map(|(mut worker, errors)| {
                let mut errors: Vec<ErrorCount> = errors
                    .into_iter()
                    .map(|(message, count)| ErrorCount { message, count })
                    .collect();
                errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
                errors.truncate(top_errors);
                worker.errors = errors;
                worker
            })
            .collect();
        failing.sort_by(|a, b| {
            b.failures()
                .cmp(&a.failures())
                .then(a.worker.cmp(&b.worker))
                .then(a.queue.cmp(&b.queue))
        });
        Ok(failing)
    }
}
