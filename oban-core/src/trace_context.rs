//! Traces from insert to execution: the W3C trace context of the code that inserts a job, kept in
//! the job's `meta`, becomes the parent of the job's execution span (`oban.job`, see the README's
//! section on traces for its fields), on whichever node runs it.
//!
//! This needs the `opentelemetry` feature (of the `oban` crate, or of `oban-core`) and a
//! [`tracing-opentelemetry`](https://docs.rs/tracing-opentelemetry) layer in your subscriber.
//! Without the feature nothing is written into `meta` and nothing is read from it.
//!
//! - **At insert**, on every path (an [`Oban`](crate::Oban), a pool, your own transaction,
//!   [`Testing::Inline`](crate::testing::Testing)), the current `tracing` span's OpenTelemetry
//!   context is written into each job's meta as [`TRACEPARENT`] (and [`TRACESTATE`] when it
//!   has one), in the form of the W3C Trace Context headers, e.g.
//!   `{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`. A job whose
//!   meta already has a `traceparent` keeps it: set your own, or let a job inserted by another
//!   Oban keep the one it carries. Without a current span with a valid context, meta is left
//!   as it is. Unique keys are computed before, so `fields: [meta]` is not affected.
//! - **At execution**, a valid `traceparent` in the meta (with its `tracestate`) becomes the
//!   parent of the `oban.job` span, so the request that enqueued a job and the job's run show
//!   as one trace. A missing or malformed one is ignored: the span keeps its usual parent and
//!   the job runs as always.
//!
//! Elixir's `OpentelemetryOban` and other OpenTelemetry integrations of Oban keep the context
//! under the same keys, so a trace flows across a job inserted in one language and run in
//! another.
//!
//! ```ignore
//! use tracing::Instrument;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
//!     .with_batch_exporter(exporter) // e.g. opentelemetry-otlp
//!     .build();
//! let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "my-app");
//! tracing::subscriber::set_global_default(
//!     tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer)),
//! )?;
//!
//! // In a request handler: the job's `oban.job` span will be a child of `checkout`.
//! SendReceipt::new(42)
//!     .insert(&oban)
//!     .instrument(tracing::info_span!("checkout"))
//!     .await?;
//! ```

/// The meta key holding the W3C `traceparent` of the code that inserted the job.
pub const TRACEPARENT: &str = "traceparent";

/// The meta key holding the W3C `tracestate` that came with [`TRACEPARENT`], when there is one.
pub const TRACESTATE: &str = "tracestate";

#[cfg(feature = "opentelemetry")]
pub(crate) use enabled::{adopt, fail, inject};

#[cfg(not(feature = "opentelemetry"))]
pub(crate) use disabled::{adopt, fail, inject};

#[cfg(feature = "opentelemetry")]
mod enabled {
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::{Status, TraceContextExt};
    use opentelemetry::Context;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use serde_json::{Map, Value};
    use tracing::Span;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TRACEPARENT;
    use crate::job::Job;

    /// Writes the current trace context into `meta`, unless it has a `traceparent` already.
    pub(crate) fn inject(meta: &mut Value) {
        let Value::Object(map) = meta else {
            return;
        };
        if map.contains_key(TRACEPARENT) {
            return;
        }
        let mut cx = Span::current().context();
        if !cx.span().span_context().is_valid() {
            // Code that uses OpenTelemetry directly rather than through `tracing`.
            cx = Context::current();
            if !cx.span().span_context().is_valid() {
                return;
            }
        }
        TraceContextPropagator::new().inject_context(&cx, &mut MetaInjector(map));
    }

    /// Makes `span` the consumer span of `job`'s attempt, child of the trace context in its meta
    /// when that is valid.
    pub(crate) fn adopt(span: &Span, job: &Job) {
        if span.is_disabled() {
            return;
        }
        span.record("otel.kind", "consumer");
        // OpenTelemetry's semantic conventions for messaging, on the exported span only.
        span.set_attribute("messaging.system", "oban");
        span.set_attribute("messaging.operation.type", "process");
        span.set_attribute("messaging.destination.name", job.queue.clone());
        span.set_attribute("messaging.message.id", job.id.to_string());
        let Value::Object(meta) = &job.meta else {
            return;
        };
        if !meta.contains_key(TRACEPARENT) {
            return;
        }
        // From an empty context, so that a malformed traceparent yields no parent at all.
        let parent = TraceContextPropagator::new()
            .extract_with_context(&Context::new(), &MetaExtractor(meta));
        if parent.span().span_context().is_valid() {
            // Fails only without an OpenTelemetry layer, where there is no parent to set.
            let _ = span.set_parent(parent);
        }
    }

    /// Marks the exported span of a failed attempt as an error, with its message.
    pub(crate) fn fail(span: &Span, error: &str) {
        if span.is_disabled() {
            return;
        }
        span.set_status(Status::error(error.to_owned()));
    }

    struct MetaInjector<'m>(&'m mut Map<String, Value>);

    impl Injector for MetaInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            // The propagator writes an empty `tracestate` for a context without one.
            if !value.is_empty() {
                self.0.insert(key.to_owned(), Value::String(value));
            }
        }
    }

    struct MetaExtractor<'m>(&'m Map<String, Value>);

    impl Extractor for MetaExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(Value::as_str)
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(String::as_str).collect()
        }
    }
}

#[cfg(not(feature = "opentelemetry"))]
mod disabled {
    use serde_json::Value;
    use tracing::Span;

    use crate::job::Job;

    #[inline(always)]
    pub(crate) fn inject(_meta: &mut Value) {}

    #[inline(always)]
    pub(crate) fn adopt(_span: &Span, _job: &Job) {}

    #[inline(always)]
    pub(crate) fn fail(_span: &Span, _error: &str) {}
}
