//! The PostgreSQL engine: all of the runtime's SQL for PostgreSQL lives in this folder.
//!
//! One file per concern: `schema` (migrations, reindexing), `insert` (the statements of the
//! shared insert algorithm, and inserts through pools and transactions), `notify` (LISTEN/NOTIFY
//! and the insert notifications), `fetch` (the claim), `ack` (outcomes), `maintenance` (stage,
//! rescue, prune), `depth` (queue depths for the gauges), `query` (jobs by id and filter, counts, bulk retry, cancel, delete), `report` (the operator's
//! failure and cron reports), `peer` (leader
//! election and producer heartbeats), `row` (the job columns and their decoding).
//!
//! Timestamps are `timestamp without time zone` holding UTC, as in Elixir Oban's schema; the
//! database clock (`timezone('UTC', now())`) is the only clock used for scheduling decisions.

mod ack;
mod depth;
mod fetch;
mod insert;
mod lease;
mod limits;
mod maintenance;
mod notify;
mod peer;
mod prefix;
mod query;
mod report;
mod row;
mod schema;
mod sequence;
mod workflow;
mod workflow_query;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::PgPool;

use crate::engine::{
    Ack, CronSeen, Engine, FailureCount, FetchCursor, LimitsUsage, ProducerInfo, QueueDepths,
    SchemaVersions, WorkflowTally,
};
use crate::error::Result;
use crate::filter::JobFilter;
use crate::job::Job;
use crate::limits::Limits;
use crate::new_job::NewJob;
use crate::prefix::Prefix;

/// The PostgreSQL engine over a connection pool, for one schema [`Prefix`] (default `public`).
///
/// ```no_run
/// # async fn demo() -> oban_core::Result<()> {
/// use oban_core::engine::Engine;
/// use oban_core::engines::postgres::PostgresEngine;
///
/// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
/// let engine = PostgresEngine::new(pool);
/// engine.schema_migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresEngine {
    pool: PgPool,
    prefix: Prefix,
}

impl PostgresEngine {
    /// An engine using `pool`, in the default prefix `public`.
    pub fn new(pool: PgPool) -> Self {
        Self::with_prefix(pool, Prefix::PUBLIC)
    }

    /// An engine using `pool`, whose tables, function and channels are those of `prefix`.
    pub fn with_prefix(pool: PgPool, prefix: Prefix) -> Self {
        Self { pool, prefix }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema prefix.
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }
}

#[async_trait]
impl Engine for PostgresEngine {
    async fn schema_migrate(&self) -> Result<()> {
        schema::migrate(&self.pool, self.prefix).await
    }

    async fn schema_reindex(&self) -> Result<()> {
        schema::reindex(&self.pool, self.prefix).await
    }

