//! Choosing jobs for bulk operations and lists: [`JobFilter`]; its text search in `search.rs`.

mod search;

use std::time::Duration;

use serde_json::Value;

use crate::job::JobState;

pub(crate) use search::Search;

/// Which jobs a bulk cancel, retry or delete applies to. Every condition given must hold.
///
/// A filter with no condition ([`JobFilter::new`] alone) matches every job, so the bulk
/// operations ([`Oban::retry_jobs`](crate::Oban::retry_jobs),
/// [`cancel_jobs`](crate::Oban::cancel_jobs), [`delete_jobs`](crate::Oban::delete_jobs)) refuse
/// it: a condition that was meant to be added and was not must not empty the table. To act on
/// every job on purpose, say so with [`JobFilter::all`]. Listing ([`Oban::jobs`](crate::Oban::jobs))
/// accepts an empty filter.
///
/// ```
/// use oban_core::{JobFilter, JobState};
/// use serde_json::json;
///
/// let stuck_receipts = JobFilter::new()
///     .queue("mailers")
///     .worker("SendReceipt")
///     .state(JobState::Retryable)
///     .tag("billing")
///     .args_contain(json!({"template": "receipt"}));
/// # let _ = stuck_receipts;
///
/// // What a search box asks: "receipt" anywhere in the worker, the args or the errors.
/// let typed = JobFilter::new().state(JobState::Discarded).search("receipt");
/// # let _ = typed;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct JobFilter {
    /// Only these ids.
    pub ids: Option<Vec<i64>>,
    /// Only these queues.
    pub queues: Vec<String>,
    /// Only these workers.
    pub workers: Vec<String>,
    /// Only these states.
    pub states: Vec<JobState>,
    /// Only jobs with all of these tags.
    pub tags: Vec<String>,
    /// Only jobs whose args contain this JSON (PostgreSQL's `@>`).
    pub args: Option<Value>,
    /// Only jobs whose meta contains this JSON.
    pub meta: Option<Value>,
    /// Only the steps of this workflow (`meta.workflow_id` equal to it): see
    /// [`JobFilter::workflow`].
    pub workflow: Option<String>,
    /// Only jobs inserted at most this long ago (`inserted_at >= now - d`, on the database's
    /// clock where it has one).
    pub inserted_within: Option<Duration>,
    /// Only jobs this text finds: see [`JobFilter::search`]. Blank text is no condition.
    pub search: Option<String>,
    /// Made by [`JobFilter::all`]: matching every job is meant.
    pub(crate) everything: bool,
}

impl JobFilter {
    /// A filter with no condition yet: add some with the methods below. Alone it matches every
    /// job, which bulk operations refuse (use [`JobFilter::all`] for that).
    pub fn new() -> Self {
        Self::default()
    }

    /// Every job, on purpose: what a bulk operation needs to act on the whole table.
    ///
    /// ```
    /// use oban_core::JobFilter;
    ///
    /// assert!(JobFilter::new().is_empty());
    /// assert!(!JobFilter::all().is_empty());
    /// ```
    pub fn all() -> Self {
        Self {
            everything: true,
            ..Self::default()
        }
    }

    /// Whether the filter has no condition and was not made by [`JobFilter::all`]: what bulk
    /// operations refuse.
    pub fn is_empty(&self) -> bool {
        !self.everything
            && self.ids.is_none()
            && self.queues.is_empty()
            && self.workers.is_empty()
            && self.states.is_empty()
            && self.tags.is_empty()
            && self.args.is_none()
            && self.meta.is_none()
            && self.workflow.is_none()
            && self.inserted_within.is_none()
            && self.search_terms().is_none()
    }

    /// `Ok` unless the filter [`is_empty`](Self::is_empty); `operation` names the bulk operation
    /// in the error.
    pub(crate) fn check_bulk(&self, operation: &'static str) -> crate::error::Result<()> {
        if self.is_empty() {
            return Err(crate::error::Error::EmptyFilter { operation });
        }
        Ok(())
    }

    /// Matches the job with this id.
    pub fn id(id: i64) -> Self {
        Self {
            ids: Some(vec![id]),
            ..Self::default()
        }
    }

    /// Matches the jobs with these ids.
    pub fn ids(ids: impl IntoIterator<Item = i64>) -> Self {
        Self {
            ids: Some(ids.into_iter().collect()),
            ..Self::default()
        }
    }

