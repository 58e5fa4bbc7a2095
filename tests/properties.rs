//! Property tests: whatever JSON a job carries comes back as it went in, on both engines and
//! through a typed worker's args.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use harness::{Db, Kind};
use oban::{worker, Job, JobState, NewJob, Outcome};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};
use std::time::Duration;

/// Text as users send it: any characters but NUL (which no engine stores alike; see
/// `NewJob::validate`), with quotes, backslashes, escapes and characters outside the BMP.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{0,12}",
        "[^\u{0}]{0,24}",
        Just(r#"quote " backslash \ slash / tab	"#.to_owned()),
        Just("emoji 🦀 and 𝄞".to_owned()),
    ]
}

/// JSON as args and meta carry it: integers (floats are left out: PostgreSQL's `jsonb` keeps
/// numbers as decimals, so `1.0` comes back as `1.0` but not always with the same f64 bits),
/// strings, booleans, null, and nested arrays and objects.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn args() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(text(), json(), 0..8)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Inserts a job with `args`, `meta` and `tags` and reads it back by id and by listing.
async fn round_trip(db: &Db, args: Value, meta: Value, tags: Vec<String>) -> Result<(), String> {
    let mut job = NewJob::new("RoundTrip", args.clone());
    job.meta = meta.clone();
    job.tags = tags.clone();
    let inserted = db
        .engine
        .job_insert_many(vec![job])
        .await
        .map_err(|e| format!("insert refused: {e}"))?
        .pop()
        .ok_or("no job returned")?;
    let stored = db.job(inserted.id).await;
    for (what, job) in [("as inserted", &inserted), ("as read back", &stored)] {
        if job.args != args {
            return Err(format!("args {what}: {} != {}", job.args, args));
        }
        if job.meta != meta {
            return Err(format!("meta {what}: {} != {}", job.meta, meta));
        }
        if job.tags != tags {
            return Err(format!("tags {what}: {:?} != {:?}", job.tags, tags));
        }
    }
    Ok(())
}

async fn args_meta_and_tags_round_trip(kind: Kind) {
    let db = Db::new(kind).await;
    let strategy = (
        args(),
        args(),
        prop::collection::vec("[^\u{0}]{1,16}", 0..4),
    );
    let mut runner = runner(96);
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner
            .run(&strategy, |(args, meta, tags)| {
                handle
                    .block_on(round_trip(&db, args, meta, tags))
                    .map_err(TestCaseError::fail)
            })
            .map_err(|failure| failure.to_string())
    });
    if let Err(failure) = result {
        panic!("{kind:?}: {failure}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn args_meta_and_tags_round_trip_on_postgres() {
    args_meta_and_tags_round_trip(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn args_meta_and_tags_round_trip_on_sqlite() {
    args_meta_and_tags_round_trip(Kind::Sqlite).await;
}

/// A worker with stored arguments of several types.
#[worker(queue = "properties", derive(Debug, Clone, PartialEq))]
async fn typed_round_trip(
    name: String,
    count: i64,
    flags: Vec<bool>,
    note: Option<String>,
    extra: Value,
    _job: &Job,
) -> Result<Outcome, std::io::Error> {
    let _ = (name, count, flags, note, extra);
    Ok(Outcome::Complete)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_args_round_trip_through_the_table() {
    let db = Db::new(Kind::Postgres).await;
    let pool = db.pg_pool().expect("postgres").clone();
    let strategy = (
        "[^\u{0}]{0,24}",
        any::<i64>(),
        prop::collection::vec(any::<bool>(), 0..5),
        prop::option::of("[^\u{0}]{0,12}"),
        json(),
    );
    let mut runner = runner(64);
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner
            .run(&strategy, |(name, count, flags, note, extra)| {
                handle.block_on(async {
                    let sent = TypedRoundTrip {
                        name,
                        count,
                        flags,
                        note,
                        extra,
                    };
                    let job = TypedRoundTrip::new(
                        sent.name.clone(),
                        sent.count,
                        sent.flags.clone(),
                        sent.note.clone(),
                        sent.extra.clone(),
                    )
                    .insert(&pool)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("insert refused: {e}")))?;
                    prop_assert_eq!(job.state, JobState::Available);
                    let stored = common::fetch_job(&pool, job.id).await;
                    let back: TypedRoundTrip = serde_json::from_value(stored.args.clone())
                        .map_err(|e| TestCaseError::fail(format!("{e}: {}", stored.args)))?;
                    prop_assert_eq!(back, sent);
                    Ok(())
                })
            })
            .map_err(|failure| failure.to_string())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// Durations a configuration may hold: zero, small, ordinary, huge and "forever".
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::ZERO),
        1 => (1u64..50).prop_map(Duration::from_millis),
        40 => (50u64..5_000).prop_map(Duration::from_millis),
        1 => (1u64..1_000_000).prop_map(Duration::from_secs),
        1 => Just(Duration::from_secs(u64::MAX / 2)),
        1 => Just(Duration::MAX),
    ]
}

