//! Workflows (issue 20): steps that wait for steps, released by their dependencies' acks, with
//! typed results read through `Flow`; on PostgreSQL and SQLite.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use oban::workflow::{Deps, Flow, Ignore, Steps, Upstream, Workflow};
use oban::{worker, Job, JobFilter, JobState};

use harness::{Db, Kind};

#[worker(queue = "flow", max_attempts = 1)]
async fn fetch(size: u64) -> Result<Vec<u64>, std::io::Error> {
    Ok((1..=size).collect())
}

/// How many times each step ran, by workflow id and step name.
static RUNS: Mutex<Option<HashMap<(String, String), usize>>> = Mutex::new(None);

fn count_run(flow: &Flow) {
    *RUNS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry((flow.workflow_id().to_owned(), flow.step().to_owned()))
        .or_default() += 1;
}

fn runs_of(workflow_id: &str) -> Vec<usize> {
    RUNS.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .iter()
        .filter(|((id, _), _)| id == workflow_id)
        .map(|(_, runs)| *runs)
        .collect()
}

#[worker(queue = "flow", max_attempts = 1)]
async fn square(input: Upstream<Vec<u64>>, index: usize, flow: Flow) -> Result<u64, oban::Error> {
    count_run(&flow);
    let numbers = flow.result(&input).await?;
    Ok(numbers[index] * numbers[index])
}

#[worker(queue = "flow", max_attempts = 1)]
async fn total(parts: Vec<Upstream<u64>>, flow: Flow) -> Result<u64, oban::Error> {
    count_run(&flow);
    Ok(flow.results(&parts).await?.iter().sum())
}

/// Fails for good when told to.
#[worker(queue = "flow", max_attempts = 1)]
async fn maybe_fail(fail: bool) -> Result<(), std::io::Error> {
    if fail {
        return Err(std::io::Error::other("told to fail"));
    }
    Ok(())
}

/// Fails its first attempt, completes its second, with a retry delay short enough for a test.
#[worker(queue = "flow", max_attempts = 3, backoff = constant("10ms"))]
async fn flaky(job: &Job) -> Result<i32, std::io::Error> {
    if job.attempt == 1 {
        return Err(std::io::Error::other("first attempt fails"));
    }
    Ok(job.attempt)
}

/// Reads the attempt its upstream step completed on.
#[worker(queue = "flow", max_attempts = 1)]
async fn after_flaky(input: Upstream<i32>, flow: Flow) -> Result<i32, oban::Error> {
    flow.result(&input).await
}

/// Appends `width` squares of its own result and their total, twice (the second time adds
/// nothing, which it checks).
#[worker(queue = "flow", max_attempts = 1)]
async fn grow(width: usize, flow: Flow) -> Result<Vec<u64>, oban::Error> {
    let this = flow.this::<Vec<u64>>();
    let first = flow.append(|wf| add_squares(wf, &this, width)).await?;
    if first.len() != width + 1 {
        return Err(oban::Error::Workflow(format!(
            "the first append inserted {} steps",
            first.len()
        )));
    }
    let second = flow.append(|wf| add_squares(wf, &this, width)).await?;
    if !second.is_empty() {
        return Err(oban::Error::Workflow(format!(
            "the second append inserted {} steps",
            second.len()
        )));
    }
    Ok((1..=width as u64).collect())
}

fn add_squares(wf: &mut Steps<'_>, this: &Upstream<Vec<u64>>, width: usize) {
    let me = wf.existing(this);
    let parts: Vec<_> = (0..width)
        .map(|i| wf.add(format!("square-{i}"), Square::new(me.upstream(), i), &me))
        .collect();
    wf.add(
        "total",
        Total::new(parts.iter().map(|p| p.upstream()).collect()),
        &parts,
    );
}

async fn node(db: &Db, name: &str) -> oban::Oban {
    db.builder(name)
        .queue("flow", 10)
        .stage_interval(Duration::from_millis(100))
        .register::<Fetch>()
        .register::<Square>()
        .register::<Total>()
        .register::<MaybeFail>()
        .register::<Flaky>()
        .register::<AfterFlaky>()
        .register::<Grow>()
        .start()
        .await
        .expect("start the node")
}

