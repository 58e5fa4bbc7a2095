//! [`Flow`]: what a running step sees of its workflow.

use std::sync::{Arc, OnceLock, Weak};

use serde::de::DeserializeOwned;

use super::builder::Steps;
use super::layout::{self, key};
use super::upstream::Upstream;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::job::{Job, JobState};
use crate::state::StateMap;

/// The node's engine, for the steps it runs: registered in the node's state when it starts,
/// held weakly (the engine may hold the state).
#[derive(Default)]
pub(crate) struct EngineSlot(OnceLock<Weak<dyn Engine>>);

impl EngineSlot {
    /// Sets the engine, once.
    pub(crate) fn set(&self, engine: &Arc<dyn Engine>) {
        let _ = self.0.set(Arc::downgrade(engine));
    }
}

/// What a running workflow step sees of its workflow: its ids, the results of the steps it
/// depends on, and appending steps. A `#[worker]` fn takes it as a parameter (`flow: Flow`);
/// a job that is not a workflow step is discarded rather than run with one.
///
/// ```no_run
/// use oban_core::workflow::{Flow, Upstream};
///
/// async fn report(parts: Vec<Upstream<u64>>, flow: Flow) -> oban_core::Result<u64> {
///     let sizes: Vec<u64> = flow.results(&parts).await?;
///     Ok(sizes.iter().sum())
/// }
/// ```
#[derive(Clone)]
pub struct Flow {
    job: Arc<Job>,
    engine: Option<Arc<dyn Engine>>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("workflow_id", &self.workflow_id())
            .field("step", &self.step())
            .finish_non_exhaustive()
    }
}

impl Flow {
    /// The flow of `job`, run by a node whose state is `state`.
    ///
    /// # Errors
    /// [`Error::Workflow`] when `job` is not a workflow step.
    pub fn of(job: Arc<Job>, state: &StateMap) -> Result<Self> {
        if layout::workflow_id(&job.meta).is_none() || layout::step_name(&job.meta).is_none() {
            return Err(Error::Workflow(format!(
                "job {} ({}) takes a `Flow` but is not a workflow step: insert it as a step of a \
                 `Workflow`",
                job.id, job.worker
            )));
        }
        let engine = state
            .get::<EngineSlot>()
            .and_then(|slot| slot.0.get().and_then(Weak::upgrade));
        Ok(Self { job, engine })
    }

    /// The workflow's id.
    pub fn workflow_id(&self) -> &str {
        layout::workflow_id(&self.job.meta).unwrap_or_default()
    }

    /// The workflow's name, when it has one.
    pub fn workflow_name(&self) -> Option<&str> {
        self.job.meta.get(key::NAME).and_then(|v| v.as_str())
    }

    /// This step's name.
    pub fn step(&self) -> &str {
        layout::step_name(&self.job.meta).unwrap_or_default()
    }

    fn engine(&self) -> Result<&Arc<dyn Engine>> {
        self.engine.as_ref().ok_or_else(|| {
            Error::Workflow("the node running this step has stopped: its engine is gone".into())
        })
    }

    /// The result the upstream step recorded, typed as that step's worker returns it.
    ///
    /// # Errors
    /// [`Error::Workflow`] when the step does not exist, did not complete (a dependency whose
    /// failure this step ignores) or recorded nothing; [`Error::Recorded`] when its result
    /// does not decode as `T`.
    pub async fn result<T: DeserializeOwned>(&self, step: &Upstream<T>) -> Result<T> {
        let mut results = self.results(std::slice::from_ref(step)).await?;
        Ok(results.pop().expect("one result per step"))
    }

    /// The results of several upstream steps of one type, in the order given, read in one
    /// query (a fan-in's many dependencies).
    ///
    /// # Errors
    /// As [`Flow::result`], for the first step that has no result.
    pub async fn results<T: DeserializeOwned>(&self, steps: &[Upstream<T>]) -> Result<Vec<T>> {
        let names: Vec<String> = steps.iter().map(|s| s.name().to_owned()).collect();
        let jobs = self
            .engine()?
            .workflow_steps(self.workflow_id(), &names)
            .await?;
        let by_name: std::collections::HashMap<&str, &Job> = jobs
            .iter()
            .filter_map(|job| layout::step_name(&job.meta).map(|name| (name, job)))
            .collect();
        names
            .iter()
            .map(|name| {
                let job = by_name.get(name.as_str()).ok_or_else(|| {
                    Error::Workflow(format!(
                        "step \"{name}\" is not in workflow {} (deleted, or never added)",
                        self.workflow_id()
                    ))
                })?;
                if job.state != JobState::Completed {
                    return Err(Error::Workflow(format!(
                        "step \"{name}\" of workflow {} is {}, so it has no result",
                        self.workflow_id(),
                        job.state
                    )));
                }
                match job.recorded::<T>()? {
                    Some(value) => Ok(value),
                    // A worker that records nothing produces `()`.
                    None => serde_json::from_value(serde_json::Value::Null).map_err(|_| {
                        Error::Workflow(format!(
                            "step \"{name}\" ({}) recorded no result: its worker returns none",
                            job.worker
                        ))
                    }),
                }
            })
            .collect()
    }

    /// Adds steps to this running workflow: `build` adds them as [`Workflow::build`]'s closure
    /// does, naming steps that exist already with [`Steps::existing`]. New steps that depend on
    /// this running step wait until it completes. Steps whose names the workflow already has
    /// are left out, so an attempt that runs again does not append twice. Returns the inserted
    /// jobs.
    ///
    /// [`Workflow::build`]: super::Workflow::build
    ///
    /// # Errors
    /// As [`Workflow::build`](super::Workflow::build), and the insert's.
    pub async fn append(&self, build: impl for<'id> FnOnce(&mut Steps<'id>)) -> Result<Vec<Job>> {
        let sup = match (
            self.job.meta.get(key::SUP_ID).and_then(|v| v.as_str()),
            self.job.meta.get(key::SUB_NAME).and_then(|v| v.as_str()),
        ) {
            (Some(id), Some(name)) => Some((id.to_owned(), name.to_owned())),
            _ => None,
        };
        let mut steps = Steps::new(
            self.workflow_id().to_owned(),
            self.workflow_name().map(str::to_owned),
            super::Ignore::NONE,
            sup,
        );
        steps.mark_existing(self.step());
        build(&mut steps);
        let jobs = steps.finish()?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = jobs
            .iter()
            .filter_map(|job| layout::step_name(&job.meta).map(str::to_owned))
            .collect();
        let engine = self.engine()?;
        let present = engine.workflow_steps(self.workflow_id(), &names).await?;
        let present: Vec<&str> = present
            .iter()
            .filter_map(|job| layout::step_name(&job.meta))
            .collect();
        let fresh: Vec<_> = jobs
            .into_iter()
            .filter(|job| layout::step_name(&job.meta).is_some_and(|n| !present.contains(&n)))
            .collect();
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        let inserted = engine.job_insert_many(fresh).await?;
        // A step appended after its dependencies finished would wait for a release that
        // already happened: check the workflow once more.
        engine
            .workflow_release(&[self.workflow_id().to_owned()])
            .await?;
        Ok(inserted)
    }

    /// A handle on this running step, for steps appended after it (see [`Flow::append`]).
    pub fn this<T>(&self) -> Upstream<T> {
        Upstream::named(self.step())
    }
}
