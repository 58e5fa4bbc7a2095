//! Nodes that run only part of an application: a node that only inserts needs no worker state,
//! a queue is refused (at start and later) where its workers' state is missing, and during a
//! rolling deploy a node that does not know a job's worker defers it without spending an
//! attempt, until a node that knows it runs it; after the last deferral it fails as usual.

use std::time::Duration;

use oban::deferral::{MAX_DEFERRALS, META_KEY};
use oban::{
    JobContext, JobError, JobState, NewJob, Nodes, Outcome, StateKey, Worker, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::common::wait::poll;
use crate::harness::{Db, Kind};
use crate::probe::node;

/// What a ledger worker needs; the nodes that only insert do not have it.
struct Ledger;

/// A worker of queue `ledger` that needs `State<Ledger>`.
#[derive(Serialize, Deserialize)]
struct Book {}

impl Worker for Book {
    const NAME: &'static str = "Conformance.Book";
    fn options() -> WorkerOptions {
        WorkerOptions::new().queue("ledger")
    }
    fn required_state() -> Vec<StateKey> {
        vec![StateKey::of::<Ledger>()]
    }
    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        let _ledger = ctx.state::<Ledger>();
        Ok(Outcome::Complete)
    }
}

/// A worker only the new release has (registered by hand on the new node only).
#[derive(Serialize, Deserialize)]
struct NewRelease {}

