//! The storage boundary, and the extension surface for engine authors.
//!
//! Producers, executors and maintenance services call these traits and never see SQL; each
//! engine (`crate::engines`) implements them for one database. Applications do not need this
//! module: they insert through [`Oban`](crate::Oban), a pool or a transaction
//! ([`JobInserter`](crate::JobInserter)) and control jobs through the node. It is public for
//! people writing an engine of their own, and for tests that drive an engine directly.
//!
//! The boundary is split by concern, the way Elixir Oban separates its engine, notifier and
//! peer:
//!
//! - [`Engine`]: the schema, jobs (insert, fetch, ack, stage, rescue, query, bulk changes,
//!   prune) and producer heartbeats, named `noun_verb` like River's driver interface. An
//!   `Engine` is also a [`Notifier`] and a [`Peer`], so a node holds one `Arc<dyn Engine>`.
//! - [`Notifier`]: messages between the nodes on one database (LISTEN/NOTIFY on PostgreSQL).
//! - [`Peer`]: leader election.
//!
//! The values crossing the boundary live beside the traits: [`Ack`] (an attempt's outcome),
//! [`FetchCursor`] (a position in a queue's fetch order), [`ProducerInfo`] (a heartbeat), and the
//! notifications' [`Channel`], [`Notice`] and the queue-control [`Signal`].
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool) -> oban_core::Result<()> {
//! use oban_core::engine::Engine;
//! use oban_core::engines::postgres::PostgresEngine;
//!
//! let engine = PostgresEngine::new(pool);
//! engine.schema_migrate().await?;
//! let claimed = engine.job_fetch_available("default", 10, &["node-1".into(), "p1".into()], None).await?;
//! # let _ = claimed;
//! # Ok(()) }
//! ```

mod ack;
mod cursor;
mod depth;
pub(crate) mod insert;
mod limits_usage;
mod notifier;
mod peer;
mod producer;
mod report;
mod workflow;
mod workflow_tally;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::filter::JobFilter;
use crate::job::Job;
use crate::limits::Limits;
use crate::new_job::NewJob;

pub use crate::notifier::{payload, Channel, Command, Notice, Signal};
pub use ack::{is_data_error, Ack};
pub use cursor::FetchCursor;
pub use depth::{QueueDepths, StateCount};
pub use limits_usage::{LimitsUsage, PartitionCount};
pub use notifier::{Notifier, StopSignal};
pub use peer::Peer;
pub use producer::{mark_producer_meta, ProducerInfo, PRODUCER_RUNTIME, PRODUCER_RUNTIME_KEY};
pub use report::{CronSeen, FailureCount, SchemaVersions};
pub use workflow::FinishedStep;
pub use workflow_tally::WorkflowTally;

/// The operations a database must offer to store and run Oban jobs.
#[async_trait]
pub trait Engine: Notifier + Peer + Send + Sync + 'static {
    /// Creates or completes the schema; idempotent and safe to run from many nodes at once.
    async fn schema_migrate(&self) -> Result<()>;

    /// Rebuilds the job table's indexes without blocking writes.
    async fn schema_reindex(&self) -> Result<()>;

    /// Inserts jobs in one statement, returning the stored rows in input order.
    async fn job_insert_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>>;

    /// Moves up to `demand` available jobs of `queue` to `executing` (attempt + 1), in priority,
    /// scheduled_at, id order, without ever handing one job to two callers.
    ///
    /// With `after`, only jobs ordered after that position are taken (an engine whose scans do
    /// not degrade may ignore it and scan from the head).
    async fn job_fetch_available(
        &self,
        queue: &str,
        demand: u32,
        attempted_by: &[String],
        after: Option<FetchCursor>,
    ) -> Result<Vec<Job>>;

    /// The claim of a queue that may have fleet-wide [`Limits`] (stored by
    /// [`Engine::queue_limits_put`]): moves to `executing` at most `demand` jobs that fit them,
    /// counting what runs and what started on every node, with partitions served in rounds (see
    /// [`crate::limits`]). A queue without stored limits gets the plain claim, from the head.
    async fn job_fetch_limited(
        &self,
        queue: &str,
        demand: u32,
        attempted_by: &[String],
    ) -> Result<Vec<Job>>;

    /// Stores `queue`'s fleet-wide limits; `None` or empty limits remove them. The next fetch of
    /// the queue on every node obeys them.
    async fn queue_limits_put(&self, queue: &str, limits: Option<&Limits>) -> Result<()>;

    /// The stored limits of `queue`, or of every limited queue, by queue name.
    async fn queue_limits_get(&self, queue: Option<&str>) -> Result<Vec<(String, Limits)>>;

    /// What `queue`'s limits count now: jobs running per partition of its global limit and
    /// starts in the current window per partition of its rate limit, the largest first, at most
    /// `top` partitions each.
    async fn queue_limits_usage(
        &self,
        queue: &str,
        limits: &Limits,
        top: u32,
    ) -> Result<LimitsUsage>;

    /// Records outcomes; returns the ids that were still executing the acked attempt.
    async fn job_ack_many(&self, acks: &[Ack]) -> Result<Vec<i64>>;

    /// Whether `error`, returned by [`Engine::job_ack_many`], was caused by the values of the
    /// acks (retrying the same batch cannot succeed) rather than by the way to the database (a
    /// lost connection, a pool timeout, I/O: retrying can). The completer retries the latter and
    /// splits a batch on the former, to record every ack the database takes. The default,
    /// [`is_data_error`], knows only the database-neutral cases; an engine adds its own codes.
    fn is_data_error(&self, error: &Error) -> bool {
        is_data_error(error)
    }

    /// Makes scheduled and retryable jobs whose time has come available, at most `limit`;
    /// returns the queues that received jobs.
    async fn job_stage_due(&self, limit: u32) -> Result<Vec<String>>;

    /// Makes `executing` jobs runnable again (or discards them when out of attempts) when the
    /// producer of this runtime that fetched them (its row marked with
    /// [`PRODUCER_RUNTIME_KEY`]) has not heartbeated for `stale_after`; when that producer lives
    /// but its last snapshot (`held_at` later than the job's `attempted_at`) does not list the
    /// job in `held` (a claim whose rows never reached it; see [`Engine::producer_heartbeat`]);
    /// or, for jobs whose `attempted_by` names a producer (`[node, uuid]`) that has no row at
    /// all, when they started more than `unknown_after` ago. Jobs of Elixir Oban without Pro
    /// (`attempted_by` is `[node]`) and of producers whose rows another implementation writes
    /// (Python Oban, Elixir Oban Pro) are left to that implementation's lifeline. Producers of
    /// this runtime silent for three times `stale_after` with no job left executing are
    /// forgotten. Returns how many jobs were rescued.
    async fn job_rescue_orphaned(
        &self,
        stale_after: Duration,
        unknown_after: Duration,
    ) -> Result<u64>;

    /// Deletes completed, cancelled and discarded jobs that finished more than `max_age` ago, at
    /// most `limit` of them; returns how many.
    async fn job_prune(&self, max_age: Duration, limit: u32) -> Result<u64>;

    /// How many jobs each queue holds in each state, and the age of each queue's oldest
    /// available job: what the depth gauges report (see [`crate::measure`]), computed on one
    /// node per interval.
    ///
    /// Counts up to `exact_up_to` are exact; beyond it an engine may report an estimate (marked
    /// in [`StateCount::exact`]) so that the call stays cheap on tables of tens of millions of
    /// rows. Each engine documents what its numbers mean.
    async fn job_count_depths(&self, exact_up_to: u64) -> Result<QueueDepths>;

    /// One job by id.
    async fn job_get(&self, id: i64) -> Result<Option<Job>>;

    /// Matching jobs, oldest first, at most `limit`.
    async fn job_list(&self, filter: &JobFilter, limit: u32) -> Result<Vec<Job>>;

    /// Matching jobs newest first (descending id), only those with an id below `before` when it
    /// is given, at most `limit`: one page of a dashboard's list, the next page asked with the
    /// last id of this one. The database engines walk the primary key down from `before` and
    /// stop at the `limit`th match, so a page costs the rows the filter skips, not the size of
    /// the table (PostgreSQL reads a rare state's partial index instead).
    async fn job_page(
        &self,
        filter: &JobFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Job>>;

    /// Makes matching jobs that are not executing available now, raising `max_attempts` where
    /// spent; returns how many changed. A sequenced job goes back to `suspended` instead, and its
    /// sequence's release starts it if nothing holds the sequence ([`crate::sequence`]).
    async fn job_retry_many(&self, filter: &JobFilter) -> Result<u64>;

    /// Cancels matching jobs that have not finished; returns how many, and the ids of those that
    /// were `executing` (their nodes must stop them). The sequences of the others release their
    /// next job ([`crate::sequence`]).
    async fn job_cancel_many(&self, filter: &JobFilter) -> Result<(u64, Vec<i64>)>;

    /// Deletes matching jobs that are not executing; returns how many. Their sequences release
    /// their next job ([`crate::sequence`]).
    async fn job_delete_many(&self, filter: &JobFilter) -> Result<u64>;

    /// The ids of matching jobs greater than `after`, in id order, at most `limit`: one step of
    /// the keyset walk of the operator's bulk operations ([`crate::admin`]).
    async fn job_ids(&self, filter: &JobFilter, after: i64, limit: u32) -> Result<Vec<i64>>;

    /// How many jobs match (exactly: a count of rows).
    async fn job_count(&self, filter: &JobFilter) -> Result<u64>;

    /// Retryable jobs attempted and discarded jobs discarded within `since`, grouped by worker,
    /// queue, state and the message of their last error.
    async fn job_failures(&self, since: Duration) -> Result<Vec<FailureCount>>;

    /// Jobs inserted within `since` whose meta names a cron entry (`cron_expr` or `cron_name`),
    /// grouped by worker, queue and entry.
    async fn job_cron_seen(&self, since: Duration) -> Result<Vec<CronSeen>>;

    /// Steps of any workflow (jobs whose meta has a `workflow_id`) newest first, only those with
    /// an id below `before` when it is given, at most `limit`: `(job id, workflow id)`. One step of
    /// the walk that lists the most recent workflows ([`crate::admin::Admin::workflows`]); the
    /// database engines walk the primary key down from `before`.
    async fn workflow_recent_steps(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, String)>>;

    /// The steps of these workflows counted by workflow and state, with their first and last ids
    /// and times ([`WorkflowTally`]), read through the workflow index; a workflow with no step
    /// has no tally.
    async fn workflow_tally(&self, workflow_ids: &[String]) -> Result<Vec<WorkflowTally>>;

    /// The workflows whose steps name `workflow_id` as their `meta.sup_workflow_id` (its
    /// sub-workflows), among the `rows` jobs from id `from_id` upwards: a bounded read of the
    /// primary key where the sub-workflows of a workflow inserted at once are found.
    async fn workflow_subs(
        &self,
        workflow_id: &str,
        from_id: i64,
        rows: u32,
    ) -> Result<Vec<String>>;

    /// Moves the cancelled and discarded steps of these workflows back to `suspended`, raising
    /// `max_attempts` to `attempt + 1` where it is spent (as [`Engine::job_retry_many`] does), so
    /// that [`Engine::workflow_release`] decides again whether each runs; returns how many.
    async fn workflow_suspend_failed(&self, workflow_ids: &[String]) -> Result<u64>;

    /// The schema steps this engine knows and those applied to the database.
    async fn schema_versions(&self) -> Result<SchemaVersions>;

    /// The live producers, optionally of one queue.
    async fn producer_list(&self, queue: Option<&str>) -> Result<Vec<ProducerInfo>>;

    /// Records that a producer is alive (upsert of its heartbeat), its `meta` marked with
    /// [`mark_producer_meta`].
    ///
    /// When `meta` has a `held` array (the ids the producer holds, taken while no fetch of its
    /// was in flight), the engine adds `held_at`: the time of this write on the clock that stamps
    /// `attempted_at` in [`Engine::job_fetch_available`]. A `meta` without `held` keeps the
    /// previous `held` and `held_at`. [`Engine::job_rescue_orphaned`] relies on both.
    async fn producer_heartbeat(
        &self,
        uuid: uuid::Uuid,
        node: &str,
        queue: &str,
        meta: Value,
    ) -> Result<()>;

    /// Forgets a producer that stopped cleanly.
    async fn producer_delete(&self, uuid: uuid::Uuid) -> Result<()>;

    /// Re-checks every `suspended` step of these workflows ([`crate::workflow`]): a step whose
    /// dependencies all completed (or ended in a way it ignores) becomes `available`
    /// (`scheduled` when its time is still ahead); a step with a dependency that was
    /// cancelled, discarded or deleted, which it does not ignore, is cancelled with an error
    /// naming that dependency, and the cancellation goes on to its own dependents. Sub-workflows
    /// and parents of these workflows are checked too. Returns how many steps changed.
    ///
    /// [`Engine::job_ack_many`] does the same for the steps it finishes, so this is for the
    /// steps finished by other means (an operator, another implementation, a lost connection).
    async fn workflow_release(&self, workflow_ids: &[String]) -> Result<u64>;

    /// The workflows that have `suspended` steps, in id order after `after`, at most `limit`:
    /// one page of the leader's pass over waiting workflows.
    async fn workflow_waiting(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>>;

    /// The steps of a workflow with these names (the newest job of each name).
    async fn workflow_steps(&self, workflow_id: &str, names: &[String]) -> Result<Vec<Job>>;

    /// Starts the next job of each of these sequences ([`crate::sequence`]) that no job holds:
    /// its first `suspended` job becomes `available` (`scheduled` when its time is still
    /// ahead), and its queue is notified. Returns how many jobs started.
    ///
    /// [`Engine::job_ack_many`] does the same for the sequenced jobs it finishes, as do the
    /// retry, the delete and the cancel (of a job not running) of the `job_*_many` methods, so
    /// this is for the sequences whose holder ended by other means (a running job cancelled,
    /// acked by another implementation, a lost connection).
    async fn sequence_release(&self, keys: &[String]) -> Result<u64>;

    /// The sequences that have `suspended` jobs, in key order after `after`, at most `limit`:
    /// one page of the leader's pass over waiting sequences.
    async fn sequence_waiting(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>>;
}
