//! Issue 17: job and node events a subscriber receives. Each test runs a node on PostgreSQL and
//! on SQLite, subscribes, and checks every event kind it provokes with its fields (job start and
//! stop for each outcome, inserts, leadership gained at start and lost at shutdown, the notifier,
//! staging, pruning, rescues and cron inserts); a subscriber that never reads must not slow a queue, and learns
//! afterwards how many events it missed.

mod common;
#[path = "conformance/harness.rs"]
mod harness;
#[path = "conformance/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::collections::HashMap;
use std::time::Duration;

use oban::{
    Event, JobBuilder, JobContext, JobError, JobFilter, JobOutcome, JobStart, JobState, JobStop,
    Outcome, Worker, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use harness::{Db, Kind};
use helpers::{attempted_by, backdate_producers};

/// How long the jobs here may take to run (they take milliseconds).
const LIMIT: Duration = Duration::from_secs(20);

/// Completes after a short while, so its duration is measurable.
#[derive(Debug, Serialize, Deserialize)]
struct Completes {}

impl Worker for Completes {
    const NAME: &'static str = "Events.Completes";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Outcome::Complete)
    }
}

/// Fails; retried after its backoff.
#[derive(Debug, Serialize, Deserialize)]
struct Fails {}

impl Worker for Fails {
    const NAME: &'static str = "Events.Fails";

    fn options() -> WorkerOptions {
        WorkerOptions::new().max_attempts(3)
    }

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("the provider is down"))
    }
}

/// Fails on its only attempt: discarded.
#[derive(Debug, Serialize, Deserialize)]
struct FailsOnce {}

impl Worker for FailsOnce {
    const NAME: &'static str = "Events.FailsOnce";

    fn options() -> WorkerOptions {
        WorkerOptions::new().max_attempts(1)
    }

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Err(JobError::new("out of attempts"))
    }
}

/// Snoozes for a minute.
#[derive(Debug, Serialize, Deserialize)]
struct Snoozes {}

impl Worker for Snoozes {
    const NAME: &'static str = "Events.Snoozes";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Snooze(Duration::from_secs(60)))
    }
}

/// Cancels itself.
#[derive(Debug, Serialize, Deserialize)]
struct Cancels {}

impl Worker for Cancels {
    const NAME: &'static str = "Events.Cancels";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Cancel("no longer wanted".to_owned()))
    }
}

/// Completes at once.
#[derive(Debug, Serialize, Deserialize)]
struct Quick {}

