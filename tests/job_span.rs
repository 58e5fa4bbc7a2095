//! Issue 17: the execution span `oban.job` carries the job's worker, queue, id and attempt, and
//! records as the attempt goes its queue time, outcome and duration. A `tracing` layer of the
//! test's own captures the span's fields, on PostgreSQL and on SQLite; no feature is needed.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use oban::{Job, JobBuilder, JobContext, JobError, JobState, Outcome, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use harness::{Db, Kind};

const LIMIT: Duration = Duration::from_secs(20);

/// Completes after a short while, so its duration is measurable.
#[derive(Debug, Serialize, Deserialize)]
struct Naps {}

impl Worker for Naps {
    const NAME: &'static str = "Span.Naps";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Outcome::Complete)
    }
}

/// Fails: retried later.
#[derive(Debug, Serialize, Deserialize)]
struct Fails {}

impl Worker for Fails {
    const NAME: &'static str = "Span.Fails";

    fn options() -> WorkerOptions {
        WorkerOptions::new().max_attempts(3)
    }

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("the provider is down"))
    }
}

type Fields = HashMap<String, Value>;

/// A span's queue and job id.
type JobKey = (String, i64);

/// The fields of every closed `oban.job` span, by queue and job id (each test has queues of
/// its own: job ids repeat across their databases), one entry per attempt.
#[derive(Clone, Default)]
struct JobSpans {
    open: Arc<Mutex<HashMap<u64, Fields>>>,
    closed: Arc<Mutex<HashMap<JobKey, Vec<Fields>>>>,
}

struct Collect<'f>(&'f mut Fields);

impl Visit for Collect<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JobSpans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        if attrs.metadata().name() == "oban.job" {
            let mut fields = Fields::new();
            attrs.record(&mut Collect(&mut fields));
            self.open.lock().unwrap().insert(id.into_u64(), fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(fields) = self.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Collect(fields));
        }
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        if let Some(fields) = self.open.lock().unwrap().remove(&id.into_u64()) {
            let id = fields["job.id"].as_i64().expect("job.id is an integer");
            let queue = fields["job.queue"].as_str().expect("job.queue").to_owned();
            self.closed
                .lock()
                .unwrap()
                .entry((queue, id))
                .or_default()
                .push(fields);
        }
    }
}

/// The layer every test of this file reads, installed once as the global subscriber (the
/// node's tasks run on any thread).
fn spans() -> &'static JobSpans {
    static SPANS: OnceLock<JobSpans> = OnceLock::new();
    SPANS.get_or_init(|| {
        let spans = JobSpans::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans.clone()))
            .expect("no other global subscriber in this test binary");
        spans
    })
}

/// The fields of the first attempt's span of `job`, once it closed.
async fn span_of(job: &Job) -> Fields {
    let key = (job.queue.clone(), job.id);
    common::wait::poll(
        format!("the span of job {} to close", job.id),
        LIMIT,
        Duration::from_millis(10),
        async || match spans().closed.lock().unwrap().get(&key) {
            Some(attempts) => Ok(attempts[0].clone()),
            None => Err("not closed yet".to_owned()),
        },
    )
    .await
}

async fn the_span_records_queue_time_outcome_and_duration(kind: Kind, queue: &str) {
    spans();
    let db = Db::new(kind).await;
    let other = format!("{queue}_other");
    let oban = db
        .builder("spans")
        .queue(queue, 5)
        .queue(&other, 5)
        .register::<Naps>()
        .register::<Fails>()
        .start()
        .await
        .expect("start the node");
    let inserted = oban
        .insert_all(vec![
            JobBuilder::new(Naps {}).queue(queue).build().unwrap(),
            JobBuilder::new(Fails {}).queue(&other).build().unwrap(),
        ])
        .await
        .expect("insert");
    let (naps, fails) = (&inserted[0], &inserted[1]);

    let completed = span_of(naps).await;
    assert_eq!(completed["job.worker"], "Span.Naps", "{completed:?}");
    assert_eq!(completed["job.queue"], queue);
    assert_eq!(completed["job.attempt"], 1);
    assert_eq!(completed["job.outcome"], "completed");
    let duration = completed["job.duration_ms"].as_f64().expect("a duration");
    assert!(duration >= 20.0, "the worker sleeps 20 ms: {completed:?}");
    let queue_time = completed["job.queue_time_ms"]
        .as_f64()
        .expect("a queue time");
    assert!(
        (0.0..LIMIT.as_secs_f64() * 1000.0).contains(&queue_time),
        "{completed:?}"
    );
    if !cfg!(feature = "opentelemetry") {
        assert!(
            !completed.contains_key("otel.kind"),
            "without the `opentelemetry` feature the span has no OpenTelemetry field: {completed:?}"
        );
    }

    let failed = span_of(fails).await;
    assert_eq!(failed["job.worker"], "Span.Fails", "{failed:?}");
    assert_eq!(failed["job.queue"], other.as_str());
    assert_eq!(failed["job.outcome"], "retryable");
    assert!(failed["job.duration_ms"].is_f64(), "{failed:?}");
    db.wait_for_state(fails.id, JobState::Retryable).await;
    oban.shutdown(Duration::from_secs(5)).await;
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn the_span_records_queue_time_outcome_and_duration() {
        super::the_span_records_queue_time_outcome_and_duration(Kind::Postgres, "pg").await;
    }
}

mod sqlite {
    use super::*;

    #[tokio::test]
    async fn the_span_records_queue_time_outcome_and_duration() {
        super::the_span_records_queue_time_outcome_and_duration(Kind::Sqlite, "sqlite").await;
    }
}
