//! Issue 17: a node serves its metrics to Prometheus (`Builder::prometheus`). Known jobs run, then
//! `/metrics` is scraped over HTTP and parsed: the job counters by outcome, the insert counter,
//! the duration histogram and the queue depth gauges hold the values those jobs make. On
//! PostgreSQL and SQLite.
//!
//! The recorder is process-wide, so every test here names its own queue and reads only the
//! series of that queue.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use oban::{JobBuilder, JobContext, JobError, JobState, NewJob, Outcome, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use harness::{Db, Kind};

/// How long anything here may take.
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Serialize, Deserialize)]
struct Quick {}

impl Worker for Quick {
    const NAME: &'static str = "Prom.Quick";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Fails {}

impl Worker for Fails {
    const NAME: &'static str = "Prom.Fails";

    fn options() -> WorkerOptions {
        WorkerOptions::new().max_attempts(1)
    }

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("the provider is down"))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Snoozes {}

impl Worker for Snoozes {
    const NAME: &'static str = "Prom.Snoozes";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Snooze(Duration::from_secs(3600)))
    }
}

/// One line of the text format: a series (name and labels) and its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Fetches `path` over plain HTTP/1.1 and returns the status code and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the exporter");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, body.to_owned())
}

/// Parses the text exposition format (no escapes in the values used here).
fn parse(body: &str) -> Vec<Sample> {
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("key=value");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The value of the series `name` whose labels include every pair of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// A series (name and the labels it must have) and the value it must show.
type Expected<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

async fn scrape_shows_counters_a_histogram_and_depth_gauges(kind: Kind) {
    let db = Db::new(kind).await;
    let queue = format!("prom_{kind:?}").to_lowercase();
    let oban = db
        .builder("prometheus")
        .queue(&queue, 5)
        .register::<Quick>()
        .register::<Fails>()
        .register::<Snoozes>()
        .metrics_interval(Duration::from_millis(100))
        .prometheus("127.0.0.1:0")
        .start()
        .await
        .expect("start the node");
    let addr = oban.prometheus_addr().expect("the node serves metrics");

    fn job<W: Worker>(job: JobBuilder<W>, queue: &str) -> NewJob {
        job.queue(queue).build().expect("a valid job")
    }
    let mut jobs = Vec::new();
    for _ in 0..3 {
        jobs.push(job(JobBuilder::new(Quick {}), &queue));
    }
    for _ in 0..2 {
        jobs.push(job(JobBuilder::new(Fails {}), &queue));
    }
    jobs.push(job(JobBuilder::new(Snoozes {}), &queue));
    jobs.push(job(
        JobBuilder::new(Quick {}).schedule_in(Duration::from_secs(3600)),
        &queue,
    ));
    let inserted = oban.insert_all(jobs).await.expect("insert");
    for (job, state) in inserted.iter().zip([
        JobState::Completed,
        JobState::Completed,
        JobState::Completed,
        JobState::Discarded,
        JobState::Discarded,
        JobState::Scheduled,
        JobState::Scheduled,
    ]) {
        if state != JobState::Scheduled {
            db.wait_for_state(job.id, state).await;
        }
    }

    let q = queue.as_str();
    let expected: Vec<Expected<'_>> = vec![
        (
            "oban_jobs_total",
            vec![
                ("queue", q),
                ("worker", "Prom.Quick"),
                ("outcome", "completed"),
            ],
            3.0,
        ),
        (
            "oban_jobs_total",
            vec![
                ("queue", q),
                ("worker", "Prom.Fails"),
                ("outcome", "discarded"),
            ],
            2.0,
        ),
        (
            "oban_jobs_total",
            vec![
                ("queue", q),
                ("worker", "Prom.Snoozes"),
                ("outcome", "snoozed"),
            ],
            1.0,
        ),
        ("oban_jobs_inserted_total", vec![("queue", q)], 7.0),
        (
            "oban_job_duration_seconds_count",
            vec![("queue", q), ("worker", "Prom.Quick")],
            3.0,
        ),
        (
            "oban_job_duration_seconds_bucket",
            vec![("queue", q), ("worker", "Prom.Quick"), ("le", "+Inf")],
            3.0,
        ),
        (
            "oban_queue_depth",
            vec![("queue", q), ("state", "completed")],
            3.0,
        ),
        (
            "oban_queue_depth",
            vec![("queue", q), ("state", "discarded")],
            2.0,
        ),
        (
            "oban_queue_depth",
            vec![("queue", q), ("state", "scheduled")],
            2.0,
        ),
        (
            "oban_queue_limit",
            vec![("queue", q), ("node", "prometheus")],
            5.0,
        ),
    ];
    // The job counters are recorded as each attempt ends; the gauges on the next interval.
    let samples = common::wait::poll(
        "the expected series",
        LIMIT,
        Duration::from_millis(50),
        async || {
            let (status, body) = get(addr, "/metrics").await;
            if status != 200 {
                return Err(format!("status {status}"));
            }
            let samples = parse(&body);
            for (name, labels, want) in &expected {
                let got = value(&samples, name, labels);
                if got != Some(*want) {
                    return Err(format!("{name}{labels:?} = {got:?}, want {want}\n{body}"));
                }
            }
            Ok(samples)
        },
    )
    .await;

    // The histogram's buckets are cumulative and bounded by the documented ones.
    let buckets: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == "oban_job_duration_seconds_bucket"
                && s.labels.get("queue").map(String::as_str) == Some(q)
                && s.labels.get("worker").map(String::as_str) == Some("Prom.Quick")
        })
        .collect();
    assert_eq!(
        buckets.len(),
        oban::prometheus::BUCKETS.len() + 1,
        "one bucket per bound, and +Inf"
    );
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));

    // Anything but /metrics is refused, and says where to look.
    let (status, body) = get(addr, "/").await;
    assert_eq!(status, 404);
    assert!(body.contains("/metrics"), "{body}");

    oban.shutdown(Duration::from_secs(5)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener stops with its node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_shows_counters_a_histogram_and_depth_gauges_postgres() {
    scrape_shows_counters_a_histogram_and_depth_gauges(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_shows_counters_a_histogram_and_depth_gauges_sqlite() {
    scrape_shows_counters_a_histogram_and_depth_gauges(Kind::Sqlite).await;
}

/// A taken address fails `start`, naming the option and what to do.
#[tokio::test]
async fn an_address_in_use_fails_start_naming_the_option() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let db = Db::new(Kind::Sqlite).await;
    let error = db
        .builder("taken")
        .prometheus(addr.clone())
        .start()
        .await
        .expect_err("the address is taken");
    let message = error.to_string();
    assert!(
        message.contains("`prometheus`") && message.contains(&addr),
        "{message}"
    );
}
