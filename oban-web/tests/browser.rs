//! The dashboard in a real browser: headless Chromium, driven through chromedriver, on a
//! dashboard mounted under `/ops/oban` in an application served over TCP next to a running node.
//! Every action is made as a person makes it (select, type, tick, click, answer the
//! confirmation) and checked in the database afterwards, not only on the page.
//!
//! Needs `chromium` and `chromedriver` on `PATH` (Debian: `apt-get install chromium
//! chromium-driver`); without them each test prints a notice and passes, except when `CI=true`.
//! `cargo test -p oban-web --test browser`.

mod common;

use std::time::Duration;

use axum::Router;
use common::browser::{serve, until, Browser, Served};
use common::Db;
use fantoccini::Locator;
use oban::admin::JobQuery;
use oban::{DbPool, JobFilter, NewJob, Oban};
use oban_web::{Access, Config};
use serde_json::json;

/// Where the application mounts the dashboard.
const MOUNT: &str = "/ops/oban";
/// The node's name, as its producers' rows carry it.
const NODE: &str = "browser-node";

/// A node on the test's database, the dashboard mounted in an application, and a browser.
struct Dashboard {
    browser: Browser,
    db: Db,
    oban: Oban,
    _served: Served,
}

impl Dashboard {
    /// Starts a node (running the `reports` queue only, so that the jobs seeded in the other
    /// queues stay where the test puts them) and serves the dashboard with `access`.
    async fn start(mut browser: Browser, db: Db, access: Access) -> Dashboard {
        let oban = Oban::builder()
            .database(db.url.clone())
            .node(NODE)
            .queue("reports", 2)
            .heartbeat_interval(Duration::from_millis(200))
            .start()
            .await
            .expect("the node starts");
        let config = Config::new()
            .resolver(access)
            .refresh(Duration::from_secs(1));
        let app = Router::new().nest(MOUNT, oban_web::router(&oban, config));
        let served = serve(app).await;
        browser.base = format!("http://{}{MOUNT}", served.addr);
        Dashboard {
            browser,
            db,
            oban,
            _served: served,
        }
    }

    async fn stop(self) {
        self.browser.close().await;
        self.oban.shutdown(Duration::from_secs(5)).await;
    }

    /// The ids of the jobs `filter` matches, newest first (as the page lists them).
    async fn ids(&self, filter: JobFilter) -> Vec<String> {
        let jobs = self
            .db
            .admin()
            .page(&JobQuery::new(filter).limit(50), None)
            .await
            .expect("read jobs");
        jobs.iter().map(|job| job.id.to_string()).collect()
    }

    /// The ids of the jobs the page's table lists.
    async fn rows(&self) -> Vec<String> {
        self.browser.attrs("tr[data-job]", "data-job").await
    }

    /// Waits for the flash message to read `expected`: the page an action redirects to. (The
    /// page the click was made on may still show the previous action's flash for a moment.)
    async fn expect_flash(&self, expected: &str) {
        until(&format!("the flash message {expected:?}"), || async move {
            let shown = self.browser.text("p.flash").await?;
            (shown == expected).then_some(())
        })
        .await;
    }

    /// Ticks the checkbox of job `id` in the jobs table.
    async fn tick(&self, id: i64) {
        self.browser
            .click(&format!("input[name=ids][value=\"{id}\"]"))
            .await;
    }

    /// A job's state in the database (`None`: deleted).
    async fn state(&self, id: i64) -> Option<String> {
        self.db.state(id).await
    }

    /// Whether every producer of `queue` says it is paused in its heartbeat row.
    async fn producers_paused(&self, queue: &str) -> Option<bool> {
        let DbPool::Postgres(pool) = &self.db.pool else {
            unreachable!("the queue test runs on PostgreSQL")
        };
        sqlx::query_scalar(
            "SELECT bool_and((meta->>'paused')::boolean) FROM oban_producers WHERE queue = $1",
        )
        .bind(queue)
        .fetch_one(pool)
        .await
        .expect("read oban_producers")
    }
}

