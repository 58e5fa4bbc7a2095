//! The charts' recorder on a real node: a SQLite node runs jobs that complete, fail and cancel
//! themselves; the recorder attached to it counts their stops per minute and their times per
//! queue, and the chart and table draw them.

use std::path::PathBuf;
use std::time::Duration;

use oban::{worker, Event, JobOutcome, Oban, Outcome};
use oban_web::{latency_table, throughput_chart, Recorder, Snapshot};

/// How long the jobs here may take to run and be recorded (they take milliseconds).
const LIMIT: Duration = Duration::from_secs(30);

/// Runs for a little while, so its execution time is measurable.
#[worker(queue = "charts")]
async fn charts_completes() -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(())
}

/// Fails its only attempt: discarded.
#[worker(queue = "charts", max_attempts = 1)]
async fn charts_discarded() -> Result<(), String> {
    Err("out of attempts".to_owned())
}

/// Fails its first attempt of three: retryable.
#[worker(queue = "reports", max_attempts = 3)]
async fn charts_retryable() -> Result<(), String> {
    Err("the provider is down".to_owned())
}

/// Cancels itself.
#[worker(queue = "reports")]
async fn charts_cancels() -> Result<Outcome, String> {
    Ok(Outcome::Cancel("no longer wanted".to_owned()))
}

/// A SQLite file of the test's own, removed at the end.
struct TempDb(PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

fn totals(snapshot: &Snapshot) -> (u64, u64, u64) {
    snapshot.minutes.iter().fold((0, 0, 0), |(c, f, x), m| {
        (c + m.completed, f + m.failed, x + m.cancelled)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_attached_to_a_node_counts_its_job_stops() {
    let db = TempDb(std::env::temp_dir().join(format!(
        "oban_web_charts_{}.db",
        uuid::Uuid::new_v4().simple()
    )));
    let oban = Oban::builder()
        .database(format!("sqlite://{}", db.0.display()))
        .node("charts-node")
        .queue("charts", 5)
        .queue("reports", 5)
        .start()
        .await
        .expect("the node starts");
    let recorder = Recorder::attach(&oban);
    let mut events = oban.events();

    for _ in 0..3 {
        ChartsCompletes::new().insert(&oban).await.unwrap();
    }
    ChartsDiscarded::new().insert(&oban).await.unwrap();
    ChartsRetryable::new().insert(&oban).await.unwrap();
    ChartsCancels::new().insert(&oban).await.unwrap();

    // The node's stops, seen on a receiver of the test's own.
    let mut outcomes = Vec::new();
    tokio::time::timeout(LIMIT, async {
        while outcomes.len() < 6 {
            if let Event::JobStop(stop) = events.recv().await.expect("events") {
                outcomes.push(stop.outcome);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("six job stops within {LIMIT:?}; seen {outcomes:?}"));
    outcomes.sort_by_key(|o| o.as_str());
    assert_eq!(
        outcomes,
        [
            JobOutcome::Cancelled,
            JobOutcome::Completed,
            JobOutcome::Completed,
            JobOutcome::Completed,
            JobOutcome::Discarded,
            JobOutcome::Retryable,
        ]
    );

    // The recorder's task reads the same events on its own receiver: wait until it has.
    let snapshot = tokio::time::timeout(LIMIT, async {
        loop {
            let snapshot = recorder.snapshot();
            if totals(&snapshot) == (3, 2, 1) {
                break snapshot;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the recorder saw the six stops: {:?}", recorder.snapshot()));

    assert_eq!(snapshot.node.as_deref(), Some("charts-node"));
    assert_eq!(snapshot.minutes.len(), 61);
    assert_eq!(snapshot.missed, 0);
    let queues: Vec<(&str, u64)> = snapshot
        .queues
        .iter()
        .map(|q| (q.queue.as_str(), q.jobs))
        .collect();
    assert_eq!(queues, [("charts", 4), ("reports", 2)]);
    // Three of the four "charts" attempts slept 20 ms: so did the median and above (less the
    // histogram's 3%).
    let charts = &snapshot.queues[0].duration;
    assert!(charts.p50 >= Duration::from_millis(19), "{charts:?}");
    assert!(
        charts.p50 <= charts.p95 && charts.p95 <= charts.p99,
        "{charts:?}"
    );
    assert!(charts.p99 < LIMIT, "{charts:?}");

    let svg = throughput_chart(&snapshot).into_string();
    assert!(svg.contains("3 completed, 2 failed, 1 cancelled"), "{svg}");
    let table = latency_table(&snapshot).into_string();
    assert!(
        table.contains(r#"<th scope="row">charts</th><td class="num">4</td>"#),
        "{table}"
    );

    oban.shutdown(Duration::from_secs(5)).await;
}
