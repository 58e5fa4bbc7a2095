//! The job counters and histograms, recorded where the matching events are emitted: attempts
//! (`queue/executor.rs`), inserts (`node.rs`), rescues, prunes and cron inserts (`maintenance/`).
//!
//! The hot path registers nothing: the handles of each (queue, worker) pair are registered with
//! the recorder once per process and kept in a map, so an attempt costs one read lock, two map
//! lookups by `&str` and the recorder's own atomic updates (nothing at all with no recorder).

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram, Label};

use crate::events::JobOutcome;
use crate::job::Job;

/// Every outcome, in the order of [`WorkerSeries::outcomes`].
const OUTCOMES: [JobOutcome; 6] = [
    JobOutcome::Completed,
    JobOutcome::Retryable,
    JobOutcome::Discarded,
    JobOutcome::Cancelled,
    JobOutcome::Snoozed,
    JobOutcome::Deferred,
];

/// The series of one worker in one queue.
struct WorkerSeries {
    outcomes: [Counter; 6],
    duration: Histogram,
    queue_time: Histogram,
}

impl WorkerSeries {
    fn register(queue: &str, worker: &str) -> Self {
        let labels = || {
            vec![
                Label::new("queue", queue.to_owned()),
                Label::new("worker", worker.to_owned()),
            ]
        };
        let outcomes = OUTCOMES.map(|outcome| {
            let mut labels = labels();
            labels.push(Label::new("outcome", outcome.as_str()));
            metrics::counter!("oban_jobs_total", labels)
        });
        Self {
            outcomes,
            duration: metrics::histogram!("oban_job_duration_seconds", labels()),
            queue_time: metrics::histogram!("oban_job_queue_time_seconds", labels()),
        }
    }

    fn record(&self, outcome: JobOutcome, duration: Duration, queue_time: Duration) {
        if let Some(at) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[at].increment(1);
        }
        self.duration.record(duration.as_secs_f64());
        self.queue_time.record(queue_time.as_secs_f64());
    }
}

/// Series by queue, then worker: looked up by `&str`, without allocating.
type JobSeries = HashMap<String, HashMap<String, WorkerSeries>>;

static JOBS: LazyLock<RwLock<JobSeries>> = LazyLock::new(Default::default);

static INSERTED: LazyLock<RwLock<HashMap<String, Counter>>> = LazyLock::new(Default::default);

/// An attempt of `job` ended with `outcome` after running `duration`, having waited
/// `queue_time`.
pub(crate) fn job_stop(job: &Job, outcome: JobOutcome, duration: Duration, queue_time: Duration) {
    {
        let series = JOBS.read().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = series.get(&job.queue).and_then(|w| w.get(&job.worker)) {
            series.record(outcome, duration, queue_time);
            return;
        }
    }
    let mut series = JOBS.write().unwrap_or_else(|e| e.into_inner());
    series
        .entry(job.queue.clone())
        .or_default()
        .entry(job.worker.clone())
        .or_insert_with(|| WorkerSeries::register(&job.queue, &job.worker))
        .record(outcome, duration, queue_time);
}

/// `inserted` came back from an insert: counts the rows written (not conflicts) per queue.
pub(crate) fn jobs_inserted(inserted: &[Job]) {
    let mut per_queue: Vec<(&str, u64)> = Vec::new();
    for job in inserted.iter().filter(|job| !job.conflict) {
        match per_queue.iter_mut().find(|(q, _)| *q == job.queue) {
            Some((_, n)) => *n += 1,
            None => per_queue.push((&job.queue, 1)),
        }
    }
    for (queue, n) in per_queue {
        let counters = INSERTED.read().unwrap_or_else(|e| e.into_inner());
        if let Some(counter) = counters.get(queue) {
            counter.increment(n);
            continue;
        }
        drop(counters);
        INSERTED
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(queue.to_owned())
            .or_insert_with(
                || metrics::counter!("oban_jobs_inserted_total", "queue" => queue.to_owned()),
            )
            .increment(n);
    }
}

/// The lifeline rescued `n` jobs.
pub(crate) fn jobs_rescued(n: u64) {
    metrics::counter!("oban_jobs_rescued_total").increment(n);
}

/// The pruner deleted `n` jobs.
pub(crate) fn jobs_pruned(n: u64) {
    metrics::counter!("oban_jobs_pruned_total").increment(n);
}

/// The cron scheduler inserted `n` jobs.
pub(crate) fn cron_inserted(n: usize) {
    metrics::counter!("oban_cron_jobs_inserted_total").increment(n as u64);
}
