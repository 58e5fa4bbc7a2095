//! The crate's error type.

/// Everything that can go wrong outside a job's own code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// No connection to the database could be opened; `target` is the URL with its password
    /// masked, `source` says why (a refused connection, an unknown host, a failed login...).
    #[error("could not connect to the database at {target}: {source}")]
    Connect {
        /// Where, with any password replaced by `***`.
        target: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
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
    /// The operation needs what [`crate::migrate()`] adds to the schema, and the database lacks
    /// it: its `oban_jobs` was installed by another Oban implementation (Elixir or Python) and
    /// never migrated by this runtime. `needs` names the operation.
    #[error("{needs} needs the `uniq_key` column and index that `oban::migrate` adds to `oban_jobs`, and this database does not have them (its schema was installed by another Oban implementation): run `oban::migrate(&pool)` once against it (it keeps the existing table and its jobs), then insert again")]
    NotMigrated {
        /// What was refused, e.g. "a unique insert".
        needs: &'static str,
    },
    /// A bulk operation was given a filter with no condition, which would act on every job.
    #[error("refusing to {operation} every job: the filter has no condition; add one (queue, worker, state, ids, ...) or pass `JobFilter::all()` to {operation} every job on purpose")]
    EmptyFilter {
        /// The operation refused: `retry`, `cancel` or `delete`.
        operation: &'static str,
    },
    /// A recorded result could not be written or read back (see [`crate::recorded`]); the
    /// message says what was wrong with it.
    #[error("recorded result: {0}")]
    Recorded(String),

    /// A workflow that cannot be built or inserted, or a step's read of an upstream result that
    /// cannot be answered (see [`crate::workflow`]); the message says which step and why.
    #[error("workflow: {0}")]
    Workflow(String),
    /// The node is shutting down or was stopped.
    #[error("Oban is not running (it was stopped or never started)")]
    NotRunning,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `text` with every password it may hold replaced by `***`: the one of a URL's user info
/// (`postgres://user:secret@host/db`) and the value of any `password=` setting (a URL's query,
/// or a `key=value` connection string, quoted or not). For messages and logs that name a
/// database.
pub(crate) fn redact(text: &str) -> String {
    const MASK: &str = "***";
    let ends_token = |c: char| c.is_whitespace() || matches!(c, '`' | '"' | '\'');
    let mut out = text.to_owned();
    // URL user info: between the scheme's `://` and the token's last `@`.
    let mut from = 0;
    while let Some(found) = out[from..].find("://") {
        let start = from + found + 3;
        let token_end = out[start..]
            .find(ends_token)
            .map_or(out.len(), |i| start + i);
        from = token_end;
        let Some(at) = out[start..token_end].rfind('@').map(|i| start + i) else {
            continue;
        };
        if let Some(colon) = out[start..at].find(':').map(|i| start + i) {
            out.replace_range(colon + 1..at, MASK);
            from = colon + 1 + MASK.len();
        }
    }
    // `password=value` settings, any case, `sslpassword` included.
    let mut from = 0;
    loop {
        let lower = out.to_ascii_lowercase();
        let Some(found) = lower[from..].find("password") else {
            break;
        };
        let mut i = from + found + "password".len();
        let rest = &out[i..];
        let spaces = rest.len() - rest.trim_start().len();
        if !out[i + spaces..].starts_with('=') {
            from = i;
            continue;
        }
        i += spaces + 1;
        let rest = &out[i..];
        i += rest.len() - rest.trim_start().len();
        let value_end = if out[i..].starts_with('\'') {
            let mut end = out.len();
            let mut escaped = false;
            for (j, c) in out[i + 1..].char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    // A quote ends the value only where the value can end, so a doubled or
                    // stray quote inside it never leaves a tail unmasked.
                    '\'' if !escaped
                        && out[i + 2 + j..]
                            .chars()
                            .next()
                            .is_none_or(char::is_whitespace) =>
                    {
                        end = i + 1 + j + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            end
        } else {
            out[i..]
                .find(|c: char| ends_token(c) || matches!(c, '&' | ';' | ','))
                .map_or(out.len(), |j| i + j)
        };
        out.replace_range(i..value_end, MASK);
        from = i + MASK.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_masked_in_every_form() {
        let cases = [
            (
                "postgres://app:s3cret@db.example:5432/jobs",
                "postgres://app:***@db.example:5432/jobs",
            ),
            (
                "postgres://app:p@ss/w:rd@db/jobs?sslmode=require",
                "postgres://app:***@db/jobs?sslmode=require",
            ),
            (
                "postgres://app@db/jobs?password=s3cret&sslmode=disable",
                "postgres://app@db/jobs?password=***&sslmode=disable",
            ),
            (
                "host=db user=app password=s3cret dbname=jobs",
                "host=db user=app password=*** dbname=jobs",
            ),
            (
                "host=db PASSWORD = 'it''s a \\' secret' sslpassword=k3y",
                "host=db PASSWORD = *** sslpassword=***",
            ),
            (
                "`postgres://u:s3cret@h/db` is not a SQLite URL",
                "`postgres://u:***@h/db` is not a SQLite URL",
            ),
            ("postgres://db.example/jobs", "postgres://db.example/jobs"),
            ("sqlite://data/oban.db", "sqlite://data/oban.db"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }
}
