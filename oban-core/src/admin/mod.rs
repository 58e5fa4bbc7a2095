//! The operator's API: what an on-call engineer asks of a running Oban, without being a node.
//!
//! [`Admin`] holds an engine on a database and a schema prefix, nothing else: it runs no queue,
//! takes part in no election and never migrates on its own. It answers the runbook of an
//! incident, one concern per file:
//!
//! - depth by queue and state, and each node's view of each queue ([`Admin::queues`], `queues.rs`);
//! - jobs by filter, newest-first pages of them (the search box of a dashboard:
//!   [`JobFilter::search`]), one job, counts ([`Admin::jobs`], [`Admin::page`], [`Admin::job`],
//!   [`Admin::count`], here);
//! - the top failing workers and their most frequent errors ([`Admin::failing`], `failing.rs`);
//! - pausing, resuming and scaling queues on every node or one ([`Admin::pause`], `queues.rs`);
//! - queue limits across the fleet with what they count now, setting and clearing them
//!   ([`Admin::limits`], [`Admin::set_queue_limits`], `limits.rs`);
//! - retry, cancel, delete and replay in keyset batches with progress, and prune
//!   ([`Admin::retry`], `bulk.rs`);
//! - the schema's migrations ([`Admin::migration_status`], `schema.rs`) and the cron entries
//!   seen in recent jobs ([`Admin::cron`], `cron.rs`);
//! - workflows: the most recent, one with its steps and graph, cancelling and retrying one
//!   ([`Admin::workflows`], [`Admin::workflow`], `workflow.rs`).
//!
//! The `oban` CLI presents it, and a dashboard can: every type is plain data that derives
//! `Serialize`, and nothing here prints.
//!
//! # The serialized shape
//!
//! The `Serialize` output of these types is the CLI's `--json` contract. Field names are those
//! of the Rust fields unless a field's docs say otherwise; **durations are seconds, as a JSON
//! number with a fraction** (their keys end in `_secs`); **timestamps are RFC 3339 strings in
//! UTC** (`"2026-12-04T03:22:18.123456Z"`); states are lowercase strings (`"available"`); a
//! [`Job`] serializes as it does everywhere (every column of `oban_jobs`).
//!
//! # What each call costs
//!
//! [`Admin::queues`] reads the depth query the gauges use (exact up to 100,000 jobs per queue
//! and state, then PostgreSQL's planner estimate) and the producer rows. [`Admin::count`] counts
//! every matching row, and [`Admin::jobs`] walks the primary key in id order: both are cheap
//! with a selective filter and proportional to the table without one. [`Admin::page`] walks the
//! primary key from its end and stops at the page's last match: cheap when matches are common
//! among recent jobs, a read of the whole table for a search whose text no job holds. [`Admin::failing`] reads
//! the retryable and discarded jobs through the state index; [`Admin::cron`] scans the jobs
//! inserted within its window. Bulk operations are walks of short statements (see `bulk.rs`):
//! they never hold a lock longer than one batch.
//!
//! # Signals on SQLite
//!
//! SQLite has no notifications between processes: [`Admin::pause`], [`resume`](Admin::resume),
//! [`scale`](Admin::scale) and the stop of executing jobs by [`Admin::cancel`] reach the nodes of
//! this process only (an admin made with [`Admin::new`] on a node's own pool). The database
//! changes (cancelled rows, retried rows) apply to every process.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> oban_core::Result<()> {
//! use std::time::Duration;
//! use oban_core::admin::{Admin, JobQuery};
//! use oban_core::{JobFilter, JobState};
//!
//! let admin = Admin::connect("postgres://postgres@127.0.0.1:5432/app", "public").await?;
//!
//! // 1. depth by queue and state
//! for queue in admin.queues().await? {
//!     println!("{}: {} jobs, {} nodes", queue.queue, queue.total, queue.nodes.len());
//! }
//! // 2. the top failing workers of the last hour, with their three most frequent errors
//! let failing = admin.failing(Duration::from_secs(3600), 3).await?;
//! # let _ = failing;
//! // 3. pause a non-critical queue on every node
//! admin.pause("reports", None).await?;
//! // 4. watch the retries drain
//! let retrying = JobQuery::new(JobFilter::new().state(JobState::Retryable));
//! println!("{} retryable", admin.count(&retrying).await?);
//! // 5. replay the discarded jobs of one worker, 500 per statement
//! let dead = JobQuery::new(JobFilter::new().worker("SendReceipt"));
//! let replayed = admin.replay(&dead, 500, &mut |done| eprintln!("{done} replayed")).await?;
//! # let _ = replayed;
//! # Ok(()) }
//! ```

