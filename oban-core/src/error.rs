//! The crate's error type.

/// Everything that can go wrong outside a job's own code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A job's arguments could not be encoded to JSON.
    #[error("could not encode the arguments of a `{worker}` job as JSON: {source}")]
    EncodeArgs {
        /// The worker name.
        worker: String,
        /// serde's message.
        #[source]
        source: serde_json::Error,
    },
    /// A job or option value is out of range; the message says which and what is allowed.
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// The builder was given an impossible configuration; the message says what to change.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Applying the schema failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A bulk operation was given a filter with no condition, which would act on every job.
    #[error("refusing to {operation} every job: the filter has no condition; add one (queue, worker, state, ids, ...) or pass `JobFilter::all()` to {operation} every job on purpose")]
    EmptyFilter {
        /// The operation refused: `retry`, `cancel` or `delete`.
        operation: &'static str,
    },
    /// The node is shutting down or was stopped.
    #[error("Oban is not running (it was stopped or never started)")]
    NotRunning,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
