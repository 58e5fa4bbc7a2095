//! Prometheus: a node serves every metric of its process at `http://{addr}/metrics`, in
//! Prometheus' text format (feature `prometheus`, option
//! [`Builder::prometheus`](crate::Builder::prometheus)).
//!
//! The first node that asks installs a Prometheus recorder
//! ([`metrics-exporter-prometheus`](https://docs.rs/metrics-exporter-prometheus)) as the
//! process's global [`metrics`] recorder, so the series are Oban's (see
//! [`crate::measure`]) and any other your code records through the `metrics` facade. The
//! recorder lives as long as the process: a node started again, or several nodes in one process
//! (each on an address of its own), serve the same registry. The listener stops when its node
//! shuts down.
//!
//! The two histograms, `oban_job_duration_seconds` and `oban_job_queue_time_seconds`, have
//! buckets from 1 ms to an hour ([`BUCKETS`]); other histograms recorded in the process are
//! exported as summaries, the exporter's default.
//!
//! Already running an exporter of your own? Leave the option out: Oban records through the
//! facade, so its series reach whatever recorder the process installed.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::engine::StopSignal;
use crate::error::{Error, Result};

/// Bucket bounds, in seconds, of the job duration and queue time histograms.
pub const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];

/// The histograms [`BUCKETS`] applies to.
const HISTOGRAMS: [&str; 2] = ["oban_job_duration_seconds", "oban_job_queue_time_seconds"];

/// How often histogram samples are folded into their buckets, bounding the memory they hold.
const UPKEEP: Duration = Duration::from_secs(5);

/// A client that has not sent its request's headers by then is disconnected.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The content type of Prometheus' text exposition format.
const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's Prometheus recorder, once a node installed it.
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The handle of the process's Prometheus recorder, installing it as the global `metrics`
/// recorder the first time.
fn handle() -> Result<PrometheusHandle> {
    let mut slot = HANDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = &*slot {
        return Ok(handle.clone());
    }
    let mut builder = PrometheusBuilder::new();
    for name in HISTOGRAMS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), BUCKETS)
            .expect("BUCKETS is not empty");
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| {
        Error::Config(
            "`prometheus`: this process already has a `metrics` recorder (an exporter your code \
             installed): Oban's series already go to it, so leave the `prometheus` option out and \
             export them with it"
                .to_owned(),
        )
    })?;
    *slot = Some(handle.clone());
    Ok(handle)
}

/// A bound metrics listener, not serving yet: bound while the node starts, so a taken address
/// fails `start` before anything else runs.
pub(crate) struct Listener {
    listener: TcpListener,
    handle: PrometheusHandle,
    /// The bound address (the port chosen when the option asked for port 0).
    pub(crate) addr: SocketAddr,
}

/// Installs the process's recorder if no node did yet, and binds `addr`.
pub(crate) async fn bind(addr: &str) -> Result<Listener> {
    let handle = handle()?;
    let bind_error = |e: std::io::Error| {
        Error::Config(format!(
            "`prometheus`: cannot serve metrics on `{addr}`: {e}; give a free `host:port` \
             (port 0 picks one, see `Oban::prometheus_addr`)"
        ))
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok(Listener {
        listener,
        handle,
        addr,
    })
}

impl Listener {
    /// Serves `/metrics` until the node stops.
    pub(crate) fn serve(self, stop: StopSignal) -> JoinHandle<()> {
        tracing::info!(addr = %self.addr, "serving Prometheus metrics at /metrics");
        tokio::spawn(accept(self.listener, self.handle, stop))
    }
}

/// Accepts connections until the node stops; then every open connection is dropped with it.
async fn accept(listener: TcpListener, handle: PrometheusHandle, mut stop: StopSignal) {
    let mut connections = JoinSet::new();
    let mut upkeep = tokio::time::interval(UPKEEP);
    upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(Option::is_some) => return,
            _ = upkeep.tick() => {
                handle.run_upkeep();
                continue;
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let handle = handle.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let response = respond(&request, &handle);
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                    // A client that goes away mid-request is not worth a log line.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(error) => {
                tracing::warn!(%error, "the Prometheus listener could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// `GET /metrics` renders every series; anything else is refused.
fn respond(request: &Request<Incoming>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n".into(),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, String::new());
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = reply(StatusCode::OK, handle.render());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT));
    response
}
