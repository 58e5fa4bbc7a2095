//! The overview page's charts: jobs completed and failed per minute, and queue and execution
//! time percentiles per queue, over the last hour.
//!
//! The data never comes from the job table (completed jobs are pruned, and no index serves
//! "completed in the last hour" on millions of rows): a [`Recorder`] attached to the node keeps
//! its job stops in memory, in minute buckets of bounded size. [`throughput_chart`] and
//! [`latency_table`] draw a [`Snapshot`] of it as markup, without script. A dashboard mounted
//! without a node has no recorder and shows no charts.
//!
//! One concept per file: `recorder.rs` (the buckets, the event task), `histogram.rs` (the
//! per-minute histograms and their percentiles), `snapshot.rs` (what a snapshot holds),
//! `throughput.rs` (the SVG bar chart), `latency.rs` (the table), `format.rs` (durations and
//! counts as people read them).

mod histogram;
mod latency;
mod recorder;
mod snapshot;
mod throughput;

pub use latency::latency_table;
pub use recorder::Recorder;
pub use snapshot::{Minute, Percentiles, QueueTimes, Snapshot};
pub use throughput::throughput_chart;
