//! The [`Worker`] trait: what runs a job.
//!
//! A worker is a type that is both the job's arguments (it is serialized into the job's `args`
//! column) and the code that runs it. The `#[oban::worker]` attribute writes the trait impl for an
//! `async fn`; implementing it by hand is just as supported:
//!
//! ```
//! use oban_core::{JobContext, JobError, Outcome, Worker, WorkerOptions};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Resize {
//!     image_id: i64,
//! }
//!
//! impl Worker for Resize {
//!     const NAME: &'static str = "Resize";
//!
//!     fn options() -> WorkerOptions {
//!         WorkerOptions::new().queue("media").max_attempts(5)
//!     }
//!
//!     async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
//!         if ctx.job().attempt > 3 {
//!             return Ok(Outcome::Discard("giving up on this image".into()));
//!         }
//!         let _ = self.image_id;
//!         Ok(Outcome::Complete)
//!     }
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backoff::Backoff;
use crate::job::Job;
use crate::sequence::SequenceOptions;
use crate::state::{State, StateKey, StateMap};
use crate::unique::UniqueOptions;

/// A job's code, and the type of its arguments.
///
/// `NAME` is the string stored in the `worker` column. It must stay stable: renaming the Rust type
/// must not orphan jobs already in the table, and other Oban nodes (Elixir, Python) find their
/// worker by that same string. A node that claims a job whose worker it does not have (a new
/// worker during a rolling deploy, a misspelt name) defers the job to another node without
/// spending an attempt, for about an hour, then fails it as usual: see [`crate::deferral`].
pub trait Worker: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stored worker name, e.g. `"SendReceipt"` or `"MyApp.Workers.SendReceipt"`.
    const NAME: &'static str;

    /// Cron schedules of this worker, `(expression, IANA time zone)`: every node started with
    /// the worker inserts a job with empty args at each due minute (only the leader does, once
    /// per minute across the cluster). `#[worker(cron = "..", timezone = "..")]` fills it in
    /// after checking both at compile time; by hand, a bad entry makes `Oban::start` fail.
    const CRON: &'static [(&'static str, &'static str)] = &[];

    /// Defaults for every job of this worker: queue, attempts, priority, tags, timeout, backoff.
    fn options() -> WorkerOptions {
        WorkerOptions::new()
    }

    /// The `State<T>` values this worker needs; [`Builder::start`](crate::Builder::start)
    /// fails when one of them was not registered with the builder's `.state(..)` and the node
    /// runs this worker's queue (a node that does not run it, say one that only inserts, needs
    /// none).
    fn required_state() -> Vec<StateKey> {
        Vec::new()
    }

    /// Runs one attempt of the job. `self` holds the job's decoded arguments.
    fn perform(self, ctx: JobContext) -> impl Future<Output = Result<Outcome, JobError>> + Send;
}

/// A worker's defaults, applied to each of its jobs unless the job overrides them.
///
/// ```
/// use std::time::Duration;
/// use oban_core::{Backoff, WorkerOptions};
///
/// let options = WorkerOptions::new()
///     .queue("mailers")
///     .max_attempts(10)
///     .priority(1)
///     .tags(&["email"])
///     .timeout(Duration::from_secs(30))
///     .backoff(Backoff::Linear { base: Duration::from_secs(5) });
/// assert_eq!(options.queue, "mailers");
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// Queue the jobs go to (default `"default"`).
    pub queue: &'static str,
    /// Attempts before a failing job is discarded (default 20, as Oban).
    pub max_attempts: u16,
    /// 0 (highest) to 9 (lowest); default 0.
    pub priority: u8,
    /// Tags stored with every job.
    pub tags: &'static [&'static str],
    /// How long one attempt may run before it is stopped and counted as failed (default: no limit).
    pub timeout: Option<Duration>,
    /// Delay before a failed attempt is retried.
    pub backoff: Backoff,
    /// Which jobs of this worker count as duplicates (default: none do).
    pub unique: Option<UniqueOptions>,
    /// The sequence its jobs belong to (default: none); see [`crate::sequence`].
    pub sequence: Option<SequenceOptions>,
    /// Whether the worker records results: its jobs are inserted with `meta.recorded = true`,
    /// as Oban Pro marks them (Oban Web then says a result is still to come). `#[worker]` sets
    /// it for a fn returning `Result<T, E>` with a `T` to record.
    pub recorded: bool,
    /// The longest recorded result ([`Outcome::Record`]) kept, in characters of its encoded
    /// form (default [`recorded::DEFAULT_LIMIT`](crate::recorded::DEFAULT_LIMIT), 32,000).
    pub record_limit: usize,
}

