//! Every command through the built binary against a PostgreSQL database of its own, `--json`
//! parsed and checked.

mod common;

use std::time::Duration;

use common::{json, oban, postgres, wait_until, Broken, Fine, Flaky, Sleepy};
use oban::{JobState, NewJob, Oban};
use serde_json::{json, Value};
use sqlx::PgPool;

const LIMIT: Duration = Duration::from_secs(30);

/// A node running queue `default` (limit 3) with the test workers.
async fn node(pool: &PgPool, name: &str) -> Oban {
    Oban::builder()
        .pool(pool.clone())
        .node(name)
        .queue("default", 3)
        .register::<Flaky>()
        .register::<Broken>()
        .register::<Fine>()
        .register::<Sleepy>()
        .poll_interval(Duration::from_millis(50))
        .stage_interval(Duration::from_millis(50))
        .heartbeat_interval(Duration::from_millis(200))
        .start()
        .await
        .expect("start node")
}

async fn insert(pool: &PgPool, worker: &str, queue: &str, n: u32) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let job = NewJob::new(worker, json!({"n": i}))
            .queue(queue)
            .tag("cli")
            .insert(pool)
            .await
            .expect("insert");
        ids.push(job.id);
    }
    ids
}

async fn state_of(pool: &PgPool, id: i64) -> JobState {
    common::job(pool, id).await.state
}

