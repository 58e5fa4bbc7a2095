//! Building a workflow: steps added with the handles of the steps they wait for.

use std::marker::PhantomData;
use std::sync::Arc;

use super::layout::{DepRef, StepMeta};
use super::upstream::{IntoStep, Upstream};
use super::Ignore;
use crate::error::{Error, Result};
use crate::insert::JobInserter;
use crate::job::Job;
use crate::new_job::NewJob;

/// The brand of one workflow being built: an invariant lifetime that no other workflow shares,
/// so a [`Step`] of one workflow cannot be given to another.
type Brand<'id> = PhantomData<fn(&'id ()) -> &'id ()>;

/// A workflow to build: its name and its default for failed dependencies.
///
/// ```
/// use oban_core::workflow::{Ignore, Workflow};
///
/// let workflow = Workflow::new("nightly-report").ignore(Ignore::DELETED);
/// assert_eq!(workflow.name(), Some("nightly-report"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Workflow {
    name: Option<String>,
    ignore: Ignore,
}

impl Workflow {
    /// A workflow with a name for humans (the dashboard, the CLI, `meta.workflow_name`).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ignore: Ignore::NONE,
        }
    }

    /// A workflow without a name.
    pub fn unnamed() -> Self {
        Self::default()
    }

    /// Its name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// What every step does when a dependency fails: by default ([`Ignore::NONE`]) it is
    /// cancelled; the kinds of failure given here are treated as if the dependency completed.
    /// A step adds its own with [`Deps::ignoring`].
    pub fn ignore(mut self, ignore: Ignore) -> Self {
        self.ignore = ignore;
        self
    }

    /// Builds the workflow: `build` adds the steps through a [`Steps`] and the handles it
    /// returns. The handles cannot leave the closure, nor be given to another workflow.
    ///
    /// # Errors
    /// [`Error::Workflow`] for an empty workflow or two steps of one name; [`Error::InvalidJob`]
    /// and the like for a step whose job does not build (the first such error).
    ///
    /// ```
    /// # use oban_core::workflow::Workflow;
    /// # use oban_core::NewJob;
    /// # use serde_json::json;
    /// let workflow = Workflow::new("pipeline").build(|wf| {
    ///     let fetch = wf.add("fetch", NewJob::new("Fetch", json!({})), ());
    ///     let a = wf.add("a", NewJob::new("Transform", json!({"part": 1})), &fetch);
    ///     let b = wf.add("b", NewJob::new("Transform", json!({"part": 2})), &fetch);
    ///     wf.add("report", NewJob::new("Report", json!({})), (&a, &b));
    /// })?;
    /// assert_eq!(workflow.jobs().len(), 4);
    /// assert_eq!(workflow.jobs()[3].meta["deps"], json!(["a", "b"]));
    /// # Ok::<(), oban_core::Error>(())
    /// ```
    pub fn build(self, build: impl for<'id> FnOnce(&mut Steps<'id>)) -> Result<NewWorkflow> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut steps = Steps::new(id.clone(), self.name.clone(), self.ignore, None);
        build(&mut steps);
        let jobs = steps.finish()?;
        if jobs.is_empty() {
            return Err(Error::Workflow(
                "a workflow needs at least one step: add one with `wf.add(..)`".into(),
            ));
        }
        Ok(NewWorkflow {
            id,
            name: self.name,
            jobs,
        })
    }
}

/// What a step waits for, as the builder keeps it.
#[derive(Debug, Clone)]
enum Target {
    /// A step, by name.
    Named(Arc<str>),
    /// A sub-workflow, by id.
    Sub(Arc<str>),
}

/// The handle of a step added to a workflow: what later steps name as a dependency, and what
/// gives them its result with its type `T` ([`Step::upstream`]).
///
/// A handle belongs to the workflow that made it (the lifetime `'id`); giving it to another
/// does not compile.
pub struct Step<'id, T> {
    target: Target,
    brand: Brand<'id>,
    output: PhantomData<fn() -> T>,
}

impl<T> Clone for Step<'_, T> {
    fn clone(&self) -> Self {
        Self {
            target: self.target.clone(),
            brand: PhantomData,
            output: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Step<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Target::Named(name) => f.debug_tuple("Step").field(name).finish(),
            Target::Sub(id) => f.debug_tuple("SubWorkflow").field(id).finish(),
        }
    }
}