async fn a_diamond_passes_typed_results_down(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "diamond").await;
    let workflow = Workflow::new("diamond")
        .build(|wf| {
            let fetch = wf.add("fetch", Fetch::new(3), ());
            let b = wf.add("b", Square::new(fetch.upstream(), 1), &fetch);
            let c = wf.add("c", Square::new(fetch.upstream(), 2), &fetch);
            wf.add("d", Total::new(vec![b.upstream(), c.upstream()]), (&b, &c));
        })
        .unwrap();
    let jobs = workflow.insert(&oban).await.unwrap();
    assert_eq!(jobs[0].state, JobState::Available);
    assert!(jobs[1..].iter().all(|j| j.state == JobState::Suspended));
    let d = db.wait_for_state(jobs[3].id, JobState::Completed).await;
    assert_eq!(d.recorded::<u64>().unwrap(), Some(4 + 9));
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_diamond_passes_typed_results_down_on_postgres() {
    a_diamond_passes_typed_results_down(Kind::Postgres).await;
}

#[tokio::test]
async fn a_diamond_passes_typed_results_down_on_sqlite() {
    a_diamond_passes_typed_results_down(Kind::Sqlite).await;
}

async fn a_failed_dependency_cancels_or_is_ignored(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "failure").await;
    let workflow = Workflow::new("failure")
        .build(|wf| {
            let bad = wf.add("bad", MaybeFail::new(true), ());
            let after = wf.add("after", MaybeFail::new(false), &bad);
            wf.add("after-after", MaybeFail::new(false), &after);
            wf.add(
                "cleanup",
                MaybeFail::new(false),
                (&bad).ignoring(Ignore::DISCARDED),
            );
        })
        .unwrap();
    let jobs = workflow.insert(&oban).await.unwrap();
    db.wait_for_state(jobs[0].id, JobState::Discarded).await;
    let after = db.wait_for_state(jobs[1].id, JobState::Cancelled).await;
    assert!(
        after.errors[0]
            .error
            .contains("upstream step \"bad\" was discarded"),
        "{:?}",
        after.errors
    );
    let after_after = db.wait_for_state(jobs[2].id, JobState::Cancelled).await;
    assert!(after_after.errors[0]
        .error
        .contains("\"after\" was cancelled"));
    db.wait_for_state(jobs[3].id, JobState::Completed).await;
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_failed_dependency_cancels_or_is_ignored_on_postgres() {
    a_failed_dependency_cancels_or_is_ignored(Kind::Postgres).await;
}

#[tokio::test]
async fn a_failed_dependency_cancels_or_is_ignored_on_sqlite() {
    a_failed_dependency_cancels_or_is_ignored(Kind::Sqlite).await;
}

async fn fan_out_and_in(kind: Kind, width: usize) {
    fan_out_and_in_on(kind, width, 1).await;
}

