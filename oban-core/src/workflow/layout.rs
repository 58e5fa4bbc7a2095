//! How a workflow is written into its jobs' `meta`: the layout Elixir Oban Pro (1.7 and later)
//! uses, so its tools read our workflows and ours read its.
//!
//! | key | on | meaning |
//! | --- | --- | --- |
//! | `workflow` | every step | `true` |
//! | `workflow_id` | every step | the workflow (a UUIDv7, as text) |
//! | `workflow_name` | every step | the workflow's name for humans, when it has one |
//! | `name` | every step | the step's name, unique in its workflow |
//! | `deps` | every step | what it waits for: step names of its workflow, `[workflow_id, name]` (a step of another workflow), `[workflow_id, "*"]` (every step of a sub-workflow) |
//! | `ignore_cancelled`, `ignore_discarded`, `ignore_deleted` | a step | go on when a dependency ends that way, instead of being cancelled |
//! | `sup_workflow_id`, `sub_name` | steps of a sub-workflow | the parent workflow, and the name it knows this one by |

use serde_json::{json, Map, Value};

/// The keys of the layout.
pub(crate) mod key {
    pub(crate) const WORKFLOW: &str = "workflow";
    pub(crate) const ID: &str = "workflow_id";
    pub(crate) const NAME: &str = "workflow_name";
    pub(crate) const STEP: &str = "name";
    pub(crate) const DEPS: &str = "deps";
    pub(crate) const IGNORE_CANCELLED: &str = "ignore_cancelled";
    pub(crate) const IGNORE_DISCARDED: &str = "ignore_discarded";
    pub(crate) const IGNORE_DELETED: &str = "ignore_deleted";
    pub(crate) const SUP_ID: &str = "sup_workflow_id";
    pub(crate) const SUB_NAME: &str = "sub_name";
}

/// What a step waits for: one entry of `meta.deps`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum DepRef {
    /// A step of the same workflow, by name.
    Step(String),
    /// A step of another workflow (a parent's step that a sub-workflow waits for).
    Other { workflow_id: String, name: String },
    /// Every step of another workflow (a sub-workflow waited for as one).
    All { workflow_id: String },
}

impl DepRef {
    /// The entry as stored.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            DepRef::Step(name) => json!(name),
            DepRef::Other { workflow_id, name } => json!([workflow_id, name]),
            DepRef::All { workflow_id } => json!([workflow_id, "*"]),
        }
    }
}

/// Whether a job with this meta is inserted `suspended`: a workflow step with dependencies.
/// The PostgreSQL insert statement applies the same rule in SQL
/// (`engines/postgres/insert.rs`).
pub(crate) fn waits(meta: &Value) -> bool {
    meta.get(key::ID).is_some()
        && meta
            .get(key::DEPS)
            .and_then(Value::as_array)
            .is_some_and(|deps| !deps.is_empty())
}

/// The workflow of a job, from its meta.
pub(crate) fn workflow_id(meta: &Value) -> Option<&str> {
    meta.get(key::ID).and_then(Value::as_str)
}

/// The step name of a job, from its meta.
pub(crate) fn step_name(meta: &Value) -> Option<&str> {
    meta.get(key::STEP).and_then(Value::as_str)
}

/// Whether a waiting step can run, given the states of the jobs of its dependencies: the rule
/// the engines' statements apply in SQL, for the inline engine (which keeps jobs in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every dependency completed (or failed in a way the step ignores).
    Ready,
    /// A dependency has not finished.
    Wait,
    /// A dependency failed in a way the step does not ignore: the error to record.
    Cancel(String),
}