impl<'id, T> Step<'id, T> {
    /// The step's name (for a sub-workflow, the name it was added under is kept on its steps
    /// as `sub_name`; this is its workflow id).
    pub fn name(&self) -> &str {
        match &self.target {
            Target::Named(name) | Target::Sub(name) => name,
        }
    }

    /// A reference to this step's result, to put in the args of a step that depends on it;
    /// that step reads it with [`Flow::result`](super::Flow::result), typed `T`.
    pub fn upstream(&self) -> Upstream<T> {
        Upstream::named(self.name())
    }

    fn dep(&self) -> DepRef {
        match &self.target {
            Target::Named(name) => DepRef::Step(name.to_string()),
            Target::Sub(id) => DepRef::All {
                workflow_id: id.to_string(),
            },
        }
    }
}

/// Dependencies as [`Deps`] gathers them (not for use outside this crate).
#[doc(hidden)]
#[derive(Debug)]
pub struct DepList {
    pub(crate) deps: Vec<DepRef>,
    pub(crate) ignore: Ignore,
}

/// The dependencies of a step: `()` for none, a step (`&fetch`), a tuple of steps of any result
/// types (`(&a, &b)`), a slice, array or `Vec` of steps of one type (`&parts[..]`), or any of
/// these with [`Deps::ignoring`].
pub trait Deps<'id>: Sized {
    /// Adds the dependencies, and the step's own [`Ignore`], to `into`.
    #[doc(hidden)]
    fn collect(self, into: &mut DepList);

    /// These dependencies, with a failure of the given kinds treated as a completion for this
    /// step (on top of the workflow's own [`Workflow::ignore`]).
    ///
    /// ```
    /// # use oban_core::workflow::{Deps, Ignore, Workflow};
    /// # use oban_core::NewJob;
    /// # use serde_json::json;
    /// let workflow = Workflow::new("cleanup").build(|wf| {
    ///     let work = wf.add("work", NewJob::new("Work", json!({})), ());
    ///     wf.add("cleanup", NewJob::new("Cleanup", json!({})), (&work).ignoring(Ignore::ALL));
    /// })?;
    /// assert_eq!(workflow.jobs()[1].meta["ignore_discarded"], true);
    /// # Ok::<(), oban_core::Error>(())
    /// ```
    fn ignoring(self, ignore: Ignore) -> Ignoring<Self> {
        Ignoring { deps: self, ignore }
    }
}

/// Dependencies with a policy of their own: see [`Deps::ignoring`].
#[derive(Debug)]
pub struct Ignoring<D> {
    deps: D,
    ignore: Ignore,
}

impl<'id, D: Deps<'id>> Deps<'id> for Ignoring<D> {
    fn collect(self, into: &mut DepList) {
        into.ignore = into.ignore | self.ignore;
        self.deps.collect(into);
    }
}

impl<'id> Deps<'id> for () {
    fn collect(self, _: &mut DepList) {}
}

impl<'id, T> Deps<'id> for &Step<'id, T> {
    fn collect(self, into: &mut DepList) {
        into.deps.push(self.dep());
    }
}

impl<'id, T> Deps<'id> for Step<'id, T> {
    fn collect(self, into: &mut DepList) {
        into.deps.push(self.dep());
    }
}

impl<'id, T> Deps<'id> for &[Step<'id, T>] {
    fn collect(self, into: &mut DepList) {
        into.deps.extend(self.iter().map(Step::dep));
    }
}

impl<'id, T> Deps<'id> for &Vec<Step<'id, T>> {
    fn collect(self, into: &mut DepList) {
        into.deps.extend(self.iter().map(Step::dep));
    }
}

impl<'id, T> Deps<'id> for Vec<Step<'id, T>> {
    fn collect(self, into: &mut DepList) {
        into.deps.extend(self.iter().map(Step::dep));
    }
}

impl<'id, T, const N: usize> Deps<'id> for [&Step<'id, T>; N] {
    fn collect(self, into: &mut DepList) {
        into.deps.extend(self.iter().map(|step| step.dep()));
    }
}

