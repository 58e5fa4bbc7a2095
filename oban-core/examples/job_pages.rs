//! The jobs page's figure: how long [`Admin::page`] takes on a table of a million jobs, for the
//! pages a dashboard asks most.
//!
//! ```text
//! cargo run --release -p oban-core --example job_pages [JOBS] [RUNS]
//! ```
//!
//! It makes a throwaway database on the server of `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), installs the schema, and fills `oban_jobs`
//! with JOBS rows (1,000,000) in one `INSERT .. SELECT generate_series`: 90% completed, 3%
//! available, 3% retryable, 2% scheduled, 1% cancelled, 1% discarded (every id ending in `00`);
//! five queues, eight workers, args naming one of 50,000 users (so one user's email is in 20
//! jobs), and an error entry on every retryable and discarded job. After `VACUUM ANALYZE` it
//! times each case RUNS times (10) through `Admin::page` with a limit of 50, on one connection
//! (sqlx prepares each statement once: PostgreSQL plans the first five executions with the
//! values bound and may then keep a generic plan) and prints one line per case:
//!
//! ```text
//! page case=unfiltered rows=50 first_ms=.. median_ms=.. max_ms=..
//! ```
//!
//! The time is the client's (a loopback round trip and decoding 50 rows, well under a
//! millisecond, above the server's). The database is dropped at the end unless `KEEP=1`.
//!
//! Measured on the project's 2-core machine (PostgreSQL 15, a 330 MB table read from the page
//! cache), median of 10, in ms:
//!
//! | case | ms | how |
//! | --- | --- | --- |
//! | first page, unfiltered | 0.5 | primary key walked down, 50 rows |
//! | page before the middle id | 0.5 | the same from the middle |
//! | state discarded (1%) | 1.3 | primary key, 5,000 rows skipped |
//! | state executing (none) | 0.3 | its partial index, empty |
//! | queue mailers + state retryable | 2.0 | primary key, 8,300 rows skipped |
//! | search a worker substring (1 in 8) | 1.4 | primary key, 400 rows |
//! | search an error text (0.6%) | 37 | primary key, 17,000 rows (2 workers) |
//! | search a rare args text (20 jobs) | 700 | every row (2 workers) |
//! | search an id | 700 | every row: the digits may be in any text |
//! | search text no job holds | 720 | every row |
//! | state discarded + rare args text | 40 | the discarded partial index, 10,000 rows |
//!
//! No index serves a substring: a search whose matches are rare reads the whole table, 700 ms
//! a million rows here (rendering the args as JSON text is the largest part). Before the filter was written for the
//! planner (`engines/postgres/query.rs`), the state and queue pages were sequential scans and
//! sorts (220-320 ms) and the full searches 1.2-2.0 s.

use std::time::{Duration, Instant};

use oban_core::admin::{Admin, JobQuery};
use oban_core::{DbPool, JobFilter, JobState, Prefix};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

/// The throwaway database (the statements below name it as written).
const DATABASE: &str = "oban_bench_job_pages";

/// The rows: one statement, every column derived from the series number `g`.
const FILL: &str = "
INSERT INTO oban_jobs (state, queue, worker, args, errors, attempt, max_attempts, inserted_at,
                       scheduled_at, attempted_at, completed_at, discarded_at, cancelled_at)
SELECT s.state::oban_job_state,
       (ARRAY['default', 'mailers', 'reports', 'billing', 'events'])[1 + (g + g / 100) % 5],
       (ARRAY['MyApp.Mailer.SendReceipt', 'MyApp.Mailer.Welcome', 'MyApp.Reports.Daily',
              'MyApp.Billing.Charge', 'MyApp.Billing.Refund', 'MyApp.Events.Track',
              'MyApp.Sync.Pull', 'MyApp.Sync.Push'])[1 + (g + g / 100) % 8],
       jsonb_build_object('user_id', g % 50000, 'email', 'user' || (g % 50000) || '@example.com',
                          'template', 'receipt', 'amount', g % 997),
       CASE WHEN s.state IN ('retryable', 'discarded')
            THEN ARRAY[jsonb_build_object('attempt', 1, 'at', '2026-01-01T00:00:00Z',
                                          'error', 'SMTP timeout after 30s (relay ' || g % 7 || ')')]
            ELSE ARRAY[]::jsonb[] END,
       CASE WHEN s.state IN ('available', 'scheduled') THEN 0 ELSE 1 END,
       20,
       t.at, t.at, t.at,
       CASE WHEN s.state = 'completed' THEN t.at END,
       CASE WHEN s.state = 'discarded' THEN t.at END,
       CASE WHEN s.state = 'cancelled' THEN t.at END
