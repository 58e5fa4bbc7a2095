//! The operator's view of workflows (`Admin::workflows`, `workflow`, `cancel_workflow`,
//! `retry_workflow`, `WorkflowStatus::to_mermaid`) against real PostgreSQL (also in a schema
//! prefix) and SQLite, each case on a database of its own. Workflows are inserted as their stored
//! layout says (the steps' meta), with states set by a plain UPDATE where a case needs them: the
//! release of suspended steps is not part of these reads.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use oban::admin::{Admin, JobQuery, StepDep, WorkflowState};
use oban::{DbPool, Job, JobFilter, JobState, NewJob, Prefix};
use serde_json::{json, Value};

use harness::{Db, Kind};

async fn admin(db: &Db) -> Admin {
    match db.sqlite_pool() {
        Some(pool) => Admin::new(DbPool::from(pool.clone()), Prefix::PUBLIC).unwrap(),
        None => Admin::connect(&db.url(), db.prefix().name())
            .await
            .expect("admin connects"),
    }
}

/// A step of `workflow` named `name` depending on `deps` (as stored).
fn step(workflow: &str, name: &str, deps: Value) -> NewJob {
    NewJob::new("Step", json!({"step": name}))
        .queue("workflows")
        .meta("workflow", true)
        .meta("workflow_id", workflow)
        .meta("workflow_name", format!("{workflow}-name"))
        .meta("name", name)
        .meta("deps", deps)
}

/// A step of the sub-workflow `sub` of `parent`, known there as `sub_name`.
fn sub_step(sub: &str, parent: &str, sub_name: &str, name: &str, deps: Value) -> NewJob {
    step(sub, name, deps)
        .meta("sup_workflow_id", parent)
        .meta("sub_name", sub_name)
}

/// Sets the state of jobs `ids` (attempted for every state but the waiting ones, finished now
/// for the final ones), with `attempt` attempts made.
async fn set_state(db: &Db, ids: &[i64], state: JobState, attempt: i32) {
    let state = state.as_str();
    if let Some(pool) = db.pg_pool() {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(db.prefix().name())
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE oban_jobs SET state = $1::text::oban_job_state, attempt = $3,
               attempted_at = CASE WHEN $1 IN ('available', 'scheduled', 'suspended') THEN NULL
                                   ELSE timezone('UTC', now()) END,
               completed_at = CASE WHEN $1 = 'completed' THEN timezone('UTC', now()) END,
               cancelled_at = CASE WHEN $1 = 'cancelled' THEN timezone('UTC', now()) END,
               discarded_at = CASE WHEN $1 = 'discarded' THEN timezone('UTC', now()) END
             WHERE id = ANY($2)",
        )
        .bind(state)
        .bind(ids)
        .bind(attempt)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    } else if let Some(pool) = db.sqlite_pool() {
        let now = "strftime('%Y-%m-%d %H:%M:%f000', 'now')";
        let sql = format!(
            "UPDATE oban_jobs SET state = ?1, attempt = ?3,
               attempted_at = CASE WHEN ?1 IN ('available', 'scheduled', 'suspended') THEN NULL
                                   ELSE {now} END,
               completed_at = CASE WHEN ?1 = 'completed' THEN {now} END,
               cancelled_at = CASE WHEN ?1 = 'cancelled' THEN {now} END,
               discarded_at = CASE WHEN ?1 = 'discarded' THEN {now} END
             WHERE id IN (SELECT value FROM json_each(?2))"
        );
        sqlx::query(&sql)
            .bind(state)
            .bind(json!(ids).to_string())
            .bind(attempt)
            .execute(pool)
            .await
            .unwrap();
    }
}

fn ids(jobs: &[Job]) -> Vec<i64> {
    jobs.iter().map(|j| j.id).collect()
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::Kind::Postgres).await }
            )*
        }
        mod postgres_prefix {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::Kind::PostgresPrefix).await }
            )*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::Kind::Sqlite).await }
            )*
        }
    };
}

cases!(
    lists_newest_first_in_pages,
    status_with_steps_and_sub_workflows,
    mermaid_draws_the_graph,
    cancel_stops_every_unfinished_step,
    retry_suspends_the_failed_steps,
    filter_by_workflow,
);

