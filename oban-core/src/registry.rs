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

    /// The names of the `State<T>` types this worker needs that `state` lacks (empty when it can
    /// run).
    pub fn missing_state(&self, state: &StateMap) -> Vec<&'static str> {
        (self.required_state)()
            .into_iter()
            .filter(|key| !state.contains(key))
            .map(|key| key.type_name)
            .collect()
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
        self.check_state_of(state, |_| true)
    }

    /// Checks that the workers of the queues `runs` accepts (by each worker's declared queue)
    /// have their `State<T>` types: a node needs the state of the workers it runs, not of every
    /// worker linked into its binary. The error names each worker, its queue and the missing
    /// type.
    ///
    /// ```
    /// use oban_core::{Registry, StateMap};
    ///
    /// let registry = Registry::default();
    /// assert!(registry.check_state_of(&StateMap::new(), |queue| queue == "mail").is_ok());
    /// ```
    pub fn check_state_of(&self, state: &StateMap, runs: impl Fn(&str) -> bool) -> Result<()> {
        let mut missing = Vec::new();
        for registration in self.workers.values() {
            let queue = registration.options().queue;
            if !runs(queue) {
                continue;
            }
            for type_name in registration.missing_state(state) {
                missing.push(format!(
                    "worker `{}` of queue `{queue}` needs `State<{type_name}>`",
                    registration.name
                ));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort();
        Err(Error::Config(format!(
            "{}; register the values with `Oban::builder().state(value)`, or do not run that queue on this node",
            missing.join(", ")
        )))
    }
}