/// The jobs the tests act on.
struct Seeded {
    /// Discarded mail to alice, bob and carol (queue `mailers`).
    alice: i64,
    bob: i64,
    carol: i64,
    /// Image resizes waiting in `media`.
    media: Vec<i64>,
    /// A cron job that completed (queue `reports`).
    report: i64,
}

const ERROR: &str = "SMTP 451: mailbox busy, try again later\n  at deliver (mailer.rs:42)";

async fn seed(db: &Db) -> Seeded {
    let mut mail = Vec::new();
    for to in ["alice", "bob", "carol"] {
        let id = db
            .insert(
                NewJob::new("MyApp.Mailer", json!({"to": format!("{to}@example.com")}))
                    .queue("mailers"),
            )
            .await;
        db.set_state(
            id,
            "discarded",
            json!([{"attempt": 1, "at": "2026-12-04T05:00:00Z", "error": ERROR}]),
        )
        .await;
        mail.push(id);
    }
    let mut media = Vec::new();
    for (n, width) in [(1, 800), (2, 1_200), (3, 2_400)] {
        let args = json!({"path": format!("uploads/{n}.jpg"), "width": width});
        media.push(
            db.insert(NewJob::new("MyApp.ResizeImage", args).queue("media"))
                .await,
        );
    }
    let report = db
        .insert(
            NewJob::new("MyApp.DailyReport", json!({"kind": "sales"}))
                .queue("reports")
                .meta("cron", true)
                .meta("cron_expr", "0 6 * * *")
                .meta("cron_tz", "UTC")
                .meta("cron_name", "MyApp.DailyReport 0 6 * * * UTC"),
        )
        .await;
    db.set_state(report, "completed", json!([])).await;
    Seeded {
        alice: mail[0],
        bob: mail[1],
        carol: mail[2],
        media,
        report,
    }
}

/// Opens every page and checks it against the database; each opening checks the console.
async fn every_page(dash: &Dashboard, seeded: &Seeded) {
    let browser = &dash.browser;
    let admin = dash.db.admin();

    browser.open("").await;
    assert!(browser.text("h1").await.unwrap().starts_with("Overview"));
    let queues = admin.queues().await.expect("queues");
    let available: u64 = queues
        .iter()
        .map(|q| q.count(oban::JobState::Available))
        .sum();
    assert_eq!(available, 3);
    assert_eq!(
        browser
            .text("a.tile[data-state=available] .value")
            .await
            .as_deref(),
        Some("3")
    );
    assert_eq!(browser.count("#charts svg").await, 1, "the node's chart");

    browser.open("/queues").await;
    let mut shown = browser.attrs("tr.queue", "data-queue").await;
    shown.sort();
    let mut stored: Vec<String> = queues.iter().map(|q| q.queue.clone()).collect();
    stored.sort();
    assert_eq!(shown, stored);
    assert!(shown.contains(&"media".to_owned()) && shown.contains(&"reports".to_owned()));
    assert_eq!(
        browser.count("tr.node[data-node=\"browser-node\"]").await,
        1
    );

    browser.open("/jobs").await;
    assert_eq!(dash.rows().await, dash.ids(JobFilter::new()).await);
    assert_eq!(dash.rows().await.len(), 7);

    browser.open(&format!("/jobs/{}", seeded.alice)).await;
    let title = browser.text("h1").await.unwrap();
    assert!(
        title.contains(&seeded.alice.to_string()) && title.contains("MyApp.Mailer"),
        "{title}"
    );
    let error = browser.text("#errors pre.error").await.unwrap();
    assert_eq!(error, ERROR, "the error, lines kept");

    browser.open("/crons").await;
    let crons = browser.text("#crons").await.unwrap();
    assert!(
        crons.contains("MyApp.DailyReport") && crons.contains("0 6 * * *"),
        "{crons}"
    );
    let job = admin.job(seeded.report).await.unwrap().unwrap();
    assert_eq!(job.meta["cron_expr"], "0 6 * * *");
}

