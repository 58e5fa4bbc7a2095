//! Issue 15, bad inputs: each one gets a clear error and loses nothing. One test per defect,
//! named after it, on PostgreSQL and (where the behaviour applies) SQLite.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use oban::cron::{CronEntry, CronScheduler};
use oban::{
    DbPool, Error, JobContext, JobError, JobFilter, JobState, NewJob, Oban, Outcome, UniqueOptions,
    Worker,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;

use common::wait;
use harness::{Db, Kind};

const ENGINES: [Kind; 2] = [Kind::Postgres, Kind::Sqlite];

// -------------------------------------------------------------------------------------------
// (6) cancel_jobs after a failed notification

/// Jobs whose execution was stopped (their `perform` future dropped), by id.
static STOPPED: LazyLock<Mutex<HashSet<i64>>> = LazyLock::new(Default::default);

/// Waits until it is stopped; records that it was.
#[derive(Debug, Serialize, Deserialize)]
struct Hang {}

struct RecordStop(i64);

impl Drop for RecordStop {
    fn drop(&mut self) {
        STOPPED.lock().unwrap().insert(self.0);
    }
}

impl Worker for Hang {
    const NAME: &'static str = "Test.Hang";

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        let _stop = RecordStop(ctx.job().id);
        std::future::pending::<()>().await;
        Ok(Outcome::Complete)
    }
}

#[tokio::test]
async fn cancel_jobs_stops_every_running_job_even_when_a_notification_fails() {
    // A node whose notifications fail: its database role may not call pg_notify.
    let (admin, name) = common::empty_database().await;
    oban::migrate(&admin).await.expect("migrate");
    let role = format!("{name}_mute");
    for sql in [
        format!("CREATE ROLE \"{role}\" LOGIN"),
        format!("GRANT USAGE ON SCHEMA public TO \"{role}\""),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO \"{role}\""),
        format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO \"{role}\""),
        "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_notify(text, text) FROM PUBLIC".to_owned(),
    ] {
        sqlx::query(&sql).execute(&admin).await.expect(&sql);
    }
    let url = common::database_url_for(&name);
    let (_, host) = url.split_once('@').expect("the test URL names a user");
    let mute_url = format!("postgres://{role}@{host}");
    let mute = PgPoolOptions::new()
        .max_connections(10)
        .connect(&mute_url)
        .await
        .expect("connect as the role without pg_notify");
    let denied = sqlx::query("SELECT pg_notify('x', 'y')")
        .execute(&mute)
        .await
        .expect_err("pg_notify is refused to the role");
    assert!(denied.to_string().contains("permission denied"), "{denied}");

    let oban = Oban::builder()
        .pool(mute.clone())
        .migrate(false)
        .node("mute")
        .queue("default", 5)
        .register::<Hang>()
        .start()
        .await
        .expect("start");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            oban.insert(NewJob::new(Hang::NAME, json!({})))
                .await
                .unwrap()
                .id,
        );
    }
    for id in &ids {
        wait::wait_for_state(&admin, *id, "executing").await;
    }
    let cancelled = oban
        .cancel_jobs(&JobFilter::new().worker(Hang::NAME))
        .await
        .expect("the cancel committed: a failed notification is not the caller's error");
    assert_eq!(cancelled, 3);
    wait::wait_until(
        "every cancelled job stopped on this node",
        Duration::from_secs(5),
        async || ids.iter().all(|id| STOPPED.lock().unwrap().contains(id)),
    )
    .await;
    for id in &ids {
        assert_eq!(
            common::fetch_job(&admin, *id).await.state,
            JobState::Cancelled
        );
    }
    oban.shutdown(Duration::from_secs(1)).await;
    mute.close().await;
    // The role is the server's, not the database's: it goes at the end of the test.
    for sql in [
        format!("DROP OWNED BY \"{role}\""),
        format!("DROP ROLE \"{role}\""),
    ] {
        sqlx::query(&sql).execute(&admin).await.expect(&sql);
    }
}

// -------------------------------------------------------------------------------------------
// (8) unique keys and map key order

/// The job of the test vector in `oban-core/src/unique.rs`, whose key was computed by the code
/// before canonical keys (serde_json's sorted map): every stored key must stay as it was.
fn vector_job() -> NewJob {
    let args: Value = serde_json::from_str(
        r#"{"customer": {"name": "Zoë \"Z\"", "id": 42, "tags": ["b", "a"], "nested": {"z": null, "a": [1.5, -3, 18446744073709551615, 1e20]}}, "B": true, "a": "\n\t/\u0001", "é": 0, "10": 1, "9": 2}"#,
    )
    .unwrap();
    NewJob::new("MyApp.Workers.Report", args)
        .queue("reports")
        .meta("trace", "x")
        .meta("cron_at", "2026-01-01T00:00:00+00:00")
        .unique(UniqueOptions::new())
}

const VECTOR_KEY: &str = "43af56792ea74f78b1e4c4f85d87ba68e5afd5b414f9259fed283d9a6096f744";

