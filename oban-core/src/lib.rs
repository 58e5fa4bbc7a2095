//! The runtime of Oban for Rust: durable background jobs in PostgreSQL or an embedded SQLite file.
//!
//! Most users depend on the `oban` crate, which re-exports everything here together with the
//! `#[worker]` attribute. The pieces:
//!
//! - [`Worker`]: a job's arguments and code; [`Outcome`] and [`JobError`] say how an attempt ended.
//! - [`JobBuilder`] / [`NewJob`]: a job to insert, with queue, priority, schedule, tags, meta;
//!   [`JobInserter`] is where it can go (an [`Oban`], a pool, or your own transaction).
//! - [`Oban`]: a running node, configured by [`Builder`]: queues with concurrency limits, state
//!   for workers, graceful [`Oban::shutdown`].
//! - [`migrate()`]: installs Oban's schema (compatible with Elixir and Python Oban);
//!   [`migrate_prefix`] installs it in a schema [`Prefix`] of its own.
//! - [`admin::Admin`]: the operator's API, without a node (what the `oban` CLI runs): queue
//!   depths and nodes, failing workers, pause/scale, bulk retry/cancel/delete/replay in batches.
//!
//! Lifecycle of a job: inserted `available` (or `scheduled` for later), fetched into `executing`
//! by a queue, then `completed`, `retryable` (retried with [`Backoff`]), `discarded` (out of
//! attempts, or on purpose), `cancelled`, or `scheduled` again when snoozed.

pub mod admin;
pub mod backoff;
mod builder;
mod clock;
mod control;
pub mod cron;
pub mod deferral;
pub mod engine;
pub mod engines;
pub mod error;
pub mod events;
pub mod filter;
pub mod insert;
pub mod job;
pub mod limits;
mod maintenance;
pub mod measure;
pub mod migrate;
pub mod new_job;
mod node;
mod notifier;
pub mod prefix;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod queue;
pub mod recorded;
pub mod registry;
pub mod sequence;
pub mod state;
pub mod testing;
pub mod trace_context;
pub mod unique;
pub mod worker;
pub mod workflow;

pub use backoff::Backoff;
pub use builder::Builder;
pub use control::{Nodes, QueueInfo};
pub use cron::CronEntry;
pub use engines::pool::DbPool;
pub use error::{Error, Result};
pub use events::{Event, JobInfo, JobOutcome, JobStart, JobStop};
pub use filter::JobFilter;
pub use insert::{insert_all, JobInserter, Prefixed};
pub use job::{AttemptError, Job, JobState};
pub use migrate::{migrate, migrate_prefix};
pub use new_job::{IntoNewJob, JobBuilder, NewJob};
pub use node::Oban;
pub use prefix::Prefix;
pub use registry::{Registry, WorkerRegistration};
pub use sequence::SequenceOptions;
pub use state::{State, StateKey, StateMap};
pub use unique::{
    ReplaceField, UniqueField, UniqueOptions, UniquePeriod, UniqueStates, UniqueTimestamp,
};
pub use worker::{IntoJobResult, JobContext, JobError, Outcome, Worker, WorkerOptions};

/// What `#[worker]` expansions refer to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::registry::WorkerRegistration;
    pub use crate::state::StateKey;
    pub use crate::worker::{record, IntoJobResult};
    pub use inventory;
    pub use serde;
}
