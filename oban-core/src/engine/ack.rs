//! [`Ack`]: what to record about one finished (or interrupted) attempt, and how it is made
//! storable on every engine.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::job::JobState;

/// What to record about one finished (or interrupted) attempt.
///
/// ```
/// use oban_core::engine::Ack;
/// use oban_core::JobState;
///
/// let ack = Ack {
///     id: 42,
///     attempted_at: chrono::Utc::now().naive_utc(),
///     state: JobState::Completed,
///     schedule_in: None,
///     give_back_attempt: false,
///     error: None,
///     meta: None,
/// };
/// assert!(ack.is_plain_completion());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    /// The job.
    pub id: i64,
    /// The `attempted_at` of the attempt, as fetched: the ack only applies while the job is
    /// still `executing` that very attempt, so a job rescued or cancelled meanwhile is left alone.
    pub attempted_at: chrono::NaiveDateTime,
    /// The new state.
    pub state: JobState,
    /// When set, the job runs again this long from now (database clock).
    pub schedule_in: Option<Duration>,
    /// Attempts given back (1 for a snooze or an interrupted attempt).
    pub give_back_attempt: bool,
    /// An entry appended to the job's `errors` (`{"at", "attempt", "error"}`).
    pub error: Option<Value>,
    /// Keys merged into the job's `meta`.
    pub meta: Option<Value>,
}

impl Ack {
    /// The longest delay an ack can carry: 100 years (36,525 days). Every engine stores a
    /// timestamp this far ahead (PostgreSQL's `timestamp` and `interval` reach far beyond it,
    /// SQLite's text timestamps stay four-digit years), so a longer snooze or backoff, up to
    /// `Duration::MAX`, is recorded as this one.
    pub const MAX_DELAY: Duration = Duration::from_secs(36_525 * 24 * 60 * 60);

    /// What replaces each NUL character (`\0`) in the text of `error` and `meta`: U+FFFD, the
    /// Unicode replacement character `�`. PostgreSQL's `jsonb` cannot hold a NUL.
    pub const NUL_SUBSTITUTE: char = '\u{FFFD}';

    /// Whether this ack only completes the job: no error, meta, schedule or attempt change, so an
    /// engine may record it with a narrower statement.
    pub fn is_plain_completion(&self) -> bool {
        self.state == JobState::Completed
            && self.schedule_in.is_none()
            && !self.give_back_attempt
            && self.error.is_none()
            && self.meta.is_none()
    }

    /// This ack in a form every engine can store: NUL characters in the strings (values and
    /// keys) of `error` and `meta` replaced by [`Ack::NUL_SUBSTITUTE`], `schedule_in` at most
    /// [`Ack::MAX_DELAY`]. Everything else is unchanged.
    ///
    /// ```
    /// use std::time::Duration;
    /// use oban_core::engine::Ack;
    /// use oban_core::JobState;
    ///
    /// let ack = Ack {
    ///     id: 1,
    ///     attempted_at: chrono::Utc::now().naive_utc(),
    ///     state: JobState::Scheduled,
    ///     schedule_in: Some(Duration::MAX),
    ///     give_back_attempt: true,
    ///     error: Some(serde_json::json!({ "attempt": 1, "error": "bad\0byte" })),
    ///     meta: None,
    /// }
    /// .storable();
    /// assert_eq!(ack.schedule_in, Some(Ack::MAX_DELAY));
    /// assert_eq!(ack.error.unwrap()["error"], "bad\u{FFFD}byte");
    /// ```
    #[must_use]
    pub fn storable(mut self) -> Self {
        self.schedule_in = self.schedule_in.map(|delay| delay.min(Self::MAX_DELAY));
        if let Some(error) = &mut self.error {
            replace_nul(error);
        }
        if let Some(meta) = &mut self.meta {
            replace_nul(meta);
        }
        self
    }

