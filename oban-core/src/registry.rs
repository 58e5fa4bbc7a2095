//! Which workers a node can run: registration by hand and automatic discovery.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::error::{Error, Result};
use crate::job::Job;
use crate::state::{StateKey, StateMap};
use crate::worker::{JobContext, JobError, Outcome, Worker, WorkerOptions};

/// Starts one attempt: decodes the args and returns the worker's future, or the decode error.
type RunFn =
    fn(Arc<Job>, Arc<StateMap>) -> Result<BoxFuture<'static, Result<Outcome, JobError>>, String>;

/// How a node runs one worker, independent of its argument type. `#[worker]` submits one of
/// these to [`inventory`] for every worker, and `Oban::builder()` collects them all.
#[derive(Clone, Copy)]
pub struct WorkerRegistration {
    pub(crate) name: &'static str,
    pub(crate) type_name: fn() -> &'static str,
    pub(crate) options: fn() -> WorkerOptions,
    pub(crate) required_state: fn() -> Vec<StateKey>,
    pub(crate) cron: &'static [(&'static str, &'static str)],
    pub(crate) run: RunFn,
}

inventory::collect!(WorkerRegistration);

impl WorkerRegistration {
    /// The registration of `W`.
    pub const fn of<W: Worker>() -> Self {
        Self {
            name: W::NAME,
            type_name: std::any::type_name::<W>,
            options: W::options,
            required_state: W::required_state,
            cron: W::CRON,
            run: run::<W>,
        }
    }

    /// The stored worker name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Rust type behind the worker.
    pub fn type_name(&self) -> &'static str {
        (self.type_name)()
    }

    /// The worker's options.
    pub fn options(&self) -> WorkerOptions {
        (self.options)()
    }

    /// The worker's cron schedules, `(expression, time zone)`.
    pub fn cron(&self) -> &'static [(&'static str, &'static str)] {
        self.cron
    }
}

impl std::fmt::Debug for WorkerRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerRegistration")
            .field("name", &self.name)
            .field("type", &self.type_name())
            .finish()
    }
}

/// Decodes the job's args into `W` and starts its `perform`; a decode failure is returned as the
/// message to record (the job is then discarded: retrying cannot fix its args).
fn run<W: Worker>(
    job: Arc<Job>,
    state: Arc<StateMap>,
) -> Result<BoxFuture<'static, Result<Outcome, JobError>>, String> {
    let args: W = job.decode_args().map_err(|e| {
        format!(
            "the args of this job do not decode into worker `{}` ({}): {e}",
            W::NAME,
            std::any::type_name::<W>()
        )
    })?;
    let ctx = JobContext::new(job, state);
    Ok(Box::pin(args.perform(ctx)))
}

/// The workers a node knows, by stored name.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    workers: HashMap<&'static str, WorkerRegistration>,
}

impl Registry {
    /// Every `#[worker]` linked into the binary. Two workers with one stored name is an error
    /// naming both.
    pub fn discover() -> Result<Self> {
        let mut registry = Self::default();
        for registration in inventory::iter::<WorkerRegistration> {
            registry.add(*registration)?;
        }
        Ok(registry)
    }

    /// Adds a worker; adding the same Rust type twice is harmless, another type with the same
    /// stored name is an error.
    pub fn add(&mut self, registration: WorkerRegistration) -> Result<()> {
        if let Some(existing) = self.workers.get(registration.name) {
            if existing.type_name() != registration.type_name() {
                return Err(Error::Config(format!(
                    "two workers are stored as `{}`: `{}` and `{}`; give one of them another `name = \"..\"`",
                    registration.name,
                    existing.type_name(),
                    registration.type_name()
                )));
            }
            return Ok(());
        }
        self.workers.insert(registration.name, registration);
        Ok(())
    }

    /// The worker stored as `name`.
    pub fn get(&self, name: &str) -> Option<&WorkerRegistration> {
        self.workers.get(name)
    }

    /// All registered workers.
    pub fn iter(&self) -> impl Iterator<Item = &WorkerRegistration> {
        self.workers.values()
    }

    /// Checks that every worker's `State<T>` types are present.
    pub fn check_state(&self, state: &StateMap) -> Result<()> {
        let mut missing = Vec::new();
        for registration in self.workers.values() {
            for key in (registration.required_state)() {
                if !state.contains(&key) {
                    missing.push(format!(
                        "worker `{}` needs `State<{}>`",
                        registration.name, key.type_name
                    ));
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort();
        Err(Error::Config(format!(
            "{}; register the values with `Oban::builder().state(value)`",
            missing.join(", ")
        )))
    }
}
