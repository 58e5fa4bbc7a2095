//! Every page on PostgreSQL and SQLite: what it shows, its filters as query parameters, keyset
//! pages, and the answers to bad input.

mod common;

use axum::http::StatusCode;
use common::{Client, Db};
use oban::NewJob;
use oban_web::{Access, Config};
use serde_json::json;

fn browser(db: &Db) -> Client {
    Client::new(oban_web::router(
        db.admin(),
        Config::new().resolver(Access::Full),
    ))
}

/// Five mailer jobs (ids in order), two of them discarded, one report job, one cron job.
async fn seed(db: &Db) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0..5 {
        let job = NewJob::new(
            "SendReceipt",
            json!({"order_id": n, "email": format!("user{n}@example.com")}),
        )
        .queue("mailers")
        .tag("receipts");
        ids.push(db.insert(job).await);
    }
    db.set_state(
        ids[1],
        "discarded",
        json!([{"attempt": 1, "at": "2026-12-04T05:00:00Z", "error": "SMTP 550: no such user"}]),
    )
    .await;
    db.set_state(
        ids[3],
        "discarded",
        json!([{"attempt": 1, "at": "2026-12-04T05:00:00Z", "error": "SMTP 451: busy"}]),
    )
    .await;
    ids.push(
        db.insert(NewJob::new("BuildReport", json!({"kind": "sales"})).queue("reports"))
            .await,
    );
    ids.push(
        db.insert(
            NewJob::new("Nightly", json!({}))
                .queue("reports")
                .meta("cron", true)
                .meta("cron_expr", "0 3 * * *")
                .meta("cron_name", "nightly"),
        )
        .await,
    );
    ids
}

