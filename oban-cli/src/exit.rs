//! Exit codes scripts can trust, and the error a command fails with.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | error: the database, a refused or impossible confirmation, an operation that failed |
//! | 2 | usage: a bad flag or value (clap's own code), no database given, a filter a command cannot take |
//! | 3 | nothing matched: `jobs`, `job`, `retry`, `cancel`, `delete`, `replay`, `prune` found no job; `workflows` found none, `workflow` no such workflow, or nothing for its `--cancel`/`--retry` to change; `migrate --check` found migrations pending |

use std::fmt;

/// Done.
pub(crate) const OK: u8 = 0;
/// A runtime failure.
pub(crate) const ERROR: u8 = 1;
/// A usage mistake.
pub(crate) const USAGE: u8 = 2;
/// Nothing matched the filter.
pub(crate) const NOTHING_MATCHED: u8 = 3;

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// It did what was asked: exit 0.
    Done,
    /// Its filter matched nothing (or, for `migrate --check`, the schema is behind): exit 3.
    NothingMatched,
}

impl Status {
    /// The exit code.
    pub(crate) fn code(self) -> u8 {
        match self {
            Status::Done => OK,
            Status::NothingMatched => NOTHING_MATCHED,
        }
    }
}

/// A command's failure: a message for stderr and the exit code it means.
#[derive(Debug)]
pub(crate) struct Error {
    message: String,
    code: u8,
}

impl Error {
    /// A runtime failure: exit 1.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: ERROR,
        }
    }

    /// A usage mistake found after parsing: exit 2.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: USAGE,
        }
    }

    /// The exit code.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<oban_core::Error> for Error {
    fn from(err: oban_core::Error) -> Self {
        // oban_core masks passwords in every error that names a database.
        let text = err.to_string();
        if text.contains("relation \"oban_") && text.contains("does not exist") {
            return Self::new(format!(
                "{text}\nthe Oban schema is not installed in this database (or --prefix): \
                 `oban migrate --check` tells, `oban migrate` installs it"
            ));
        }
        Self::new(text)
    }
}

/// A command's result.
pub(crate) type Result<T> = std::result::Result<T, Error>;