mod bulk;
mod cron;
mod failing;
mod limits;
mod queues;
mod schema;
mod workflow;

use std::sync::Arc;
use std::time::Duration;

use serde::Serializer;

use crate::engine::Engine;
use crate::engines::pool::{self, DbPool};
use crate::error::Result;
use crate::filter::JobFilter;
use crate::job::Job;
use crate::prefix::Prefix;

pub use cron::CronSummary;
pub use failing::{ErrorCount, FailingWorker};
pub use limits::QueueLimits;
pub use queues::{NodeQueue, QueueOverview, StateTally};
pub use schema::{MigrationStatus, MigrationStep};
pub use workflow::{
    Layers, Node, Source, StepDep, WorkflowCounts, WorkflowRetry, WorkflowState, WorkflowStatus,
    WorkflowStep, WorkflowSummary, MAX_STEPS,
};

/// The operator's handle on one Oban instance: an engine on its database, in its schema
/// prefix. Not a node: it runs no queue and takes no part in leadership; cheap to clone.
///
/// ```no_run
/// # async fn demo() -> oban_core::Result<()> {
/// use oban_core::admin::{Admin, JobQuery};
/// use oban_core::{JobFilter, JobState};
///
/// let admin = Admin::connect("sqlite://jobs.db", "public").await?;
/// let failed = admin
///     .jobs(&JobQuery::new(JobFilter::new().state(JobState::Discarded)).limit(20))
///     .await?;
/// # let _ = failed;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Admin {
    engine: Arc<dyn Engine>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

/// How many connections [`Admin::connect`] opens at most: an operator's commands run one
/// statement at a time.
const POOL_SIZE: u32 = 4;

impl Admin {
    /// Opens a small pool on `url` (`postgres://..` or `sqlite://..`) for the instance in the
    /// schema `prefix` (`"public"` unless several instances share the database). Nothing is
    /// migrated: see [`Admin::migration_status`] and [`Admin::migrate`].
    ///
    /// A SQLite file that does not exist is created empty (as [`DbPool::connect`] does): check
    /// the path first where that matters; [`Admin::migration_status`] then reports every step
    /// pending.
    ///
    /// # Errors
    /// A URL that is not one of those (passwords masked in the message), a database that
    /// cannot be reached, a prefix that is not a plain identifier, or a prefix other than
    /// `public` on SQLite.
    pub async fn connect(url: &str, prefix: &str) -> Result<Admin> {
        let prefix = Prefix::new(prefix)?;
        let pool = pool::connect(url, POOL_SIZE).await?;
        Admin::new(pool, prefix)
    }

    /// An admin on an open pool (the application's own, for instance).
    ///
    /// ```no_run
    /// # async fn demo(pool: sqlx::PgPool) -> oban_core::Result<()> {
    /// use oban_core::admin::Admin;
    /// use oban_core::{DbPool, Prefix};
    ///
    /// let admin = Admin::new(DbPool::from(pool), Prefix::PUBLIC)?;
    /// # let _ = admin;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A prefix other than `public` on SQLite.
    pub fn new(pool: DbPool, prefix: Prefix) -> Result<Admin> {
        Ok(Admin::with_engine(pool.engine(prefix)?))
    }

    /// An admin on any engine (one of an engine author's, or the inline engine in tests).
    pub fn with_engine(engine: Arc<dyn Engine>) -> Admin {
        Admin { engine }
    }

    /// The engine it reads and changes jobs through.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// Matching jobs, oldest (lowest id) first, at most [`JobQuery::limit`] (default
    /// [`JobQuery::DEFAULT_LIMIT`]). An empty filter lists every job.
    pub async fn jobs(&self, query: &JobQuery) -> Result<Vec<Job>> {
        self.engine
            .job_list(&query.filter(), query.list_limit())
            .await
    }

