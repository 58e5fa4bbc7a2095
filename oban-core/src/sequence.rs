//! Sequences: jobs that share a sequence key run one at a time, in insertion order.
//!
//! A job belongs to a sequence through `meta.sequence`, a string key. Set it per job with
//! [`JobBuilder::sequence`](crate::JobBuilder::sequence) (a raw key, which jobs of several
//! workers may share) or per worker with `#[worker(sequence(keys = [account_id]))]` (the
//! worker's name plus the JSON of those args fields, [`SequenceOptions`]).
//!
//! - **Insert.** A sequenced job is inserted `suspended` when its sequence already holds a job
//!   (below); the first of a sequence runs as usual. Of several jobs of one sequence in one
//!   batch, only the first can run at once.
//! - **Release.** When the running job of a sequence finishes, the lowest-id `suspended` job of
//!   it becomes `available` (`scheduled` when its time is still ahead), and its queue is woken.
//!   The acks do this for the jobs they finish, and the operator's retry, delete and cancel (of
//!   a job not running) for the jobs they change; the leader releases, every rescue interval,
//!   the sequences whose holder ended otherwise (a running job cancelled, a job acked by an
//!   Elixir or Python node, a node that stopped between its ack and the release).
//! - **Failures** ([`OnFailure`]). A job that will run again (`retryable`, or `scheduled` by a
//!   snooze) holds its sequence: the next job waits, so the order is kept. A job discarded or
//!   cancelled releases its sequence by default ([`OnFailure::Release`]); with
//!   [`OnFailure::Hold`] (`meta.sequence_hold = true`) it keeps the next jobs waiting until an
//!   operator retries it (it runs again, first) or deletes it.
//!
//! A job *holds* its sequence while it is `available`, `scheduled`, `executing`, `retryable` or
//! `suspended`, and, under [`OnFailure::Hold`], `discarded` or `cancelled`. Both engines take a
//! lock per sequence around the insert and the release (PostgreSQL: a transaction-scoped
//! advisory lock on the prefix and key, taken in key order; SQLite: the write lock), so a job
//! inserted while the last one of its sequence finishes is never left waiting.
//!
//! A job cannot be a workflow step and in a sequence at once: the insert refuses it.
//!
//! ```ignore
//! #[worker(queue = "ledger", sequence(keys = [account_id]))]
//! async fn post_entry(account_id: i64, cents: i64) -> Result<(), JobError> { .. }
//!
//! // Or per job, with any key:
//! Notify::new(7).sequence("account:7").insert(&oban).await?;
//! ```

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The meta keys of a sequenced job.
pub(crate) mod key {
    /// The sequence key (a string).
    pub(crate) const SEQUENCE: &str = "sequence";
    /// `true` when a discarded or cancelled job holds its sequence ([`super::OnFailure::Hold`]).
    pub(crate) const HOLD: &str = "sequence_hold";
}

/// What a discarded or cancelled job does to the jobs of its sequence waiting behind it.
///
/// A job that will run again (a retry, a snooze) always holds its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// The next job runs (the default): a failed job does not stop the jobs behind it.
    #[default]
    Release,
    /// The next jobs wait until an operator retries the failed job (it runs again before them)
    /// or deletes it. Stored as `meta.sequence_hold = true`.
    Hold,
}

/// A worker's sequence: which of its args fields name the sequence of a job, and the failure
/// rule. `#[worker(sequence(keys = [account_id], on_failure = "hold"))]` builds one.
///
/// ```
/// use oban_core::sequence::{OnFailure, SequenceOptions};
///
/// let options = SequenceOptions::new().keys(&["account_id"]).on_failure(OnFailure::Hold);
/// assert_eq!(options.keys, &["account_id"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceOptions {
    /// The args fields whose values (with the worker's name) make the key; none: one sequence
    /// for all of the worker's jobs.
    pub keys: &'static [&'static str],
    /// What a discarded or cancelled job does to its sequence.
    pub on_failure: OnFailure,
}

impl SequenceOptions {
    /// One sequence per worker, released by failures.
    pub const fn new() -> Self {
        Self {
            keys: &[],
            on_failure: OnFailure::Release,
        }
    }

