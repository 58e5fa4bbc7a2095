//! Injected parameters in every spelling, between stored ones.
#![deny(warnings, clippy::pedantic)]

use std::sync::atomic::{AtomicU64, Ordering};

use oban::{worker, Job, State, Worker};

struct Counter {
    hits: AtomicU64,
}
struct Settings {
    enabled: bool,
}

#[worker]
async fn count(
    first: i64,
    job: &Job,
    _: &oban::Job,
    owned: Job,
    counter: State<Counter>,
    second: Option<String>,
    settings: oban::State<Settings>,
) {
    if settings.enabled {
        let _ = counter.hits.fetch_add(1, Ordering::SeqCst);
    }
    let _ = (first, job.id, owned.attempt, second);
}

fn main() {
    assert_eq!(Count::required_state().len(), 2);
    let job = Count::new(1, None);
    assert!(job.args().second.is_none());
}
