//! The README's screenshots of the dashboard, taken in headless Chromium from a shop's node
//! that has run for a while: queues of mail, images, webhooks, stock syncs, exports and a
//! newsletter (two of them paused), jobs in every state with realistic args and multi-line
//! errors, cron entries as the scheduler records them, and the overview's charts filled by the
//! node's own job events.
//!
//! Ignored in the ordinary test run (it takes about two minutes and writes into the repository):
//!
//! ```text
//! cargo test -p oban-web --test screenshots -- --ignored --nocapture
//! ```
//!
//! It writes `docs/screenshots/{overview,queues,jobs,jobs-filtered,job,crons}.png`, 1400 px
//! wide, on the PostgreSQL of `DATABASE_URL` (or the local default).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::Router;
use chrono::Utc;
use common::browser::{serve, Browser};
use oban::limits::{GlobalLimit, Limits, Partition, RateLimit};
use oban::{worker, DbPool, JobState, NewJob, Nodes, Oban, Outcome};
use oban_web::{Access, Config};
use rand::Rng;
use serde_json::json;

/// How long the node works before the pictures are taken: the charts show two or three minutes.
const RUN: Duration = Duration::from_secs(110);
/// Where the dashboard is mounted.
const MOUNT: &str = "/ops/oban";
/// The largest a picture should be, to keep the repository light.
const MAX_BYTES: usize = 300 * 1024;

/// Sends an order's receipt; the mail server turns some away.
#[worker(name = "Shop.Mailer.SendReceipt", queue = "mailers", max_attempts = 5, tags = ["mail"])]
async fn send_receipt(order_id: i64, email: String) -> Result<(), std::io::Error> {
    pause(40..400).await;
    if order_id % 9 == 0 {
        return Err(std::io::Error::other(format!(
            "SMTP 451 4.7.1 for {email}: mailbox busy, try again later\n\
             remote: mx2.example.net (203.0.113.25)\n\
             session: EHLO ok, MAIL FROM ok, RCPT TO deferred"
        )));
    }
    Ok(())
}

/// Resizes an uploaded image; huge ones are refused, large ones take a while.
#[worker(name = "Shop.Media.ResizeImage", queue = "media", max_attempts = 3)]
async fn resize_image(path: String, width: u32) -> Result<(), std::io::Error> {
    pause(500..u64::from(width) * 4).await;
    if width > 4_600 {
        return Err(std::io::Error::other(format!(
            "{path}: {width}px exceeds the 4600px limit\n\
             decoder: image/jpeg, 3 channels, {width}x{}",
            width * 2 / 3
        )));
    }
    Ok(())
}

/// Delivers a webhook to a partner; one of them is down.
#[worker(name = "Shop.Webhooks.Deliver", queue = "webhooks", max_attempts = 10)]
async fn deliver_webhook(endpoint: String, event: String) -> Result<Outcome, std::io::Error> {
    pause(30..250).await;
    if endpoint.contains("legacy") {
        return Ok(Outcome::Cancel(format!(
            "{endpoint} was unsubscribed from {event}"
        )));
    }
    if endpoint.contains("fulfil") {
        return Err(std::io::Error::other(format!(
            "POST {endpoint} answered 503 Service Unavailable\n\
             retry-after: 120\n\
             body: {{\"error\": \"maintenance\", \"until\": \"06:30Z\"}}"
        )));
    }
    Ok(Outcome::Complete)
}

/// Pushes stock levels to the warehouse.
#[worker(name = "Shop.Inventory.Sync", queue = "sync", max_attempts = 3)]
async fn sync_inventory(sku: String, warehouse: String) -> Result<(), std::io::Error> {
    let _ = (sku, warehouse);
    pause(100..600).await;
    Ok(())
}

/// The daily figures, on a cron schedule (every minute here, for the picture).
#[worker(name = "Shop.Reports.Daily", queue = "reports", max_attempts = 1)]
async fn daily_report(kind: String) -> Result<(), std::io::Error> {
    let _ = kind;
    pause(800..2_000).await;
    Ok(())
}

/// A customer's order history as CSV (the queue is paused: they wait).
#[worker(name = "Shop.Exports.OrdersCsv", queue = "exports")]
async fn orders_csv(customer_id: i64, year: i32) -> Result<(), std::io::Error> {
    let _ = (customer_id, year);
    Ok(())
}

/// The weekly newsletter, one job per subscriber (the queue is paused while it is reviewed).
#[worker(name = "Shop.Newsletter.Send", queue = "newsletter")]
async fn send_newsletter(subscriber_id: i64, issue: String) -> Result<(), std::io::Error> {
    let _ = (subscriber_id, issue);
    Ok(())
}

async fn pause(millis: std::ops::Range<u64>) {
    let ms = rand::thread_rng().gen_range(millis);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
}

