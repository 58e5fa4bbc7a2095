//! One step of a workflow as the operator sees it ([`WorkflowStep`]), and its dependencies as
//! stored ([`StepDep`]).

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::job::{Job, JobState};

/// One step of a workflow: its job and what its meta says about its place in the workflow.
///
/// JSON: `{"job_id": 12, "name": "extract", "worker": "Extract", "queue": "etl", "state":
/// "completed", "deps": ["fetch", ["0192..", "load"], ["0193..", "*"]], "attempt": 1,
/// "max_attempts": 20, "ignore_cancelled": false, "ignore_discarded": false, "ignore_deleted":
/// false, "inserted_at": "..", "scheduled_at": "..", "attempted_at": "..", "finished_at": "..",
/// "last_error": null}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WorkflowStep {
    /// The job's id.
    pub job_id: i64,
    /// The step's name (`meta.name`; the job id as text when the meta has none).
    pub name: String,
    /// The worker.
    pub worker: String,
    /// The queue.
    pub queue: String,
    /// The job's state.
    pub state: JobState,
    /// What the step waits for, as stored in `meta.deps`.
    pub deps: Vec<StepDep>,
    /// Attempts made.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// `meta.ignore_cancelled`: a cancelled dependency counts as completed.
    pub ignore_cancelled: bool,
    /// `meta.ignore_discarded`: a discarded dependency counts as completed.
    pub ignore_discarded: bool,
    /// `meta.ignore_deleted`: a deleted dependency counts as completed.
    pub ignore_deleted: bool,
    /// When the job was inserted (RFC 3339).
    pub inserted_at: DateTime<Utc>,
    /// When the job may run (RFC 3339).
    pub scheduled_at: DateTime<Utc>,
    /// When its last attempt started, if one did.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it completed, was cancelled or discarded (for those states).
    pub finished_at: Option<DateTime<Utc>>,
    /// The message of its last error, if any.
    pub last_error: Option<String>,
}

impl WorkflowStep {
    /// The step a workflow job is.
    pub(crate) fn from_job(job: &Job) -> Self {
        let flag = |key: &str| job.meta.get(key).and_then(Value::as_bool).unwrap_or(false);
        let deps = match job.meta.get("deps") {
            Some(Value::Array(deps)) => deps.iter().map(StepDep::from_json).collect(),
            _ => Vec::new(),
        };
        let finished_at = match job.state {
            JobState::Completed => job.completed_at,
            JobState::Cancelled => job.cancelled_at,
            JobState::Discarded => job.discarded_at,
            _ => None,
        };
        Self {
            job_id: job.id,
            name: meta_text(&job.meta, "name").unwrap_or_else(|| job.id.to_string()),
            worker: job.worker.clone(),
            queue: job.queue.clone(),
            state: job.state,
            deps,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            ignore_cancelled: flag("ignore_cancelled"),
            ignore_discarded: flag("ignore_discarded"),
            ignore_deleted: flag("ignore_deleted"),
            inserted_at: job.inserted_at,
            scheduled_at: job.scheduled_at,
            attempted_at: job.attempted_at,
            finished_at,
            last_error: job.errors.last().map(|e| e.error.clone()),
        }
    }
}

/// A text value of `meta` (`None` when absent or not a string).
pub(crate) fn meta_text(meta: &Value, key: &str) -> Option<String> {
    meta.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// One entry of a step's `meta.deps`. Serialized as stored: a string, or a two-element array.
///
/// ```
/// use oban_core::admin::StepDep;
/// use serde_json::json;
///
/// assert_eq!(StepDep::from_json(&json!("fetch")), StepDep::Step("fetch".into()));
/// assert_eq!(
///     StepDep::from_json(&json!(["0193", "*"])),
///     StepDep::Workflow("0193".into())
/// );
/// assert_eq!(serde_json::to_value(StepDep::Workflow("0193".into())).unwrap(), json!(["0193", "*"]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepDep {
    /// A step of the same workflow, by name.
    Step(String),
    /// A step of another workflow: `[workflow_id, name]`.
    Of {
        /// The other workflow.
        workflow_id: String,
        /// The step's name there.
        name: String,
    },
    /// Every step of another workflow (a sub-workflow the step depends on as one):
    /// `[workflow_id, "*"]`.
    Workflow(String),
    /// An entry of another shape, kept as it is.
    Other(Value),
}

impl StepDep {
    /// Reads one entry of `meta.deps`.
    pub fn from_json(value: &Value) -> Self {
        match value {
            Value::String(name) => StepDep::Step(name.clone()),
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(workflow_id), Value::String(name)] if name == "*" => {
                    StepDep::Workflow(workflow_id.clone())
                }
                [Value::String(workflow_id), Value::String(name)] => StepDep::Of {
                    workflow_id: workflow_id.clone(),
                    name: name.clone(),
                },
                _ => StepDep::Other(value.clone()),
            },
            other => StepDep::Other(other.clone()),
        }
    }

    /// The entry as stored.
    pub fn to_json(&self) -> Value {
        match self {
            StepDep::Step(name) => Value::from(name.as_str()),
            StepDep::Of { workflow_id, name } => {
                Value::from(vec![workflow_id.as_str(), name.as_str()])
            }
            StepDep::Workflow(workflow_id) => Value::from(vec![workflow_id.as_str(), "*"]),
            StepDep::Other(value) => value.clone(),
        }
    }

    /// The other workflow it names, if any.
    pub fn workflow_id(&self) -> Option<&str> {
        match self {
            StepDep::Of { workflow_id, .. } | StepDep::Workflow(workflow_id) => Some(workflow_id),
            StepDep::Step(_) | StepDep::Other(_) => None,
        }
    }
}

impl std::fmt::Display for StepDep {
    /// The step's name, `workflow:name`, `workflow:*`, or the JSON of another shape.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepDep::Step(name) => f.write_str(name),
            StepDep::Of { workflow_id, name } => write!(f, "{workflow_id}:{name}"),
            StepDep::Workflow(workflow_id) => write!(f, "{workflow_id}:*"),
            StepDep::Other(value) => write!(f, "{value}"),
        }
    }
}

impl Serialize for StepDep {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}
