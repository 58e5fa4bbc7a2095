//! Workflows and the leader's services (issue 20): the workflow pass cancels the steps waiting
//! on a dependency an operator cancelled (no ack saw it), and the pruner keeps a workflow's
//! finished steps while steps of it wait; on PostgreSQL and SQLite.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::time::Duration;

use oban::workflow::Workflow;
use oban::{worker, JobFilter, JobState};

use harness::{Db, Kind};

#[worker(queue = "steps", max_attempts = 1)]
async fn step_work(label: String) -> Result<String, std::io::Error> {
    Ok(label)
}

/// A -> C and B -> C, with B scheduled an hour ahead: C waits for B once A has completed.
fn waiting_workflow() -> oban::workflow::NewWorkflow {
    Workflow::new("waits")
        .build(|wf| {
            let a = wf.add("a", StepWork::new("a".into()), ());
            let b = wf.add(
                "b",
                StepWork::new("b".into()).schedule_in(Duration::from_secs(3600)),
                (),
            );
            wf.add("c", StepWork::new("c".into()), (&a, &b));
        })
        .unwrap()
}

async fn the_leader_cancels_steps_whose_dependency_an_operator_cancelled(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = db
        .builder("pass")
        .queue("steps", 5)
        .register::<StepWork>()
        .rescue(Duration::from_millis(100), Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let jobs = waiting_workflow().insert(&oban).await.unwrap();
    db.wait_for_state(jobs[0].id, JobState::Completed).await;
    assert_eq!(db.job(jobs[2].id).await.state, JobState::Suspended);
    // Cancelled by an operator: no ack of this node sees it.
    db.engine
        .job_cancel_many(&JobFilter::id(jobs[1].id))
        .await
        .unwrap();
    let c = db.wait_for_state(jobs[2].id, JobState::Cancelled).await;
    assert!(
        c.errors[0]
            .error
            .contains("upstream step \"b\" was cancelled"),
        "{:?}",
        c.errors
    );
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_leader_cancels_steps_whose_dependency_an_operator_cancelled_on_postgres() {
    the_leader_cancels_steps_whose_dependency_an_operator_cancelled(Kind::Postgres).await;
}

#[tokio::test]
async fn the_leader_cancels_steps_whose_dependency_an_operator_cancelled_on_sqlite() {
    the_leader_cancels_steps_whose_dependency_an_operator_cancelled(Kind::Sqlite).await;
}

async fn pruning_keeps_the_finished_steps_of_a_waiting_workflow(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = db
        .builder("prune")
        .queue("steps", 5)
        .register::<StepWork>()
        .start()
        .await
        .unwrap();
    let jobs = waiting_workflow().insert(&oban).await.unwrap();
    let plain = StepWork::new("plain".into()).insert(&oban).await.unwrap();
    db.wait_for_state(jobs[0].id, JobState::Completed).await;
    db.wait_for_state(plain.id, JobState::Completed).await;
    oban.shutdown(Duration::from_secs(5)).await;

    let pruned = db.engine.job_prune(Duration::ZERO, 100).await.unwrap();
    assert_eq!(pruned, 1, "only the job outside the workflow");
    assert_eq!(db.job(jobs[0].id).await.state, JobState::Completed);

    // Once nothing waits, the workflow's finished steps go too.
    db.engine
        .job_cancel_many(&JobFilter::ids([jobs[1].id, jobs[2].id]))
        .await
        .unwrap();
    let pruned = db.engine.job_prune(Duration::ZERO, 100).await.unwrap();
    assert_eq!(pruned, 3);
}

#[tokio::test]
async fn pruning_keeps_the_finished_steps_of_a_waiting_workflow_on_postgres() {
    pruning_keeps_the_finished_steps_of_a_waiting_workflow(Kind::Postgres).await;
}

#[tokio::test]
async fn pruning_keeps_the_finished_steps_of_a_waiting_workflow_on_sqlite() {
    pruning_keeps_the_finished_steps_of_a_waiting_workflow(Kind::Sqlite).await;
}