impl WorkerOptions {
    /// Oban's defaults: queue `default`, 20 attempts, priority 0, no tags, no timeout, Oban's
    /// exponential backoff.
    pub const fn new() -> Self {
        Self {
            queue: "default",
            max_attempts: 20,
            priority: 0,
            tags: &[],
            timeout: None,
            backoff: Backoff::Default,
            unique: None,
            sequence: None,
            recorded: false,
            record_limit: crate::recorded::DEFAULT_LIMIT,
        }
    }

    /// Sets the queue.
    pub const fn queue(mut self, queue: &'static str) -> Self {
        self.queue = queue;
        self
    }

    /// Sets the maximum number of attempts.
    pub const fn max_attempts(mut self, max_attempts: u16) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets the priority, 0 (highest) to 9.
    pub const fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the tags.
    pub const fn tags(mut self, tags: &'static [&'static str]) -> Self {
        self.tags = tags;
        self
    }

    /// Sets the per-attempt timeout.
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the backoff strategy.
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Makes the worker's jobs unique.
    pub const fn unique(mut self, unique: UniqueOptions) -> Self {
        self.unique = Some(unique);
        self
    }

    /// Puts the worker's jobs in sequences: those with the same key run one at a time, in
    /// insertion order (see [`crate::sequence`]).
    ///
    /// ```
    /// use oban_core::{SequenceOptions, WorkerOptions};
    ///
    /// let options = WorkerOptions::new().sequence(SequenceOptions::new().keys(&["account_id"]));
    /// assert!(options.sequence.is_some());
    /// ```
    pub const fn sequence(mut self, sequence: SequenceOptions) -> Self {
        self.sequence = Some(sequence);
        self
    }

    /// Marks the worker as recording results (see [`recorded`](Self::recorded)).
    pub const fn recorded(mut self) -> Self {
        self.recorded = true;
        self
    }

    /// Sets the longest recorded result kept, in characters of its encoded form.
    ///
    /// ```
    /// use oban_core::WorkerOptions;
    ///
    /// let options = WorkerOptions::new().recorded().record_limit(256_000);
    /// assert!(options.recorded);
    /// ```
    pub const fn record_limit(mut self, characters: usize) -> Self {
        self.record_limit = characters;
        self
    }
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// What a finished attempt asks for, besides failing.
///
/// Returning `Err(..)` from a worker (or panicking, or timing out) is a failure: the job is retried
/// with backoff until `max_attempts`, then discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The job is done: state `completed`.
    Complete,
    /// Run again after this delay without spending an attempt; `meta.snoozed` counts snoozes.
    /// A delay longer than [`Ack::MAX_DELAY`](crate::engine::Ack::MAX_DELAY) (100 years, up to
    /// `Duration::MAX`) is recorded as that.
    Snooze(Duration),
    /// Give up for good: state `discarded`, with this reason kept in the job's errors.
    Discard(String),
    /// Stop on purpose: state `cancelled`, with this reason kept in the job's errors.
    Cancel(String),
    /// The job is done (state `completed`) and this value is kept with it, readable later with
    /// [`Job::recorded`](crate::Job::recorded) and by Elixir and Python Oban (see
    /// [`crate::recorded`]). A `#[worker]` fn returning `Result<T, E>` with a serializable `T`
    /// records `T` this way. An encoded value longer than the worker's
    /// [`record_limit`](WorkerOptions::record_limit) fails the attempt instead, saying so.
    Record(serde_json::Value),
}

