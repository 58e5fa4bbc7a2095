//! Issue 17: traces from insert to execution (feature `opentelemetry`). A span `request` inserts
//! jobs (through the node, a pool and a transaction); an in-memory OpenTelemetry exporter behind
//! `tracing-opentelemetry` receives the jobs' `oban.job` spans, whose parent must be `request`,
//! in the same trace, on PostgreSQL and SQLite. A traceparent already in a job's meta is kept
//! and used; a malformed one is ignored and the job runs.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId};
use opentelemetry::Value as OtelValue;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

use oban::testing::Testing;
use oban::trace_context::{TRACEPARENT, TRACESTATE};
use oban::{
    Job, JobBuilder, JobContext, JobError, JobState, NewJob, Oban, Outcome, UniqueField,
    UniqueOptions, Worker,
};

use harness::{Db, Kind};

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Serialize, Deserialize)]
struct Traced {}

impl Worker for Traced {
    const NAME: &'static str = "Traces.Traced";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Fails {}

impl Worker for Fails {
    const NAME: &'static str = "Traces.Fails";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("the provider is down"))
    }
}

/// The exporter every test of this file reads, behind the global subscriber (the node's tasks
/// run on any thread). Spans are exported as they end.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    &EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "oban-tests");
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry()
                    .with(tracing_opentelemetry::layer().with_tracer(tracer)),
            )
            .expect("no other global subscriber in this test binary");
            (exporter, provider)
        })
        .0
}

/// The exported `oban.job` span of `job`'s first attempt, once it ended. (Each test has a queue
/// of its own: job ids repeat across their databases.)
async fn exported_span(job: &Job) -> SpanData {
    let (id, queue) = (job.id, job.queue.as_str());
    common::wait::poll(
        format!("the span of job {id} to be exported"),
        LIMIT,
        Duration::from_millis(10),
        async || {
            exporter()
                .get_finished_spans()
                .expect("read the exporter")
                .into_iter()
                .find(|span| {
                    span.name == "oban.job"
                        && attribute(span, "job.id") == Some(id.into())
                        && attribute(span, "job.queue") == Some(queue.to_owned().into())
                })
                .ok_or_else(|| "not yet".to_owned())
        },
    )
    .await
}

fn attribute(span: &SpanData, key: &str) -> Option<OtelValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

/// A span `request` and its OpenTelemetry identity.
fn request() -> (tracing::Span, SpanContext) {
    exporter();
    let span = tracing::info_span!("request");
    let context = span.context().span().span_context().clone();
    assert!(context.is_valid(), "the OpenTelemetry layer is installed");
    (span, context)
}

