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