async fn stored_uniq_key(db: &Db, id: i64) -> Option<String> {
    let sql = "SELECT uniq_key FROM oban_jobs WHERE id = $1";
    match (db.pg_pool(), db.sqlite_pool()) {
        (Some(pool), _) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
        (_, Some(pool)) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
        _ => unreachable!("a database"),
    }
    .expect("read uniq_key")
}

/// Fails on the unfixed code when `serde_json/preserve_order` is on in the build (as any crate
/// of an application can turn it on): `cargo test --test defects_inputs --features
/// serde_json/preserve_order unique_keys`. In the default build it guards the same property.
#[tokio::test]
async fn unique_keys_do_not_depend_on_map_key_order() {
    for kind in ENGINES {
        let db = Db::new(kind).await;
        let parse = |text: &str| -> Value { serde_json::from_str(text).unwrap() };
        let first = db
            .insert(
                NewJob::new(
                    "W",
                    parse(r#"{"b": {"y": 1, "x": [{"q": 1, "p": 2}]}, "a": 1}"#),
                )
                .unique(UniqueOptions::new()),
            )
            .await;
        let second = db
            .insert(
                NewJob::new(
                    "W",
                    parse(r#"{"a": 1, "b": {"x": [{"p": 2, "q": 1}], "y": 1}}"#),
                )
                .unique(UniqueOptions::new()),
            )
            .await;
        assert!(
            second.conflict,
            "{kind:?}: the same args in another key order are a duplicate"
        );
        assert_eq!(second.id, first.id, "{kind:?}");

        let vector = db.insert(vector_job()).await;
        assert_eq!(
            stored_uniq_key(&db, vector.id).await.as_deref(),
            Some(VECTOR_KEY),
            "{kind:?}: the key of an existing job is unchanged"
        );
    }
}

// -------------------------------------------------------------------------------------------
// (9a) bulk operations and the empty filter

#[tokio::test]
async fn bulk_operations_refuse_an_empty_filter() {
    for kind in ENGINES {
        let db = Db::new(kind).await;
        let oban = db.builder("bulk").start().await.expect("start");
        for i in 0..2 {
            oban.insert(NewJob::new("W", json!({ "i": i })))
                .await
                .unwrap();
        }
        let empty = JobFilter::new();
        for (operation, result) in [
            ("retry", oban.retry_jobs(&empty).await),
            ("cancel", oban.cancel_jobs(&empty).await),
            ("delete", oban.delete_jobs(&empty).await),
        ] {
            let error = result.expect_err("an empty filter is refused");
            assert!(matches!(error, Error::EmptyFilter { .. }), "{error:?}");
            let message = error.to_string();
            assert!(
                message.contains(operation) && message.contains("JobFilter::all()"),
                "{kind:?}: {message}"
            );
        }
        let listed = oban
            .jobs(&empty)
            .await
            .expect("listing accepts an empty filter");
        assert_eq!(listed.len(), 2, "{kind:?}: nothing was lost");
        assert!(listed.iter().all(|j| j.state == JobState::Available));

        assert_eq!(oban.cancel_jobs(&JobFilter::all()).await.unwrap(), 2);
        assert_eq!(oban.retry_jobs(&JobFilter::all()).await.unwrap(), 2);
        assert_eq!(oban.delete_jobs(&JobFilter::all()).await.unwrap(), 2);
        assert_eq!(db.count(JobFilter::new()).await, 0);
        oban.shutdown(Duration::from_secs(1)).await;
    }
}

// -------------------------------------------------------------------------------------------
// (9b) unreachable databases and passwords in errors

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_database_fails_fast_with_connection_refused() {
    let port = closed_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let started = Instant::now();
    let result = wait::within(
        "start() on a refused port to give up",
        Duration::from_secs(5),
        Oban::builder().database(&url).queue("default", 1).start(),
    )
    .await;
    let elapsed = started.elapsed();
    let error = result.expect_err("nothing listens there");
    let message = error.to_string();
    assert!(
        message.to_lowercase().contains("refused"),
        "the cause is kept: {message}"
    );
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

#[tokio::test]
async fn errors_never_print_a_password() {
    let port = closed_port();
    let secret = "s3cr3t-Pa55";
    let urls = [
        format!("postgres://postgres:{secret}@127.0.0.1:{port}/postgres"),
        format!("postgresql://postgres@127.0.0.1:{port}/postgres?password={secret}"),
        format!("host=127.0.0.1 port={port} user=postgres password={secret}"),
        format!("host=127.0.0.1 password = '{secret} x' dbname=jobs"),
        format!("postgress://postgres:{secret}@127.0.0.1:{port}/postgres"),
        format!("postgres://postgres:{secret}@127.0.0.1:{port}/postgres?sslmode=bogus"),
        format!("postgres://postgres:{secret}@[::1/postgres"),
        format!("sqlite://nobody:{secret}@/definitely/missing/dir/oban.db?mode=bogus"),
    ];
    for url in &urls {
        let error = DbPool::connect(url).await.expect_err(url);
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(
                !shown.contains(secret),
                "{url} printed its password: {shown}"
            );
        }
        let error = Oban::builder()
            .database(url.as_str())
            .start()
            .await
            .expect_err(url);
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(
                !shown.contains(secret),
                "{url} printed its password: {shown}"
            );
        }
    }
    // The URL of a refused connection is still named, its password masked.
    let error = DbPool::connect(&urls[0]).await.unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "postgres://postgres:***@127.0.0.1:{port}/postgres"
        )),
        "{error}"
    );
}

