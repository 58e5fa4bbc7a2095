//! The read commands through the built binary on a SQLite file of its own.

mod common;

use std::time::Duration;

use common::{json, oban, sqlite, wait_until, Broken};
use oban::{NewJob, Oban};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_work_on_sqlite() {
    let db = sqlite().await;
    let url = db.url.clone();
    let mut ids = Vec::new();
    for i in 0..3 {
        let job = NewJob::new("Cli.Mail", json!({"n": i}))
            .queue("mailers")
            .insert(&db.pool)
            .await
            .expect("insert");
        ids.push(job.id);
    }
    NewJob::new("Cli.DailyReport", json!({}))
        .queue("reports")
        .meta("cron", true)
        .meta("cron_expr", "@daily")
        .meta("cron_name", "Cli.DailyReport @daily")
        .schedule_in(Duration::from_secs(600))
        .insert(&db.pool)
        .await
        .expect("insert");

    let queues = json(&url, &["queues"], 0);
    let mailers = queues
        .as_array()
        .expect("array")
        .iter()
        .find(|q| q["queue"] == "mailers")
        .expect("mailers");
    assert_eq!(mailers["total"], 3);

    let listed = json(
        &url,
        &["jobs", "--queue", "mailers", "--args", r#"{"n": 2}"#],
        0,
    );
    assert_eq!(listed[0]["id"], ids[2]);
    assert_eq!(json(&url, &["jobs", "--state", "discarded"], 3), json!([]));
    assert_eq!(
        json(&url, &["job", &ids[0].to_string()], 0)["worker"],
        "Cli.Mail"
    );
    assert_eq!(json(&url, &["job", "424242"], 3), serde_json::Value::Null);

    let cron = json(&url, &["cron"], 0);
    assert_eq!(cron[0]["expression"], "@daily");
    assert!(cron[0]["next_run_at"].is_string());

    let status = json(&url, &["migrate", "--check"], 0);
    assert_eq!(status["up_to_date"], true);

    // failing: a node on the same file discards a broken job.
    NewJob::new("Cli.Broken", json!({"n": 0}))
        .max_attempts(1)
        .insert(&db.pool)
        .await
        .expect("insert");
    let node = Oban::builder()
        .sqlite_pool(db.pool.clone())
        .node("cli-sqlite")
        .queue("default", 2)
        .register::<Broken>()
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .expect("start node");
    wait_until(
        "the broken job discarded",
        Duration::from_secs(30),
        async || common::jobs(&url, &["--worker", "Cli.Broken", "--state", "discarded"]).len() == 1,
    )
    .await;
    node.shutdown(Duration::from_secs(1)).await;
    let failing = json(&url, &["failing"], 0);
    assert_eq!(failing[0]["worker"], "Cli.Broken");
    assert_eq!(failing[0]["discarded"], 1);
    assert_eq!(failing[0]["errors"][0]["message"], "broken: always");

    let table = oban(&url).arg("failing").output().expect("run");
    assert!(String::from_utf8_lossy(&table.stdout).contains("broken: always"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_set_listed_and_cleared_on_sqlite() {
    let db = sqlite().await;
    let url = db.url.clone();
    let changed = json(
        &url,
        &[
            "limits",
            "mailers",
            "--global",
            "3",
            "--global-by",
            "args:tenant_id",
            "--rate",
            "10/30s",
            "--yes",
        ],
        0,
    );
    assert_eq!(changed["action"], "set");
    let listed = json(&url, &["limits"], 0);
    assert_eq!(listed[0]["queue"], "mailers");
    assert_eq!(
        listed[0]["limits"]["global"]["partition"]["keys"],
        json!(["tenant_id"])
    );
    assert_eq!(listed[0]["limits"]["rate"]["period_secs"], 30);
    let text = oban(&url).arg("queues").output().expect("run");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("global 0/3 by args:tenant_id"), "{text}");
    assert!(text.contains("rate 0/10 per 30s"), "{text}");
    let cleared = json(&url, &["limits", "mailers", "--clear", "--yes"], 0);
    assert_eq!(cleared["before"]["global"]["allowed"], 3);
    assert_eq!(
        json(&url, &["limits", "mailers"], 0),
        serde_json::Value::Null
    );
}