/// Panics anywhere in the process (a node's background task included) while `f` runs.
fn panics_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.fetch_add(1, Ordering::SeqCst);
        eprintln!("panic: {info}");
    }));
    let value = f();
    drop(std::panic::take_hook());
    std::panic::set_hook(previous);
    (value, count.load(Ordering::SeqCst))
}

/// Whatever durations a builder is given, `start` either refuses them with a configuration error
/// naming the option, or runs a node that works a job and shuts down within its bound; nothing
/// panics, in `start` or in the node's tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_builder_durations_start_a_working_node_or_are_refused() {
    let db = Db::new(Kind::Postgres).await;
    let pool = db.pg_pool().expect("postgres").clone();
    // Heartbeats and rescue ages mostly in the range where one is at most half the other, so
    // that about half the configurations are accepted and run.
    let heartbeat = prop_oneof![
        1 => duration(),
        3 => (10u64..500).prop_map(Duration::from_millis),
    ];
    let rescue_after = prop_oneof![
        1 => duration(),
        3 => (1_000u64..60_000).prop_map(Duration::from_millis),
    ];
    let strategy = (
        prop::collection::vec(duration(), 7),
        heartbeat,
        rescue_after,
        prop::option::of(duration()),
    );
    let mut runner = runner(64);
    let handle = tokio::runtime::Handle::current();
    let node = std::sync::atomic::AtomicUsize::new(0);
    let started_nodes = std::sync::atomic::AtomicUsize::new(0);
    let (result, panics) = panics_during(|| {
        tokio::task::block_in_place(|| {
            runner
                .run(&strategy, |(d, heartbeat, rescue_after, prune_age)| {
                    let node = node.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    handle.block_on(async {
                        let builder = oban::Oban::builder()
                            .pool(pool.clone())
                            .migrate(false)
                            .node(format!("prop-{node}"))
                            .queue("properties", 2)
                            .poll_interval(d[0])
                            .stage_interval(d[1])
                            .heartbeat_interval(heartbeat)
                            .rescue(d[3], rescue_after)
                            .leader_ttl(d[5])
                            .prune(prune_age, d[6]);
                        let oban = match builder.start().await {
                            Ok(oban) => oban,
                            Err(oban::Error::Config(message)) => {
                                prop_assert!(message.contains('`'), "names the option: {message}");
                                return Ok(());
                            }
                            Err(other) => {
                                return Err(TestCaseError::fail(format!(
                                    "not a config error: {other}"
                                )))
                            }
                        };
                        started_nodes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let job = TypedRoundTrip::new("x".into(), 1, vec![], None, Value::Null)
                            .insert(&oban)
                            .await
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        common::wait::poll(
                            "the job to complete",
                            Duration::from_secs(5),
                            Duration::from_millis(10),
                            async || match oban.job(job.id).await {
                                Ok(Some(job)) if job.state == JobState::Completed => Ok(()),
                                Ok(job) => Err(format!("{:?}", job.map(|j| j.state))),
                                Err(error) => Err(error.to_string()),
                            },
                        )
                        .await;
                        let started = std::time::Instant::now();
                        oban.shutdown(Duration::from_millis(100)).await;
                        prop_assert!(
                            started.elapsed()
                                < Duration::from_millis(100)
                                    + oban::Oban::SHUTDOWN_MARGIN
                                    + Duration::from_secs(1),
                            "shutdown took {:?}",
                            started.elapsed()
                        );
                        Ok(())
                    })
                })
                .map_err(|failure| failure.to_string())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert_eq!(
        panics, 0,
        "no panic anywhere while nodes started and stopped"
    );
    let started = started_nodes.into_inner();
    eprintln!("{started} of 64 configurations were accepted and ran a job");
    assert!(started >= 5, "some configurations were accepted and ran");
}