    /// Matching jobs newest (highest id) first, at most [`JobQuery::limit`] (default
    /// [`JobQuery::DEFAULT_LIMIT`]), only those with an id below `before` when it is given: a
    /// page of a dashboard's list. The next page is asked with the last id of this one, so pages
    /// neither skip nor repeat a job while others are inserted or deleted. An empty filter pages
    /// every job.
    ///
    /// ```no_run
    /// # async fn demo(admin: oban_core::admin::Admin) -> oban_core::Result<()> {
    /// use oban_core::admin::JobQuery;
    /// use oban_core::{JobFilter, JobState};
    ///
    /// // What the search box found among discarded jobs, 50 at a time.
    /// let query = JobQuery::new(JobFilter::new().state(JobState::Discarded).search("timeout"))
    ///     .limit(50);
    /// let first = admin.page(&query, None).await?;
    /// if let Some(last) = first.last() {
    ///     let second = admin.page(&query, Some(last.id)).await?;
    ///     # let _ = second;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn page(&self, query: &JobQuery, before: Option<i64>) -> Result<Vec<Job>> {
        self.engine
            .job_page(&query.filter(), before, query.list_limit())
            .await
    }

    /// One job by id, with its args, meta, attempts and error history.
    pub async fn job(&self, id: i64) -> Result<Option<Job>> {
        self.engine.job_get(id).await
    }

    /// How many jobs match (every one: [`JobQuery::limit`] is not applied).
    pub async fn count(&self, query: &JobQuery) -> Result<u64> {
        self.engine.job_count(&query.filter()).await
    }
}

/// Which jobs an operation concerns: a [`JobFilter`], how recently they were inserted, and how
/// many at most.
///
/// ```
/// use std::time::Duration;
/// use oban_core::admin::JobQuery;
/// use oban_core::{JobFilter, JobState};
///
/// let query = JobQuery::new(JobFilter::new().queue("mailers").state(JobState::Retryable))
///     .since(Duration::from_secs(15 * 60))
///     .limit(50);
/// assert_eq!(query.limit, Some(50));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct JobQuery {
    /// The conditions on the jobs. Bulk operations refuse one with no condition at all unless
    /// it is [`JobFilter::all`] (or [`since`](Self::since) is given).
    pub filter: JobFilter,
    /// Only jobs inserted at most this long ago (`inserted_at >= now - since`).
    pub since: Option<Duration>,
    /// At most this many jobs: listed by [`Admin::jobs`] and [`Admin::page`] (default
    /// [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT)), changed by a bulk operation (default: every
    /// matching job). [`Admin::count`] ignores it.
    pub limit: Option<u64>,
}

impl JobQuery {
    /// How many jobs [`Admin::jobs`] and [`Admin::page`] list when no limit is given.
    pub const DEFAULT_LIMIT: u64 = 100;

    /// The jobs `filter` matches.
    pub fn new(filter: JobFilter) -> Self {
        Self {
            filter,
            since: None,
            limit: None,
        }
    }

    /// Only jobs inserted at most `since` ago.
    pub fn since(mut self, since: Duration) -> Self {
        self.since = Some(since);
        self
    }

    /// At most `limit` jobs.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// How many jobs a list returns: the limit or [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT), at
    /// most `u32::MAX`.
    fn list_limit(&self) -> u32 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .min(u64::from(u32::MAX)) as u32
    }

    /// The filter with [`since`](Self::since) folded in, as the engine takes it.
    pub(crate) fn filter(&self) -> JobFilter {
        let mut filter = self.filter.clone();
        if let Some(since) = self.since {
            filter.inserted_within = Some(since);
        }
        filter
    }
}

/// Serializes a duration as seconds with a fraction (the `_secs` fields).
pub(crate) fn secs<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// [`secs`] for an optional duration (`null` when absent).
pub(crate) fn opt_secs<S: Serializer>(
    d: &Option<Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Serializes a value as its `Display` text (a producer's uuid).
pub(crate) fn display<T: std::fmt::Display, S: Serializer>(
    value: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(value)
}
