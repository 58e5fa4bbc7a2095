//! Workflows (issue 20): steps that wait for steps, released by their dependencies' acks, with
//! typed results read through `Flow`; on PostgreSQL and SQLite.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::time::Duration;

use oban::workflow::{Deps, Flow, Ignore, Upstream, Workflow};
use oban::{worker, JobFilter, JobState};

use harness::{Db, Kind};

#[worker(queue = "flow", max_attempts = 1)]
async fn fetch(size: u64) -> Result<Vec<u64>, std::io::Error> {
    Ok((1..=size).collect())
}

#[worker(queue = "flow", max_attempts = 1)]
async fn square(input: Upstream<Vec<u64>>, index: usize, flow: Flow) -> Result<u64, oban::Error> {
    let numbers = flow.result(&input).await?;
    Ok(numbers[index] * numbers[index])
}

#[worker(queue = "flow", max_attempts = 1)]
async fn total(parts: Vec<Upstream<u64>>, flow: Flow) -> Result<u64, oban::Error> {
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

async fn node(db: &Db, name: &str) -> oban::Oban {
    db.builder(name)
        .queue("flow", 10)
        .register::<Fetch>()
        .register::<Square>()
        .register::<Total>()
        .register::<MaybeFail>()
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
    let db = Db::new(kind).await;
    let oban = node(&db, "fan").await;
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
    let jobs = workflow.insert(&oban).await.unwrap();
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
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_fan_out_and_in_of_1000_on_postgres() {
    fan_out_and_in(Kind::Postgres, 1000).await;
}

#[tokio::test]
async fn a_fan_out_and_in_of_1000_on_sqlite() {
    fan_out_and_in(Kind::Sqlite, 1000).await;
}
