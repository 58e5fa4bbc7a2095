//! `workflows` and `workflow ID` (tables, `--json`, `--mermaid`, `--cancel`, `--retry`) through
//! the built binary, on PostgreSQL and on a SQLite file, each a database of its own. Workflows
//! are inserted as their stored layout says (the steps' meta).

mod common;

use common::{json, oban, postgres, sqlite};
use oban::{Job, JobInserter, NewJob};
use serde_json::{json, Value};

fn step(workflow: &str, name: &str, deps: Value) -> NewJob {
    NewJob::new("Cli.Step", json!({"step": name}))
        .queue("etl")
        .meta("workflow", true)
        .meta("workflow_id", workflow)
        .meta("workflow_name", "nightly \"etl\"")
        .meta("name", name)
        .meta("deps", deps)
}

/// wf-1: extract, transform (after extract), load (after transform); wf-2: one step.
async fn insert<'a>(target: impl JobInserter<'a>) -> Vec<Job> {
    oban::insert_all(
        target,
        vec![
            step("wf-1", "extract", json!([])),
            step("wf-1", "transform", json!(["extract"])),
            step("wf-1", "load", json!(["transform"])),
            step("wf-2", "only", json!([])),
        ],
    )
    .await
    .expect("insert")
}

fn text(url: &str, args: &[&str], code: i32) -> String {
    let output = oban(url).args(args).output().expect("run oban");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "oban {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn states(url: &str, id: &str) -> Vec<String> {
    json(url, &["workflow", id], 0)["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["state"].as_str().unwrap().to_owned())
        .collect()
}

fn scenario(url: &str, jobs: &[Job]) {
    // The list, newest first, and its pages.
    let listed = json(url, &["workflows"], 0);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["wf-2", "wf-1"]);
    assert_eq!(listed[1]["total"], 3);
    // The first step runs; the two after it wait for it.
    assert_eq!(listed[1]["counts"]["available"], 1);
    assert_eq!(listed[1]["counts"]["suspended"], 2);
    assert_eq!(listed[1]["state"], "running");
    let before = listed[0]["last_job_id"].to_string();
    let next = json(url, &["workflows", "--before", &before], 0);
    assert_eq!(next.as_array().unwrap().len(), 1);
    assert_eq!(next[0]["id"], "wf-1");
    let table = text(url, &["workflows", "--limit", "1"], 0);
    assert!(
        table.contains("wf-2") && !table.contains("wf-1 "),
        "{table}"
    );
    assert!(
        table.contains(&format!("more: --before {}", jobs[3].id)),
        "{table}"
    );

    // One workflow: JSON, table, Mermaid; an unknown one exits 3.
    let status = json(url, &["workflow", "wf-1"], 0);
    assert_eq!(status["summary"]["name"], "nightly \"etl\"");
    assert_eq!(status["steps"][1]["deps"], json!(["extract"]));
    assert_eq!(status["steps"][0]["job_id"], jobs[0].id);
    let table = text(url, &["workflow", "wf-1"], 0);
    assert!(
        table.contains("transform") && table.contains("Cli.Step"),
        "{table}"
    );
    let mermaid = text(url, &["workflow", "wf-1", "--mermaid"], 0);
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    assert!(
        mermaid.contains("s0 --> s1") && mermaid.contains("s1 --> s2"),
        "{mermaid}"
    );
    assert_eq!(json(url, &["workflow", "nope"], 3), Value::Null);

    // Filter flags: --workflow for the job commands.
    let listed = json(url, &["jobs", "--workflow", "wf-1"], 0);
    assert_eq!(listed.as_array().unwrap().len(), 3);

    // Cancel: refused without --yes off a terminal, counted on a dry run, then done.
    let refused = oban(url)
        .args(["workflow", "wf-1", "--cancel"])
        .write_stdin("y\n")
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(1));
    let report = json(url, &["workflow", "wf-1", "--cancel", "--dry-run"], 0);
    assert_eq!(
        report,
        json!({"operation": "cancel", "workflow": "wf-1", "matched": 3, "dry_run": true,
               "changed": 0, "released": null})
    );
    assert_eq!(states(url, "wf-1"), ["available", "suspended", "suspended"]);
    let report = json(url, &["workflow", "wf-1", "--cancel", "--yes"], 0);
    assert_eq!(report["changed"], 3);
    assert_eq!(states(url, "wf-1"), ["cancelled"; 3]);
    assert_eq!(states(url, "wf-2"), ["available"]);
    assert_eq!(
        json(url, &["workflow", "wf-1", "--cancel", "--yes"], 3)["matched"],
        0
    );

    // Retry: the cancelled steps back to suspended, and the first released again.
    let report = json(url, &["workflow", "wf-1", "--retry", "--yes"], 0);
    assert_eq!(report["operation"], "retry");
    assert_eq!(report["matched"], 3);
    assert_eq!(report["changed"], 3);
    assert_eq!(report["released"], 1);
    assert_eq!(states(url, "wf-1"), ["available", "suspended", "suspended"]);
    let after = json(url, &["workflow", "wf-1"], 0);
    let unfinished: Vec<&Value> = after["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "cancelled")
        .collect();
    assert!(unfinished.is_empty(), "{after}");
    assert_eq!(
        json(url, &["workflow", "nope", "--retry", "--yes"], 3)["matched"],
        0
    );
    let usage = oban(url)
        .args(["workflow", "wf-1", "--cancel", "--retry"])
        .output()
        .expect("run");
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_on_postgres() {
    let (pool, url) = postgres().await;
    let jobs = insert(&pool).await;
    tokio::task::spawn_blocking(move || scenario(&url, &jobs))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_on_sqlite() {
    let db = sqlite().await;
    let jobs = insert(&db.pool).await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || scenario(&url, &jobs))
        .await
        .unwrap();
    drop(db);
}