fn count(queue: &Value, state: &str) -> u64 {
    queue["states"]
        .as_array()
        .expect("states")
        .iter()
        .find(|tally| tally["state"] == state)
        .map_or(0, |tally| tally["count"].as_u64().expect("count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_show_depth_by_state_and_each_node() {
    let (pool, url) = postgres().await;
    insert(&pool, "Cli.Idle", "reports", 3).await;
    NewJob::new("Cli.Idle", json!({}))
        .queue("reports")
        .schedule_in(Duration::from_secs(3600))
        .insert(&pool)
        .await
        .expect("insert");
    let running = node(&pool, "cli-node-1").await;

    let mut seen = Value::Null;
    wait_until("the node's heartbeat in `queues`", LIMIT, async || {
        seen = json(&url, &["queues"], 0);
        seen.as_array().expect("array").iter().any(|q| {
            q["queue"] == "default" && q["nodes"].as_array().is_some_and(|n| !n.is_empty())
        })
    })
    .await;
    let queues = seen.as_array().expect("array");
    let reports = queues
        .iter()
        .find(|q| q["queue"] == "reports")
        .expect("reports");
    assert_eq!(reports["total"], 4);
    assert_eq!(count(reports, "available"), 3);
    assert_eq!(count(reports, "scheduled"), 1);
    assert!(reports["oldest_available_secs"].as_f64().expect("age") >= 0.0);
    assert_eq!(reports["nodes"], json!([]));
    let default = queues
        .iter()
        .find(|q| q["queue"] == "default")
        .expect("default");
    let node = &default["nodes"][0];
    assert_eq!(node["node"], "cli-node-1");
    assert_eq!(node["limit"], 3);
    assert_eq!(node["paused"], false);
    assert!(node["heartbeat_age_secs"].is_number());

    // The table names the queue and the node.
    let table = oban(&url).arg("queues").output().expect("run");
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("reports") && text.contains("cli-node-1 0/3"),
        "{text}"
    );
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_job_filter_and_show_a_job() {
    let (pool, url) = postgres().await;
    let mail = insert(&pool, "Cli.Mail", "mailers", 3).await;
    insert(&pool, "Cli.Report", "reports", 2).await;

    let listed = json(&url, &["jobs", "--queue", "mailers"], 0);
    let ids: Vec<i64> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|job| job["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, mail);
    let listed = json(
        &url,
        &["jobs", "--worker", "Cli.Mail", "--args", r#"{"n": 1}"#],
        0,
    );
    assert_eq!(listed.as_array().expect("array").len(), 1);
    assert_eq!(listed[0]["id"], mail[1]);
    assert_eq!(listed[0]["state"], "available");
    let listed = json(
        &url,
        &["jobs", "--tag", "cli", "--since", "1h", "--limit", "4"],
        0,
    );
    assert_eq!(listed.as_array().expect("array").len(), 4);

    // Nothing matched: an empty array and exit code 3.
    assert_eq!(json(&url, &["jobs", "--state", "discarded"], 3), json!([]));

    let job = json(&url, &["job", &mail[0].to_string()], 0);
    assert_eq!(job["id"], mail[0]);
    assert_eq!(job["worker"], "Cli.Mail");
    assert_eq!(job["args"], json!({"n": 0}));
    assert_eq!(job["tags"], json!(["cli"]));
    assert!(job["inserted_at"].as_str().expect("time").ends_with('Z'));
    assert_eq!(json(&url, &["job", "999999"], 3), Value::Null);

    let shown = oban(&url)
        .args(["job", &mail[0].to_string()])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("timeline") && text.contains("inserted"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_scale_reach_the_node() {
    let (pool, url) = postgres().await;
    let running = node(&pool, "cli-node-2").await;
    let node_of = |queues: &Value| -> Option<Value> {
        queues
            .as_array()?
            .iter()
            .find(|q| q["queue"] == "default")?["nodes"]
            .get(0)
            .cloned()
    };

    let sent = json(&url, &["pause", "default"], 0);
    assert_eq!(
        sent,
        json!({"action": "pause", "queue": "default", "node": null})
    );
    wait_until("the queue paused", LIMIT, async || {
        node_of(&json(&url, &["queues"], 0)).is_some_and(|n| n["paused"] == true)
    })
    .await;

    json(&url, &["resume", "default", "--node", "cli-node-2"], 0);
    wait_until("the queue resumed", LIMIT, async || {
        node_of(&json(&url, &["queues"], 0)).is_some_and(|n| n["paused"] == false)
    })
    .await;

    let sent = json(&url, &["scale", "default", "7"], 0);
    assert_eq!(sent["limit"], 7);
    wait_until("the queue scaled to 7", LIMIT, async || {
        node_of(&json(&url, &["queues"], 0)).is_some_and(|n| n["limit"] == 7)
    })
    .await;
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_listed_changed_and_cleared_on_every_node() {
    let (pool, url) = postgres().await;
    let running = node(&pool, "cli-node-limits").await;
    let node_limits = async || -> Option<Value> {
        let info = running.check_queue("default").await.ok()?;
        let view = info.into_iter().next()?;
        Some(serde_json::to_value(&view.limits).unwrap())
    };
    assert_eq!(json(&url, &["limits"], 0), json!([]));
    assert_eq!(json(&url, &["limits", "default"], 0), Value::Null);

    // Not a terminal and no --yes: refused, exit 1, nothing stored.
    let refused = oban(&url)
        .args(["limits", "default", "--global", "2"])
        .write_stdin("y\n")
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(stderr.contains("global 2 (now: none)"), "{stderr}");
    assert_eq!(json(&url, &["limits"], 0), json!([]));

    let set = [
        "limits",
        "default",
        "--global",
        "2",
        "--global-by",
        "worker",
        "--rate",
        "100/1m",
        "--rate-by",
        "args:tenant_id,region",
        "--yes",
    ];
    let changed = json(&url, &set, 0);
    assert_eq!(changed["action"], "set");
    assert_eq!(changed["before"], Value::Null);
    assert_eq!(changed["after"]["global"]["allowed"], 2);
    assert_eq!(changed["after"]["rate"]["period_secs"], 60);
    assert_eq!(
        changed["after"]["rate"]["partition"]["keys"],
        json!(["tenant_id", "region"])
    );
    wait_until("the node reads the limits", LIMIT, async || {
        node_limits()
            .await
            .is_some_and(|l| l["global"]["allowed"] == 2)
    })
    .await;

    // A change keeps what it does not name.
    let changed = json(&url, &["limits", "default", "--no-rate", "--yes"], 0);
    assert_eq!(changed["after"]["global"]["allowed"], 2);
    assert_eq!(changed["after"]["rate"], Value::Null);
    wait_until("the node drops the rate", LIMIT, async || {
        node_limits().await.is_some_and(|l| l["rate"].is_null())
    })
    .await;

    // Usage: two of the worker's jobs running now.
    insert(&pool, "Cli.Sleepy", "default", 3).await;
    wait_until("two jobs running", LIMIT, async || {
        json(&url, &["limits", "default"], 0)["usage"]["running"][0]["count"] == 2
    })
    .await;
    let listed = json(&url, &["limits"], 0);
    assert_eq!(listed[0]["queue"], "default");
    assert_eq!(listed[0]["usage"]["running"][0]["partition"], "Cli.Sleepy");
    let queues = json(&url, &["queues"], 0);
    assert_eq!(queues[0]["limits"]["limits"]["global"]["allowed"], 2);

    let table = oban(&url).arg("limits").output().expect("run");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("2 by worker"), "{text}");
    assert!(text.contains("2 Cli.Sleepy"), "{text}");
    let table = oban(&url).arg("queues").output().expect("run");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("fleet limits"), "{text}");
    assert!(text.contains("global 2/2 by worker"), "{text}");

    let unchanged = oban(&url)
        .args([
            "limits",
            "default",
            "--global",
            "2",
            "--global-by",
            "worker",
        ])
        .output()
        .expect("run");
    assert_eq!(
        unchanged.status.code(),
        Some(0),
        "no question when nothing changes"
    );
    assert!(String::from_utf8_lossy(&unchanged.stdout).contains("unchanged"));

    let cleared = json(&url, &["limits", "default", "--clear", "--yes"], 0);
    assert_eq!(cleared["action"], "clear");
    assert_eq!(cleared["after"], Value::Null);
    assert_eq!(json(&url, &["limits"], 0), json!([]));
    wait_until("the node forgets the limits", LIMIT, async || {
        node_limits().await.is_some_and(|l| l.is_null())
    })
    .await;
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_cancel_and_delete_count_ask_and_change() {
    let (pool, url) = postgres().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let job = NewJob::new("Cli.Later", json!({"n": i}))
            .queue("later")
            .schedule_in(Duration::from_secs(3600))
            .insert(&pool)
            .await
            .expect("insert");
        ids.push(job.id);
    }

    // Not a terminal and no --yes: refused, exit 1, nothing changed.
    let refused = oban(&url)
        .args(["retry", "--queue", "later"])
        .write_stdin("y\n")
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(state_of(&pool, ids[0]).await, JobState::Scheduled);

    // A dry run counts and changes nothing.
    let report = json(&url, &["retry", "--queue", "later", "--dry-run"], 0);
    assert_eq!(
        report,
        json!({"operation": "retry", "matched": 5, "dry_run": true, "changed": 0})
    );
    assert_eq!(state_of(&pool, ids[0]).await, JobState::Scheduled);

    // Two of them, in batches of one.
    let two = [
        "retry",
        "--id",
        &ids[0].to_string(),
        "--id",
        &ids[1].to_string(),
        "--yes",
        "--batch",
        "1",
    ];
    let report = json(&url, &two, 0);
    assert_eq!(report["matched"], 2);
    assert_eq!(report["changed"], 2);
    assert_eq!(state_of(&pool, ids[0]).await, JobState::Available);
    assert_eq!(state_of(&pool, ids[2]).await, JobState::Scheduled);

    let report = json(&url, &["cancel", "--queue", "later", "--yes"], 0);
    assert_eq!(
        (report["matched"].clone(), report["changed"].clone()),
        (json!(5), json!(5))
    );
    assert_eq!(state_of(&pool, ids[4]).await, JobState::Cancelled);

    // Cancelling again: nothing left to cancel, exit 3.
    let report = json(&url, &["cancel", "--queue", "later", "--yes"], 3);
    assert_eq!(report["matched"], 0);

    let report = json(
        &url,
        &[
            "delete",
            "--queue",
            "later",
            "--state",
            "cancelled",
            "--yes",
        ],
        0,
    );
    assert_eq!(report["changed"], 5);
    assert!(common::find_job(&pool, ids[0]).await.is_none());
    json(&url, &["delete", "--queue", "later", "--yes"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_runs_discarded_jobs_again_and_dry_run_changes_nothing() {
    let (pool, url) = postgres().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let job = NewJob::new("Cli.Flaky", json!({"n": i}))
            .max_attempts(1)
            .insert(&pool)
            .await
            .expect("insert");
        ids.push(job.id);
    }
    let running = node(&pool, "cli-node-3").await;
    wait_until("every flaky job discarded", LIMIT, async || {
        common::jobs(&url, &["--worker", "Cli.Flaky", "--state", "discarded"]).len() == 4
    })
    .await;

    // failing names the worker, its discarded count and its error.
    let failing = json(&url, &["failing", "--since", "1h"], 0);
    let flaky = failing
        .as_array()
        .expect("array")
        .iter()
        .find(|w| w["worker"] == "Cli.Flaky")
        .expect("Cli.Flaky is failing");
    assert_eq!(flaky["discarded"], 4);
    assert_eq!(flaky["errors"][0]["count"], 4);
    assert!(flaky["errors"][0]["message"]
        .as_str()
        .expect("error")
        .contains("flaky"));

    let report = json(&url, &["replay", "--worker", "Cli.Flaky", "--dry-run"], 0);
    assert_eq!(
        report,
        json!({"operation": "replay", "matched": 4, "dry_run": true, "changed": 0})
    );
    for id in &ids {
        assert_eq!(state_of(&pool, *id).await, JobState::Discarded);
    }

    let report = json(
        &url,
        &["replay", "--worker", "Cli.Flaky", "--yes", "--batch", "3"],
        0,
    );
    assert_eq!(report["changed"], 4);
    wait_until("every replayed job completed", LIMIT, async || {
        common::jobs(&url, &["--worker", "Cli.Flaky", "--state", "completed"]).len() == 4
    })
    .await;
    let job = json(&url, &["job", &ids[0].to_string()], 0);
    assert_eq!(job["attempt"], 2);
    assert_eq!(job["errors"][0]["error"], "flaky: first attempt");

    // Nothing discarded any more.
    json(&url, &["replay", "--worker", "Cli.Flaky", "--yes"], 3);
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_finished_jobs() {
    let (pool, url) = postgres().await;
    insert(&pool, "Cli.Fine", "default", 3).await;
    let running = node(&pool, "cli-node-4").await;
    wait_until("every job completed", LIMIT, async || {
        common::jobs(&url, &["--state", "completed"]).len() == 3
    })
    .await;
    running.shutdown(Duration::from_secs(1)).await;

    let report = json(&url, &["prune", "--older-than", "1d", "--yes"], 3);
    assert_eq!(report["changed"], 0);
    let report = json(&url, &["prune", "--older-than", "0s", "--dry-run"], 0);
    assert_eq!(report["changed"], 0);
    let report = json(
        &url,
        &["prune", "--older-than", "0s", "--yes", "--batch", "2"],
        0,
    );
    assert_eq!(report["changed"], 3);
    json(&url, &["jobs"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_tells_retryable_from_discarded() {
    let (pool, url) = postgres().await;
    assert_eq!(json(&url, &["failing"], 0), json!([]));
    for i in 0..2 {
        NewJob::new("Cli.Broken", json!({"n": i}))
            .max_attempts(5)
            .insert(&pool)
            .await
            .expect("insert");
    }
    NewJob::new("Cli.Broken", json!({"n": 9}))
        .max_attempts(1)
        .insert(&pool)
        .await
        .expect("insert");
    let running = node(&pool, "cli-node-5").await;
    wait_until("two retryable and one discarded", LIMIT, async || {
        common::jobs(&url, &["--worker", "Cli.Broken", "--state", "retryable"]).len() == 2
            && common::jobs(&url, &["--worker", "Cli.Broken", "--state", "discarded"]).len() == 1
    })
    .await;
    running.shutdown(Duration::from_secs(1)).await;

    let failing = json(&url, &["failing", "--since", "15m", "--top", "1"], 0);
    assert_eq!(
        failing,
        json!([{
            "worker": "Cli.Broken", "queue": "default", "retryable": 2, "discarded": 1,
            "errors": [{"message": "broken: always", "count": 3}]
        }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_the_schema_says_to_migrate() {
    let (_pool, url) = common::postgres_unmigrated().await;
    let output = oban(&url).arg("queues").output().expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("oban migrate"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_an_executing_job_on_its_node() {
    let (pool, url) = postgres().await;
    let job = NewJob::new("Cli.Sleepy", json!({"n": 0}))
        .insert(&pool)
        .await
        .expect("insert");
    let running = node(&pool, "cli-node-6").await;
    let running_count = |url: &str| -> Option<u64> {
        json(url, &["queues"], 0)
            .as_array()?
            .iter()
            .find(|q| q["queue"] == "default")?["nodes"][0]["running"]
            .as_u64()
    };
    wait_until(
        "the job executing, in the node's heartbeat",
        LIMIT,
        async || {
            state_of(&pool, job.id).await == JobState::Executing && running_count(&url) == Some(1)
        },
    )
    .await;

    let report = json(&url, &["cancel", "--state", "executing", "--yes"], 0);
    assert_eq!(report["changed"], 1);
    assert_eq!(state_of(&pool, job.id).await, JobState::Cancelled);
    // The node stops it: its slot is free again well before the job's minute is up.
    wait_until("the node's running count back to 0", LIMIT, async || {
        running_count(&url) == Some(0)
    })
    .await;
    assert_eq!(state_of(&pool, job.id).await, JobState::Cancelled);
    running.shutdown(Duration::from_secs(1)).await;
}
