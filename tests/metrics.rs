//! Issue 17: metrics through the `metrics` facade. A recorder of this file (installed once for
//! the process: the facade's recorder is global) keeps every series; each test uses queue and
//! node names of its own, so tests running at once never read each other's series. Each test
//! runs on PostgreSQL and on SQLite: job counters by outcome and histograms, inserts per queue,
//! and the gauges (depth by queue and state, the oldest available job's age, executing jobs and
//! limits, leadership), including a depth that goes back to zero when its jobs leave.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use oban::{Event, JobBuilder, JobContext, JobError, JobFilter, Outcome, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};

use common::workers::Nap;
use harness::{Db, Kind};

/// How long the jobs and gauges here may take (they take milliseconds).
const LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// A recorder that keeps every value, cumulative (histograms keep all their samples).

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

#[derive(Default)]
struct Keep {
    counters: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<Key, Arc<Samples>>>,
}

impl Recorder for Keep {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut map = self.counters.lock().unwrap();
        Counter::from_arc(Arc::clone(map.entry(key.clone()).or_default()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut map = self.gauges.lock().unwrap();
        Gauge::from_arc(Arc::clone(map.entry(key.clone()).or_default()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut map = self.histograms.lock().unwrap();
        Histogram::from_arc(Arc::clone(map.entry(key.clone()).or_default()))
    }
}

/// The process's recorder, installed at the first use.
fn recorder() -> &'static Keep {
    static KEEP: OnceLock<&'static Keep> = OnceLock::new();
    KEEP.get_or_init(|| {
        let keep: &'static Keep = Box::leak(Box::default());
        metrics::set_global_recorder(keep).expect("the only recorder of this test binary");
        keep
    })
}

fn matches(key: &Key, name: &str, labels: &[(&str, &str)]) -> bool {
    key.name() == name
        && key.labels().count() == labels.len()
        && labels
            .iter()
            .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
}

fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    let map = recorder().counters.lock().unwrap();
    map.iter()
        .find(|(key, _)| matches(key, name, labels))
        .map_or(0, |(_, value)| value.load(Ordering::Relaxed))
}

fn gauge(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let map = recorder().gauges.lock().unwrap();
    map.iter()
        .find(|(key, _)| matches(key, name, labels))
        .map(|(_, value)| f64::from_bits(value.load(Ordering::Relaxed)))
}

fn samples(name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let map = recorder().histograms.lock().unwrap();
    map.iter()
        .find(|(key, _)| matches(key, name, labels))
        .map(|(_, s)| s.0.lock().unwrap().clone())
        .unwrap_or_default()
}

/// Waits until the gauge has `expected`.
async fn wait_for_gauge(name: &str, labels: &[(&str, &str)], expected: f64) {
    common::wait::wait_until(
        format!("{name}{labels:?} = {expected}"),
        LIMIT,
        async || gauge(name, labels) == Some(expected),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Workers, one per outcome.

#[derive(Debug, Serialize, Deserialize)]
struct Completes {}

impl Worker for Completes {
    const NAME: &'static str = "Metrics.Completes";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(Outcome::Complete)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Fails {}

impl Worker for Fails {
    const NAME: &'static str = "Metrics.Fails";

    fn options() -> WorkerOptions {
        WorkerOptions::new().max_attempts(3)
    }

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("the provider is down"))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct FailsOnce {}

impl Worker for FailsOnce {
    const NAME: &'static str = "Metrics.FailsOnce";

    fn options() -> WorkerOptions {
        WorkerOptions::new().max_attempts(1)
    }

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("out of attempts"))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Snoozes {}

impl Worker for Snoozes {
    const NAME: &'static str = "Metrics.Snoozes";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Snooze(Duration::from_secs(60)))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Cancels {}

impl Worker for Cancels {
    const NAME: &'static str = "Metrics.Cancels";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Cancel("no longer wanted".to_owned()))
    }
}

fn builder(db: &Db, node: &str) -> oban::Builder {
    db.builder(node)
        .register::<Completes>()
        .register::<Fails>()
        .register::<FailsOnce>()
        .register::<Snoozes>()
        .register::<Cancels>()
        .register::<Nap>()
}

// ---------------------------------------------------------------------------------------------

async fn jobs_are_counted_by_outcome_and_timed(kind: Kind, tag: &str) {
    recorder();
    let db = Db::new(kind).await;
    let (queue, other) = (format!("m_jobs_{tag}"), format!("m_jobs_other_{tag}"));
    let builder = builder(&db, &format!("metrics-jobs-{tag}")).queue(&queue, 5);
    let mut events = builder.events();
    let oban = builder.start().await.expect("start the node");
    let jobs = vec![
        JobBuilder::new(Completes {}).queue(&queue).build().unwrap(),
        JobBuilder::new(Completes {}).queue(&queue).build().unwrap(),
        JobBuilder::new(Fails {}).queue(&queue).build().unwrap(),
        JobBuilder::new(FailsOnce {}).queue(&queue).build().unwrap(),
        JobBuilder::new(Snoozes {}).queue(&queue).build().unwrap(),
        JobBuilder::new(Cancels {}).queue(&queue).build().unwrap(),
        // Not run here: only inserted.
        JobBuilder::new(Completes {}).queue(&other).build().unwrap(),
        JobBuilder::new(Completes {}).queue(&other).build().unwrap(),
    ];
    oban.insert_all(jobs).await.expect("insert");
    assert_eq!(counter("oban_jobs_inserted_total", &[("queue", &queue)]), 6);
    assert_eq!(counter("oban_jobs_inserted_total", &[("queue", &other)]), 2);

    // Counters are recorded before the stop event is sent.
    let mut stops = 0;
    common::wait::within("six job stops", LIMIT, async {
        while stops < 6 {
            if let Ok(Event::JobStop(_)) = events.recv().await {
                stops += 1;
            }
        }
    })
    .await;
    let total = |worker: &str, outcome: &str| {
        counter(
            "oban_jobs_total",
            &[("queue", &queue), ("worker", worker), ("outcome", outcome)],
        )
    };
    assert_eq!(total("Metrics.Completes", "completed"), 2);
    assert_eq!(total("Metrics.Fails", "retryable"), 1);
    assert_eq!(total("Metrics.FailsOnce", "discarded"), 1);
    assert_eq!(total("Metrics.Cancels", "cancelled"), 1);
    assert_eq!(total("Metrics.Snoozes", "snoozed"), 1);
    assert_eq!(total("Metrics.Completes", "discarded"), 0);

    let labels = [("queue", queue.as_str()), ("worker", "Metrics.Completes")];
    let durations = samples("oban_job_duration_seconds", &labels);
    assert_eq!(durations.len(), 2, "{durations:?}");
    assert!(
        durations.iter().all(|d| *d >= 0.01),
        "each attempt slept 10 ms: {durations:?}"
    );
    let waits = samples("oban_job_queue_time_seconds", &labels);
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert!(waits.iter().all(|w| *w >= 0.0 && *w < LIMIT.as_secs_f64()));
    oban.shutdown(Duration::from_secs(5)).await;
}

async fn gauges_report_depths_ages_and_producers(kind: Kind, tag: &str) {
    recorder();
    let db = Db::new(kind).await;
    let node = format!("metrics-gauges-{tag}");
    let (run, idle) = (format!("m_run_{tag}"), format!("m_idle_{tag}"));
    // `idle` is not run here: its jobs wait. One has waited an hour.
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    db.insert_via_pool(vec![
        JobBuilder::new(Nap { ms: 0 })
            .queue(&idle)
            .scheduled_at(hour_ago)
            .build()
            .unwrap(),
        JobBuilder::new(Nap { ms: 0 }).queue(&idle).build().unwrap(),
        JobBuilder::new(Nap { ms: 0 }).queue(&idle).build().unwrap(),
        JobBuilder::new(Nap { ms: 0 })
            .queue(&idle)
            .schedule_in(Duration::from_secs(3600))
            .build()
            .unwrap(),
    ])
    .await;
    let oban = builder(&db, &node)
        .queue(&run, 3)
        .metrics_interval(Duration::from_millis(50))
        .start()
        .await
        .expect("start the node");
    // Two long jobs run on `run`.
    let long = || {
        JobBuilder::new(Nap { ms: 60_000 })
            .queue(&run)
            .build()
            .unwrap()
    };
    oban.insert_all(vec![long(), long()]).await.expect("insert");

    let on_node = [("queue", run.as_str()), ("node", node.as_str())];
    wait_for_gauge("oban_queue_executing", &on_node, 2.0).await;
    wait_for_gauge("oban_queue_limit", &on_node, 3.0).await;
    wait_for_gauge("oban_leader", &[("node", &node)], 1.0).await;
    let depth = |queue: &'static str, state: &'static str| -> [(&'static str, String); 2] {
        [
            (
                "queue",
                if queue == "idle" {
                    idle.clone()
                } else {
                    run.clone()
                },
            ),
            ("state", state.to_owned()),
        ]
    };
    for (queue, state, expected) in [
        ("idle", "available", 3.0),
        ("idle", "scheduled", 1.0),
        ("run", "executing", 2.0),
    ] {
        let labels = depth(queue, state);
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        wait_for_gauge("oban_queue_depth", &labels, expected).await;
    }
    let age = gauge(
        "oban_queue_oldest_available_age_seconds",
        &[("queue", &idle)],
    )
    .expect("the oldest available age is set");
    assert!(
        (3600.0..3600.0 + LIMIT.as_secs_f64() + 60.0).contains(&age),
        "the oldest available job was due an hour ago: {age}"
    );

    // The available jobs leave: their depth and age go to zero rather than stay.
    let deleted = oban
        .delete_jobs(
            &JobFilter::new()
                .queue(&idle)
                .state(oban::JobState::Available),
        )
        .await
        .expect("delete");
    assert_eq!(deleted, 3);
    let available = depth("idle", "available");
    let available: Vec<(&str, &str)> = available.iter().map(|(k, v)| (*k, v.as_str())).collect();
    wait_for_gauge("oban_queue_depth", &available, 0.0).await;
    wait_for_gauge(
        "oban_queue_oldest_available_age_seconds",
        &[("queue", &idle)],
        0.0,
    )
    .await;
    oban.shutdown(Duration::from_millis(100)).await;
}

/// PostgreSQL past the exact bound (here 2 rows instead of 100,000): counts within it stay
/// exact, those beyond are estimates marked as such and never below what was seen.
async fn depths_past_the_bound_are_estimates() {
    let db = Db::new(Kind::Postgres).await;
    let nap = |queue: &str| JobBuilder::new(Nap { ms: 0 }).queue(queue).build().unwrap();
    let later = |queue: &str| {
        JobBuilder::new(Nap { ms: 0 })
            .queue(queue)
            .schedule_in(Duration::from_secs(3600))
            .build()
            .unwrap()
    };
    db.insert_via_pool(vec![
        nap("big"),
        nap("big"),
        nap("big"),
        nap("small"),
        later("small"),
    ])
    .await;
    sqlx::query("ANALYZE oban_jobs")
        .execute(db.pg_pool().unwrap())
        .await
        .unwrap();
    let depths = db.engine.job_count_depths(2).await.expect("depths");
    let find = |queue: &str, state: oban::JobState| {
        depths
            .counts
            .iter()
            .find(|c| c.queue == queue && c.state == state)
            .cloned()
            .unwrap_or_else(|| panic!("{queue} {state:?} in {depths:?}"))
    };
    let small = find("small", oban::JobState::Available);
    assert!(small.exact && small.count == 1, "{small:?}");
    let scheduled = find("small", oban::JobState::Scheduled);
    assert!(scheduled.exact && scheduled.count == 1, "{scheduled:?}");
    let big = find("big", oban::JobState::Available);
    assert!(!big.exact && big.count >= 3, "{big:?}");
    assert_eq!(depths.oldest_available.len(), 2, "{depths:?}");
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn depths_past_the_bound_are_estimates() {
        super::depths_past_the_bound_are_estimates().await;
    }

    #[tokio::test]
    async fn jobs_are_counted_by_outcome_and_timed() {
        super::jobs_are_counted_by_outcome_and_timed(Kind::Postgres, "pg").await;
    }

    #[tokio::test]
    async fn gauges_report_depths_ages_and_producers() {
        super::gauges_report_depths_ages_and_producers(Kind::Postgres, "pg").await;
    }

    #[tokio::test]
    async fn gauges_in_a_prefix() {
        super::gauges_report_depths_ages_and_producers(Kind::PostgresPrefix, "pgprefix").await;
    }
}

mod sqlite {
    use super::*;

    #[tokio::test]
    async fn jobs_are_counted_by_outcome_and_timed() {
        super::jobs_are_counted_by_outcome_and_timed(Kind::Sqlite, "sqlite").await;
    }

    #[tokio::test]
    async fn gauges_report_depths_ages_and_producers() {
        super::gauges_report_depths_ages_and_producers(Kind::Sqlite, "sqlite").await;
    }
}
