//! Maintenance services: small loops that keep the job table healthy.
//!
//! Each service has a config with defaults and a `run_once` that returns what it did, so tests
//! can drive it step by step.

pub(crate) mod lifeline;
pub(crate) mod stager;