macro_rules! tuple_deps {
    ($($name:ident),+) => {
        impl<'id, $($name: Deps<'id>),+> Deps<'id> for ($($name,)+) {
            #[allow(non_snake_case)]
            fn collect(self, into: &mut DepList) {
                let ($($name,)+) = self;
                $($name.collect(into);)+
            }
        }
    };
}
tuple_deps!(A);
tuple_deps!(A, B);
tuple_deps!(A, B, C);
tuple_deps!(A, B, C, D);
tuple_deps!(A, B, C, D, E);
tuple_deps!(A, B, C, D, E, F);
tuple_deps!(A, B, C, D, E, F, G);
tuple_deps!(A, B, C, D, E, F, G, H);

/// The steps of a workflow being built (or appended to, see
/// [`Flow::append`](super::Flow::append)). Each [`Steps::add`] takes the handles of the steps
/// it waits for, which exist already: a cycle cannot be written.
pub struct Steps<'id> {
    workflow_id: String,
    workflow_name: Option<String>,
    ignore: Ignore,
    /// The parent's id and the name it knows this workflow by, for a sub-workflow.
    sup: Option<(String, String)>,
    /// What the first steps of a sub-workflow wait for in its parent.
    inherited: Vec<DepRef>,
    jobs: Vec<NewJob>,
    names: std::collections::HashSet<Arc<str>>,
    /// Steps that exist already (appending): named by new steps, not inserted again.
    existing: std::collections::HashSet<Arc<str>>,
    error: Option<Error>,
    brand: Brand<'id>,
}

impl<'id> Steps<'id> {
    pub(crate) fn new(
        workflow_id: String,
        workflow_name: Option<String>,
        ignore: Ignore,
        sup: Option<(String, String)>,
    ) -> Self {
        Self {
            workflow_id,
            workflow_name,
            ignore,
            sup,
            inherited: Vec::new(),
            jobs: Vec::new(),
            names: Default::default(),
            existing: Default::default(),
            error: None,
            brand: PhantomData,
        }
    }

    /// The id of the workflow (a UUIDv7).
    pub fn workflow_id(&self) -> &str {
        &self.workflow_id
    }