// -------------------------------------------------------------------------------------------
// (9c) NUL characters

#[tokio::test]
async fn a_nul_in_string_args_is_refused_naming_the_worker_and_field() {
    let bad_jobs = || {
        [
            (
                NewJob::new("Billing.Invoice", json!({"customer": {"name": "Ann\u{0}"}})),
                "`args.customer.name`",
            ),
            (
                NewJob::new("Billing.Invoice", json!({"lines": ["ok", "b\u{0}d"]})),
                "`args.lines[1]`",
            ),
            (
                NewJob::new("Billing.Invoice", json!({})).meta("source", "x\u{0}"),
                "`meta.source`",
            ),
            (
                NewJob::new("Billing.Invoice", json!({})).tag("a\u{0}"),
                "`tags[0]`",
            ),
        ]
    };
    let mut messages: Vec<Vec<String>> = Vec::new();
    for kind in ENGINES {
        let db = Db::new(kind).await;
        let oban = db.builder("nul").start().await.expect("start");
        let mut seen = Vec::new();
        for (job, field) in bad_jobs() {
            let through_engine = db
                .engine
                .job_insert_many(vec![job.clone(), NewJob::new("Fine", json!({}))])
                .await
                .expect_err("refused");
            let through_node = oban.insert(job).await.expect_err("refused");
            for error in [&through_engine, &through_node] {
                assert!(matches!(error, Error::InvalidJob(_)), "{kind:?}: {error:?}");
                let message = error.to_string();
                assert!(message.contains(field), "{kind:?}: {message}");
                assert!(message.contains("`Billing.Invoice`"), "{kind:?}: {message}");
                assert!(message.contains("NUL"), "{kind:?}: {message}");
            }
            seen.push(through_node.to_string());
        }
        assert_eq!(
            db.count(JobFilter::new()).await,
            0,
            "{kind:?}: nothing of a refused batch was stored"
        );
        messages.push(seen);
        oban.shutdown(Duration::from_secs(1)).await;
    }
    assert_eq!(messages[0], messages[1], "both engines refuse alike");
}

// -------------------------------------------------------------------------------------------
// (10) cron entries sharing a worker and schedule

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn two_cron_entries_for_one_worker_insert_a_job_each() {
    for kind in ENGINES {
        let db = Db::new(kind).await;
        let other = db.another_engine().await;
        let entries = || {
            vec![
                CronEntry::new(
                    "* * * * *",
                    NewJob::new("Cron.Report", json!({"region": "eu"})),
                )
                .unwrap(),
                CronEntry::new(
                    "* * * * *",
                    NewJob::new("Cron.Report", json!({"region": "us"})),
                )
                .unwrap(),
                CronEntry::new(
                    "* * * * *",
                    NewJob::new("Cron.Report", json!({"region": "us"})).queue("reports"),
                )
                .unwrap(),
                CronEntry::new("*/5 * * * *", NewJob::new("Cron.Sweep", json!({}))).unwrap(),
            ]
        };
        let mut leader = CronScheduler::new(entries(), Duration::from_secs(60));
        let inserted = leader
            .run_at(&*db.engine, at("2026-06-01T12:00:00.050Z"))
            .await
            .unwrap();
        assert_eq!(inserted, 4, "{kind:?}: one job per entry");
        // A new leader takes over and looks back over the same minute: nothing twice.
        let mut successor = CronScheduler::new(entries(), Duration::from_secs(60));
        let again = successor
            .run_at(&*other, at("2026-06-01T12:00:30Z"))
            .await
            .unwrap();
        assert_eq!(again, 0, "{kind:?}: every minute once across the cluster");
        assert_eq!(
            leader
                .run_at(&*db.engine, at("2026-06-01T12:01:00.050Z"))
                .await
                .unwrap(),
            3,
            "{kind:?}: the every-minute entries, each"
        );

        let jobs = db.jobs(JobFilter::new()).await;
        assert_eq!(jobs.len(), 7, "{kind:?}");
        let names: HashSet<&str> = jobs
            .iter()
            .map(|j| j.meta["cron_name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 4, "{kind:?}: {names:?}");
        assert!(
            names.contains("Cron.Sweep */5 * * * * UTC"),
            "a single entry keeps its name: {names:?}"
        );
    }
}