    /// The args fields that name the sequence.
    pub const fn keys(mut self, keys: &'static [&'static str]) -> Self {
        self.keys = keys;
        self
    }

    /// The failure rule.
    pub const fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    /// The key of a job of `worker` with `args`: the worker's name, then `:` and the canonical
    /// JSON of the chosen args fields (fields missing from the args are left out).
    ///
    /// ```
    /// use oban_core::sequence::SequenceOptions;
    /// use serde_json::json;
    ///
    /// let options = SequenceOptions::new().keys(&["account_id"]);
    /// let key = options.key("Ledger.Post", &json!({"account_id": 7, "cents": 100}));
    /// assert_eq!(key, r#"Ledger.Post:{"account_id":7}"#);
    /// ```
    pub fn key(&self, worker: &str, args: &Value) -> String {
        if self.keys.is_empty() {
            return worker.to_owned();
        }
        let picked: Map<String, Value> = self
            .keys
            .iter()
            .filter_map(|k| args.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        let mut out = Vec::with_capacity(worker.len() + 32);
        out.extend_from_slice(worker.as_bytes());
        out.push(b':');
        crate::unique::write_canonical(&Value::Object(picked), &mut out);
        String::from_utf8(out).expect("JSON is UTF-8")
    }
}

impl Default for SequenceOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes the sequence `key` and the failure rule into `meta` (an object).
pub(crate) fn write_into(meta: &mut Map<String, Value>, key: String, on_failure: OnFailure) {
    meta.insert(key::SEQUENCE.into(), Value::String(key));
    match on_failure {
        OnFailure::Hold => {
            meta.insert(key::HOLD.into(), Value::Bool(true));
        }
        OnFailure::Release => {
            meta.remove(key::HOLD);
        }
    }
}

/// The sequence of a job, from its meta.
pub(crate) fn sequence_of(meta: &Value) -> Option<&str> {
    meta.get(key::SEQUENCE).and_then(Value::as_str)
}

/// Whether a job that reached `state` may let the next job of its sequence start: it finished
/// (a job held by [`OnFailure::Hold`] is seen holding by the release itself).
pub(crate) fn ends_run(state: &str) -> bool {
    matches!(state, "completed" | "discarded" | "cancelled")
}

/// Refuses a job whose sequence is not a non-empty string, or that is also a workflow step.
pub(crate) fn validate(worker: &str, meta: &Value) -> Result<()> {
    let Some(value) = meta.get(key::SEQUENCE) else {
        if meta.get(key::HOLD).is_some() {
            return Err(Error::InvalidJob(format!(
                "a `{worker}` job has `meta.sequence_hold` but no `meta.sequence`: set the sequence too"
            )));
        }
        return Ok(());
    };
    match value.as_str() {
        Some(key) if !key.is_empty() => {}
        _ => {
            return Err(Error::InvalidJob(format!(
                "the sequence of a `{worker}` job must be a non-empty string, got {value}"
            )))
        }
    }
    if crate::workflow::layout::workflow_id(meta).is_some() {
        return Err(Error::InvalidJob(format!(
            "a `{worker}` job cannot be both a workflow step and in a sequence: a workflow already orders its steps; drop `.sequence(..)` or insert it outside the workflow"
        )));
    }
    Ok(())
}

/// The sequences of `metas`, sorted and without repeats: the locks an insert takes, in order.
pub(crate) fn sequences<'a>(metas: impl Iterator<Item = &'a Value>) -> Vec<String> {
    let mut keys: Vec<String> = metas.filter_map(sequence_of).map(str::to_owned).collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_key_is_the_worker_and_the_chosen_fields_in_canonical_order() {
        let options = SequenceOptions::new().keys(&["b", "a", "missing"]);
        assert_eq!(
            options.key("W", &json!({"a": 1, "b": {"y": 2, "x": 1}, "c": 3})),
            r#"W:{"a":1,"b":{"x":1,"y":2}}"#
        );
        assert_eq!(SequenceOptions::new().key("W", &json!({"a": 1})), "W");
    }

    #[test]
    fn a_sequenced_workflow_step_and_an_empty_key_are_refused() {
        assert!(validate("W", &json!({"sequence": "k"})).is_ok());
        assert!(validate("W", &json!({})).is_ok());
        let both = validate("W", &json!({"sequence": "k", "workflow_id": "w"})).unwrap_err();
        assert!(both.to_string().contains("both a workflow step"), "{both}");
        assert!(validate("W", &json!({"sequence": ""})).is_err());
        assert!(validate("W", &json!({"sequence": 3})).is_err());
        assert!(validate("W", &json!({"sequence_hold": true})).is_err());
    }

    #[test]
    fn hold_is_written_and_cleared() {
        let mut meta = Map::new();
        write_into(&mut meta, "k".into(), OnFailure::Hold);
        assert_eq!(
            Value::Object(meta.clone()),
            json!({"sequence": "k", "sequence_hold": true})
        );
        write_into(&mut meta, "k".into(), OnFailure::Release);
        assert_eq!(Value::Object(meta), json!({"sequence": "k"}));
    }
}
