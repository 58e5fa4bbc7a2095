//! The Oban for Rust dashboard.

mod charts;
pub use charts::{
    latency_table, throughput_chart, Minute, Percentiles, QueueTimes, Recorder, Snapshot,
};