FROM generate_series(1, $1::int8) AS g,
     LATERAL (SELECT CASE
       WHEN g % 100 = 0 THEN 'discarded'
       WHEN g % 100 = 1 THEN 'cancelled'
       WHEN g % 100 IN (2, 3) THEN 'scheduled'
       WHEN g % 100 IN (4, 5, 6) THEN 'retryable'
       WHEN g % 100 IN (7, 8, 9) THEN 'available'
       ELSE 'completed' END AS state) AS s,
     LATERAL (SELECT timezone('UTC', now()) - ($1::int8 - g) * interval '1 second' AS at) AS t";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: i64 = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("JOBS is a number"));
    let runs: usize = args
        .next()
        .map_or(10, |n| n.parse().expect("RUNS is a number"));
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let server: PgConnectOptions = url.parse().expect("DATABASE_URL");
    let mut admin_conn = PgConnection::connect_with(&server).await.expect("connect");
    recreate(&mut admin_conn).await;

    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(server.clone().database(DATABASE))
        .await
        .expect("connect to the bench database");
    oban_core::migrate(&pool).await.expect("migrate");
    let started = Instant::now();
    sqlx::query(FILL)
        .bind(jobs)
        .execute(&pool)
        .await
        .expect("fill");
    sqlx::query("VACUUM ANALYZE oban_jobs")
        .execute(&pool)
        .await
        .expect("vacuum");
    println!(
        "# {jobs} jobs inserted and analyzed in {:.1}s; {} cores, load {}",
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    cases(&pool, jobs, runs).await;

    pool.close().await;
    if std::env::var("KEEP").as_deref() == Ok("1") {
        println!("# kept database {DATABASE}");
    } else {
        drop_database(&mut admin_conn).await;
    }
}

async fn cases(pool: &PgPool, jobs: i64, runs: usize) {
    let admin = Admin::new(DbPool::from(pool.clone()), Prefix::PUBLIC).expect("admin");
    let page = |filter: JobFilter| JobQuery::new(filter).limit(50);
    let middle = jobs / 2;
    let cases: Vec<(&str, JobQuery, Option<i64>)> = vec![
        ("unfiltered", page(JobFilter::new()), None),
        ("unfiltered_middle", page(JobFilter::new()), Some(middle)),
        (
            "state_discarded",
            page(JobFilter::new().state(JobState::Discarded)),
            None,
        ),
        (
            "state_executing_none",
            page(JobFilter::new().state(JobState::Executing)),
            None,
        ),
        (
            "queue_mailers_state_retryable",
            page(JobFilter::new().queue("mailers").state(JobState::Retryable)),
            None,
        ),
        (
            "search_worker_substring",
            page(JobFilter::new().search("sendreceipt")),
            None,
        ),
        (
            "search_error_text",
            page(JobFilter::new().search("relay 3")),
            None,
        ),
        (
            "search_rare_args_text",
            page(JobFilter::new().search("user12345@example")),
            None,
        ),
        (
            "search_id",
            page(JobFilter::new().search(middle.to_string())),
            None,
        ),
        (
            "search_absent_text",
            page(JobFilter::new().search("no such text")),
            None,
        ),
        (
            "state_discarded_search_rare_args_text",
            page(
                JobFilter::new()
                    .state(JobState::Discarded)
                    .search("user12300@example"),
            ),
            None,
        ),
    ];
    for (name, query, before) in cases {
        let mut times = Vec::with_capacity(runs);
        let mut rows = 0;
        for _ in 0..runs {
            let started = Instant::now();
            rows = admin.page(&query, before).await.expect("page").len();
            times.push(started.elapsed());
        }
        let first = times[0];
        times.sort_unstable();
        println!(
            "page case={name} rows={rows} first_ms={:.1} median_ms={:.1} max_ms={:.1}",
            ms(first),
            ms(times[times.len() / 2]),
            ms(*times.last().expect("runs > 0")),
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

async fn recreate(conn: &mut PgConnection) {
    drop_database(conn).await;
    sqlx::query("CREATE DATABASE oban_bench_job_pages")
        .execute(&mut *conn)
        .await
        .expect("create database");
}

async fn drop_database(conn: &mut PgConnection) {
    sqlx::query("DROP DATABASE IF EXISTS oban_bench_job_pages WITH (FORCE)")
        .execute(&mut *conn)
        .await
        .expect("drop database");
}