    /// Adds a step: `job` (a worker's args, its `JobBuilder`, or a [`NewJob`]) under `name`,
    /// unique in the workflow, waiting for `deps` (see [`Deps`]). Returns its handle, typed with
    /// the result its worker records.
    ///
    /// A step's job cannot be unique (a duplicate would be dropped, and its dependents would
    /// wait forever): for a worker declared unique, pass its builder with `.not_unique()`.
    /// Errors are reported by [`Workflow::build`].
    pub fn add<J: IntoStep>(
        &mut self,
        name: impl Into<String>,
        job: J,
        deps: impl Deps<'id>,
    ) -> Step<'id, J::Output> {
        let name: Arc<str> = name.into().into();
        let mut list = DepList {
            deps: Vec::new(),
            ignore: self.ignore,
        };
        deps.collect(&mut list);
        let DepList {
            deps: mut entries,
            ignore,
        } = list;
        if entries.is_empty() {
            entries = self.inherited.clone();
        }
        self.push(&name, job.into_step(), &entries, ignore);
        Step {
            target: Target::Named(name),
            brand: PhantomData,
            output: PhantomData,
        }
    }

    /// Adds a sub-workflow under `name`: its steps, built by `build` with their own handles,
    /// form one workflow (with its own id, `sup_workflow_id` naming this one) whose first steps
    /// wait for `deps`. The handle returned stands for all of its steps: a step that depends on
    /// it waits until every one of them has completed.
    pub fn add_workflow(
        &mut self,
        name: impl Into<String>,
        deps: impl Deps<'id>,
        build: impl for<'sub> FnOnce(&mut Steps<'sub>),
    ) -> Step<'id, ()> {
        let name: String = name.into();
        let mut list = DepList {
            deps: Vec::new(),
            ignore: self.ignore,
        };
        deps.collect(&mut list);
        let DepList {
            deps: entries,
            ignore,
        } = list;
        let sub_id = uuid::Uuid::now_v7().to_string();
        let mut sub = Steps::new(
            sub_id.clone(),
            Some(name.clone()),
            ignore,
            Some((self.workflow_id.clone(), name.clone())),
        );
        // The sub-workflow's first steps wait for what it waits for, named from outside.
        sub.inherited = entries
            .into_iter()
            .map(|entry| match entry {
                DepRef::Step(step) => DepRef::Other {
                    workflow_id: self.workflow_id.clone(),
                    name: step,
                },
                other => other,
            })
            .collect();
        build(&mut sub);
        match sub.finish() {
            Ok(jobs) if jobs.is_empty() => self.fail(Error::Workflow(format!(
                "sub-workflow \"{name}\" has no steps: add one with `sub.add(..)`"
            ))),
            Ok(jobs) => self.jobs.extend(jobs),
            Err(error) => self.fail(error),
        }
        Step {
            target: Target::Sub(sub_id.into()),
            brand: PhantomData,
            output: PhantomData,
        }
    }

    /// A handle on a step that exists already in the workflow being appended to (see
    /// [`Flow::append`](super::Flow::append)), from the reference in the running step's args.
    pub fn existing<T>(&mut self, step: &Upstream<T>) -> Step<'id, T> {
        let name: Arc<str> = step.name().into();
        self.existing.insert(Arc::clone(&name));
        Step {
            target: Target::Named(name),
            brand: PhantomData,
            output: PhantomData,
        }
    }

    /// Names a step that exists already (appending).
    pub(crate) fn mark_existing(&mut self, name: &str) {
        self.existing.insert(name.into());
    }

    fn push(&mut self, name: &Arc<str>, job: Result<NewJob>, deps: &[DepRef], ignore: Ignore) {
        let mut job = match job {
            Ok(job) => job,
            Err(error) => return self.fail(error),
        };
        if job.unique.is_some() {
            return self.fail(Error::Workflow(format!(
                "step \"{name}\" ({}) is unique, and a workflow step cannot be: a duplicate would \
                 be dropped and the steps after it would wait forever; pass the worker's builder \
                 with `.not_unique()`",
                job.worker
            )));
        }
        if name.is_empty() || name.as_ref() == "*" {
            return self.fail(Error::Workflow(format!(
                "\"{name}\" cannot name a step: give it a name of its own"
            )));
        }
        if !self.names.insert(Arc::clone(name)) || self.existing.contains(name) {
            return self.fail(Error::Workflow(format!(
                "two steps are named \"{name}\" in workflow {}: give each step a name of its own",
                self.workflow_id
            )));
        }
        StepMeta {
            workflow_id: &self.workflow_id,
            workflow_name: self.workflow_name.as_deref(),
            name,
            deps,
            ignore,
            sup: self
                .sup
                .as_ref()
                .map(|(id, name)| (id.as_str(), name.as_str())),
        }
        .write_into(&mut job.meta);
        self.jobs.push(job);
    }

    fn fail(&mut self, error: Error) {
        self.error.get_or_insert(error);
    }

    /// The jobs, in the order added (every dependency before its dependents), or the first
    /// error.
    pub(crate) fn finish(self) -> Result<Vec<NewJob>> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.jobs),
        }
    }
}

impl std::fmt::Debug for Steps<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steps")
            .field("workflow_id", &self.workflow_id)
            .field("steps", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

/// A built workflow, ready to insert: its steps are ordinary jobs, those with dependencies
/// inserted `suspended`.
#[derive(Debug, Clone)]
pub struct NewWorkflow {
    id: String,
    name: Option<String>,
    jobs: Vec<NewJob>,
}

impl NewWorkflow {
    /// The workflow's id (a UUIDv7), for [`Admin`](crate::admin::Admin)'s workflow calls and
    /// the dashboard.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The jobs, in the order added (sub-workflows' steps where they were added).
    pub fn jobs(&self) -> &[NewJob] {
        &self.jobs
    }

    /// Inserts every step in one statement: on an [`Oban`](crate::Oban), a pool, or inside
    /// your own transaction (`&mut *tx`), where the whole workflow commits or rolls back with
    /// your data. Returns the stored jobs in the order added.
    pub async fn insert<'a, I: JobInserter<'a>>(self, target: I) -> Result<Vec<Job>> {
        target.insert_jobs(self.jobs).await
    }
}