/// Which database a dashboard runs on.
enum Engine {
    Postgres,
    Sqlite,
}

/// A browser on a dashboard over a fresh, seeded database with `access`; `None` (after a
/// notice) without chromium outside CI.
async fn open(engine: Engine, access: Access) -> Option<(Dashboard, Seeded)> {
    let browser = Browser::start().await?;
    let db = match engine {
        Engine::Postgres => common::postgres().await,
        Engine::Sqlite => common::sqlite().await,
    };
    let seeded = seed(&db).await;
    Some((Dashboard::start(browser, db, access).await, seeded))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_loads_without_a_console_error_on_postgres() {
    let Some((dash, seeded)) = open(Engine::Postgres, Access::Full).await else {
        return;
    };
    every_page(&dash, &seeded).await;
    dash.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_loads_without_a_console_error_on_sqlite() {
    let Some((dash, seeded)) = open(Engine::Sqlite, Access::Full).await else {
        return;
    };
    every_page(&dash, &seeded).await;
    dash.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_form_narrows_the_table_and_the_url_keeps_the_filters() {
    let Some((dash, seeded)) = open(Engine::Postgres, Access::Full).await else {
        return;
    };
    let browser = &dash.browser;
    let client = &browser.client;

    browser.open("/jobs").await;
    assert_eq!(dash.rows().await.len(), 7);

    // One queue.
    client
        .find(Locator::Css("#filters select[name=queue]"))
        .await
        .unwrap()
        .select_by_value("media")
        .await
        .unwrap();
    browser.click("#filters button[type=submit]").await;
    until("the media filter in the URL", || async move {
        let url = browser.location().await;
        url.query_pairs()
            .any(|(k, v)| k == "queue" && v == "media")
            .then_some(())
    })
    .await;
    browser.loaded().await;
    let media: Vec<String> = seeded.media.iter().rev().map(|id| id.to_string()).collect();
    assert_eq!(dash.rows().await, media);
    assert_eq!(dash.ids(JobFilter::new().queue("media")).await, media);

    // Another queue, a worker and a search.
    client
        .find(Locator::Css("#filters select[name=queue]"))
        .await
        .unwrap()
        .select_by_value("mailers")
        .await
        .unwrap();
    let worker = client
        .find(Locator::Css("#filters input[name=worker]"))
        .await
        .unwrap();
    worker.send_keys("MyApp.Mailer").await.unwrap();
    let search = client
        .find(Locator::Css("#filters input[name=q]"))
        .await
        .unwrap();
    search.send_keys("bob@").await.unwrap();
    browser.click("#filters button[type=submit]").await;
    let url = until("the search in the URL", || async move {
        let url = browser.location().await;
        url.query_pairs()
            .any(|(k, v)| k == "q" && v == "bob@")
            .then_some(url)
    })
    .await;
    browser.loaded().await;
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    for wanted in [
        ("queue", "mailers"),
        ("worker", "MyApp.Mailer"),
        ("q", "bob@"),
    ] {
        assert!(
            pairs
                .iter()
                .any(|(k, v)| (k.as_str(), v.as_str()) == wanted),
            "{wanted:?} in {url}"
        );
    }
    let bob = vec![seeded.bob.to_string()];
    assert_eq!(dash.rows().await, bob);
    let filter = JobFilter::new()
        .queue("mailers")
        .worker("MyApp.Mailer")
        .search("bob@");
    assert_eq!(dash.ids(filter).await, bob);

    // The URL is a bookmark: opened afresh, the same rows and the form filled in.
    client.goto("about:blank").await.unwrap();
    client.goto(url.as_str()).await.unwrap();
    browser.loaded().await;
    assert_eq!(dash.rows().await, bob);
    let queue = client
        .find(Locator::Css("#filters select[name=queue]"))
        .await
        .unwrap();
    assert_eq!(
        queue.prop("value").await.unwrap().as_deref(),
        Some("mailers")
    );
    let worker = client
        .find(Locator::Css("#filters input[name=worker]"))
        .await
        .unwrap();
    assert_eq!(
        worker.prop("value").await.unwrap().as_deref(),
        Some("MyApp.Mailer")
    );
    dash.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_discarded_job_from_its_page_makes_it_available() {
    let Some((dash, seeded)) = open(Engine::Postgres, Access::Full).await else {
        return;
    };
    let browser = &dash.browser;
    let id = seeded.alice;

    browser.open(&format!("/jobs/{id}")).await;
    assert_eq!(
        browser.text("h1 .badge").await.as_deref(),
        Some("discarded")
    );
    browser
        .click(&format!("form[action=\"{MOUNT}/jobs/{id}/retry\"] button"))
        .await;
    dash.expect_flash(&format!("Job {id} retried.")).await;
    browser.loaded().await;
    assert_eq!(dash.state(id).await.as_deref(), Some("available"));
    assert_eq!(
        browser.text("h1 .badge").await.as_deref(),
        Some("available")
    );
    assert_eq!(
        browser.location().await.path(),
        format!("{MOUNT}/jobs/{id}"),
        "back on the job's page"
    );
    // The others are untouched.
    assert_eq!(dash.state(seeded.bob).await.as_deref(), Some("discarded"));
    dash.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selected_jobs_are_retried_cancelled_and_deleted_in_bulk() {
    let Some((dash, seeded)) = open(Engine::Postgres, Access::Full).await else {
        return;
    };
    let browser = &dash.browser;
    let client = &browser.client;
    let (alice, bob, carol) = (seeded.alice, seeded.bob, seeded.carol);

    // Retry two of the three discarded mails.
    browser.open("/jobs?queue=mailers").await;
    dash.tick(alice).await;
    dash.tick(bob).await;
    browser
        .click(&format!("#bulk button[formaction=\"{MOUNT}/jobs/retry\"]"))
        .await;
    dash.expect_flash("2 of 2 selected jobs retried.").await;
    browser.loaded().await;
    assert_eq!(dash.state(alice).await.as_deref(), Some("available"));
    assert_eq!(dash.state(bob).await.as_deref(), Some("available"));
    assert_eq!(dash.state(carol).await.as_deref(), Some("discarded"));
    let url = browser.location().await;
    assert_eq!(
        url.query(),
        Some("queue=mailers"),
        "back on the same filter"
    );

    // Cancel one of them.
    dash.tick(alice).await;
    browser
        .click(&format!("#bulk button[formaction=\"{MOUNT}/jobs/cancel\"]"))
        .await;
    dash.expect_flash("1 of 1 selected jobs cancelled.").await;
    browser.loaded().await;
    assert_eq!(dash.state(alice).await.as_deref(), Some("cancelled"));
    assert_eq!(dash.state(bob).await.as_deref(), Some("available"));

    // Delete asks first: declined, nothing goes; accepted, both go.
    dash.tick(bob).await;
    dash.tick(carol).await;
    let delete = format!("#bulk button[formaction=\"{MOUNT}/jobs/delete\"]");
    browser.click(&delete).await;
    let question = until("the confirmation", || async move {
        client.get_alert_text().await.ok()
    })
    .await;
    assert_eq!(question, "Delete the selected jobs? This cannot be undone.");
    client.dismiss_alert().await.unwrap();
    assert_eq!(dash.state(bob).await.as_deref(), Some("available"));
    assert_eq!(dash.state(carol).await.as_deref(), Some("discarded"));
    assert_eq!(browser.count("p.flash").await, 1, "still the cancel's page");

    browser.click(&delete).await;
    client
        .accept_alert()
        .await
        .expect("accept the confirmation");
    until("the delete's flash", || async move {
        let flash = browser.text("p.flash").await?;
        (flash == "2 of 2 selected jobs deleted.").then_some(())
    })
    .await;
    browser.loaded().await;
    assert_eq!(dash.state(bob).await, None);
    assert_eq!(dash.state(carol).await, None);
    assert_eq!(dash.state(alice).await.as_deref(), Some("cancelled"));
    assert_eq!(dash.rows().await, vec![alice.to_string()]);
    dash.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_is_listed_drawn_and_cancelled_from_its_page() {
    let Some((dash, _)) = open(Engine::Sqlite, Access::Full).await else {
        return;
    };
    let browser = &dash.browser;
    let client = &browser.client;
    // In `etl`, a queue the node does not run: the steps stay where the test puts them.
    let step = |name: &str, deps: serde_json::Value| {
        NewJob::new("MyApp.Etl", json!({"step": name}))
            .queue("etl")
            .meta("workflow", true)
            .meta("workflow_id", "wf-browser")
            .meta("workflow_name", "nightly etl")
            .meta("name", name)
            .meta("deps", deps)
    };
    let extract = dash.db.insert(step("extract", json!([]))).await;
    let load = dash.db.insert(step("load", json!(["extract"]))).await;
    dash.db.set_state(extract, "completed", json!([])).await;

    browser.open("/workflows").await;
    assert_eq!(
        browser.attrs("tr[data-workflow]", "data-workflow").await,
        ["wf-browser"]
    );
    browser.click("tr[data-workflow=\"wf-browser\"] td a").await;
    browser.loaded().await;
    assert_eq!(
        browser.location().await.path(),
        format!("{MOUNT}/workflows/wf-browser")
    );
    assert_eq!(
        browser.count("svg.wf-graph a.wf-box").await,
        2,
        "a box per step"
    );
    assert_eq!(browser.count("svg.wf-graph .wf-edges path").await, 1);
    assert_eq!(
        browser.attrs("tr[data-step]", "data-step").await,
        ["extract", "load"]
    );

    let cancel = format!("form[action=\"{MOUNT}/workflows/wf-browser/cancel\"] button");
    browser.click(&cancel).await;
    let question = until("the confirmation", || async move {
        client.get_alert_text().await.ok()
    })
    .await;
    assert!(
        question.starts_with("Cancel every unfinished step"),
        "{question}"
    );
    client
        .accept_alert()
        .await
        .expect("accept the confirmation");
    dash.expect_flash("Cancelled 1 step of workflow wf-browser.")
        .await;
    browser.loaded().await;
    assert_eq!(dash.state(load).await.as_deref(), Some("cancelled"));
    assert_eq!(dash.state(extract).await.as_deref(), Some("completed"));
    assert_eq!(
        browser.text("h1 .badge").await.as_deref(),
        Some("cancelled"),
        "the workflow's state on the page it came back to"
    );
    assert_eq!(browser.count("svg.wf-graph .state-cancelled").await, 1);
    dash.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_and_resuming_a_queue_reaches_its_producer() {
    let Some((started, _)) = open(Engine::Postgres, Access::Full).await else {
        return;
    };
    let dash = &started;
    let browser = &dash.browser;
    let row = "tr.queue[data-queue=reports]";

    until("the producer's first heartbeat", || async move {
        (dash.producers_paused("reports").await == Some(false)).then_some(())
    })
    .await;
    browser.open("/queues").await;
    assert_eq!(browser.count(&format!("{row} .badge.paused")).await, 0);

    browser
        .click(&format!(
            "{row} form[action=\"{MOUNT}/queues/reports/pause\"] button"
        ))
        .await;
    dash.expect_flash("Asked every node to pause queue reports.")
        .await;
    until("the producer to record its pause", || async move {
        (dash.producers_paused("reports").await == Some(true)).then_some(())
    })
    .await;
    // The page catches up by live refresh, without a reload.
    until("the paused badge", || async move {
        (browser.count(&format!("{row} .badge.paused")).await == 1).then_some(())
    })
    .await;

    browser
        .click(&format!(
            "{row} form[action=\"{MOUNT}/queues/reports/resume\"] button"
        ))
        .await;
    dash.expect_flash("Asked every node to resume queue reports.")
        .await;
    until("the producer to record its resume", || async move {
        (dash.producers_paused("reports").await == Some(false)).then_some(())
    })
    .await;
    until("the badge to go", || async move {
        (browser.count(&format!("{row} .badge.paused")).await == 0).then_some(())
    })
    .await;
    assert_eq!(
        browser
            .count(&format!(
                "{row} form[action=\"{MOUNT}/queues/reports/pause\"]"
            ))
            .await,
        1,
        "the pause button is back"
    );
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{errors:#?}");
    started.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_limit_set_from_the_page_reaches_the_database_and_the_producer() {
    let Some((started, _)) = open(Engine::Postgres, Access::Full).await else {
        return;
    };
    let dash = &started;
    let browser = &dash.browser;
    let client = &browser.client;
    let row = "tr.queue[data-queue=reports]";
    let admin = dash.db.admin();
    browser.open("/queues").await;
    assert_eq!(browser.count(&format!("{row} div.limit")).await, 0);

    // Opened, the form holds still: live refresh waits while it is open.
    browser
        .click(&format!("{row} details.limits-form summary"))
        .await;
    let field = async |name: &str| {
        client
            .find(Locator::Css(&format!(
                "{row} form.limits input[name={name}]"
            )))
            .await
            .unwrap()
    };
    field("global").await.send_keys("3").await.unwrap();
    field("global_by")
        .await
        .send_keys("args:tenant_id")
        .await
        .unwrap();
    browser
        .click(&format!("{row} form.limits button[type=submit]"))
        .await;
    let question = until("the confirmation", || async move {
        client.get_alert_text().await.ok()
    })
    .await;
    assert_eq!(question, "Set the limits of queue reports on every node?");
    client
        .accept_alert()
        .await
        .expect("accept the confirmation");
    dash.expect_flash(
        "Set the limits of queue reports to global 3 by args:tenant_id on every node.",
    )
    .await;
    let stored = admin
        .queue_limits("reports", 5)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.limits.to_string(), "global 3 by args:tenant_id");
    let stored = &stored.limits;
    until("the producer to read the limits", || async move {
        let info = dash.oban.check_queue("reports").await.ok()?;
        info.iter()
            .any(|q| q.limits.as_ref() == Some(stored))
            .then_some(())
    })
    .await;
    assert_eq!(
        browser
            .text(&format!("{row} div.limit[data-limit=global]"))
            .await
            .as_deref(),
        Some("global 0/3 by args:tenant_id")
    );

    browser
        .click(&format!("{row} details.limits-form summary"))
        .await;
    browser
        .click(&format!(
            "{row} form[action=\"{MOUNT}/queues/reports/limits/clear\"] button"
        ))
        .await;
    until("the confirmation", || async move {
        client.get_alert_text().await.ok()
    })
    .await;
    client
        .accept_alert()
        .await
        .expect("accept the confirmation");
    dash.expect_flash("Removed the limits of queue reports on every node.")
        .await;
    assert!(admin.queue_limits("reports", 5).await.unwrap().is_none());
    until("the producer to forget the limits", || async move {
        let info = dash.oban.check_queue("reports").await.ok()?;
        info.iter().all(|q| q.limits.is_none()).then_some(())
    })
    .await;
    assert_eq!(browser.count(&format!("{row} div.limit")).await, 0);
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{errors:#?}");
    started.stop().await;
}

/// Counts the ticks of a timer of the page's refresh period, set after the page's own timer:
/// when it has fired `n` times, so has the page's.
const TICKS: &str = "window.__ticks = 0; setInterval(function () { window.__ticks += 1; }, \
                     Number(document.body.dataset.refresh) * 1000);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_refresh_updates_counts_in_place_until_paused() {
    let Some((dash, _)) = open(Engine::Postgres, Access::Full).await else {
        return;
    };
    let browser = &dash.browser;
    let tile = "a.tile[data-state=available] .value";
    let available = || async {
        let all = JobQuery::new(JobFilter::new().state(oban::JobState::Available));
        dash.db.admin().count(&all).await.expect("count")
    };
    let insert = || async {
        dash.db
            .insert(NewJob::new("MyApp.ResizeImage", json!({"path": "late.jpg"})).queue("media"))
            .await
    };
    let refreshed = || async {
        browser
            .js("return document.body.dataset.refreshedAt || null")
            .await
    };

    browser.open("").await;
    assert_eq!(browser.text(tile).await.as_deref(), Some("3"));
    browser.js("window.__same_page = true").await;
    let before = refreshed().await;
    insert().await;
    assert_eq!(available().await, 4);
    until("the count to change in place", || async {
        (browser.text(tile).await.as_deref() == Some("4")).then_some(())
    })
    .await;
    assert_ne!(refreshed().await, before, "refreshedAt moved");
    assert_eq!(
        browser.js("return window.__same_page === true").await,
        json!(true),
        "no reload"
    );

    // Paused: the state is kept in localStorage and nothing refreshes.
    browser.click("#live-toggle").await;
    assert_eq!(
        browser.text("#live-toggle").await.as_deref(),
        Some("Resume refresh")
    );
    assert_eq!(
        browser
            .js("return localStorage.getItem('oban-web-live')")
            .await,
        json!("off")
    );
    let paused_at = refreshed().await;
    insert().await;
    assert_eq!(available().await, 5);
    browser.js(TICKS).await;
    until("three refresh periods", || async {
        (browser.js("return window.__ticks").await.as_u64() >= Some(3)).then_some(())
    })
    .await;
    assert_eq!(refreshed().await, paused_at, "no refresh while paused");
    assert_eq!(browser.text(tile).await.as_deref(), Some("4"));

    // A reload keeps the pause; the page is rendered with the database's count.
    browser.client.refresh().await.unwrap();
    browser.loaded().await;
    assert_eq!(
        browser.text("#live-toggle").await.as_deref(),
        Some("Resume refresh")
    );
    assert_eq!(browser.text(tile).await.as_deref(), Some("5"));
    insert().await;
    assert_eq!(available().await, 6);
    browser.js(TICKS).await;
    until("three refresh periods", || async {
        (browser.js("return window.__ticks").await.as_u64() >= Some(3)).then_some(())
    })
    .await;
    assert_eq!(browser.text(tile).await.as_deref(), Some("5"));

    // Resumed: the count catches up.
    browser.click("#live-toggle").await;
    assert_eq!(
        browser
            .js("return localStorage.getItem('oban-web-live')")
            .await,
        json!("on")
    );
    until("the count after resuming", || async {
        (browser.text(tile).await.as_deref() == Some("6")).then_some(())
    })
    .await;
    dash.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_pages_have_no_action_controls() {
    let Some((dash, seeded)) = open(Engine::Postgres, Access::ReadOnly).await else {
        return;
    };
    let browser = &dash.browser;

    for path in [
        String::new(),
        "/queues".into(),
        "/jobs".into(),
        format!("/jobs/{}", seeded.alice),
        "/crons".into(),
    ] {
        browser.open(&path).await;
        assert_eq!(
            browser.text("header .access").await.as_deref(),
            Some("read-only")
        );
        assert_eq!(
            browser.count("form[method=post]").await,
            0,
            "{path}: no action form"
        );
        assert_eq!(
            browser.count("main button:not(#filters button)").await,
            0,
            "{path}: no action button"
        );
        assert_eq!(
            browser.count("input[name=ids]").await,
            0,
            "{path}: no selection"
        );
        assert_eq!(
            browser.count("input[name=limit]").await,
            0,
            "{path}: no scale"
        );
    }
    // The jobs page still lists every job, and nothing changed.
    browser.open("/jobs").await;
    assert_eq!(dash.rows().await, dash.ids(JobFilter::new()).await);
    assert_eq!(dash.state(seeded.alice).await.as_deref(), Some("discarded"));
    dash.stop().await;
}
