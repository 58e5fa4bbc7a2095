//! Maintenance services: small loops that keep the job table healthy. Only the leader runs
//! them (see [`leader`]).
//!
//! Each service has a config with defaults and a `run_once` that returns what it did, so tests
//! can drive it step by step.

pub(crate) mod cron;
pub(crate) mod leader;
pub(crate) mod lifeline;
pub(crate) mod pruner;
pub(crate) mod reindexer;
pub(crate) mod stager;
