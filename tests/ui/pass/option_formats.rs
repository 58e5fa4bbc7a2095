//! The other spellings of option values: durations with units, every backoff, plain `unique`.
#![deny(warnings, clippy::pedantic)]

use std::time::Duration;

use oban::{worker, Backoff, Job, Worker};

fn retry_after(job: &Job) -> Duration {
    Duration::from_secs(u64::from(job.attempt.unsigned_abs()) * 7)
}

mod backoffs {
    pub(crate) fn by_error_count(job: &oban::Job) -> std::time::Duration {
        std::time::Duration::from_secs(job.errors.len() as u64)
    }
}

#[worker(timeout = "500ms", backoff = constant("90s"))]
async fn millis(n: i64) {
    let _ = n;
}

#[worker(backoff = exponential(base = "2s", max = "1h"), unique)]
async fn exponential(n: i64) {
    let _ = n;
}

#[worker(backoff = retry_after, unique(period = "5m", keys = ["n"], states = all))]
async fn custom(n: i64) {
    let _ = n;
}

#[worker(backoff = backoffs::by_error_count)]
async fn custom_path(n: i64) {
    let _ = n;
}

#[worker(backoff = default, unique(period = infinity, states = successful, timestamp = inserted_at))]
async fn defaults(n: i64) {
    let _ = n;
}

#[worker(backoff = |job| Duration::from_millis(u64::from(job.attempt.unsigned_abs())))]
async fn closure(n: i64) {
    let _ = n;
}

fn main() {
    assert_eq!(Millis::options().timeout, Some(Duration::from_millis(500)));
    assert!(matches!(Millis::options().backoff, Backoff::Constant(d) if d.as_secs() == 90));
    assert!(matches!(
        Exponential::options().backoff,
        Backoff::Exponential { base, max } if base.as_secs() == 2 && max.as_secs() == 3600
    ));
    assert!(Exponential::options().unique.is_some());
    assert!(matches!(Custom::options().backoff, Backoff::Custom(_)));
    assert!(matches!(CustomPath::options().backoff, Backoff::Custom(_)));
    assert!(matches!(Closure::options().backoff, Backoff::Custom(_)));
    assert!(matches!(Defaults::options().backoff, Backoff::Default));
}
