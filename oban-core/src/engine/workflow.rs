//! What the engines exchange about workflow steps ([`crate::workflow`]).

/// A workflow step that just finished (or was cancelled because of its dependencies): the hint
/// that tells an engine which waiting steps to check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FinishedStep {
    /// Its workflow (`meta.workflow_id`).
    pub workflow_id: String,
    /// The parent workflow of a sub-workflow's step (`meta.sup_workflow_id`).
    pub sup_workflow_id: Option<String>,
    /// The step's name (`meta.name`).
    pub name: Option<String>,
}

impl FinishedStep {
    /// The step a row stands for when it is a workflow step (`workflow_id` set) that has
    /// finished (`state` completed, cancelled or discarded): what the engines read back from
    /// the rows their acks and checks changed.
    pub(crate) fn of_row(
        state: &str,
        workflow_id: Option<String>,
        sup_workflow_id: Option<String>,
        name: Option<String>,
    ) -> Option<Self> {
        let finished = matches!(state, "completed" | "cancelled" | "discarded");
        Some(Self {
            workflow_id: workflow_id.filter(|_| finished)?,
            sup_workflow_id,
            name,
        })
    }

    /// The workflows whose waiting steps may depend on this step: its own, and its parent's
    /// (which may wait for the whole sub-workflow). Sub-workflows waiting on it are found by
    /// the engine.
    pub(crate) fn workflows(steps: &[FinishedStep]) -> Vec<String> {
        let mut ids: Vec<String> = steps
            .iter()
            .flat_map(|s| std::iter::once(&s.workflow_id).chain(s.sup_workflow_id.as_ref()))
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The names of the steps, for the engines' first filter on `meta.deps`.
    pub(crate) fn names(steps: &[FinishedStep]) -> Vec<String> {
        let mut names: Vec<String> = steps.iter().filter_map(|s| s.name.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The `deps` entries that name these steps from another workflow: `[workflow_id, name]`
    /// and `[workflow_id, "*"]`, each as a one-entry array for a containment test.
    pub(crate) fn foreign_entries(steps: &[FinishedStep]) -> Vec<serde_json::Value> {
        let mut entries: Vec<serde_json::Value> = Vec::new();
        for step in steps {
            let all = serde_json::json!([[step.workflow_id, "*"]]);
            if !entries.contains(&all) {
                entries.push(all);
            }
            if let Some(name) = &step.name {
                entries.push(serde_json::json!([[step.workflow_id, name]]));
            }
        }
        entries
    }
}