/// A failed attempt: its message, with the error's whole source chain, is kept in the job's
/// `errors` (any NUL character (`\0`), which PostgreSQL's `jsonb` cannot hold, stored as U+FFFD
/// (`�`) on every engine).
///
/// An error a worker returns keeps its chain of [`source`](std::error::Error::source)s: the
/// message is every level joined with `": "`, top first, as `anyhow` prints `{:#}`. A level
/// whose text the message so far already ends with (an error that writes its source into its
/// own message, as `#[error("fetching the rates: {0}")]` does) is not repeated:
///
/// ```
/// use std::fmt;
/// use oban_core::JobError;
///
/// #[derive(Debug)]
/// struct Upload(std::io::Error);
///
/// impl fmt::Display for Upload {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         f.write_str("uploading the invoice")
///     }
/// }
///
/// impl std::error::Error for Upload {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
///
/// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out");
/// let error = JobError::from_error(&Upload(io));
/// assert_eq!(error.message(), "uploading the invoice: connection timed out");
/// assert_eq!(error.chain().collect::<Vec<_>>(), ["uploading the invoice", "connection timed out"]);
///
/// assert_eq!(JobError::new("the provider is down").message(), "the provider is down");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// The chain joined, as stored.
    message: String,
    /// Each level's own message, top first.
    chain: Vec<String>,
}

impl JobError {
    /// An error with this message and no source.
    pub fn new(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            chain: vec![message.clone()],
            message,
        }
    }

    /// An error with the message of `error` and of each of its sources, as a worker's `Err`
    /// records it. A `JobError` is taken as it is.
    pub fn from_error(error: &(dyn std::error::Error + 'static)) -> Self {
        if let Some(job_error) = error.downcast_ref::<JobError>() {
            return job_error.clone();
        }
        let mut chain = Vec::new();
        let mut message = String::new();
        let mut level = Some(error);
        while let Some(error) = level {
            let text = error.to_string();
            if chain.is_empty() {
                message.push_str(&text);
            } else if !text.is_empty() && !message.ends_with(text.as_str()) {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&text);
            }
            chain.push(text);
            level = error.source();
        }
        Self { message, chain }
    }

    /// The message stored in the job's `errors`: the whole chain, `"top: cause: root"`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message of each level of the error, top first, as each wrote it: one for an error
    /// made with [`JobError::new`].
    pub fn chain(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.chain.iter().map(String::as_str)
    }
}

impl fmt::Display for JobError {
    /// The whole chain: this error's `source` is `None`, as its message includes its sources.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JobError {}

/// Return types a worker fn may have: `()`, [`Outcome`], `Result<(), E>` and `Result<Outcome, E>`
/// where `E` is any error that is `Send + Sync` (its [`source`](std::error::Error::source) chain
/// is recorded, see [`JobError`]), [`JobError`], `Box<dyn Error + Send + Sync>`,
/// `anyhow::Error`, a `String` or a `&'static str`: whatever converts into
/// `Box<dyn std::error::Error + Send + Sync>`. A `#[worker]` fn may also return `Result<T, E>`
/// with any serializable `T`: the value is recorded ([`Outcome::Record`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a return type a worker can have",
    label = "unsupported worker return type",
    note = "return `()`, `Outcome`, `Result<(), E>`, `Result<Outcome, E>` or `Result<T, E>` to record a serializable `T`, where `E` is an error (`std::error::Error + Send + Sync`), `anyhow::Error`, `String` or `&str`"
)]
pub trait IntoJobResult {
    /// Maps the value to an outcome or a failure.
    fn into_job_result(self) -> Result<Outcome, JobError>;
}

impl IntoJobResult for () {
    fn into_job_result(self) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

impl IntoJobResult for Outcome {
    fn into_job_result(self) -> Result<Outcome, JobError> {
        Ok(self)
    }
}

impl<E> IntoJobResult for Result<(), E>
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    fn into_job_result(self) -> Result<Outcome, JobError> {
        self.map(|()| Outcome::Complete).map_err(job_error)
    }
}

impl<E> IntoJobResult for Result<Outcome, E>
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    fn into_job_result(self) -> Result<Outcome, JobError> {
        self.map_err(job_error)
    }
}

/// A `#[worker]` fn's `Result<T, E>` with a value to record: `Ok(value)` becomes
/// [`Outcome::Record`]; a value serde cannot turn into JSON fails the attempt, saying why.
#[doc(hidden)]
pub fn record<T, E>(result: Result<T, E>) -> Result<Outcome, JobError>
where
    T: serde::Serialize,
    E: Into<BoxError>,
{
    match result {
        Ok(value) => serde_json::to_value(&value)
            .map(Outcome::Record)
            .map_err(|e| JobError::new(format!("the result could not be recorded as JSON: {e}"))),
        Err(error) => Err(job_error(error)),
    }
}

