//! The dashboard's server time on a million jobs: each page through the router (the handler,
//! its queries, the HTML), timed from the request to the last byte of the body, in process.
//!
//! ```text
//! KEEP=1 cargo run --release -p oban-core --example job_pages   # makes and keeps the 1,000,000 rows
//! cargo run --release -p oban-web --example jobs_page [RUNS]    # then times the pages on them
//! ```
//!
//! It reads the database `oban_bench_job_pages` on the server of `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), which the first command fills (90% completed,
//! 1% discarded, five queues, eight workers, args naming one of 50,000 users) and keeps. Each
//! page is asked RUNS times (20) after one warm-up; one line per page:
//!
//! ```text
//! page path=/jobs rows=50 median_ms=.. p95_ms=.. max_ms=..
//! ```

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use oban::admin::Admin;
use oban_web::{Access, Config};
use tower::ServiceExt;

const DATABASE: &str = "oban_bench_job_pages";

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(20, |n| n.parse().expect("RUNS is a number"));
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let (base, _) = server
        .split('?')
        .next()
        .unwrap_or_default()
        .rsplit_once('/')
        .expect("a URL with a database");
    let admin = match Admin::connect(&format!("{base}/{DATABASE}"), "public").await {
        Ok(admin) => admin,
        Err(error) => {
            eprintln!("cannot open {DATABASE} ({error}): run `KEEP=1 cargo run --release -p oban-core --example job_pages` first");
            std::process::exit(1);
        }
    };
    let router = oban_web::router(admin.clone(), Config::new().resolver(Access::ReadOnly));
    let jobs = admin
        .count(&oban::admin::JobQuery::new(oban::JobFilter::all()))
        .await
        .expect("count");
    let middle = admin
        .page(
            &oban::admin::JobQuery::new(oban::JobFilter::all()).limit(1),
            Some(i64::try_from(jobs / 2).unwrap_or(1)),
        )
        .await
        .expect("a job")
        .first()
        .map_or(1, |job| job.id);
    println!(
        "# {jobs} jobs; {} cores, load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let pages = [
        "/jobs".to_owned(),
        "/jobs?state=discarded".to_owned(),
        "/jobs?state=retryable&queue=mailers".to_owned(),
        "/jobs?worker=MyApp.Billing.Refund".to_owned(),
        "/jobs?args=%7B%22user_id%22%3A4242%7D".to_owned(),
        "/jobs?q=Refund".to_owned(),
        "/jobs?state=discarded&q=user4242%40".to_owned(),
        "/jobs?q=user4242%40".to_owned(),
        format!("/jobs?before={middle}"),
        format!("/jobs/{middle}"),
        "/queues".to_owned(),
        "/".to_owned(),
        "/crons".to_owned(),
    ];
    for path in pages {
        let mut times = Vec::with_capacity(runs);
        let mut rows = 0;
        for run in 0..=runs {
            let started = Instant::now();
            let response = router
                .clone()
                .oneshot(Request::get(&path).body(Body::empty()).expect("a request"))
                .await
                .expect("an answer");
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("a body")
                .to_bytes();
            let elapsed = started.elapsed();
            assert_eq!(
                status,
                StatusCode::OK,
                "{path}: {}",
                String::from_utf8_lossy(&body)
            );
            rows = String::from_utf8_lossy(&body).matches("data-job=").count();
            if run > 0 {
                times.push(elapsed);
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "page path={path} rows={rows} median_ms={:.1} p95_ms={:.1} max_ms={:.1}",
            ms(times[times.len() / 2]),
            ms(times[(times.len() * 95 / 100).min(times.len() - 1)]),
            ms(times[times.len() - 1])
        );
    }
}
