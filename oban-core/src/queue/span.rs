//! The span of one attempt, `oban.job`: what it carries, and when each field is recorded.
//!
//! Every event the attempt logs (and every span the worker opens) is inside it. Its fields:
//!
//! | field | recorded | value |
//! | --- | --- | --- |
//! | `job.id` | at creation | the job's id |
//! | `job.worker` | at creation | the stored worker name |
//! | `job.queue` | at creation | the job's queue |
//! | `job.attempt` | at creation | this attempt's number, from 1 |
//! | `job.queue_time_ms` | as the attempt starts | milliseconds from the job's `scheduled_at` to this start (0 if it started early) |
//! | `job.outcome` | as the attempt ends | [`JobOutcome::as_str`]: `completed`, `retryable`, `discarded`, `cancelled`, `snoozed`, `deferred` |
//! | `job.duration_ms` | as the attempt ends | milliseconds the attempt ran on this node |
//! | `otel.kind` | at creation, with the `opentelemetry` feature | `consumer` |
//!
//! An attempt aborted while running (cancelled, or cut short by shutdown) records no outcome and
//! no duration. With the `opentelemetry` feature (`crate::trace_context`), an exported span
//! also carries OpenTelemetry's messaging attributes, an error status for a failed attempt, and
//! as its parent the span that inserted the job.

use std::time::Duration;

use tracing::field::Empty;
use tracing::Span;

use crate::events::JobOutcome;
use crate::job::Job;
use crate::trace_context;

/// The span of `job`'s attempt, its fields of the start still empty.
pub(crate) fn job_span(job: &Job) -> Span {
    let span = tracing::info_span!(
        "oban.job",
        job.id = job.id,
        job.worker = %job.worker,
        job.queue = %job.queue,
        job.attempt = job.attempt,
        job.queue_time_ms = Empty,
        job.outcome = Empty,
        job.duration_ms = Empty,
        otel.kind = Empty,
    );
    trace_context::adopt(&span, job);
    span
}

/// Records how long the job waited for this attempt.
pub(crate) fn record_start(span: &Span, queue_time: Duration) {
    span.record("job.queue_time_ms", millis(queue_time));
}

/// Records how the attempt ended: its outcome, how long it ran and, for a failed attempt, its
/// error (an error status of the OpenTelemetry span, with the feature).
pub(crate) fn record_end(
    span: &Span,
    outcome: JobOutcome,
    duration: Duration,
    failure: Option<&str>,
) {
    span.record("job.outcome", outcome.as_str());
    span.record("job.duration_ms", millis(duration));
    if let Some(error) = failure {
        trace_context::fail(span, error);
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