/// The verdict for a step with `meta`, given the states of the steps of a workflow by name
/// (`steps(workflow_id)`, newest last).
pub(crate) fn verdict(
    meta: &Value,
    steps: impl Fn(&str) -> Vec<(String, crate::job::JobState)>,
) -> Verdict {
    use crate::job::JobState;
    let own = workflow_id(meta).unwrap_or_default();
    let flag = |key: &str| meta.get(key).and_then(Value::as_bool).unwrap_or(false);
    let deps = meta
        .get(key::DEPS)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for entry in deps.iter().rev() {
        let (wf, name) = match entry {
            Value::String(name) => (own.to_owned(), name.clone()),
            Value::Array(pair) => (
                pair.first()
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                pair.get(1)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            _ => continue,
        };
        let jobs = steps(&wf);
        let (state, label) = if name == "*" {
            let state = if jobs.is_empty() {
                None
            } else if jobs.iter().any(|(_, s)| !s.is_final()) {
                Some(JobState::Executing)
            } else if jobs.iter().any(|(_, s)| *s == JobState::Discarded) {
                Some(JobState::Discarded)
            } else if jobs.iter().any(|(_, s)| *s == JobState::Cancelled) {
                Some(JobState::Cancelled)
            } else {
                Some(JobState::Completed)
            };
            (state, format!("sub-workflow {wf}"))
        } else {
            let state = jobs.iter().rev().find(|(n, _)| *n == name).map(|(_, s)| *s);
            (state, format!("step \"{name}\""))
        };
        let failed = match state {
            Some(JobState::Completed) => continue,
            None if flag(key::IGNORE_DELETED) => continue,
            Some(JobState::Cancelled) if flag(key::IGNORE_CANCELLED) => continue,
            Some(JobState::Discarded) if flag(key::IGNORE_DISCARDED) => continue,
            None => "deleted",
            Some(JobState::Cancelled) => "cancelled",
            Some(JobState::Discarded) => "discarded",
            Some(_) => return Verdict::Wait,
        };
        return Verdict::Cancel(format!("cancelled: upstream {label} was {failed}"));
    }
    Verdict::Ready
}

/// The meta keys of one step.
pub(crate) struct StepMeta<'a> {
    pub(crate) workflow_id: &'a str,
    pub(crate) workflow_name: Option<&'a str>,
    pub(crate) name: &'a str,
    pub(crate) deps: &'a [DepRef],
    pub(crate) ignore: super::Ignore,
    /// The parent's id and the name it knows this workflow by.
    pub(crate) sup: Option<(&'a str, &'a str)>,
}

impl StepMeta<'_> {
    /// Writes the keys into `meta` (an object; anything else is replaced by one).
    pub(crate) fn write_into(&self, meta: &mut Value) {
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        let object = meta.as_object_mut().expect("an object");
        object.insert(key::WORKFLOW.into(), json!(true));
        object.insert(key::ID.into(), json!(self.workflow_id));
        if let Some(name) = self.workflow_name {
            object.insert(key::NAME.into(), json!(name));
        }
        object.insert(key::STEP.into(), json!(self.name));
        object.insert(
            key::DEPS.into(),
            Value::Array(self.deps.iter().map(DepRef::to_json).collect()),
        );
        for (flag, key) in [
            (super::Ignore::CANCELLED, key::IGNORE_CANCELLED),
            (super::Ignore::DISCARDED, key::IGNORE_DISCARDED),
            (super::Ignore::DELETED, key::IGNORE_DELETED),
        ] {
            if self.ignore.contains(flag) {
                object.insert(key.into(), json!(true));
            }
        }
        if let Some((sup, sub_name)) = self.sup {
            object.insert(key::SUP_ID.into(), json!(sup));
            object.insert(key::SUB_NAME.into(), json!(sub_name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::Ignore;

    #[test]
    fn a_step_with_dependencies_waits_and_one_without_does_not() {
        let deps = [
            DepRef::Step("fetch".into()),
            DepRef::All {
                workflow_id: "w2".into(),
            },
        ];
        let mut meta = json!({"trace": 1});
        StepMeta {
            workflow_id: "w1",
            workflow_name: Some("report"),
            name: "sum",
            deps: &deps,
            ignore: Ignore::CANCELLED,
            sup: None,
        }
        .write_into(&mut meta);
        assert_eq!(
            meta,
            json!({"trace": 1, "workflow": true, "workflow_id": "w1", "workflow_name": "report",
                   "name": "sum", "deps": ["fetch", ["w2", "*"]], "ignore_cancelled": true})
        );
        assert!(waits(&meta));
        assert!(!waits(&json!({"workflow_id": "w1", "deps": []})));
        assert!(!waits(&json!({"deps": ["x"]})));
    }
}