/// The fan, run by `nodes` nodes on the same queue; every step runs exactly once.
async fn fan_out_and_in_on(kind: Kind, width: usize, nodes: usize) {
    let db = Db::new(kind).await;
    let mut obans = Vec::new();
    for i in 0..nodes {
        obans.push(node(&db, &format!("fan-{i}")).await);
    }
    let workflow = Workflow::new("fan")
        .build(|wf| {
            let fetch = wf.add("fetch", Fetch::new(width as u64), ());
            let parts: Vec<_> = (0..width)
                .map(|i| {
                    wf.add(
                        format!("square-{i}"),
                        Square::new(fetch.upstream(), i),
                        &fetch,
                    )
                })
                .collect();
            wf.add(
                "total",
                Total::new(parts.iter().map(|p| p.upstream()).collect()),
                &parts,
            );
        })
        .unwrap();
    let workflow_id = workflow.id().to_owned();
    let jobs = workflow.insert(&obans[0]).await.unwrap();
    let total = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let job = db.job(jobs[width + 1].id).await;
            if job.state == JobState::Completed {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the fan-in completes");
    let n = width as u64;
    assert_eq!(
        total.recorded::<u64>().unwrap(),
        Some(n * (n + 1) * (2 * n + 1) / 6)
    );
    assert_eq!(
        db.count(JobFilter::new().state(JobState::Completed)).await,
        width + 2
    );
    // Each square and the total ran once (fetch counts nothing), on whichever node.
    let runs = runs_of(&workflow_id);
    assert_eq!(runs.len(), width + 1);
    assert!(runs.iter().all(|&n| n == 1), "a step ran twice: {runs:?}");
    for job in db.jobs(JobFilter::new()).await {
        assert_eq!(job.attempt, 1, "{job:?}");
    }
    if nodes > 1 {
        let by: std::collections::HashSet<_> = db
            .jobs(JobFilter::new())
            .await
            .iter()
            .filter_map(|j| j.attempted_by.first().cloned())
            .collect();
        eprintln!("steps ran on {} nodes: {by:?}", by.len());
    }
    for oban in obans {
        oban.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn a_fan_out_and_in_of_1000_on_postgres() {
    fan_out_and_in(Kind::Postgres, 1000).await;
}

#[tokio::test]
async fn a_fan_out_and_in_of_1000_on_sqlite() {
    fan_out_and_in(Kind::Sqlite, 1000).await;
}

async fn a_retried_step_holds_its_dependents_until_it_completes(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "retry").await;
    let workflow = Workflow::new("retry")
        .build(|wf| {
            let flaky = wf.add("flaky", Flaky::new(), ());
            wf.add("after", AfterFlaky::new(flaky.upstream()), &flaky);
        })
        .unwrap();
    let jobs = workflow.insert(&oban).await.unwrap();
    let flaky = db.wait_for_state(jobs[0].id, JobState::Completed).await;
    assert_eq!(flaky.attempt, 2);
    assert_eq!(flaky.errors.len(), 1, "{:?}", flaky.errors);
    let after = db.wait_for_state(jobs[1].id, JobState::Completed).await;
    // The dependent waited through the retry: it ran after the second attempt completed.
    assert_eq!(after.recorded::<i32>().unwrap(), Some(2));
    assert!(after.attempted_at.unwrap() >= flaky.completed_at.unwrap());
    assert_eq!(after.attempt, 1);
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_retried_step_holds_its_dependents_until_it_completes_on_postgres() {
    a_retried_step_holds_its_dependents_until_it_completes(Kind::Postgres).await;
}

#[tokio::test]
async fn a_retried_step_holds_its_dependents_until_it_completes_on_sqlite() {
    a_retried_step_holds_its_dependents_until_it_completes(Kind::Sqlite).await;
}

async fn a_step_appends_steps_once(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "append").await;
    let width = 5;
    let workflow = Workflow::new("append")
        .build(|wf| {
            wf.add("grow", Grow::new(width), ());
        })
        .unwrap();
    let workflow_id = workflow.id().to_owned();
    let jobs = workflow.insert(&oban).await.unwrap();
    db.wait_for_state(jobs[0].id, JobState::Completed).await;
    let steps = db
        .engine
        .workflow_steps(&workflow_id, &["total".to_owned()])
        .await
        .unwrap();
    assert_eq!(steps.len(), 1, "one total was appended");
    let total = db.wait_for_state(steps[0].id, JobState::Completed).await;
    assert_eq!(total.recorded::<u64>().unwrap(), Some(1 + 4 + 9 + 16 + 25));
    // grow, 5 squares, the total: nothing inserted twice, all completed.
    let all = db
        .jobs(JobFilter::new().meta_contain(serde_json::json!({"workflow_id": workflow_id})))
        .await;
    assert_eq!(all.len(), width + 2);
    assert!(
        all.iter().all(|j| j.state == JobState::Completed),
        "{all:?}"
    );
    assert_eq!(total.meta["deps"].as_array().unwrap().len(), width);
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_step_appends_steps_once_on_postgres() {
    a_step_appends_steps_once(Kind::Postgres).await;
}

#[tokio::test]
async fn a_step_appends_steps_once_on_sqlite() {
    a_step_appends_steps_once(Kind::Sqlite).await;
}

async fn a_sub_workflow_is_waited_for_as_one(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "sub").await;
    let workflow = Workflow::new("parent")
        .build(|wf| {
            let fetch = wf.add("fetch", Fetch::new(3), ());
            let images = wf.add_workflow("images", &fetch, |sub| {
                let resize = sub.add("resize", MaybeFail::new(false), ());
                sub.add("thumb", MaybeFail::new(false), &resize);
                sub.add("upload", MaybeFail::new(false), ());
            });
            wf.add("done", MaybeFail::new(false), (&images, &fetch));
        })
        .unwrap();
    let parent_id = workflow.id().to_owned();
    let jobs = workflow.insert(&oban).await.unwrap();
    assert_eq!(jobs.len(), 5);
    let done = db.wait_for_state(jobs[4].id, JobState::Completed).await;
    let sub_steps = &jobs[1..4];
    let sub_id = sub_steps[0].meta["workflow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(sub_id, parent_id);
    for step in sub_steps {
        assert_eq!(
            step.meta["sup_workflow_id"],
            parent_id.as_str(),
            "{:?}",
            step.meta
        );
        assert_eq!(step.meta["sub_name"], "images", "{:?}", step.meta);
        assert_eq!(step.meta["workflow_id"], sub_id.as_str());
        let step = db.job(step.id).await;
        assert_eq!(step.state, JobState::Completed, "{step:?}");
        assert!(
            step.completed_at.unwrap() <= done.attempted_at.unwrap(),
            "\"done\" ran before sub step {:?} completed",
            step.meta["name"]
        );
    }
    // The sub-workflow's first steps waited for fetch, in the parent.
    let fetch = db.job(jobs[0].id).await;
    for first in [&jobs[1], &jobs[3]] {
        let first = db.job(first.id).await;
        assert!(first.attempted_at.unwrap() >= fetch.completed_at.unwrap());
    }
    assert_eq!(done.meta["workflow_id"], parent_id.as_str());
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_sub_workflow_is_waited_for_as_one_on_postgres() {
    a_sub_workflow_is_waited_for_as_one(Kind::Postgres).await;
}

#[tokio::test]
async fn a_sub_workflow_is_waited_for_as_one_on_sqlite() {
    a_sub_workflow_is_waited_for_as_one(Kind::Sqlite).await;
}

/// fetch(size), the squares of `indices` (steps `part-0`, `part-1`, ..), their total; the same
/// step names in every one.
fn squares_of(size: u64, indices: &[usize]) -> oban::workflow::NewWorkflow {
    Workflow::new("squares")
        .build(|wf| {
            let fetch = wf.add("fetch", Fetch::new(size), ());
            let parts: Vec<_> = indices
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    wf.add(
                        format!("part-{k}"),
                        Square::new(fetch.upstream(), i),
                        &fetch,
                    )
                })
                .collect();
            wf.add(
                "total",
                Total::new(parts.iter().map(|p| p.upstream()).collect()),
                &parts,
            );
        })
        .unwrap()
}

async fn two_workflows_on_one_queue_keep_their_results(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "two").await;
    // Same step names, different numbers: a result read from the other workflow would show.
    let small = squares_of(3, &[0, 1, 2]);
    let large = squares_of(10, &[7, 8, 9]);
    let (small_id, large_id) = (small.id().to_owned(), large.id().to_owned());
    let large_jobs = large.insert(&oban).await.unwrap();
    let small_jobs = small.insert(&oban).await.unwrap();
    let small_total = db
        .wait_for_state(small_jobs[4].id, JobState::Completed)
        .await;
    let large_total = db
        .wait_for_state(large_jobs[4].id, JobState::Completed)
        .await;
    assert_eq!(small_total.recorded::<u64>().unwrap(), Some(1 + 4 + 9));
    assert_eq!(large_total.recorded::<u64>().unwrap(), Some(64 + 81 + 100));
    for (jobs, id) in [(&small_jobs, &small_id), (&large_jobs, &large_id)] {
        for job in jobs.iter() {
            let job = db.job(job.id).await;
            assert_eq!(job.state, JobState::Completed);
            assert_eq!(job.meta["workflow_id"], id.as_str());
        }
    }
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn two_workflows_on_one_queue_keep_their_results_on_postgres() {
    two_workflows_on_one_queue_keep_their_results(Kind::Postgres).await;
}

#[tokio::test]
async fn two_workflows_on_one_queue_keep_their_results_on_sqlite() {
    two_workflows_on_one_queue_keep_their_results(Kind::Sqlite).await;
}

#[tokio::test]
async fn three_nodes_run_a_fan_of_200_exactly_once_on_postgres() {
    fan_out_and_in_on(Kind::Postgres, 200, 3).await;
}

#[tokio::test]
async fn two_nodes_run_a_fan_of_200_exactly_once_on_sqlite() {
    fan_out_and_in_on(Kind::Sqlite, 200, 2).await;
}

async fn a_workflow_commits_or_rolls_back_with_its_transaction(kind: Kind) {
    let db = Db::new(kind).await;
    let rolled_back = squares_of(3, &[1, 2]);
    let committed = squares_of(3, &[1, 2]);
    let ids = match kind {
        Kind::Sqlite => {
            let pool = db.sqlite_pool().unwrap();
            let mut tx = pool.begin().await.unwrap();
            rolled_back.insert(&mut *tx).await.unwrap();
            tx.rollback().await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            let jobs = committed.insert(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
            jobs
        }
        _ => {
            let pool = db.pg_pool().unwrap();
            let mut tx = pool.begin().await.unwrap();
            rolled_back.insert(&mut *tx).await.unwrap();
            tx.rollback().await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            let jobs = committed.insert(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
            jobs
        }
    };
    assert_eq!(
        db.count(JobFilter::new()).await,
        4,
        "only the committed one"
    );
    let oban = node(&db, "tx").await;
    let total = db.wait_for_state(ids[3].id, JobState::Completed).await;
    assert_eq!(total.recorded::<u64>().unwrap(), Some(4 + 9));
    assert_eq!(db.count(JobFilter::new()).await, 4);
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_workflow_commits_or_rolls_back_with_its_transaction_on_postgres() {
    a_workflow_commits_or_rolls_back_with_its_transaction(Kind::Postgres).await;
}

#[tokio::test]
async fn a_workflow_commits_or_rolls_back_with_its_transaction_on_sqlite() {
    a_workflow_commits_or_rolls_back_with_its_transaction(Kind::Sqlite).await;
}

async fn a_deleted_dependency_cancels_unless_ignored(kind: Kind) {
    let db = Db::new(kind).await;
    // No node: the steps stay where the test puts them.
    let workflow = Workflow::new("deleted")
        .build(|wf| {
            let a = wf.add("a", MaybeFail::new(false), ());
            let b = wf.add("b", MaybeFail::new(false), ());
            wf.add("x", MaybeFail::new(false), &a);
            wf.add("y", MaybeFail::new(false), (&a).ignoring(Ignore::DELETED));
            wf.add("z", MaybeFail::new(false), &b);
            wf.add("w", MaybeFail::new(false), (&b).ignoring(Ignore::CANCELLED));
        })
        .unwrap();
    let workflow_id = workflow.id().to_owned();
    let jobs = db.insert_via_pool(workflow.jobs().to_vec()).await;
    assert!(jobs[2..].iter().all(|j| j.state == JobState::Suspended));
    db.engine
        .job_delete_many(&JobFilter::id(jobs[0].id))
        .await
        .unwrap();
    db.engine
        .job_cancel_many(&JobFilter::id(jobs[1].id))
        .await
        .unwrap();
    db.engine
        .workflow_release(std::slice::from_ref(&workflow_id))
        .await
        .unwrap();
    let x = db.job(jobs[2].id).await;
    assert_eq!(x.state, JobState::Cancelled, "{x:?}");
    assert!(
        x.errors[0].error.contains("\"a\"") && x.errors[0].error.contains("deleted"),
        "{:?}",
        x.errors
    );
    assert_eq!(db.job(jobs[3].id).await.state, JobState::Available);
    let z = db.job(jobs[4].id).await;
    assert_eq!(z.state, JobState::Cancelled, "{z:?}");
    assert!(
        z.errors[0].error.contains("\"b\" was cancelled"),
        "{:?}",
        z.errors
    );
    assert_eq!(db.job(jobs[5].id).await.state, JobState::Available);
    // A second pass changes nothing.
    assert_eq!(db.engine.workflow_release(&[workflow_id]).await.unwrap(), 0);
}

#[tokio::test]
async fn a_deleted_dependency_cancels_unless_ignored_on_postgres() {
    a_deleted_dependency_cancels_unless_ignored(Kind::Postgres).await;
}

#[tokio::test]
async fn a_deleted_dependency_cancels_unless_ignored_on_sqlite() {
    a_deleted_dependency_cancels_unless_ignored(Kind::Sqlite).await;
}