/// The job ids of a jobs page, in the order shown.
fn shown(body: &str) -> Vec<i64> {
    body.match_indices("data-job=\"")
        .map(|(at, marker)| {
            let rest = &body[at + marker.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

async fn every_page(db: Db) {
    let ids = seed(&db).await;
    let mut browser = browser(&db);

    let overview = browser.get("/").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("data-state=\"discarded\""));
    assert!(
        overview.body.contains("SendReceipt"),
        "failing workers of the last hour"
    );

    let queues = browser.get("/queues").await;
    assert_eq!(queues.status, StatusCode::OK);
    assert!(
        queues.body.contains("data-queue=\"mailers\"")
            && queues.body.contains("data-queue=\"reports\"")
    );

    let all = browser.get("/jobs").await;
    assert_eq!(
        shown(&all.body),
        ids.iter().rev().copied().collect::<Vec<_>>(),
        "newest first"
    );

    let discarded = browser.get("/jobs?state=discarded").await;
    assert_eq!(shown(&discarded.body), vec![ids[3], ids[1]]);
    assert!(
        discarded.body.contains("aria-current=\"page\" data-state")
            || discarded
                .body
                .contains("data-state=\"discarded\" aria-current=\"page\"")
    );

    let by_queue = browser.get("/jobs?queue=reports").await;
    assert_eq!(shown(&by_queue.body), vec![ids[6], ids[5]]);
    let by_worker = browser.get("/jobs?worker=BuildReport").await;
    assert_eq!(shown(&by_worker.body), vec![ids[5]]);
    let by_tag = browser.get("/jobs?tag=receipts&state=available").await;
    assert_eq!(shown(&by_tag.body), vec![ids[4], ids[2], ids[0]]);
    let by_args = browser.get("/jobs?args=%7B%22order_id%22%3A2%7D").await;
    assert_eq!(shown(&by_args.body), vec![ids[2]]);
    let by_text = browser.get("/jobs?q=user4%40EXAMPLE").await;
    assert_eq!(shown(&by_text.body), vec![ids[4]], "search ignores case");
    let by_error = browser.get("/jobs?q=no+such+user").await;
    assert_eq!(shown(&by_error.body), vec![ids[1]], "search reads errors");
    let by_id = browser.get(&format!("/jobs?q={}", ids[5])).await;
    // A number is the id, or text in the worker, args or errors (`6` is in "2026").
    assert!(shown(&by_id.body).contains(&ids[5]));
    let recent = browser.get("/jobs?since=1h&queue=mailers").await;
    assert_eq!(shown(&recent.body).len(), 5);

    // Keyset pages of two: every job once, newest first, following the "Older" links.
    let mut seen = Vec::new();
    let mut next = Some("/jobs?limit=2".to_owned());
    while let Some(path) = next.take() {
        let page = browser.get(&path).await;
        let ids = shown(&page.body);
        assert!(ids.len() <= 2);
        seen.extend(ids);
        next = page.body.find("rel=\"next\" href=\"").map(|at| {
            let rest = &page.body[at + "rel=\"next\" href=\"".len()..];
            rest[..rest.find('"').unwrap()].replace("&amp;", "&")
        });
    }
    assert_eq!(seen, ids.iter().rev().copied().collect::<Vec<_>>());

    let job = browser.get(&format!("/jobs/{}", ids[1])).await;
    assert_eq!(job.status, StatusCode::OK);
    assert!(job.body.contains("SMTP 550: no such user"));
    assert!(
        job.body.contains("attempt 1 failed"),
        "the timeline shows the failure"
    );
    assert!(
        job.body.contains("&quot;email&quot;") || job.body.contains("\"email\""),
        "args pretty-printed"
    );

    let crons = browser.get("/crons").await;
    assert_eq!(crons.status, StatusCode::OK);
    assert!(crons.body.contains("Nightly") && crons.body.contains("0 3 * * *"));

    // Bad input: a clear message, nothing else.
    let bad_state = browser.get("/jobs?state=finished").await;
    assert_eq!(bad_state.status, StatusCode::BAD_REQUEST);
    assert!(bad_state.body.contains("not a job state"));
    let bad_args = browser.get("/jobs?args=%7Bnope").await;
    assert_eq!(bad_args.status, StatusCode::BAD_REQUEST);
    let bad_since = browser.get("/jobs?since=soon").await;
    assert_eq!(bad_since.status, StatusCode::BAD_REQUEST);
    assert!(bad_since.body.contains("15m"));
    assert_eq!(
        browser.get("/jobs/999999").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser.get("/jobs/nope").await.status,
        StatusCode::BAD_REQUEST
    );

    // Actions, as a script: JSON answers with counts.
    let mut script = browser.with_header("accept", "application/json");
    let csrf = script.get("/queues").await.csrf();
    let retried = script
        .post(
            "/jobs/retry",
            &[
                ("_csrf", &csrf),
                ("ids", &ids[1].to_string()),
                ("ids", &ids[3].to_string()),
                ("ids", &ids[0].to_string()),
            ],
        )
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    let reply: serde_json::Value = serde_json::from_str(&retried.body).unwrap();
    assert_eq!(reply["count"], 2, "the available job is not retried");
    assert!(reply["message"]
        .as_str()
        .unwrap()
        .contains("already available"));
    assert_eq!(db.state(ids[1]).await.as_deref(), Some("available"));
    let none = script.post("/jobs/cancel", &[("_csrf", &csrf)]).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    let not_an_id = script
        .post("/jobs/cancel", &[("_csrf", &csrf), ("ids", "1;drop")])
        .await;
    assert_eq!(not_an_id.status, StatusCode::BAD_REQUEST);
    let zero = script
        .post("/queues/mailers/scale", &[("_csrf", &csrf), ("limit", "0")])
        .await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST);
    let deleted = script
        .post(&format!("/jobs/{}/delete", ids[6]), &[("_csrf", &csrf)])
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(db.state(ids[6]).await, None);
}

/// The queues page shows each queue's limits across the fleet against what they count; the
/// form sets (replaces) them, refuses what is not a limit, and clearing removes them.
async fn queue_limits(db: Db) {
    use oban::limits::{GlobalLimit, Limits, Partition, RateLimit};
    use std::time::Duration;

    db.insert(NewJob::new("Mailer", json!({"tenant_id": 1})).queue("mailers"))
        .await;
    db.insert(NewJob::new("Report", json!({})).queue("reports"))
        .await;
    let admin = db.admin();
    admin
        .set_queue_limits(
            "mailers",
            Limits::new()
                .global(GlobalLimit::new(2).partitioned(Partition::args(["tenant_id"])))
                .rate(RateLimit::new(100, Duration::from_secs(60))),
        )
        .await
        .unwrap();
    let mut browser = browser(&db);
    let page = browser.get("/queues").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Fleet limits"), "{}", page.body);
    assert!(page.body.contains("global 0/2 by args:tenant_id"));
    assert!(page.body.contains("rate 0/100 per 60s"));
    assert!(page.body.contains("/queues/mailers/limits/clear"));
    assert!(
        !page.body.contains("/queues/reports/limits/clear"),
        "nothing to clear on reports"
    );
    assert!(
        page.body.contains("value=\"args:tenant_id\""),
        "the form holds the limits"
    );

    let set = browser
        .act(
            "/queues/reports/limits",
            &[
                ("global", "3"),
                ("global_by", "worker"),
                ("rate", "10"),
                ("period", "30"),
                ("rate_by", " args:region , tenant_id "),
                ("back", "/queues"),
            ],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    let stored = admin.queue_limits("reports", 5).await.unwrap().unwrap();
    assert_eq!(
        stored.limits,
        Limits::new()
            .global(GlobalLimit::new(3).partitioned(Partition::Worker))
            .rate(
                RateLimit::new(10, Duration::from_secs(30))
                    .partitioned(Partition::args(["region", "tenant_id"]))
            )
    );
    let page = browser.get("/queues").await;
    assert!(
        page.body.contains("Set the limits of queue reports"),
        "flash"
    );
    assert!(page.body.contains("global 0/3 by worker"));
    assert!(page
        .body
        .contains("rate 0/10 per 30s by args:region,tenant_id"));

    // Replacing: the rate limit goes with an empty field.
    let set = browser
        .act(
            "/queues/reports/limits",
            &[("global", "4"), ("period", "30")],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER);
    let stored = admin.queue_limits("reports", 5).await.unwrap().unwrap();
    assert_eq!(stored.limits, Limits::new().global(GlobalLimit::new(4)));

    for (fields, why) in [
        (vec![("global", "0")], "at least 1"),
        (vec![("global", "x")], "whole number"),
        (
            vec![("global", "2"), ("global_by", "tenant")],
            "neither worker nor args",
        ),
        (vec![("rate", "5")], "period"),
        (vec![("rate", "5"), ("period", "100000")], "1 s to 1 day"),
        (vec![("global", ""), ("rate", "")], "no limit given"),
    ] {
        let answer = browser.act("/queues/reports/limits", &fields).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert!(answer.body.contains(why), "{fields:?}: {}", answer.body);
    }
    assert_eq!(
        admin
            .queue_limits("reports", 5)
            .await
            .unwrap()
            .unwrap()
            .limits,
        Limits::new().global(GlobalLimit::new(4)),
        "refused forms change nothing"
    );

    let cleared = browser.act("/queues/reports/limits/clear", &[]).await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER);
    assert!(admin.queue_limits("reports", 5).await.unwrap().is_none());
    let page = browser.get("/queues").await;
    assert!(page.body.contains("Removed the limits of queue reports"));

    // As a script: JSON.
    let mut script = browser.with_header("accept", "application/json");
    let csrf = script.get("/queues").await.csrf();
    let answer = script
        .post(
            "/queues/mailers/limits",
            &[("_csrf", &csrf), ("rate", "7"), ("period", "60")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let reply: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(reply["ok"], true);
    assert!(reply["message"].as_str().unwrap().contains("rate 7/60s"));
}

#[tokio::test]
async fn queue_limits_on_postgres() {
    queue_limits(common::postgres().await).await;
}

#[tokio::test]
async fn queue_limits_on_sqlite() {
    queue_limits(common::sqlite().await).await;
}

#[tokio::test]
async fn every_page_on_postgres() {
    every_page(common::postgres().await).await;
}

#[tokio::test]
async fn every_page_on_sqlite() {
    every_page(common::sqlite().await).await;
}

#[tokio::test]
async fn pages_count_exactly_up_to_ten_thousand_then_mark_the_estimate() {
    let db = common::postgres().await;
    let oban::DbPool::Postgres(pool) = &db.pool else {
        unreachable!("a PostgreSQL database")
    };
    for (queue, jobs) in [("bulk", 10_050), ("small", 9_990)] {
        sqlx::query(
            "INSERT INTO oban_jobs (queue, worker, args, state) \
             SELECT $1, 'Bulk', '{}', 'available' FROM generate_series(1, $2)",
        )
        .bind(queue)
        .bind(jobs)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query("ANALYZE oban_jobs")
        .execute(pool)
        .await
        .unwrap();
    let mut browser = browser(&db);
    let tab = |body: &str| {
        let at = body
            .find("data-state=\"available\"")
            .expect("the available tab");
        let rest = &body[at..];
        let start = rest.find("<span class=\"n\">").unwrap() + "<span class=\"n\">".len();
        rest[start..start + rest[start..].find('<').unwrap()].to_owned()
    };
    assert_eq!(tab(&browser.get("/jobs?queue=small").await.body), "9,990");
    assert!(
        tab(&browser.get("/jobs?queue=bulk").await.body).starts_with('~'),
        "an estimate"
    );
}

/// A step of `workflow` named `name` after `deps` (as stored).
fn step(workflow: &str, name: &str, deps: serde_json::Value) -> NewJob {
    NewJob::new("Etl", json!({"step": name}))
        .queue("etl")
        .meta("workflow", true)
        .meta("workflow_id", workflow)
        .meta("workflow_name", "nightly")
        .meta("name", name)
        .meta("deps", deps)
}

/// The workflow pages: the list, one workflow (graph, steps linking to their jobs, its
/// sub-workflow, Mermaid text), a job's link to its workflow, cancel and retry.
async fn workflow_pages(db: Db) {
    let extract = db.insert(step("wf-1", "extract", json!([]))).await;
    let load = db
        .insert(step("wf-1", "load", json!(["extract", ["wf-sub", "*"]])))
        .await;
    let fan = db
        .insert(
            step("wf-sub", "fan", json!([["wf-1", "extract"]]))
                .meta("sup_workflow_id", "wf-1")
                .meta("sub_name", "fanout"),
        )
        .await;
    db.insert(NewJob::new("Plain", json!({}))).await;
    db.set_state(extract, "completed", json!([])).await;
    let mut browser = browser(&db);

    let list = browser.get("/workflows").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body.contains("data-workflow=\"wf-1\""),
        "{}",
        list.body
    );
    assert!(list.body.contains("data-workflow=\"wf-sub\""));
    assert!(list.body.contains("sub-workflow of"));
    assert!(list
        .body
        .contains("href=\"/workflows\" aria-current=\"page\""));
    let first = browser.get("/workflows?limit=1").await;
    assert!(
        first.body.contains("data-workflow=\"wf-sub\"")
            && !first.body.contains("data-workflow=\"wf-1\"")
    );
    let older = first.body.find("rel=\"next\" href=\"").map(|at| {
        let rest = &first.body[at + "rel=\"next\" href=\"".len()..];
        rest[..rest.find('"').unwrap()].replace("&amp;", "&")
    });
    let second = browser.get(&older.expect("an older page")).await;
    assert!(
        second.body.contains("data-workflow=\"wf-1\"")
            && !second.body.contains("data-workflow=\"wf-sub\"")
    );

    let page = browser.get("/workflows/wf-1").await;
    assert_eq!(page.status, StatusCode::OK);
    for expected in [
        "data-step=\"extract\"",
        "data-step=\"load\"",
        &format!("href=\"/jobs/{load}\""),
        "<svg class=\"wf-graph\"",
        "class=\"wf-box state-completed\"",
        "class=\"wf-box wf-sub wf-suspended\"",
        "href=\"/workflows/wf-sub\"",
        "flowchart TD",
        "Cancel workflow",
    ] {
        assert!(page.body.contains(expected), "{expected}: {}", page.body);
    }
    assert!(
        !page.body.contains("Retry failed steps"),
        "nothing failed yet"
    );
    assert_eq!(
        browser.get("/workflows/nope").await.status,
        StatusCode::NOT_FOUND
    );
    let job = browser.get(&format!("/jobs/{fan}")).await;
    assert!(
        job.body
            .contains("id=\"workflow-link\" href=\"/workflows/wf-sub\""),
        "{}",
        job.body
    );

    // Cancel, then retry, as a script.
    let mut script = browser.with_header("accept", "application/json");
    let csrf = script.get("/workflows").await.csrf();
    let cancelled = script
        .post("/workflows/wf-1/cancel", &[("_csrf", &csrf)])
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let reply: serde_json::Value = serde_json::from_str(&cancelled.body).unwrap();
    assert_eq!(reply["count"], 2, "load and the sub-workflow's fan");
    assert_eq!(db.state(load).await.as_deref(), Some("cancelled"));
    assert_eq!(db.state(fan).await.as_deref(), Some("cancelled"));
    assert_eq!(db.state(extract).await.as_deref(), Some("completed"));
    let retried = script
        .post("/workflows/wf-1/retry", &[("_csrf", &csrf)])
        .await;
    let reply: serde_json::Value = serde_json::from_str(&retried.body).unwrap();
    assert_eq!(reply["count"], 2);
    assert_ne!(db.state(load).await.as_deref(), Some("cancelled"));
    let missing = script
        .post("/workflows/nope/cancel", &[("_csrf", &csrf)])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn workflow_pages_on_postgres() {
    workflow_pages(common::postgres().await).await;
}

#[tokio::test]
async fn workflow_pages_on_sqlite() {
    workflow_pages(common::sqlite().await).await;
}

/// A sequenced job's page names its sequence (escaped) and its failure rule.
#[tokio::test]
async fn a_sequenced_job_page_shows_its_sequence() {
    let db = common::sqlite().await;
    let id = db
        .insert(
            NewJob::new("PostEntry", json!({"account_id": 7}))
                .queue("ledger")
                .sequence("account:<7>", oban::sequence::OnFailure::Hold),
        )
        .await;
    let page = browser(&db).get(&format!("/jobs/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("account:&lt;7&gt;")
            && page.body.contains("holds it when discarded or cancelled"),
        "{}",
        page.body
    );
}
