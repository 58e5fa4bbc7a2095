//! Metrics: numbers to graph and alert on, recorded through the [`metrics`] facade.
//!
//! The runtime records into whatever recorder the application installs (a Prometheus exporter,
//! StatsD, your own); with none installed, recording does nothing and costs next to nothing.
//! With the `prometheus` feature, `Builder::prometheus` installs a Prometheus recorder and
//! serves `/metrics` itself (see the `prometheus` module, present with that feature).
//! Install the recorder **before starting the node**: as with every user of the facade, a series
//! registered before a recorder exists stays unrecorded (job series are registered at the first
//! job of each queue and worker, process-wide).
//!
//! # Series
//!
//! | type | name | labels | meaning |
//! | --- | --- | --- | --- |
//! | counter | `oban_jobs_total` | `queue`, `worker`, `outcome` | attempts that ended on this node; `outcome` is [`JobOutcome::as_str`](crate::JobOutcome::as_str): `completed`, `retryable`, `discarded`, `cancelled`, `snoozed`, `deferred` |
//! | histogram | `oban_job_duration_seconds` | `queue`, `worker` | how long each attempt ran |
//! | histogram | `oban_job_queue_time_seconds` | `queue`, `worker` | how long each job waited, from its `scheduled_at` to the attempt's start |
//! | counter | `oban_jobs_inserted_total` | `queue` | jobs inserted through this node ([`Oban::insert_all`](crate::Oban::insert_all) and what calls it; a unique job that met an existing one is not counted) |
//! | counter | `oban_jobs_rescued_total` | | jobs the lifeline made runnable again (on the leader) |
//! | counter | `oban_jobs_pruned_total` | | finished jobs the pruner deleted (on the leader) |
//! | counter | `oban_cron_jobs_inserted_total` | | jobs the cron scheduler inserted (on the leader) |
//! | gauge | `oban_queue_executing` | `queue`, `node` | jobs running on this node's producer of the queue |
//! | gauge | `oban_queue_limit` | `queue`, `node` | that producer's limit |
//! | gauge | `oban_leader` | `node` | 1 while this node is the Rust leader, else 0 |
//! | gauge | `oban_queue_depth` | `queue`, `state` | jobs of the queue in the state, whole table (set by the leader only) |
//! | gauge | `oban_queue_oldest_available_age_seconds` | `queue` | how long the queue's oldest available job has been due (leader only) |
//!
//! Counters and histograms are recorded as things happen. Gauges are set every
//! [`Builder::metrics_interval`](crate::Builder::metrics_interval) (default 15 s) by each node
//! for its own producers and leadership; the depth gauges by the Rust leader alone (see
//! [`Oban::is_leader`](crate::Oban::is_leader)), so the database is asked once per interval whatever the
//! number of nodes. A node that stops leading sets its depth gauges to zero, and a (queue,
//! state) pair that left the table is set to zero rather than left at its last value, so a sum
//! over nodes is the depth. A queue this node stops running has its `executing` and `limit`
//! set to zero.
//!
//! # What the depth numbers mean
//!
//! On PostgreSQL, counts are exact up to [`DEPTH_EXACT_UP_TO`] (100,000) jobs per queue and
//! state, and planner estimates beyond, as fresh as the table's last `ANALYZE`; completed jobs
//! on a table of more than that many rows are always estimated (no index serves them). The
//! query reads at most about that many index entries per state and never scans the table: on
//! 10 million rows it took 0.40 s where a `GROUP BY` took 1.49 s, warm, on 2 cores (figures in
//! `examples/bench.rs`, mode `depth`), and it does not grow with the finished jobs. On SQLite every count is exact. See
//! [`Engine::job_count_depths`](crate::engine::Engine::job_count_depths).
//!
//! ```no_run
//! # async fn demo() -> oban_core::Result<()> {
//! use std::time::Duration;
//! use oban_core::Oban;
//!
//! // Install your recorder first (e.g. `metrics_exporter_prometheus::PrometheusBuilder`).
//! let oban = Oban::builder()
//!     .queue("default", 10)
//!     .metrics_interval(Duration::from_secs(30))
//!     .start()
//!     .await?;
//! # let _ = oban;
//! # Ok(()) }
//! ```

pub(crate) mod gauges;
pub(crate) mod jobs;

use metrics::Unit;

/// Up to how many jobs per queue and state the depth gauges count exactly (PostgreSQL); beyond
/// it they report the planner's estimate.
pub const DEPTH_EXACT_UP_TO: u64 = 100_000;

/// Gives the installed recorder each series' unit and description (Prometheus `HELP` lines).
/// [`Builder::start`](crate::Builder::start) calls it; call it yourself after installing a
/// recorder later than that.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "oban_jobs_total",
        Unit::Count,
        "Job attempts that ended on this node, by queue, worker and outcome"
    );
    describe_histogram!(
        "oban_job_duration_seconds",
        Unit::Seconds,
        "How long job attempts ran"
    );
    describe_histogram!(
        "oban_job_queue_time_seconds",
        Unit::Seconds,
        "How long jobs waited from their scheduled time to the attempt's start"
    );
    describe_counter!(
        "oban_jobs_inserted_total",
        Unit::Count,
        "Jobs inserted through this node"
    );
    describe_counter!(
        "oban_jobs_rescued_total",
        Unit::Count,
        "Jobs the lifeline made runnable again"
    );
    describe_counter!(
        "oban_jobs_pruned_total",
        Unit::Count,
        "Finished jobs the pruner deleted"
    );
    describe_counter!(
        "oban_cron_jobs_inserted_total",
        Unit::Count,
        "Jobs the cron scheduler inserted"
    );
    describe_gauge!(
        "oban_queue_executing",
        Unit::Count,
        "Jobs running on this node's producer of the queue"
    );
    describe_gauge!(
        "oban_queue_limit",
        Unit::Count,
        "The limit of this node's producer of the queue"
    );
    describe_gauge!(
        "oban_leader",
        Unit::Count,
        "1 while this node is the Rust leader, else 0"
    );
    describe_gauge!(
        "oban_queue_depth",
        Unit::Count,
        "Jobs of the queue in the state (exact up to 100000, estimated beyond; set by the leader)"
    );
    describe_gauge!(
        "oban_queue_oldest_available_age_seconds",
        Unit::Seconds,
        "How long the queue's oldest available job has been due (set by the leader)"
    );
}