impl Worker for Quick {
    const NAME: &'static str = "Events.Quick";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

fn builder(db: &Db, node: &str) -> oban::Builder {
    db.builder(node)
        .queue("default", 5)
        .queue("other", 5)
        .register::<Completes>()
        .register::<Fails>()
        .register::<FailsOnce>()
        .register::<Snoozes>()
        .register::<Cancels>()
        .register::<Quick>()
}

/// Receives until `done` holds for what was received, within [`LIMIT`].
async fn receive_until(
    events: &mut Receiver<Event>,
    mut done: impl FnMut(&[Event]) -> bool,
) -> Vec<Event> {
    let mut seen = Vec::new();
    common::wait::within("the expected events", LIMIT, async {
        while !done(&seen) {
            match events.recv().await {
                Ok(event) => seen.push(event),
                Err(error) => panic!("receiving events failed: {error}; seen so far: {seen:?}"),
            }
        }
    })
    .await;
    seen
}

async fn each_outcome_is_one_start_and_one_stop_with_its_fields(kind: Kind) {
    let db = Db::new(kind).await;
    let builder = builder(&db, "events");
    let mut events = builder.events();
    let oban = builder.start().await.expect("start the node");
    let jobs = vec![
        JobBuilder::new(Completes {}).build().unwrap(),
        JobBuilder::new(Fails {}).build().unwrap(),
        JobBuilder::new(FailsOnce {}).build().unwrap(),
        JobBuilder::new(Snoozes {}).queue("other").build().unwrap(),
        JobBuilder::new(Cancels {}).queue("other").build().unwrap(),
    ];
    let inserted = oban.insert_all(jobs).await.expect("insert");
    let ids: HashMap<i64, &str> = inserted
        .iter()
        .map(|job| (job.id, job.worker.as_str()))
        .collect();
    let seen = receive_until(&mut events, |seen| {
        seen.iter()
            .filter(|e| matches!(e, Event::JobStop(_)))
            .count()
            == 5
    })
    .await;

    assert!(
        seen.contains(&Event::LeadershipGained),
        "the first election, during start, is seen by a receiver from the builder: {seen:?}"
    );
    assert!(
        seen.contains(&Event::JobsInserted {
            count: 5,
            queues: vec!["default".to_owned(), "other".to_owned()],
        }),
        "{seen:?}"
    );
    if kind != Kind::Sqlite {
        assert!(seen.contains(&Event::NotifierConnected), "{seen:?}");
    }
    let starts: HashMap<i64, &JobStart> = seen
        .iter()
        .filter_map(|e| match e {
            Event::JobStart(start) => Some((start.job.id, start)),
            _ => None,
        })
        .collect();
    let stops: HashMap<i64, &JobStop> = seen
        .iter()
        .filter_map(|e| match e {
            Event::JobStop(stop) => Some((stop.job.id, stop)),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 5, "one start per job: {seen:?}");
    assert_eq!(stops.len(), 5, "one stop per job: {seen:?}");
    for (id, worker) in &ids {
        let (start, stop) = (starts[id], stops[id]);
        let position = |wanted: &Event| seen.iter().position(|e| e == wanted).unwrap();
        assert!(
            position(&Event::JobStart(start.clone())) < position(&Event::JobStop(stop.clone())),
            "a job starts before it stops"
        );
        assert_eq!(start.job, stop.job);
        assert_eq!(start.job.worker, *worker);
        assert_eq!(start.job.attempt, 1);
        assert_eq!(stop.queue_time, start.queue_time);
        assert!(start.queue_time < LIMIT, "{start:?}");
    }
    let by_worker = |worker: &str| {
        *stops
            .values()
            .find(|stop| stop.job.worker == worker)
            .unwrap()
    };
    let completed = by_worker(Completes::NAME);
    assert_eq!(completed.outcome, JobOutcome::Completed);
    assert_eq!(completed.job.queue, "default");
    assert_eq!(completed.error, None);
    assert!(
        completed.duration >= Duration::from_millis(20),
        "{completed:?}"
    );

    let retried = by_worker(Fails::NAME);
    assert_eq!(retried.outcome, JobOutcome::Retryable);
    assert_eq!(retried.job.max_attempts, 3);
    assert_eq!(retried.error.as_deref(), Some("the provider is down"));

    let discarded = by_worker(FailsOnce::NAME);
    assert_eq!(discarded.outcome, JobOutcome::Discarded);
    assert_eq!(discarded.error.as_deref(), Some("out of attempts"));

    let snoozed = by_worker(Snoozes::NAME);
    assert_eq!(snoozed.outcome, JobOutcome::Snoozed);
    assert_eq!(snoozed.job.queue, "other");
    assert_eq!(snoozed.error, None);

    let cancelled = by_worker(Cancels::NAME);
    assert_eq!(cancelled.outcome, JobOutcome::Cancelled);
    assert_eq!(
        cancelled.error.as_deref(),
        Some("cancelled: no longer wanted")
    );

    // Shutting down resigns: the leader says it no longer leads.
    oban.shutdown(Duration::from_secs(5)).await;
    receive_until(&mut events, |seen| seen.contains(&Event::LeadershipLost)).await;
}

async fn a_subscriber_that_never_reads_does_not_slow_a_queue(kind: Kind) {
    const JOBS: usize = 1_500;
    let db = Db::new(kind).await;
    let oban = builder(&db, "events")
        .queue("fast", 20)
        .start()
        .await
        .expect("start the node");
    // Not read until every job is done: two events a job overflow its buffer.
    let mut idle = oban.events();
    let jobs = (0..JOBS)
        .map(|_| JobBuilder::new(Quick {}).queue("fast").build().unwrap())
        .collect();
    oban.insert_all(jobs).await.expect("insert");
    all_completed(&db, JOBS).await;
    match idle.recv().await {
        Err(RecvError::Lagged(missed)) => assert!(
            missed as usize >= 2 * JOBS - oban::events::BUFFER,
            "missed {missed}"
        ),
        other => panic!("a receiver that never read lags, got {other:?}"),
    }
    // It goes on with the oldest events still held.
    assert!(idle.try_recv().is_ok());
    oban.shutdown(Duration::from_secs(5)).await;
}

async fn staging_and_pruning_passes_are_events(kind: Kind) {
    let db = Db::new(kind).await;
    let builder = builder(&db, "events")
        .stage_interval(Duration::from_millis(100))
        .prune(Some(Duration::from_secs(1)), Duration::from_millis(200));
    let mut events = builder.events();
    let oban = builder.start().await.expect("start the node");
    JobBuilder::new(Quick {})
        .queue("other")
        .schedule_in(Duration::from_millis(500))
        .insert(&oban)
        .await
        .expect("insert");
    let seen = receive_until(&mut events, |seen| {
        seen.iter().any(|e| matches!(e, Event::Pruned { .. }))
    })
    .await;
    assert!(
        seen.contains(&Event::Staged {
            queues: vec!["other".to_owned()]
        }),
        "{seen:?}"
    );
    let stop = seen
        .iter()
        .find_map(|e| match e {
            Event::JobStop(stop) => Some(stop),
            _ => None,
        })
        .expect("the staged job ran");
    assert_eq!(stop.outcome, JobOutcome::Completed);
    assert!(stop.queue_time < LIMIT, "{stop:?}");
    assert!(seen.contains(&Event::Pruned { count: 1 }), "{seen:?}");
    oban.shutdown(Duration::from_secs(5)).await;
}

/// A producer that stopped heartbeating left a job executing: the lifeline's pass that makes it
/// available again is an event with the count it rescued.
async fn a_rescue_pass_is_an_event_with_its_count(kind: Kind) {
    let db = Db::new(kind).await;
    let builder =
        builder(&db, "events").rescue(Duration::from_millis(100), Duration::from_secs(60));
    let mut events = builder.events();
    let oban = builder.start().await.expect("start the node");
    // The dead producer's job is of a queue no producer here runs.
    let dead = uuid::Uuid::new_v4();
    db.engine
        .producer_heartbeat(dead, "gone", "parked", serde_json::json!({}))
        .await
        .unwrap();
    let job = db
        .insert(JobBuilder::new(Quick {}).queue("parked").build().unwrap())
        .await;
    let claimed = db
        .engine
        .job_fetch_available("parked", 1, &attempted_by(&dead.to_string()), None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // Silent for two minutes, past the one-minute rescue age (moved back, not waited for).
    backdate_producers(&db, &[dead], Duration::from_secs(120)).await;
    let seen = receive_until(&mut events, |seen| {
        seen.iter().any(|e| matches!(e, Event::Rescued { .. }))
    })
    .await;
    assert!(seen.contains(&Event::Rescued { count: 1 }), "{seen:?}");
    assert_eq!(db.job(job.id).await.state, JobState::Available);
    oban.shutdown(Duration::from_secs(5)).await;
}

/// A cron entry that comes due inserts its job: an event with the count the pass inserted.
/// The leader's first pass looks back over its catch-up window, so an every-minute entry is due
/// at once; every pass until shutdown is counted against the jobs in the table.
async fn a_cron_pass_is_an_event_with_its_count(kind: Kind) {
    let db = Db::new(kind).await;
    let builder =
        builder(&db, "events").cron("* * * * *", JobBuilder::new(Quick {}).queue("parked"));
    let mut events = builder.events();
    let oban = builder.start().await.expect("start the node");
    let seen = receive_until(&mut events, |seen| {
        seen.iter().any(|e| matches!(e, Event::CronInserted { .. }))
    })
    .await;
    oban.shutdown(Duration::from_secs(5)).await;
    let mut all = seen.clone();
    all.extend(std::iter::from_fn(|| events.try_recv().ok()));
    let mut counts: Vec<usize> = all
        .iter()
        .filter_map(|e| match e {
            Event::CronInserted { count } => Some(*count),
            _ => None,
        })
        .collect();
    assert!(counts[0] >= 1, "{seen:?}");
    counts.retain(|count| *count > 0);
    let inserted = db.count(JobFilter::new().queue("parked")).await;
    assert_eq!(
        counts.iter().sum::<usize>(),
        inserted,
        "the passes' counts are the jobs cron inserted"
    );
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn each_outcome_is_one_start_and_one_stop_with_its_fields() {
        super::each_outcome_is_one_start_and_one_stop_with_its_fields(Kind::Postgres).await;
    }

    #[tokio::test]
    async fn a_subscriber_that_never_reads_does_not_slow_a_queue() {
        super::a_subscriber_that_never_reads_does_not_slow_a_queue(Kind::Postgres).await;
    }

    #[tokio::test]
    async fn staging_and_pruning_passes_are_events() {
        super::staging_and_pruning_passes_are_events(Kind::Postgres).await;
    }

    #[tokio::test]
    async fn a_rescue_pass_is_an_event_with_its_count() {
        super::a_rescue_pass_is_an_event_with_its_count(Kind::Postgres).await;
    }

    #[tokio::test]
    async fn a_cron_pass_is_an_event_with_its_count() {
        super::a_cron_pass_is_an_event_with_its_count(Kind::Postgres).await;
    }
}

mod sqlite {
    use super::*;

    #[tokio::test]
    async fn each_outcome_is_one_start_and_one_stop_with_its_fields() {
        super::each_outcome_is_one_start_and_one_stop_with_its_fields(Kind::Sqlite).await;
    }

    #[tokio::test]
    async fn a_subscriber_that_never_reads_does_not_slow_a_queue() {
        super::a_subscriber_that_never_reads_does_not_slow_a_queue(Kind::Sqlite).await;
    }

    #[tokio::test]
    async fn staging_and_pruning_passes_are_events() {
        super::staging_and_pruning_passes_are_events(Kind::Sqlite).await;
    }

    #[tokio::test]
    async fn a_rescue_pass_is_an_event_with_its_count() {
        super::a_rescue_pass_is_an_event_with_its_count(Kind::Sqlite).await;
    }

    #[tokio::test]
    async fn a_cron_pass_is_an_event_with_its_count() {
        super::a_cron_pass_is_an_event_with_its_count(Kind::Sqlite).await;
    }
}

/// With an unread receiver, this node's queue is as fast as with none: the same jobs complete
/// in about the same time (within a generous factor, so a busy machine does not fail it).
#[tokio::test]
async fn postgres_throughput_with_an_unread_receiver_is_that_without_one() {
    const JOBS: usize = 1_000;
    async fn run(subscribe: bool) -> Duration {
        let db = Db::new(Kind::Postgres).await;
        let oban = builder(&db, "events")
            .queue("fast", 20)
            .start()
            .await
            .expect("start the node");
        let _idle = subscribe.then(|| oban.events());
        let jobs = (0..JOBS)
            .map(|_| JobBuilder::new(Quick {}).queue("fast").build().unwrap())
            .collect();
        let started = std::time::Instant::now();
        oban.insert_all(jobs).await.expect("insert");
        all_completed(&db, JOBS).await;
        let took = started.elapsed();
        oban.shutdown(Duration::from_secs(5)).await;
        took
    }
    let without = run(false).await;
    let with = run(true).await;
    eprintln!("{JOBS} jobs: {without:?} without a receiver, {with:?} with an unread one");
    assert!(
        with < without * 3 + Duration::from_secs(2),
        "{with:?} with an unread receiver against {without:?} without"
    );
}

async fn all_completed(db: &Db, jobs: usize) {
    let filter = JobFilter::new().queue("fast").state(JobState::Completed);
    common::wait::wait_for_job_count(&*db.engine, &filter, jobs, LIMIT).await;
}