/// Workflows are listed by their newest step, counted by state, and paged without repeats; jobs
/// outside workflows are not listed.
async fn lists_newest_first_in_pages(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let a = db
        .insert_via_pool(vec![
            step("wf-a", "one", json!([])),
            step("wf-a", "two", json!(["one"])),
        ])
        .await;
    db.insert(NewJob::new("Plain", json!({}))).await;
    let b = db
        .insert_via_pool(vec![step("wf-b", "one", json!([]))])
        .await;
    // A step appended to wf-a later makes it the newest.
    let a3 = db.insert(step("wf-a", "three", json!(["two"]))).await;
    db.insert_via_pool(vec![step("wf-c", "one", json!([]))])
        .await;
    set_state(&db, &ids(&a), JobState::Completed, 1).await;
    set_state(&db, &[a3.id], JobState::Executing, 1).await;
    set_state(&db, &ids(&b), JobState::Discarded, 20).await;

    let all = admin.workflows(None, 10).await.unwrap();
    let listed: Vec<&str> = all.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(listed, ["wf-c", "wf-a", "wf-b"]);
    let wf_a = &all[1];
    assert_eq!(wf_a.name.as_deref(), Some("wf-a-name"));
    assert_eq!(wf_a.total, 3);
    assert_eq!(wf_a.counts.completed, 2);
    assert_eq!(wf_a.counts.executing, 1);
    assert_eq!(wf_a.state, WorkflowState::Running);
    assert_eq!(wf_a.last_job_id, a3.id);
    assert!(wf_a.started_at.is_some());
    assert_eq!(wf_a.finished_at, None, "a step is unfinished");
    assert_eq!(all[2].state, WorkflowState::Discarded);
    assert!(all[2].finished_at.is_some());
    assert_eq!(
        all[0].state,
        WorkflowState::Running,
        "c's step is available"
    );
    assert_eq!(all[0].started_at, None);

    // One at a time: each page starts below the last one's newest step.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = admin.workflows(before, 1).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.last_job_id);
        pages.push(last.id.clone());
        assert!(pages.len() <= 3, "pages end: {pages:?}");
    }
    assert_eq!(pages, ["wf-c", "wf-a", "wf-b"]);

    let json = serde_json::to_value(&all[2]).unwrap();
    assert_eq!(json["state"], "discarded");
    assert_eq!(json["counts"]["discarded"], 1);
    assert!(json["inserted_at"].as_str().unwrap().ends_with('Z'));
}

/// One workflow: every step with its deps as stored, and its sub-workflow with its name.
async fn status_with_steps_and_sub_workflows(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let (w, s) = workflow_with_sub(&db).await;
    set_state(&db, &[w[0].id], JobState::Completed, 1).await;
    set_state(&db, &[w[1].id, w[2].id, s[0].id], JobState::Suspended, 0).await;

    assert!(admin.workflow("nothing").await.unwrap().is_none());
    let status = admin.workflow("wf").await.unwrap().expect("the workflow");
    assert_eq!(status.summary.id, "wf");
    assert_eq!(status.summary.total, 3);
    assert_eq!(status.summary.state, WorkflowState::Suspended);
    let names: Vec<&str> = status.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(status.steps[0].state, JobState::Completed);
    assert_eq!(status.steps[1].deps, [StepDep::Step("a".into())]);
    assert_eq!(
        status.steps[2].deps,
        [StepDep::Step("b".into()), StepDep::Workflow("sub".into())]
    );
    assert_eq!(status.sub_workflows.len(), 1);
    let sub = &status.sub_workflows[0];
    assert_eq!(sub.summary.id, "sub");
    assert_eq!(sub.sub_name.as_deref(), Some("fanout"));
    assert_eq!(sub.summary.sup_workflow_id.as_deref(), Some("wf"));
    assert_eq!(sub.steps.len(), 2);
    assert_eq!(status.workflow_ids(), ["wf", "sub"]);

    // The sub-workflow read alone names its parent and has no sub-workflow of its own.
    let alone = admin.workflow("sub").await.unwrap().unwrap();
    assert_eq!(alone.summary.sup_workflow_id.as_deref(), Some("wf"));
    assert!(alone.sub_workflows.is_empty());

    // Layers by dependency depth: a, then b and the sub-workflow (after a), then c.
    let layers = status.layers();
    assert_eq!(layers.layers.len(), 3, "{layers:?}");

    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["steps"][2]["deps"], json!(["b", ["sub", "*"]]));
    assert_eq!(json["sub_workflows"][0]["sub_name"], "fanout");
}

