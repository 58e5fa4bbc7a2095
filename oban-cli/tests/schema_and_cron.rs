//! `migrate [--check]` and `cron` through the built binary on PostgreSQL.

mod common;

use common::{json, oban, postgres, postgres_unmigrated};
use oban::NewJob;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_check_reports_pending_steps_and_migrate_applies_them() {
    let (_pool, url) = postgres_unmigrated().await;

    // Pending steps: exit 3, so a deploy script can tell.
    let status = json(&url, &["migrate", "--check"], 3);
    assert_eq!(status["up_to_date"], false);
    let pending = status["pending"].as_array().expect("pending").len();
    assert!(pending > 0);
    assert_eq!(status["steps"].as_array().expect("steps").len(), pending);

    let status = json(&url, &["migrate"], 0);
    assert_eq!(status["up_to_date"], true);
    assert_eq!(status["pending"], json!([]));
    assert!(status["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .all(|step| step["applied"] == true && step["description"].is_string()));

    let check = oban(&url)
        .args(["migrate", "--check"])
        .output()
        .expect("run");
    assert_eq!(check.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&check.stdout).contains("up to date"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_lists_entries_seen_in_recent_jobs_with_their_next_run() {
    let (pool, url) = postgres().await;
    assert_eq!(json(&url, &["cron"], 0), json!([]));
    for _ in 0..2 {
        NewJob::new("Cli.DailyReport", json!({}))
            .queue("reports")
            .meta("cron", true)
            .meta("cron_expr", "0 9 * * *")
            .meta("cron_name", "Cli.DailyReport 0 9 * * *")
            .insert(&pool)
            .await
            .expect("insert");
    }
    NewJob::new("Cli.NotCron", json!({}))
        .insert(&pool)
        .await
        .expect("insert");

    let entries = json(&url, &["cron", "--since", "1d"], 0);
    let entries = entries.as_array().expect("array");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["worker"], "Cli.DailyReport");
    assert_eq!(entry["queue"], "reports");
    assert_eq!(entry["expression"], "0 9 * * *");
    assert_eq!(entry["jobs"], 2);
    let next = entry["next_run_at"].as_str().expect("a next run");
    assert!(next.contains("T09:00:00"), "{next}");

    let table = oban(&url).arg("cron").output().expect("run");
    assert!(String::from_utf8_lossy(&table.stdout).contains("0 9 * * *"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_chooses_the_instance() {
    let (pool, url) = postgres_unmigrated().await;
    let status = json(&url, &["--prefix", "tenant_a", "migrate"], 0);
    assert_eq!(status["up_to_date"], true);
    let tenant = oban::Prefix::new("tenant_a").expect("prefix");
    let job = NewJob::new("Cli.Tenant", json!({}))
        .insert(oban::Prefixed::new(tenant, &pool))
        .await
        .expect("insert");

    let listed = json(&url, &["--prefix", "tenant_a", "jobs"], 0);
    assert_eq!(listed[0]["id"], job.id);
    // `public` holds no Oban schema here: an error saying to migrate.
    let output = oban(&url).arg("jobs").output().expect("run");
    assert_eq!(output.status.code(), Some(1));
    // A prefix that is not a plain identifier is a usage error.
    let output = oban(&url)
        .args(["--prefix", "x; drop table", "jobs"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
}