/// What a worker's error converts into on its way to a [`JobError`].
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

fn job_error(error: impl Into<BoxError>) -> JobError {
    let error: BoxError = error.into();
    JobError::from_error(&*error)
}

/// What a running attempt can see: the job row and the node's registered state.
#[derive(Clone)]
pub struct JobContext {
    job: Arc<Job>,
    state: Arc<StateMap>,
}

impl JobContext {
    /// A context for `job` with the given state values.
    pub fn new(job: Arc<Job>, state: Arc<StateMap>) -> Self {
        Self { job, state }
    }

    /// The running job: id, attempt, errors of earlier attempts, meta, ...
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The workflow of the running step (see [`crate::workflow`]).
    ///
    /// # Errors
    /// [`Error::Workflow`](crate::Error::Workflow) when the job is not a workflow step.
    pub fn flow(&self) -> crate::Result<crate::workflow::Flow> {
        crate::workflow::Flow::of(Arc::clone(&self.job), &self.state)
    }

    /// A value registered on the builder with `.state(value)`, or `None`.
    pub fn try_state<T: Send + Sync + 'static>(&self) -> Option<State<T>> {
        self.state.get::<T>()
    }

    /// A value registered on the builder with `.state(value)`.
    ///
    /// # Panics
    /// When no value of type `T` was registered. Workers made by `#[worker]` declare their state
    /// types, so `Oban::start` refuses to start without them and this cannot happen at run time.
    pub fn state<T: Send + Sync + 'static>(&self) -> State<T> {
        self.try_state().unwrap_or_else(|| {
            panic!(
                "no state of type `{}` was registered: add `.state(value)` to the Oban builder",
                std::any::type_name::<T>()
            )
        })
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    /// An error with a message of its own and an optional source.
    #[derive(Debug)]
    struct Layer {
        message: &'static str,
        source: Option<Box<Layer>>,
    }

    impl Layer {
        fn chain(messages: &[&'static str]) -> Self {
            let (message, rest) = messages.split_first().expect("a message");
            Self {
                message,
                source: (!rest.is_empty()).then(|| Box::new(Self::chain(rest))),
            }
        }
    }

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.message)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.source.as_deref().map(|s| s as &(dyn Error + 'static))
        }
    }

    fn failure(result: impl IntoJobResult) -> JobError {
        result.into_job_result().expect_err("a failure")
    }

    #[test]
    fn a_worker_error_keeps_its_whole_source_chain() {
        let error = failure(Err::<(), _>(Layer::chain(&[
            "charging the card",
            "the payment provider refused",
            "connection reset",
        ])));
        assert_eq!(
            error.message(),
            "charging the card: the payment provider refused: connection reset"
        );
        assert_eq!(error.chain().len(), 3);
        assert_eq!(error.to_string(), error.message());
    }

    #[test]
    fn a_source_the_message_already_ends_with_is_not_repeated() {
        let error = JobError::from_error(&Layer::chain(&[
            "fetching the rates: timed out",
            "timed out",
            "os error 110",
        ]));
        assert_eq!(
            error.message(),
            "fetching the rates: timed out: os error 110"
        );
        assert_eq!(
            error.chain().collect::<Vec<_>>(),
            ["fetching the rates: timed out", "timed out", "os error 110"]
        );
    }

    #[test]
    fn strings_job_errors_and_boxed_errors_are_errors_too() {
        assert_eq!(failure(Err::<(), _>("no stock")).message(), "no stock");
        assert_eq!(
            failure(Err::<Outcome, _>(String::from("no stock"))).message(),
            "no stock"
        );
        let kept = JobError::from_error(&Layer::chain(&["top", "root"]));
        assert_eq!(failure(Err::<(), _>(kept.clone())), kept);
        let boxed: Box<dyn Error + Send + Sync> = Box::new(Layer::chain(&["top", "root"]));
        assert_eq!(failure(Err::<(), _>(boxed)).message(), "top: root");
        assert_eq!(
            JobError::new("plain").chain().collect::<Vec<_>>(),
            ["plain"]
        );
    }
}