/// wf: a, b (after a), c (after b and the whole sub-workflow); sub (of wf, "fanout"): x (after
/// wf's a), y (after x, and a step of a workflow outside).
async fn workflow_with_sub(db: &Db) -> (Vec<Job>, Vec<Job>) {
    let w = db
        .insert_via_pool(vec![
            step("wf", "a", json!([])),
            step("wf", "b", json!(["a"])),
            step("wf", "c", json!(["b", ["sub", "*"]])),
        ])
        .await;
    let s = db
        .insert_via_pool(vec![
            sub_step("sub", "wf", "fanout", "x", json!([["wf", "a"]])),
            sub_step("sub", "wf", "fanout", "y", json!(["x", ["elsewhere", "z"]])),
        ])
        .await;
    (w, s)
}

/// The Mermaid text: boxes with state classes, arrows from deps, the sub-workflow as a
/// subgraph, an outside dependency as its own box, labels quoted.
async fn mermaid_draws_the_graph(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let (w, _) = workflow_with_sub(&db).await;
    set_state(&db, &[w[0].id], JobState::Completed, 1).await;
    db.insert(step("wf", "say \"hi\" --> [x]", json!(["a", "gone"])))
        .await;
    let status = admin.workflow("wf").await.unwrap().unwrap();
    let text = status.to_mermaid();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let has = |line: &str| lines.contains(&line);
    assert_eq!(lines[0], "flowchart TD");
    assert!(has("s0[\"a<br/>completed\"]:::completed"), "{text}");
    assert!(has("s1[\"b<br/>suspended\"]:::suspended"), "{text}");
    assert!(has("s0 --> s1"), "{text}");
    assert!(has("s1 --> s2"), "{text}");
    assert!(has("subgraph w0[\"fanout (suspended)\"]"), "{text}");
    assert!(has("w0s0 --> w0s1"), "{text}");
    assert!(
        has("w0 --> s2"),
        "the dep on the whole sub-workflow: {text}"
    );
    assert!(has("s0 --> w0"), "the sub-workflow waits for a: {text}");
    assert!(has("w0x0[\"elsewhere#58;z\"]:::external"), "{text}");
    assert!(has("w0x0 --> w0s1"), "{text}");
    assert!(
        has("s3[\"say #34;hi#34; --#62; #91;x#93;<br/>suspended\"]:::suspended"),
        "the label is quoted: {text}"
    );
    assert!(has("x0[\"gone<br/>deleted\"]:::deleted"), "{text}");
    assert!(has("x0 --> s3"), "{text}");
    assert!(has(
        "classDef completed fill:#dcfce7,stroke:#16a34a,color:#14532d"
    ));
    assert!(
        !text.contains("wf --> ") && !text.contains("[\"wf#58;a\"]"),
        "the sub-workflow's dep on its parent is the arrow s0 --> w0, not a box: {text}"
    );
}

/// Cancelling a workflow cancels its unfinished steps and its sub-workflow's, and nothing else.
async fn cancel_stops_every_unfinished_step(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let (w, s) = workflow_with_sub(&db).await;
    let other = db.insert(step("other", "a", json!([]))).await;
    let plain = db.insert(NewJob::new("Plain", json!({}))).await;
    set_state(&db, &[w[0].id], JobState::Completed, 1).await;
    set_state(&db, &[w[2].id, s[1].id], JobState::Suspended, 0).await;

    assert_eq!(admin.cancel_workflow("wf").await.unwrap(), 4);
    let status = admin.workflow("wf").await.unwrap().unwrap();
    let states: Vec<JobState> = status.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            JobState::Completed,
            JobState::Cancelled,
            JobState::Cancelled
        ]
    );
    assert!(status.sub_workflows[0]
        .steps
        .iter()
        .all(|s| s.state == JobState::Cancelled));
    assert_eq!(status.summary.state, WorkflowState::Cancelled);
    assert!(status.summary.finished_at.is_some());
    assert_eq!(db.job(other.id).await.state, JobState::Available);
    assert_eq!(db.job(plain.id).await.state, JobState::Available);
    assert_eq!(
        admin.cancel_workflow("wf").await.unwrap(),
        0,
        "nothing left"
    );
}