    async fn job_insert_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        insert::insert_through_pool(&self.pool, self.prefix, jobs).await
    }

    async fn job_fetch_available(
        &self,
        queue: &str,
        demand: u32,
        attempted_by: &[String],
        after: Option<FetchCursor>,
    ) -> Result<Vec<Job>> {
        fetch::fetch_available(&self.pool, self.prefix, queue, demand, attempted_by, after).await
    }

    async fn job_fetch_limited(
        &self,
        queue: &str,
        demand: u32,
        attempted_by: &[String],
    ) -> Result<Vec<Job>> {
        limits::fetch_limited(&self.pool, self.prefix, queue, demand, attempted_by).await
    }

    async fn queue_limits_put(&self, queue: &str, limits: Option<&Limits>) -> Result<()> {
        limits::put(&self.pool, self.prefix, queue, limits).await
    }

    async fn queue_limits_get(&self, queue: Option<&str>) -> Result<Vec<(String, Limits)>> {
        limits::get(&self.pool, self.prefix, queue).await
    }

    async fn queue_limits_usage(
        &self,
        queue: &str,
        limits: &Limits,
        top: u32,
    ) -> Result<LimitsUsage> {
        limits::usage(&self.pool, self.prefix, queue, limits, top).await
    }

    async fn job_ack_many(&self, acks: &[Ack]) -> Result<Vec<i64>> {
        ack::ack_many(&self.pool, self.prefix, acks).await
    }

    fn is_data_error(&self, error: &crate::error::Error) -> bool {
        ack::is_data_error(error)
    }

    async fn job_stage_due(&self, limit: u32) -> Result<Vec<String>> {
        maintenance::stage_due(&self.pool, self.prefix, limit).await
    }

    async fn job_rescue_orphaned(
        &self,
        stale_after: Duration,
        unknown_after: Duration,
    ) -> Result<u64> {
        maintenance::rescue_orphaned(&self.pool, self.prefix, stale_after, unknown_after).await
    }

    async fn job_prune(&self, max_age: Duration, limit: u32) -> Result<u64> {
        maintenance::prune(&self.pool, self.prefix, max_age, limit).await
    }

    async fn job_count_depths(&self, exact_up_to: u64) -> Result<QueueDepths> {
        depth::count_depths(&self.pool, self.prefix, exact_up_to).await
    }

    async fn job_get(&self, id: i64) -> Result<Option<Job>> {
        query::get(&self.pool, self.prefix, id).await
    }

    async fn job_list(&self, filter: &JobFilter, limit: u32) -> Result<Vec<Job>> {
        query::list(&self.pool, self.prefix, filter, limit).await
    }

    async fn job_page(
        &self,
        filter: &JobFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        query::page(&self.pool, self.prefix, filter, before, limit).await
    }

    async fn job_retry_many(&self, filter: &JobFilter) -> Result<u64> {
        query::retry_many(&self.pool, self.prefix, filter).await
    }

    async fn job_cancel_many(&self, filter: &JobFilter) -> Result<(u64, Vec<i64>)> {
        query::cancel_many(&self.pool, self.prefix, filter).await
    }

    async fn job_delete_many(&self, filter: &JobFilter) -> Result<u64> {
        query::delete_many(&self.pool, self.prefix, filter).await
    }

    async fn job_ids(&self, filter: &JobFilter, after: i64, limit: u32) -> Result<Vec<i64>> {
        query::ids(&self.pool, self.prefix, filter, after, limit).await
    }

    async fn job_count(&self, filter: &JobFilter) -> Result<u64> {
        query::count(&self.pool, self.prefix, filter).await
    }

    async fn job_failures(&self, since: Duration) -> Result<Vec<FailureCount>> {
        report::failures(&self.pool, self.prefix, since).await
    }

    async fn job_cron_seen(&self, since: Duration) -> Result<Vec<CronSeen>> {
        report::cron_seen(&self.pool, self.prefix, since).await
    }

    async fn workflow_recent_steps(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, String)>> {
        workflow_query::recent_steps(&self.pool, self.prefix, before, limit).await
    }

    async fn workflow_tally(&self, workflow_ids: &[String]) -> Result<Vec<WorkflowTally>> {
        workflow_query::tally(&self.pool, self.prefix, workflow_ids).await
    }

    async fn workflow_subs(
        &self,
        workflow_id: &str,
        from_id: i64,
        rows: u32,
    ) -> Result<Vec<String>> {
        workflow_query::subs(&self.pool, self.prefix, workflow_id, from_id, rows).await
    }

    async fn workflow_suspend_failed(&self, workflow_ids: &[String]) -> Result<u64> {
        workflow_query::suspend_failed(&self.pool, self.prefix, workflow_ids).await
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        schema::versions(&self.pool, self.prefix).await
    }

    async fn producer_list(&self, queue: Option<&str>) -> Result<Vec<ProducerInfo>> {
        peer::producer_list(&self.pool, self.prefix, queue).await
    }

    async fn producer_heartbeat(
        &self,
        uuid: uuid::Uuid,
        node: &str,
        queue: &str,
        meta: Value,
    ) -> Result<()> {
        peer::producer_heartbeat(&self.pool, self.prefix, uuid, node, queue, meta).await
    }

    async fn producer_delete(&self, uuid: uuid::Uuid) -> Result<()> {
        peer::producer_delete(&self.pool, self.prefix, uuid).await
    }

    async fn workflow_release(&self, workflow_ids: &[String]) -> Result<u64> {
        workflow::release(&self.pool, self.prefix, Vec::new(), workflow_ids).await
    }

    async fn workflow_waiting(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        workflow::waiting(&self.pool, self.prefix, after, limit).await
    }

    async fn sequence_release(&self, keys: &[String]) -> Result<u64> {
        sequence::release(&self.pool, self.prefix, keys).await
    }

    async fn sequence_waiting(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        sequence::waiting(&self.pool, self.prefix, after, limit).await
    }

    async fn workflow_steps(&self, workflow_id: &str, names: &[String]) -> Result<Vec<Job>> {
        workflow::steps(&self.pool, self.prefix, workflow_id, names).await
    }
}

/// An age in whole milliseconds, as the statements bind it, at most
/// [`FOREVER`](crate::clock::FOREVER): `now() - $1 * interval '1 millisecond'` (and three times
/// it) must stay within PostgreSQL's range, so `Duration::MAX` means "forever", not an error.
fn millis(d: Duration) -> i64 {
    i64::try_from(crate::clock::age(d).as_millis()).unwrap_or(i64::MAX)
}
