//! Typed results between steps: what a worker records ([`Produces`]), what a step may be made
//! of ([`IntoStep`]), and the reference to an upstream step a dependent carries in its args
//! ([`Upstream`]).

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Result;
use crate::new_job::{IntoNewJob, JobBuilder, NewJob};
use crate::worker::Worker;

/// The result a worker records for each of its jobs: `T` for a `#[worker]` fn returning
/// `Result<T, E>`, `()` for one that records nothing. `#[worker]` implements it; a worker
/// written by hand implements it to be a workflow step.
///
/// ```
/// use oban_core::workflow::Produces;
/// # use oban_core::{JobContext, JobError, Outcome, Worker};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Count { text: String }
/// # impl Worker for Count {
/// #     const NAME: &'static str = "Count";
/// #     async fn perform(self, _: JobContext) -> Result<Outcome, JobError> {
/// #         Ok(Outcome::Record(serde_json::json!(self.text.len())))
/// #     }
/// # }
/// impl Produces for Count {
///     type Output = usize;
/// }
/// ```
pub trait Produces {
    /// The recorded result's type.
    type Output;
}

/// What a workflow step can be made of: a worker's args, its [`JobBuilder`], or a [`NewJob`]
/// (whose result is untyped JSON).
pub trait IntoStep {
    /// The result the step records.
    type Output;

    /// The job, validated.
    fn into_step(self) -> Result<NewJob>;
}

impl<W: Worker + Produces> IntoStep for W {
    type Output = W::Output;

    fn into_step(self) -> Result<NewJob> {
        JobBuilder::new(self).build()
    }
}

impl<W: Worker + Produces> IntoStep for JobBuilder<W> {
    type Output = W::Output;

    fn into_step(self) -> Result<NewJob> {
        self.build()
    }
}

impl IntoStep for NewJob {
    type Output = serde_json::Value;

    fn into_step(self) -> Result<NewJob> {
        self.into_new_job()
    }
}

/// A reference to an upstream step of the same workflow, typed with the result it records: put
/// it in the args of a step that depends on it (made by [`Step::upstream`](super::Step::upstream)),
/// read the result there with [`Flow::result`](super::Flow::result). Stored as the step's name.
///
/// ```
/// use oban_core::workflow::Upstream;
///
/// let fetched: Upstream<Vec<String>> = Upstream::named("fetch");
/// assert_eq!(serde_json::to_value(&fetched).unwrap(), "fetch");
/// ```
pub struct Upstream<T> {
    name: String,
    output: PhantomData<fn() -> T>,
}

impl<T> Upstream<T> {
    /// A reference to the step of this name. Prefer [`Step::upstream`](super::Step::upstream),
    /// which takes the type from the step.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            output: PhantomData,
        }
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T> Clone for Upstream<T> {
    fn clone(&self) -> Self {
        Self::named(self.name.clone())
    }
}

impl<T> PartialEq for Upstream<T> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl<T> Eq for Upstream<T> {}

impl<T> fmt::Debug for Upstream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Upstream").field(&self.name).finish()
    }
}

impl<T> Serialize for Upstream<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.name.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Upstream<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::named)
    }
}