/// A job of a cron entry, with the meta the cron scheduler writes.
fn cron_job(worker: &str, expr: &str, tz: &str, queue: &str, args: serde_json::Value) -> NewJob {
    let at = Utc::now().format("%Y-%m-%dT%H:%M:00+00:00").to_string();
    NewJob::new(worker, args)
        .queue(queue)
        .meta("cron", true)
        .meta("cron_expr", expr)
        .meta("cron_tz", tz)
        .meta("cron_name", format!("{worker} {expr} {tz}"))
        .meta("cron_at", at)
}

/// Moves a job back in time and into `state`: inserted `inserted` minutes ago, its last
/// attempt (number `attempt`, by node web-1) `last` minutes ago, finished a few seconds later.
async fn history(
    pool: &sqlx::PgPool,
    id: i64,
    state: &str,
    (inserted, last): (i32, i32),
    attempt: i32,
    errors: serde_json::Value,
) {
    sqlx::query(
        "UPDATE oban_jobs SET state = $2::oban_job_state, \
         inserted_at = now() - make_interval(mins => $3), \
         scheduled_at = now() - make_interval(mins => $3), \
         attempted_at = now() - make_interval(mins => $4, secs => 3), \
         attempt = $5, attempted_by = ARRAY['web-1', 'b1c4e2d0'], \
         errors = ARRAY(SELECT jsonb_array_elements($6::jsonb)), \
         completed_at = CASE WHEN $2 = 'completed' THEN now() - make_interval(mins => $4) END, \
         discarded_at = CASE WHEN $2 = 'discarded' THEN now() - make_interval(mins => $4) END, \
         cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() - make_interval(mins => $4) END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(inserted)
    .bind(last)
    .bind(attempt)
    .bind(errors)
    .execute(pool)
    .await
    .expect("rewrite a job's history");
}

/// An error entry `minutes` ago.
fn error(attempt: i32, minutes: i64, text: &str) -> serde_json::Value {
    let at = Utc::now() - chrono::Duration::minutes(minutes);
    json!({"attempt": attempt, "at": at.to_rfc3339(), "error": text})
}

/// What a shop's database holds before the node starts: history the node did not make.
async fn seed(db: &common::Db) -> i64 {
    let DbPool::Postgres(pool) = &db.pool else {
        unreachable!("PostgreSQL")
    };
    // Cron entries the scheduler ran over the last days, in several time zones.
    for (worker, expr, tz, queue, args, ago) in [
        (
            "Shop.Reports.Weekly",
            "0 7 * * MON",
            "Europe/Paris",
            "reports",
            json!({"kind": "weekly"}),
            3 * 24 * 60,
        ),
        (
            "Shop.Maintenance.PruneCarts",
            "@daily",
            "UTC",
            "default",
            json!({"older_than_days": 30}),
            9 * 60,
        ),
        (
            "Shop.Inventory.Sync",
            "*/30 * * * *",
            "UTC",
            "sync",
            json!({"sku": "*", "warehouse": "lyon"}),
            12,
        ),
        (
            "Shop.Billing.ChargeSubscriptions",
            "0 3 * * *",
            "America/New_York",
            "billing",
            json!({"plan": "monthly"}),
            20 * 60,
        ),
    ] {
        let id = db.insert(cron_job(worker, expr, tz, queue, args)).await;
        history(pool, id, "completed", (ago, ago), 1, json!([])).await;
    }

    // A sync that failed every attempt: the job page's picture.
    let trace = |n: u32| {
        format!(
            "warehouse lyon refused the stock update: 409 Conflict\n\
             sku SKU-00417: expected version {n}, found {}\n\
             caused by: another sync holds the lock on aisle 14 (held by sync-{})",
            n + 1,
            7_000 + n
        )
    };
    let sync = db
        .insert(
            NewJob::new(
                "Shop.Inventory.Sync",
                json!({"sku": "SKU-00417", "warehouse": "lyon", "quantities": {"S": 4, "M": 0, "L": 11}}),
            )
            .queue("sync")
            .max_attempts(3)
            .tag("inventory")
            .tag("lyon")
            .meta("requested_by", "stock-service"),
        )
        .await;
    history(
        pool,
        sync,
        "discarded",
        (47, 4),
        3,
        json!([
            error(1, 45, &trace(11)),
            error(2, 30, &trace(12)),
            error(3, 4, &trace(13)),
        ]),
    )
    .await;

    // Discarded and cancelled mail from the last hour.
    for (n, state) in [(1, "discarded"), (2, "discarded"), (3, "cancelled")] {
        let id = db
            .insert(
                NewJob::new(
                    "Shop.Mailer.SendReceipt",
                    json!({"order_id": 90_000 + n, "email": format!("old{n}@example.org")}),
                )
                .queue("mailers")
                .tag("mail"),
            )
            .await;
        let (attempt, errors) = match state {
            "discarded" => (
                5,
                json!([error(
                    5,
                    20 + n,
                    "SMTP 550 5.1.1: recipient address rejected: user unknown\nremote: mx1.example.org"
                )]),
            ),
            _ => (
                1,
                json!([error(1, 15, "order refunded before the receipt was sent")]),
            ),
        };
        let last = if state == "discarded" { 20 + n } else { 15 };
        history(
            pool,
            id,
            state,
            (25 + n as i32, last as i32),
            attempt,
            errors,
        )
        .await;
    }
    sync
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/screenshots (about two minutes): cargo test -p oban-web --test screenshots -- --ignored"]
async fn screenshots_of_every_page() {
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let db = common::postgres().await;
    let failed_sync = seed(&db).await;

    let oban = Oban::builder()
        .database(db.url.clone())
        .node("web-1")
        .queue("mailers", 10)
        .queue("media", 4)
        .queue("webhooks", 5)
        .queue("sync", 2)
        .queue("reports", 1)
        .queue("exports", 2)
        .queue("newsletter", 20)
        // Fleet limits, as the queues page shows them: webhooks at most 3 at once per endpoint,
        // mail at most 600 a minute.
        .queue_limits(
            "webhooks",
            Limits::new().global(GlobalLimit::new(3).partitioned(Partition::args(["endpoint"]))),
        )
        .queue_limits(
            "mailers",
            Limits::new().rate(RateLimit::new(600, Duration::from_secs(60))),
        )
        .heartbeat_interval(Duration::from_secs(1))
        // A week of finished jobs, as a shop keeps for its dashboard (and the cron history).
        .prune(
            Some(Duration::from_secs(7 * 24 * 3600)),
            Duration::from_secs(60),
        )
        .cron("* * * * *", DailyReport::new("sales".into()))
        .cron_in(
            "Europe/Paris",
            "0 6 * * *",
            DailyReport::new("stock".into()),
        )
        .start()
        .await
        .expect("the node starts");
    oban.pause_queue("exports", Nodes::All).await.unwrap();
    oban.pause_queue("newsletter", Nodes::All).await.unwrap();
    let config = Config::new()
        .resolver(Access::Full)
        .refresh(Duration::from_secs(2));
    let app = Router::new().nest(MOUNT, oban_web::router(&oban, config));
    let served = serve(app).await;
    browser.base = format!("http://{}{MOUNT}", served.addr);

    // Waiting work in the paused queues, and some for later.
    for customer in 0..14 {
        OrdersCsv::new(10_400 + customer, 2026)
            .insert(&oban)
            .await
            .unwrap();
    }
    let newsletter = (0..1_240)
        .map(|subscriber| {
            SendNewsletter::new(500_000 + subscriber, "2026-49".into())
                .build()
                .unwrap()
        })
        .collect();
    oban.insert_all(newsletter).await.unwrap();
    for (n, hours) in [(1, 1), (2, 3), (3, 6)] {
        SyncInventory::new(format!("SKU-{:05}", 800 + n), "berlin".into())
            .schedule_in(Duration::from_secs(hours * 3_600))
            .insert(&oban)
            .await
            .unwrap();
    }

    // The shop's traffic, until the pictures are taken.
    let started = Instant::now();
    let mut order_id = 52_000_i64;
    while started.elapsed() < RUN {
        order_id += 1;
        SendReceipt::new(order_id, format!("customer{}@example.com", order_id % 977))
            .insert(&oban)
            .await
            .unwrap();
        if order_id % 3 == 0 {
            let width = rand::thread_rng().gen_range(600..5_000);
            ResizeImage::new(format!("uploads/2026/12/{order_id}.jpg"), width)
                .insert(&oban)
                .await
                .unwrap();
        }
        if order_id % 4 == 0 {
            let endpoint = match order_id % 20 {
                0 => "https://fulfilment.example.net/hooks/orders",
                4 => "https://legacy-crm.example.com/callback",
                _ => "https://erp.example.com/oban/orders",
            };
            DeliverWebhook::new(endpoint.into(), "order.paid".into())
                .insert(&oban)
                .await
                .unwrap();
        }
        if order_id % 10 == 0 {
            SyncInventory::new(format!("SKU-{:05}", order_id % 1_000), "lyon".into())
                .insert(&oban)
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let dir = out_dir();
    std::fs::create_dir_all(&dir).expect("create docs/screenshots");
    for (name, path) in [
        ("overview", String::new()),
        ("queues", "/queues".into()),
        ("jobs", "/jobs?limit=15".into()),
        (
            "jobs-filtered",
            "/jobs?state=retryable&queue=webhooks&q=503&limit=15".into(),
        ),
        ("job", format!("/jobs/{failed_sync}")),
        ("crons", "/crons".into()),
    ] {
        browser.open(&path).await;
        let png = browser.full_page_png().await;
        let file = dir.join(format!("{name}.png"));
        std::fs::write(&file, &png).expect("write a screenshot");
        println!("{} ({} KB)", file.display(), png.len() / 1024);
        if png.len() > MAX_BYTES {
            eprintln!(
                "warning: {name}.png is {} KB, over {} KB",
                png.len() / 1024,
                MAX_BYTES / 1024
            );
        }
    }
    let states = db.admin().queues().await.unwrap();
    for state in JobState::ALL {
        let n: u64 = states.iter().map(|q| q.count(state)).sum();
        println!("{state}: {n}");
    }

    browser.close().await;
    drop(served);
    oban.shutdown(Duration::from_secs(5)).await;
}