/// The traceparent W3C Trace Context gives `context`.
fn traceparent_of(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

fn assert_child_of(span: &SpanData, parent: &SpanContext) {
    assert_eq!(
        span.span_context.trace_id(),
        parent.trace_id(),
        "one trace: {span:?}"
    );
    assert_eq!(span.parent_span_id, parent.span_id(), "{span:?}");
}

async fn the_execution_span_is_a_child_of_the_span_that_inserted_the_job(kind: Kind, queue: &str) {
    let db = Db::new(kind).await;
    let oban = db
        .builder("traces")
        .queue(queue, 5)
        .register::<Traced>()
        .register::<Fails>()
        .start()
        .await
        .expect("start the node");
    let (request, context) = request();
    let through_node = async {
        oban.insert_all(vec![
            JobBuilder::new(Traced {}).queue(queue).build().unwrap(),
            JobBuilder::new(Fails {}).queue(queue).build().unwrap(),
        ])
        .await
        .expect("insert through the node")
    }
    .instrument(request.clone())
    .await;
    let through_pool = db
        .insert_via_pool(vec![JobBuilder::new(Traced {})
            .queue(queue)
            .build()
            .unwrap()])
        .instrument(request.clone())
        .await
        .remove(0);
    let in_transaction = insert_in_transaction(&db, queue)
        .instrument(request.clone())
        .await;

    let mut jobs = through_node.clone();
    jobs.extend([through_pool, in_transaction]);
    for job in &jobs {
        assert_eq!(
            job.meta[TRACEPARENT],
            traceparent_of(&context),
            "every insert path keeps the inserting span's context: {job:?}"
        );
        assert!(
            job.meta.get(TRACESTATE).is_none(),
            "an empty tracestate is not written"
        );
        let stored = db.job(job.id).await;
        assert_eq!(
            stored.meta[TRACEPARENT], job.meta[TRACEPARENT],
            "{stored:?}"
        );
    }
    for job in jobs.iter().filter(|job| job.worker == Traced::NAME) {
        let span = exported_span(job).await;
        assert_child_of(&span, &context);
        assert_eq!(span.span_kind, SpanKind::Consumer);
        assert_eq!(attribute(&span, "job.outcome"), Some("completed".into()));
        assert_eq!(attribute(&span, "job.attempt"), Some(1_i64.into()));
        assert_eq!(attribute(&span, "job.queue"), Some(queue.to_owned().into()));
        assert_eq!(attribute(&span, "job.worker"), Some(Traced::NAME.into()));
        assert!(attribute(&span, "job.duration_ms").is_some(), "{span:?}");
        assert!(attribute(&span, "job.queue_time_ms").is_some(), "{span:?}");
        assert_eq!(attribute(&span, "messaging.system"), Some("oban".into()));
        assert_eq!(
            attribute(&span, "messaging.operation.type"),
            Some("process".into())
        );
        assert_eq!(
            attribute(&span, "messaging.destination.name"),
            Some(queue.to_owned().into())
        );
        assert_eq!(
            attribute(&span, "messaging.message.id"),
            Some(job.id.to_string().into())
        );
        assert_eq!(span.status, Status::Unset);
    }
    let failed = exported_span(&through_node[1]).await;
    assert_child_of(&failed, &context);
    assert_eq!(attribute(&failed, "job.outcome"), Some("retryable".into()));
    assert_eq!(failed.status, Status::error("the provider is down"));
    oban.shutdown(Duration::from_secs(5)).await;
}

/// A job inserted in a transaction of the caller's, committed.
async fn insert_in_transaction(db: &Db, queue: &str) -> Job {
    let job = JobBuilder::new(Traced {}).queue(queue);
    if let Some(pool) = db.pg_pool() {
        let mut tx = pool.begin().await.expect("begin");
        let job = job
            .insert(oban::Prefixed::new(db.prefix(), &mut *tx))
            .await
            .expect("insert in the transaction");
        tx.commit().await.expect("commit");
        job
    } else {
        let pool = db.sqlite_pool().expect("a SQLite pool");
        let mut tx = pool.begin().await.expect("begin");
        let job = job
            .insert(&mut *tx)
            .await
            .expect("insert in the transaction");
        tx.commit().await.expect("commit");
        job
    }
}

async fn a_traceparent_already_in_meta_is_kept_and_a_malformed_one_ignored(
    kind: Kind,
    queue: &str,
) {
    let db = Db::new(kind).await;
    let oban = db
        .builder("traces")
        .queue(queue, 5)
        .register::<Traced>()
        .start()
        .await
        .expect("start the node");
    // As another Oban (or the user) wrote it: the W3C specification's example.
    let foreign = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (request, _) = request();
    let inserted = async {
        oban.insert_all(vec![
            NewJob::new(Traced::NAME, json!({}))
                .queue(queue)
                .meta(TRACEPARENT, foreign)
                .meta(TRACESTATE, "vendor=opaque"),
            NewJob::new(Traced::NAME, json!({}))
                .queue(queue)
                .meta(TRACEPARENT, "00-not-a-trace-context"),
            NewJob::new(Traced::NAME, json!({}))
                .queue(queue)
                .meta(TRACEPARENT, 42),
        ])
        .await
        .expect("insert")
    }
    .instrument(request)
    .await;
    let (kept, malformed, not_text) = (&inserted[0], &inserted[1], &inserted[2]);
    assert_eq!(kept.meta[TRACEPARENT], foreign);
    assert_eq!(kept.meta[TRACESTATE], "vendor=opaque");
    assert_eq!(malformed.meta[TRACEPARENT], "00-not-a-trace-context");
    assert_eq!(not_text.meta[TRACEPARENT], 42);

    let span = exported_span(kept).await;
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
    );
    assert_eq!(
        span.parent_span_id,
        SpanId::from_hex("b7ad6b7169203331").unwrap()
    );
    assert_eq!(span.span_context.trace_state().header(), "vendor=opaque");
    for job in [malformed, not_text] {
        db.wait_for_state(job.id, JobState::Completed).await;
        let span = exported_span(job).await;
        assert_eq!(attribute(&span, "job.outcome"), Some("completed".into()));
        assert_eq!(
            span.parent_span_id,
            SpanId::INVALID,
            "a root span: {span:?}"
        );
    }
    oban.shutdown(Duration::from_secs(5)).await;
}