impl Worker for NewRelease {
    const NAME: &'static str = "Conformance.NewRelease";
    fn options() -> WorkerOptions {
        WorkerOptions::new().queue("deploy").max_attempts(1)
    }
    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

fn all_errors(job: &oban::Job) -> String {
    job.errors
        .iter()
        .map(|e| e.error.as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

pub(crate) async fn insert_only_node_needs_no_worker_state(kind: Kind) {
    let db = Db::new(kind).await;
    // No queues, no state: starts and inserts.
    let web = node(&db, "web")
        .register::<Book>()
        .start()
        .await
        .expect("an insert-only node needs no state");
    let job = web
        .insert(NewJob::new(Book::NAME, json!({})).queue("ledger"))
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Available);

    // Running another queue, without the state of queue `ledger`'s worker: starts.
    let other = node(&db, "other")
        .register::<Book>()
        .queue("default", 1)
        .start()
        .await
        .expect("a node that does not run `ledger` needs no `State<Ledger>`");

    // Running `ledger` without its worker's state: refused, naming worker, queue and type.
    let refused = node(&db, "refused")
        .register::<Book>()
        .queue("ledger", 1)
        .start()
        .await
        .expect_err("a node running `ledger` needs `State<Ledger>`")
        .to_string();
    for part in [
        "`Conformance.Book`",
        "queue `ledger`",
        "Ledger>`",
        ".state(",
    ] {
        assert!(refused.contains(part), "names {part}: {refused}");
    }

    // Starting `ledger` later on a node without the state: refused with the same clarity.
    for nodes in [Nodes::Local, Nodes::Only("other".into())] {
        let refused = other
            .start_queue("ledger", 1, nodes.clone())
            .await
            .expect_err("starting `ledger` at run time without its state")
            .to_string();
        for part in ["node `other`", "queue `ledger`", "Ledger>`", ".state("] {
            assert!(refused.contains(part), "{nodes:?} names {part}: {refused}");
        }
    }
    // A job of `Conformance.Book` inserted into another queue reaches a node without its state:
    // deferred with an error naming the type, never run (no panic); the node with the state
    // started below runs it.
    let elsewhere = web
        .insert(NewJob::new(Book::NAME, json!({})).queue("default"))
        .await
        .unwrap();
    let deferred = poll(
        "the node without `State<Ledger>` to defer the job",
        Duration::from_secs(15),
        Duration::from_millis(10),
        async || {
            let job = db.job(elsewhere.id).await;
            if job.meta.get(META_KEY).is_some() {
                Ok(job)
            } else {
                Err(format!("{:?}", job.state))
            }
        },
    )
    .await;
    assert_eq!((deferred.state, deferred.attempt), (JobState::Scheduled, 0));
    let error = all_errors(&deferred);
    assert!(
        error.contains("needs `State<") && error.contains("Ledger>` that node `other`"),
        "{error}"
    );
    // So that the node with the state, started below, is the one to claim it next.
    other.stop_queue("default", Nodes::Local).await.unwrap();

    // Told to every node: the nodes without the state refuse (and log it), the one with it
    // starts the queue and runs the job. Each refusing node applies the signal before the node
    // with the state hears of it, so one that started the queue anyway would claim the job first
    // and leave a deferral in its errors.
    let worker = node(&db, "worker")
        .register::<Book>()
        .state(Ledger)
        .queue("default", 1)
        .start()
        .await
        .unwrap();
    other
        .start_queue("ledger", 1, Nodes::All)
        .await
        .expect("the signal goes to the other nodes");
    let done = db.wait_for_state(job.id, JobState::Completed).await;
    assert_eq!(done.attempted_by[0], "worker");
    assert_eq!((done.attempt, done.errors.len()), (1, 0), "{done:?}");

    let done = db.wait_for_state(elsewhere.id, JobState::Completed).await;
    assert_eq!((done.attempt, &*done.attempted_by[0]), (1, "worker"));

    for oban in [web, other, worker] {
        oban.shutdown(Duration::from_secs(2)).await;
    }
}

pub(crate) async fn rolling_deploy_defers_unknown_workers_without_spending_attempts(kind: Kind) {
    let db = Db::new(kind).await;
    // The old release: it runs queue `deploy` but has no `Conformance.NewRelease`.
    let old = node(&db, "old").queue("deploy", 2).start().await.unwrap();
    // One attempt only: a node that spent it would discard the job at once.
    let job = old
        .insert(
            NewJob::new(NewRelease::NAME, json!({}))
                .queue("deploy")
                .max_attempts(1),
        )
        .await
        .unwrap();
    let deferred = poll(
        "the old node to defer the job",
        Duration::from_secs(15),
        Duration::from_millis(10),
        async || {
            let job = db.job(job.id).await;
            if job.meta.get(META_KEY).is_some() {
                Ok(job)
            } else {
                Err(format!("{:?} attempt {}", job.state, job.attempt))
            }
        },
    )
    .await;
    old.shutdown(Duration::from_secs(2)).await;
    assert_eq!(deferred.state, JobState::Scheduled);
    assert_eq!(deferred.attempt, 0, "the attempt was given back");
    assert_eq!(deferred.meta[META_KEY], 1);
    assert!(
        deferred.scheduled_at > deferred.attempted_at.unwrap(),
        "scheduled later: {deferred:?}"
    );
    let error = all_errors(&deferred);
    assert!(
        error.contains(
            "worker `Conformance.NewRelease` is not known to node `old`; deferred without \
             spending an attempt (1 of 64)"
        ),
        "{error}"
    );

    // The new release knows the worker: the job runs with its one attempt.
    let new = node(&db, "new")
        .register::<NewRelease>()
        .queue("deploy", 2)
        .start()
        .await
        .unwrap();
    let done = db.wait_for_state(job.id, JobState::Completed).await;
    new.shutdown(Duration::from_secs(2)).await;
    assert_eq!(done.attempt, 1);
    assert_eq!(done.attempted_by[0], "new");
    assert_eq!(done.meta[META_KEY], 1);
    assert_eq!(
        done.errors.len(),
        1,
        "only the deferral: {}",
        all_errors(&done)
    );
}

pub(crate) async fn unknown_workers_fail_as_usual_after_the_last_deferral(kind: Kind) {
    let db = Db::new(kind).await;
    let unknown = |deferrals: i64, max_attempts: u16| {
        NewJob::new("Conformance.Misspelt", json!({}))
            .queue("deploy")
            .max_attempts(max_attempts)
            .meta(META_KEY, deferrals)
            .meta("kept", true)
    };
    let last = db.insert(unknown(MAX_DEFERRALS - 1, 1)).await;
    let spent = db.insert(unknown(MAX_DEFERRALS, 3)).await;
    let discarded = db.insert(unknown(MAX_DEFERRALS, 1)).await;
    let old = node(&db, "old").queue("deploy", 3).start().await.unwrap();

    // The last deferral still gives the attempt back.
    let last = poll(
        "the last deferral",
        Duration::from_secs(15),
        Duration::from_millis(10),
        async || {
            let job = db.job(last.id).await;
            if job.meta[META_KEY] == MAX_DEFERRALS {
                Ok(job)
            } else {
                Err(format!("{:?}", job.meta))
            }
        },
    )
    .await;
    assert_eq!((last.state, last.attempt), (JobState::Scheduled, 0));
    assert!(
        all_errors(&last).contains("(64 of 64)"),
        "{}",
        all_errors(&last)
    );
    assert_eq!(last.meta["kept"], true, "other meta keys are kept");

    // After it, the attempt is spent: retried with attempts left, discarded without.
    let spent = db.wait_for_state(spent.id, JobState::Retryable).await;
    assert_eq!(spent.attempt, 1);
    assert_eq!(spent.meta[META_KEY], MAX_DEFERRALS, "no longer counted");
    let error = all_errors(&spent);
    assert!(
        error.contains("is not known to node `old`") && error.contains("deferred 64 times"),
        "{error}"
    );
    let discarded = db.wait_for_state(discarded.id, JobState::Discarded).await;
    assert_eq!(discarded.attempt, 1);
    old.shutdown(Duration::from_secs(2)).await;
}
