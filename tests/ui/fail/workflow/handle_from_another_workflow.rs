use oban::workflow::Workflow;
use oban::NewJob;
use serde_json::json;

fn main() {
    // A handle of the outer workflow given to a step of another workflow.
    let _ = Workflow::new("outer").build(|outer| {
        let fetch = outer.add("fetch", NewJob::new("Fetch", json!({})), ());
        let _ = Workflow::new("inner").build(|inner| {
            inner.add("report", NewJob::new("Report", json!({})), &fetch);
        });
    });

    // A handle of the parent given to a step inside its sub-workflow: the sub-workflow names
    // what it waits for in `add_workflow`'s deps, not inside.
    let _ = Workflow::new("parent").build(|wf| {
        let fetch = wf.add("fetch", NewJob::new("Fetch", json!({})), ());
        wf.add_workflow("images", (), |sub| {
            sub.add("resize", NewJob::new("Resize", json!({})), &fetch);
        });
    });
}