    /// What to record instead when the database refused this ack on its own (`why`): the same
    /// outcome, with the error entry replaced by a short note that the original could not be
    /// stored and why, and no meta changes.
    #[must_use]
    pub fn fallback(&self, why: &str) -> Self {
        let mut why: String = why.chars().take(200).collect();
        why = why.replace('\0', &Self::NUL_SUBSTITUTE.to_string());
        let mut entry = Map::new();
        if let Some(attempt) = self.error.as_ref().and_then(|e| e.get("attempt")) {
            entry.insert("attempt".to_owned(), attempt.clone());
        }
        entry.insert(
            "at".to_owned(),
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        entry.insert(
            "error".to_owned(),
            json!(format!(
                "the outcome of this attempt ({}) could not be stored, so its error and meta were \
                 left out: {why}",
                self.state.as_str()
            )),
        );
        Self {
            error: Some(Value::Object(entry)),
            meta: None,
            ..self.clone()
        }
        .storable()
    }
}

/// Replaces NUL characters in every string of `value`, object keys included.
fn replace_nul(value: &mut Value) {
    fn clean(text: &str) -> String {
        text.replace('\0', &Ack::NUL_SUBSTITUTE.to_string())
    }
    match value {
        Value::String(text) if text.contains('\0') => *text = clean(text),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) => {
            if map.keys().any(|key| key.contains('\0')) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(key, value)| (clean(&key), value))
                    .collect();
            }
            map.values_mut().for_each(replace_nul);
        }
        _ => {}
    }
}

/// The default of [`Engine::is_data_error`](crate::engine::Engine::is_data_error): errors the
/// values cause whatever the database (a constraint violation, a value that could not be
/// encoded, an invalid job), as opposed to a lost connection, a pool timeout or I/O.
pub fn is_data_error(error: &Error) -> bool {
    match error {
        Error::InvalidJob(_) | Error::EncodeArgs { .. } => true,
        Error::Database(sqlx::Error::Encode(_)) => true,
        Error::Database(sqlx::Error::Database(db)) => {
            !matches!(db.kind(), sqlx::error::ErrorKind::Other)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack() -> Ack {
        Ack {
            id: 7,
            attempted_at: chrono::NaiveDateTime::default(),
            state: JobState::Retryable,
            schedule_in: Some(Duration::from_secs(30)),
            give_back_attempt: false,
            error: Some(json!({ "attempt": 3, "at": "now", "error": "a\0b" })),
            meta: Some(json!({ "k\0": ["x\0", { "y": "\0" }], "n": 1 })),
        }
    }

    #[test]
    fn storable_replaces_every_nul_and_clamps_the_delay() {
        let mut ack = ack();
        ack.schedule_in = Some(Duration::MAX);
        let ack = ack.storable();
        assert_eq!(ack.schedule_in, Some(Ack::MAX_DELAY));
        assert_eq!(ack.error.as_ref().unwrap()["error"], "a\u{FFFD}b");
        assert_eq!(
            ack.meta,
            Some(json!({ "k\u{FFFD}": ["x\u{FFFD}", { "y": "\u{FFFD}" }], "n": 1 }))
        );
        assert!(!serde_json::to_string(&ack.meta)
            .unwrap()
            .contains("\\u0000"));
    }

    #[test]
    fn storable_keeps_what_is_already_storable() {
        let mut ack = ack();
        ack.error = Some(json!({ "attempt": 3, "error": "fine" }));
        ack.meta = None;
        assert_eq!(ack.clone().storable(), ack);
    }

    #[test]
    fn fallback_keeps_the_outcome_and_explains() {
        let fallback = ack().fallback("unsupported Unicode escape sequence");
        assert_eq!(fallback.state, JobState::Retryable);
        assert_eq!(fallback.schedule_in, Some(Duration::from_secs(30)));
        assert_eq!(fallback.meta, None);
        let entry = fallback.error.unwrap();
        assert_eq!(entry["attempt"], 3);
        let message = entry["error"].as_str().unwrap();
        assert!(message.contains("could not be stored"), "{message}");
        assert!(message.contains("unsupported Unicode escape"), "{message}");
    }
}
