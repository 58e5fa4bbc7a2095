//! The Oban for Rust dashboard: see and act on queues and jobs, safely.
//!
//! [`router`] is an axum [`Router`] to mount in your own application under any path; the
//! `oban web` command of the CLI serves the same router standalone. Pages are rendered on the
//! server (maud escapes every value from the database: args and errors are user data) with a
//! small embedded script for live refresh, selection and confirmations; every page and action
//! also works without it, and nothing is requested from anywhere but the dashboard itself.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | jobs by state, the last hour's throughput and latencies, failing workers, queues |
//! | `GET /queues` | per queue and node: limit, running, paused, depth by state, oldest waiting; fleet limits and their usage |
//! | `GET /jobs?state=&queue=&worker=&tag=&q=&since=&before=` | jobs newest first, filtered, in keyset pages |
//! | `GET /jobs/{id}` | one job: args, meta, attempts, errors, timeline |
//! | `GET /workflows?before=` | the most recent workflows: state, progress, steps by state, in keyset pages |
//! | `GET /workflows/{id}` | one workflow: its graph by dependency depth, its steps (links to their jobs), sub-workflows, Mermaid text |
//! | `GET /crons` | cron entries with their last and next runs |
//! | `POST /queues/{name}/pause`, `/resume`, `/scale` | queue commands (field `node` for one node; `limit`) |
//! | `POST /queues/{name}/limits`, `/limits/clear` | the queue's limits across the fleet (fields `global`, `global_by`, `rate`, `period` seconds, `rate_by`), clearing them |
//! | `POST /jobs/{id}/retry`, `/cancel`, `/delete` | one job |
//! | `POST /jobs/retry`, `/cancel`, `/delete` | the selected jobs (fields `ids`) |
//! | `POST /workflows/{id}/cancel`, `/retry` | a workflow and its sub-workflows: cancel the unfinished steps; failed steps back to suspended, then released |
//!
//! # Access
//!
//! Each request's [`Access`] comes from the [`Resolver`] in the [`Config`]: none (403
//! everywhere), read-only (every page, no action control, every action refused with 403) or
//! full. Every action is a POST that must carry the page's CSRF token (a form field, or the
//! `x-csrf-token` header), except requests authenticated by `Authorization: Bearer`, which no
//! browser sends on its own. The default resolver gives everyone read-only access: set one
//! before exposing the dashboard.
//!
//! A script acts with `Accept: application/json` and gets `{"ok": true, "message": .., "count":
//! n}` back instead of a redirect.
//!
//! # Numbers and charts
//!
//! Counts by state come from the same depth query the metrics gauges use: exact up to 10,000
//! jobs per queue and state, PostgreSQL's planner estimate beyond (shown with `~`). The jobs
//! list walks the primary key newest first from a cursor (`before=<id>`), so a deep page costs
//! what the first one does. The overview's charts of the last hour (completed and failed per
//! minute, queue and execution time percentiles per queue) are kept in memory by a [`Recorder`]
//! attached to the node's job events when the router is made from an `&Oban`: completed jobs
//! are pruned from the table and no index serves "finished in the last hour", so the table is
//! never scanned for them. They show what this node ran; the standalone `oban web` has none.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo(oban: oban_core::Oban) -> Result<(), Box<dyn std::error::Error>> {
//! use axum::Router;
//! use oban_web::{Access, Config};
//!
//! let app: Router = Router::new()
//!     // .route("/", ..) your own routes
//!     .nest("/oban", oban_web::router(&oban, Config::new().resolver(Access::Full)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

mod access;
mod actions;
mod app;
mod assets;
mod charts;
mod config;
mod cookies;
mod csrf;
mod format;
mod guard;
mod layout;
mod pages;
mod reply;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use access::{Access, Resolver, TokenAuth};
pub use app::Source;
pub use charts::{
    latency_table, throughput_chart, Minute, Percentiles, QueueTimes, Recorder, Snapshot,
};
pub use config::Config;

/// The dashboard on `source` (an `&Oban` node, or an [`Admin`](oban_core::admin::Admin)),
/// configured by `config`: mount it with [`Router::nest`] under any path, or serve it at the
/// root.
pub fn router(source: impl Into<Source>, config: Config) -> Router {
    let app = Arc::new(app::App {
        source: source.into(),
        config,
    });
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/queues", get(pages::queues::page))
        .route("/queues/{name}/pause", post(actions::pause))
        .route("/queues/{name}/resume", post(actions::resume))
        .route("/queues/{name}/scale", post(actions::scale))
        .route("/queues/{name}/limits", post(actions::set_limits))
        .route("/queues/{name}/limits/clear", post(actions::clear_limits))
        .route("/jobs", get(pages::jobs::page))
        .route("/jobs/retry", post(actions::retry_jobs))
        .route("/jobs/cancel", post(actions::cancel_jobs))
        .route("/jobs/delete", post(actions::delete_jobs))
        .route("/jobs/{id}", get(pages::job::page))
        .route("/jobs/{id}/retry", post(actions::retry_job))
        .route("/jobs/{id}/cancel", post(actions::cancel_job))
        .route("/jobs/{id}/delete", post(actions::delete_job))
        .route("/workflows", get(pages::workflows::page))
        .route("/workflows/{id}", get(pages::workflow::page))
        .route("/workflows/{id}/cancel", post(actions::cancel_workflow))
        .route("/workflows/{id}/retry", post(actions::retry_workflow))
        .route("/crons", get(pages::crons::page))
        .route("/login", get(pages::login::form).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/assets/app.css", get(assets::css))
        .route("/assets/app.js", get(assets::js))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::guard,
        ))
        .with_state(app)
}
