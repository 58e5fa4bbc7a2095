//! Workflows: jobs that wait for other jobs, with typed results passed along.
//!
//! A workflow is a graph of steps; each step is an ordinary job of any worker, added with the
//! handles of the steps it waits for. The handles are what make the graph safe to write: a step
//! can only name steps added before it (no cycle), only of its own workflow (a handle of another
//! does not compile), and it carries the result type of its worker, so a step that reads it gets
//! that type.
//!
//! ```no_run
//! use oban_core::workflow::{Flow, Upstream, Workflow};
//! # use oban_core::{JobContext, JobError, Outcome, Worker, workflow::Produces};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Fetch { url: String }
//! # impl Worker for Fetch { const NAME: &'static str = "Fetch";
//! #   async fn perform(self, _: JobContext) -> Result<Outcome, JobError> { Ok(Outcome::Complete) } }
//! # impl Produces for Fetch { type Output = String; }
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Count { page: Upstream<String> }
//! # impl Worker for Count { const NAME: &'static str = "Count";
//! #   async fn perform(self, _: JobContext) -> Result<Outcome, JobError> { Ok(Outcome::Complete) } }
//! # impl Produces for Count { type Output = u64; }
//! # async fn demo(oban: &oban_core::Oban) -> oban_core::Result<()> {
//! let workflow = Workflow::new("count-words").build(|wf| {
//!     let fetch = wf.add("fetch", Fetch { url: "https://example.com".into() }, ());
//!     // `fetch.upstream()` is an `Upstream<String>`: `Count` declares that type for its arg.
//!     wf.add("count", Count { page: fetch.upstream() }, &fetch);
//! })?;
//! workflow.insert(oban).await?;
//! # Ok(()) }
//! ```
//!
//! With `#[worker]`, a fn returning `Result<T, E>` records `T` (see [`crate::recorded`]) and
//! its handles are `Step<'_, T>`; a step reads an upstream result through an injected [`Flow`]:
//! `async fn count(page: Upstream<String>, flow: Flow) -> Result<u64, E>` then
//! `flow.result(&page).await?`.
//!
//! # How steps run
//!
//! - A workflow is inserted in one statement, on a node, a pool, or inside your transaction.
//!   Steps without dependencies are `available` at once; the others wait in the `suspended`
//!   state.
//! - When a step finishes, the statement that records its outcome is followed, in one
//!   transaction, by a check of the steps waiting on it: one whose dependencies have all
//!   completed becomes `available` and its queue is woken at once; nothing polls.
//! - A dependency that is cancelled, discarded or deleted cancels its dependents (with an error
//!   naming it), and their dependents in turn, unless the workflow ([`Workflow::ignore`]) or the
//!   step ([`Deps::ignoring`]) ignores that kind of failure: then it counts as completed.
//!   Retries are not failures: a dependent waits while its dependency is `retryable`.
//! - The leader passes over the workflows that have waiting steps every few seconds and
//!   releases or cancels what the acks did not (a step finished by an operator, by another
//!   implementation, or a node that stopped between an ack and its check).
//! - A step adds steps to its own workflow with [`Flow::append`]; a sub-workflow
//!   ([`Steps::add_workflow`]) is waited for as one.
//!
//! # The stored layout
//!
//! Steps keep their workflow in `meta`, as Elixir Oban Pro writes it (see
//! [`layout`] for the keys): its dashboard and ours show each other's workflows.
//! Releasing and cancelling are done by the implementation whose node records the outcome; a
//! workflow is best run by one implementation's workers.

mod builder;
mod flow;
pub mod layout;
mod upstream;

pub use builder::{DepList, Deps, Ignoring, NewWorkflow, Step, Steps, Workflow};
pub(crate) use flow::EngineSlot;
pub use flow::Flow;
pub(crate) use layout::waits;
pub use upstream::{IntoStep, Produces, Upstream};

use std::ops::BitOr;

/// Kinds of dependency failure a step goes on after (as if the dependency completed) instead
/// of being cancelled. Combine them with `|`.
///
/// ```
/// use oban_core::workflow::Ignore;
///
/// let ignore = Ignore::CANCELLED | Ignore::DELETED;
/// assert!(ignore.contains(Ignore::DELETED));
/// assert!(!ignore.contains(Ignore::DISCARDED));
/// assert_eq!(Ignore::ALL, Ignore::CANCELLED | Ignore::DISCARDED | Ignore::DELETED);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ignore(u8);

impl Ignore {
    /// Cancel the step when any dependency fails (the default).
    pub const NONE: Ignore = Ignore(0);
    /// Go on when a dependency was cancelled.
    pub const CANCELLED: Ignore = Ignore(1);
    /// Go on when a dependency was discarded (out of attempts, or discarded by its worker).
    pub const DISCARDED: Ignore = Ignore(2);
    /// Go on when a dependency's job was deleted.
    pub const DELETED: Ignore = Ignore(4);
    /// Go on whatever happened to the dependencies.
    pub const ALL: Ignore = Ignore(7);

    /// Whether every kind in `other` is in `self`.
    pub fn contains(self, other: Ignore) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Ignore {
    type Output = Ignore;

    fn bitor(self, other: Ignore) -> Ignore {
        Ignore(self.0 | other.0)
    }
}