/// Retrying a workflow moves its cancelled and discarded steps (and its sub-workflow's) back to
/// suspended, with one more attempt where theirs are spent, then releases those whose
/// dependencies completed; completed steps stay.
async fn retry_suspends_the_failed_steps(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let (w, s) = workflow_with_sub(&db).await;
    set_state(&db, &[w[0].id], JobState::Completed, 1).await;
    set_state(&db, &[w[1].id], JobState::Discarded, 20).await;
    set_state(&db, &[w[2].id, s[0].id], JobState::Cancelled, 0).await;
    let other = db.insert(step("other", "a", json!([]))).await;
    set_state(&db, &[other.id], JobState::Cancelled, 0).await;

    let retried = admin.retry_workflow("wf").await.unwrap();
    assert_eq!(retried.suspended, 3);
    // b and x wait for a, which completed: the release makes them runnable again; c waits
    // for b; y, which depends on a step that does not exist, is cancelled.
    assert_eq!(retried.released, 3);
    let b = db.job(w[1].id).await;
    assert_eq!(b.state, JobState::Available);
    assert_eq!(b.max_attempts, 21, "one more attempt than spent");
    assert_eq!(b.discarded_at, None);
    assert_eq!(db.job(w[2].id).await.state, JobState::Suspended);
    assert_eq!(db.job(s[0].id).await.state, JobState::Available);
    assert_eq!(db.job(w[0].id).await.state, JobState::Completed);
    assert_eq!(db.job(s[1].id).await.state, JobState::Cancelled);
    assert_eq!(db.job(other.id).await.state, JobState::Cancelled);
}

/// `JobFilter::workflow` selects one workflow's steps for every read and bulk operation.
async fn filter_by_workflow(kind: Kind) {
    let db = Db::new(kind).await;
    let admin = admin(&db).await;
    let (w, _) = workflow_with_sub(&db).await;
    db.insert(NewJob::new("Plain", json!({}))).await;
    let query = JobQuery::new(JobFilter::new().workflow("wf"));
    assert_eq!(admin.count(&query).await.unwrap(), 3);
    assert_eq!(ids(&admin.jobs(&query).await.unwrap()), ids(&w));
    let page = admin.page(&query, None).await.unwrap();
    assert_eq!(page.first().map(|j| j.id), Some(w[2].id));
    let suspended = JobQuery::new(JobFilter::new().workflow("wf").state(JobState::Suspended));
    assert_eq!(admin.count(&suspended).await.unwrap(), 2, "b and c wait");
    assert_eq!(admin.delete(&query, 2, &mut |_| {}).await.unwrap(), 3);
    assert!(admin.workflow("wf").await.unwrap().is_none());
    assert_eq!(
        admin.workflows(None, 10).await.unwrap().len(),
        1,
        "sub is left"
    );
}

/// The inline engine (no database) answers the same reads from memory.
#[tokio::test]
async fn inline_engine_lists_and_shows_workflows() {
    use oban::engine::Engine;
    use oban::engines::inline::InlineEngine;
    use std::sync::Arc;
    let engine = Arc::new(InlineEngine::new(
        Arc::new(oban::Registry::default()),
        Arc::new(oban::StateMap::new()),
        "inline".into(),
    ));
    engine
        .job_insert_many(vec![
            step("wf", "a", json!([])),
            step("wf", "b", json!(["a"])),
            sub_step("sub", "wf", "fanout", "x", json!([["wf", "a"]])),
        ])
        .await
        .unwrap();
    let admin = Admin::with_engine(engine);
    let listed = admin.workflows(None, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, "sub");
    let status = admin.workflow("wf").await.unwrap().unwrap();
    assert_eq!(status.steps.len(), 2);
    assert_eq!(status.sub_workflows.len(), 1);
    assert!(status.to_mermaid().contains("s0 --> w0"));
}