    /// Adds a queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queues.push(queue.into());
        self
    }

    /// Adds a worker name.
    pub fn worker(mut self, worker: impl Into<String>) -> Self {
        self.workers.push(worker.into());
        self
    }

    /// Adds a state.
    pub fn state(mut self, state: JobState) -> Self {
        self.states.push(state);
        self
    }

    /// Requires a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Requires the args to contain `args`.
    pub fn args_contain(mut self, args: Value) -> Self {
        self.args = Some(args);
        self
    }

    /// Requires the meta to contain `meta`.
    pub fn meta_contain(mut self, meta: Value) -> Self {
        self.meta = Some(meta);
        self
    }

    /// Requires the job to be a step of the workflow `workflow_id` (its `meta.workflow_id`, see
    /// [`Admin::workflow`](crate::admin::Admin::workflow)). Unlike a
    /// [`meta_contain`](Self::meta_contain) of the same key, the engines compare
    /// `meta->>'workflow_id'` itself, which the workflow index serves: a workflow's steps are found
    /// without reading the table.
    ///
    /// ```
    /// use oban_core::{JobFilter, JobState};
    ///
    /// let unfinished = JobFilter::new()
    ///     .workflow("0192c6c4-4f2e-7cc8-9d4b-5a4d0e1f2a3b")
    ///     .state(JobState::Suspended);
    /// assert!(!unfinished.is_empty());
    /// ```
    pub fn workflow(mut self, workflow_id: impl Into<String>) -> Self {
        self.workflow = Some(workflow_id.into());
        self
    }

    /// Requires the job to have been inserted at most `age` ago (`Duration::MAX`: ever).
    ///
    /// ```
    /// use std::time::Duration;
    /// use oban_core::JobFilter;
    ///
    /// let last_hour = JobFilter::new().worker("SendReceipt").inserted_within(Duration::from_secs(3600));
    /// # let _ = last_hour;
    /// ```
    pub fn inserted_within(mut self, age: Duration) -> Self {
        self.inserted_within = Some(age);
        self
    }

    /// Requires the job to contain `text`: a job matches when `text`, ignoring case, occurs in
    /// its worker, in its args as JSON text or in its errors as JSON text (the `errors` column:
    /// each failed attempt's `at`, `attempt` and `error`), or when `text` is an integer equal to
    /// its id. What a dashboard's search box asks.
    ///
    /// The text is taken literally: `%`, `_` and `\` match only themselves (they are escaped
    /// before the engine's `LIKE` sees them). Leading and trailing whitespace is ignored, and text
    /// that is empty or only whitespace adds no condition. Matching is a substring scan of the
    /// rows the other conditions leave: cheap with a selective filter or many matches, a read of
    /// the whole table for rare text.
    ///
    /// Case is ignored for the ASCII letters `A`-`Z` on every engine; other letters match only
    /// themselves (`É` does not find `é`): what SQLite's `LIKE` does, and on PostgreSQL the
    /// cheaper comparison, without the locale's case conversion of every row read. JSON text is
    /// each engine's own rendering: PostgreSQL writes `{"a": 1}` (a space after `:` and `,`)
    /// where SQLite and the inline engine write `{"a":1}`, so search for keys and values rather
    /// than for their punctuation.
    ///
    /// ```
    /// use oban_core::JobFilter;
    ///
    /// let receipts = JobFilter::new().search("receipt");
    /// assert!(!receipts.is_empty());
    /// assert!(JobFilter::new().search("  ").is_empty(), "blank text is no condition");
    /// let by_id = JobFilter::new().search("4207"); // job 4207, or "4207" in a worker, args or errors
    /// # let _ = by_id;
    /// ```
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }

    /// The search, ready for an engine; `None` when there is none or it is blank.
    pub(crate) fn search_terms(&self) -> Option<Search> {
        self.search.as_deref().and_then(Search::new)
    }
}

/// Whether `container` contains `contained` the way PostgreSQL's `jsonb @>` decides it: objects
/// contain objects whose every key they hold with a containing value, arrays contain arrays whose
/// every element some element of theirs contains, a top-level array contains a scalar it holds,
/// and scalars are equal (numbers by value).
pub(crate) fn json_contains(container: &Value, contained: &Value) -> bool {
    fn contains(container: &Value, contained: &Value, top: bool) -> bool {
        match (container, contained) {
            (Value::Object(have), Value::Object(want)) => want
                .iter()
                .all(|(k, v)| have.get(k).is_some_and(|h| contains(h, v, false))),
            (Value::Array(have), Value::Array(want)) => want
                .iter()
                .all(|v| have.iter().any(|h| contains(h, v, false))),
            (Value::Array(have), scalar)
                if top && !matches!(scalar, Value::Object(_) | Value::Array(_)) =>
            {
                have.iter().any(|h| scalar_eq(h, scalar))
            }
            (a, b) => scalar_eq(a, b),
        }
    }
    fn scalar_eq(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
                (Some(x), Some(y)) => x == y,
                _ => match (x.as_u64(), y.as_u64()) {
                    (Some(x), Some(y)) => x == y,
                    _ => x.as_f64() == y.as_f64(),
                },
            },
            (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => {
                false
            }
            (a, b) => a == b,
        }
    }
    contains(container, contained, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containment_follows_jsonb() {
        let doc = json!({"a": 1, "b": {"c": [1, 2, {"d": "x"}]}, "t": ["p", "q"]});
        assert!(json_contains(&doc, &json!({})));
        assert!(json_contains(&doc, &json!({"a": 1})));
        assert!(json_contains(&doc, &json!({"a": 1.0})));
        assert!(!json_contains(&doc, &json!({"a": "1"})));
        assert!(json_contains(&doc, &json!({"b": {"c": [2]}})));
        assert!(json_contains(&doc, &json!({"b": {"c": [{"d": "x"}]}})));
        assert!(!json_contains(&doc, &json!({"b": {"c": [3]}})));
        assert!(json_contains(&doc, &json!({"t": ["q"]})));
        assert!(
            !json_contains(&doc, &json!({"t": "q"})),
            "only a top-level array holds a scalar"
        );
        assert!(json_contains(&json!(["p", "q"]), &json!("q")));
        assert!(!json_contains(&doc, &json!({"z": null})));
        assert!(json_contains(&json!({"z": null}), &json!({"z": null})));
    }
}