/// In inline testing mode the job runs during the insert, in the request's trace.
#[tokio::test]
async fn inline_mode_keeps_the_trace_context_too() {
    let oban = Oban::builder()
        .testing(Testing::Inline)
        .register::<Traced>()
        .start()
        .await
        .expect("start an inline node");
    let (request, context) = request();
    let job = JobBuilder::new(Traced {})
        .queue("inline")
        .insert(&oban)
        .instrument(request)
        .await
        .expect("insert");
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.meta[TRACEPARENT], traceparent_of(&context));
    assert_child_of(&exported_span(&job).await, &context);
}

/// A job unique by all of its meta is a duplicate of one inserted in another trace: the key is
/// computed before the trace context joins the meta.
#[tokio::test]
async fn a_unique_check_on_meta_does_not_see_the_trace_context() {
    let db = Db::new(Kind::Sqlite).await;
    let unique = UniqueOptions::new().fields(&[UniqueField::Worker, UniqueField::Meta]);
    let job = || {
        NewJob::new(Traced::NAME, json!({}))
            .meta("order", 7)
            .unique(unique)
    };
    let (first_request, first_context) = request();
    let first = db
        .insert_via_pool(vec![job()])
        .instrument(first_request)
        .await
        .remove(0);
    let (second_request, second_context) = request();
    assert_ne!(first_context.trace_id(), second_context.trace_id());
    let second = db
        .insert_via_pool(vec![job()])
        .instrument(second_request)
        .await
        .remove(0);
    assert!(second.conflict, "{second:?}");
    assert_eq!(second.id, first.id);
    assert_eq!(second.meta[TRACEPARENT], traceparent_of(&first_context));
}

/// Without a span, nothing is written.
#[tokio::test]
async fn outside_any_span_meta_is_left_alone() {
    exporter();
    let db = Db::new(Kind::Sqlite).await;
    let job = db
        .insert_via_pool(vec![NewJob::new(Traced::NAME, json!({}))])
        .await
        .remove(0);
    assert_eq!(job.meta, json!({}));
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn the_execution_span_is_a_child_of_the_span_that_inserted_the_job() {
        super::the_execution_span_is_a_child_of_the_span_that_inserted_the_job(
            Kind::Postgres,
            "pg",
        )
        .await;
    }

    #[tokio::test]
    async fn in_a_prefix_too() {
        super::the_execution_span_is_a_child_of_the_span_that_inserted_the_job(
            Kind::PostgresPrefix,
            "pg_prefix",
        )
        .await;
    }

    #[tokio::test]
    async fn a_traceparent_already_in_meta_is_kept_and_a_malformed_one_ignored() {
        super::a_traceparent_already_in_meta_is_kept_and_a_malformed_one_ignored(
            Kind::Postgres,
            "pg_kept",
        )
        .await;
    }
}

mod sqlite {
    use super::*;

    #[tokio::test]
    async fn the_execution_span_is_a_child_of_the_span_that_inserted_the_job() {
        super::the_execution_span_is_a_child_of_the_span_that_inserted_the_job(
            Kind::Sqlite,
            "sqlite",
        )
        .await;
    }

    #[tokio::test]
    async fn a_traceparent_already_in_meta_is_kept_and_a_malformed_one_ignored() {
        super::a_traceparent_already_in_meta_is_kept_and_a_malformed_one_ignored(
            Kind::Sqlite,
            "sqlite_kept",
        )
        .await;
    }
}
