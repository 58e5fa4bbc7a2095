//! What the operator's workflow views read through the engine ([`crate::admin`]): the steps of a
//! workflow tallied by state.

use chrono::{DateTime, Utc};

use crate::job::JobState;

/// The steps of one workflow in one state, as
/// [`Engine::workflow_tally`](super::Engine::workflow_tally) groups them (the stored layout of
/// workflows: `meta.workflow_id`, `meta.workflow_name`, `meta.sup_workflow_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkflowTally {
    /// The workflow (`meta.workflow_id`).
    pub workflow_id: String,
    /// The state.
    pub state: JobState,
    /// How many of its steps are in that state.
    pub count: u64,
    /// The lowest job id among them.
    pub first_id: i64,
    /// The highest job id among them.
    pub last_id: i64,
    /// A `meta.workflow_name` among them (the greatest, when steps disagree).
    pub name: Option<String>,
    /// A `meta.sup_workflow_id` among them: the workflow this one is a sub-workflow of.
    pub sup_workflow_id: Option<String>,
    /// The earliest `inserted_at`.
    pub inserted_at: DateTime<Utc>,
    /// The earliest `attempted_at`, when one was attempted.
    pub attempted_at: Option<DateTime<Utc>>,
    /// The latest `completed_at`, `cancelled_at` or `discarded_at` (the one of the state), for the
    /// final states.
    pub finished_at: Option<DateTime<Utc>>,
}

impl WorkflowTally {
    /// A tally of `count` steps of `workflow_id` in `state` whose ids run from `first_id` to
    /// `last_id` (for engines outside this crate; the other fields are then set by name).
    ///
    /// ```
    /// use chrono::Utc;
    /// use oban_core::engine::WorkflowTally;
    /// use oban_core::JobState;
    ///
    /// let tally = WorkflowTally::new("wf-1".into(), JobState::Completed, 3, 10, 12, Utc::now());
    /// assert_eq!(tally.count, 3);
    /// ```
    pub fn new(
        workflow_id: String,
        state: JobState,
        count: u64,
        first_id: i64,
        last_id: i64,
        inserted_at: DateTime<Utc>,
    ) -> Self {
        Self {
            workflow_id,
            state,
            count,
            first_id,
            last_id,
            name: None,
            sup_workflow_id: None,
            inserted_at,
            attempted_at: None,
            finished_at: None,
        }
    }
}
