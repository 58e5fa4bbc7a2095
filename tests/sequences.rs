//! Sequences (issue 21): jobs sharing a sequence key run one at a time, in insertion order,
//! across nodes; a retrying job holds its sequence, a discarded one releases it (or holds it
//! under `OnFailure::Hold` until retried); the leader starts sequences whose holder was deleted.
//! On PostgreSQL (three nodes with pools of their own) and SQLite (one node).

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oban::admin::{Admin, JobQuery};
use oban::sequence::OnFailure;
use oban::{worker, DbPool, Job, JobFilter, JobState, NewJob, Oban, Prefix};
use serde_json::json;

use common::wait;
use harness::{Db, Kind};

/// What ran, per sequence (`run` and `account`): the `n` of each job in the order they started,
/// and whether one of the sequence is running now (two at once is recorded as an overlap).
#[derive(Default)]
struct Tracker {
    started: HashMap<(u64, u32), Vec<u32>>,
    running: HashMap<(u64, u32), bool>,
    overlaps: Vec<(u64, u32, u32)>,
}

static TRACKER: Mutex<Option<Tracker>> = Mutex::new(None);

fn track<T>(f: impl FnOnce(&mut Tracker) -> T) -> T {
    f(TRACKER.lock().unwrap().get_or_insert_with(Tracker::default))
}

/// A fresh run id, so tests running at once keep separate sequences.
fn run_id() -> u64 {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    (u64::from(std::process::id()) << 20) | NEXT.fetch_add(1, Ordering::Relaxed) as u64
}

/// One job of sequence `(run, account)`: records its start, sleeps, records its end.
#[worker(queue = "seq", max_attempts = 1, sequence(keys = [run, account]))]
async fn step(run: u64, account: u32, n: u32, sleep_ms: u64) {
    track(|t| {
        let running = t.running.entry((run, account)).or_default();
        if *running {
            t.overlaps.push((run, account, n));
        }
        *running = true;
        t.started.entry((run, account)).or_default().push(n);
    });
    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    track(|t| t.running.insert((run, account), false));
}

/// Fails its first attempt (discarded with one attempt; retried by an operator, it completes);
/// records the attempts in order.
#[worker(queue = "seq", max_attempts = 1, sequence(keys = [run]))]
async fn fails_first(run: u64, n: u32, job: &Job) -> Result<(), std::io::Error> {
    track(|t| {
        t.started
            .entry((run, 0))
            .or_default()
            .push(n * 10 + job.attempt as u32)
    });
    if job.attempt == 1 {
        return Err(std::io::Error::other("first attempt fails"));
    }
    Ok(())
}

/// Fails its first attempt and retries soon after.
#[worker(queue = "seq", max_attempts = 3, backoff = constant("20ms"), sequence(keys = [run]))]
async fn retries_once(run: u64, n: u32, job: &Job) -> Result<(), std::io::Error> {
    track(|t| {
        t.started
            .entry((run, 0))
            .or_default()
            .push(n * 10 + job.attempt as u32)
    });
    if job.attempt == 1 {
        return Err(std::io::Error::other("first attempt fails"));
    }
    Ok(())
}

/// Completes at once.
#[worker(queue = "seq", max_attempts = 1)]
async fn quick(n: u32) {
    let _ = n;
}

fn started(run: u64, account: u32) -> Vec<u32> {
    track(|t| t.started.get(&(run, account)).cloned().unwrap_or_default())
}

fn overlaps(run: u64) -> Vec<(u64, u32, u32)> {
    track(|t| t.overlaps.iter().filter(|o| o.0 == run).copied().collect())
}

/// A node on a pool of its own (PostgreSQL), or on the test's pool (SQLite).
async fn node(db: &Db, name: &str, limit: u32) -> Oban {
    let builder = match db.kind {
        Kind::Sqlite => db.builder(name),
        _ => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(6)
                .connect(&db.url())
                .await
                .expect("a pool of the node's own");
            Oban::builder()
                .pool(pool)
                .prefix(db.prefix().name())
                .node(name)
        }
    };
    builder
        .queue("seq", limit)
        .stage_interval(Duration::from_millis(50))
        .rescue(Duration::from_millis(200), Duration::from_secs(60))
        .register::<Step>()
        .register::<FailsFirst>()
        .register::<RetriesOnce>()
        .register::<Quick>()
        .start()
        .await
        .expect("start the node")
}

async fn admin(db: &Db) -> Admin {
    match db.sqlite_pool() {
        Some(pool) => Admin::new(DbPool::from(pool.clone()), Prefix::PUBLIC).unwrap(),
        None => Admin::connect(&db.url(), db.prefix().name())
            .await
            .expect("admin connects"),
    }
}

/// `sequences` x `per` jobs of `Step`, inserted in rounds through the nodes in turn while they
/// run; a sampler reads the executing jobs every 3 ms and fails on two of one sequence at once.
/// At the end every sequence ran in id order, each job starting after the previous completed.
async fn sequences_never_overlap_and_keep_their_order(
    kind: Kind,
    nodes: usize,
    sequences: u32,
    per: u32,
) {
    let db = Db::new(kind).await;
    let mut obans = Vec::new();
    for i in 0..nodes {
        obans.push(node(&db, &format!("seq-{i}"), 10).await);
    }
    let run = run_id();
    let done = Arc::new(AtomicBool::new(false));
    let engine = db.another_engine().await;
    let sampler = tokio::spawn({
        let done = Arc::clone(&done);
        async move {
            let mut samples = 0usize;
            let mut busiest = 0usize;
            while !done.load(Ordering::Relaxed) {
                let executing = engine
                    .job_list(&JobFilter::new().state(JobState::Executing), 100_000)
                    .await
                    .expect("sample");
                let mut by_sequence: HashMap<String, Vec<i64>> = HashMap::new();
                for job in &executing {
                    if let Some(key) = job.meta.get("sequence").and_then(|k| k.as_str()) {
                        by_sequence.entry(key.to_owned()).or_default().push(job.id);
                    }
                }
                for (key, ids) in &by_sequence {
                    assert!(ids.len() < 2, "sequence {key} runs {ids:?} at once");
                }
                busiest = busiest.max(by_sequence.len());
                samples += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            (samples, busiest)
        }
    });
    let began = std::time::Instant::now();
    let rounds = 5;
    for round in 0..rounds {
        let jobs: Vec<NewJob> = (round * per / rounds..(round + 1) * per / rounds)
            .flat_map(|n| {
                (0..sequences).map(move |account| {
                    let sleep = u64::from((account * 7 + n * 13) % 6);
                    Step::new(run, account, n, sleep).build().unwrap()
                })
            })
            .collect();
        let inserted = oban::insert_all(&obans[round as usize % nodes], jobs)
            .await
            .expect("insert a round");
        assert_eq!(inserted.len(), (sequences * per / rounds) as usize);
    }
    db.wait_for_count(
        JobFilter::new().state(JobState::Completed),
        (sequences * per) as usize,
        Duration::from_secs(180),
    )
    .await;
    done.store(true, Ordering::Relaxed);
    let (samples, busiest) = sampler.await.expect("the sampler saw no overlap");
    eprintln!(
        "{kind:?}: {} jobs in {sequences} sequences on {nodes} node(s) in {:?}; {samples} samples, up to {busiest} sequences running at once",
        sequences * per,
        began.elapsed()
    );
    assert!(samples > 20, "the sampler ran ({samples} samples)");
    assert!(
        busiest > 1,
        "sequences ran side by side (at most {busiest} at once)"
    );
    assert_eq!(
        overlaps(run),
        Vec::new(),
        "no two jobs of a sequence at once"
    );

    let mut by_sequence: HashMap<String, Vec<Job>> = HashMap::new();
    for job in db.jobs(JobFilter::new()).await {
        let key = job.meta["sequence"].as_str().unwrap().to_owned();
        by_sequence.entry(key).or_default().push(job);
    }
    assert_eq!(by_sequence.len(), sequences as usize);
    for (key, mut jobs) in by_sequence {
        jobs.sort_by_key(|j| j.id);
        assert_eq!(jobs.len(), per as usize, "{key}");
        let ns: Vec<u32> = jobs
            .iter()
            .map(|j| j.args["n"].as_u64().unwrap() as u32)
            .collect();
        let account = jobs[0].args["account"].as_u64().unwrap() as u32;
        assert_eq!(started(run, account), ns, "{key} ran in id order");
        for pair in jobs.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(
                b.attempted_at.unwrap() >= a.completed_at.unwrap(),
                "{key}: job {} started before job {} completed",
                b.id,
                a.id
            );
        }
        assert!(jobs.iter().all(|j| j.attempt == 1));
    }
    if nodes > 1 {
        let by: std::collections::HashSet<_> = db
            .jobs(JobFilter::new())
            .await
            .iter()
            .filter_map(|j| j.attempted_by.first().cloned())
            .collect();
        assert!(by.len() > 1, "more than one node ran jobs: {by:?}");
    }
    for oban in obans {
        oban.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_run_20_sequences_of_25_without_overlap_in_order_on_postgres() {
    sequences_never_overlap_and_keep_their_order(Kind::Postgres, 3, 20, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_runs_10_sequences_of_20_without_overlap_in_order_on_sqlite() {
    sequences_never_overlap_and_keep_their_order(Kind::Sqlite, 1, 10, 20).await;
}

/// Of one batch, the first job of a sequence is runnable and the others wait; jobs of other
/// sequences and unsequenced jobs are as usual; the key is the worker's name and the chosen args.
async fn a_batch_starts_only_the_first_of_each_sequence(kind: Kind) {
    let db = Db::new(kind).await;
    let run = run_id();
    let jobs = vec![
        Step::new(run, 1, 0, 0).build().unwrap(),
        Step::new(run, 1, 1, 0).build().unwrap(),
        Step::new(run, 2, 0, 0).build().unwrap(),
        Quick::new(1).build().unwrap(),
        Step::new(run, 2, 1, 0).build().unwrap(),
    ];
    let inserted = db.insert_via_pool(jobs).await;
    let states: Vec<JobState> = inserted.iter().map(|j| j.state).collect();
    use JobState::{Available, Suspended};
    assert_eq!(
        states,
        [Available, Suspended, Available, Available, Suspended]
    );
    assert_eq!(
        inserted[0].meta["sequence"],
        format!(
            r#"{}:{{"account":1,"run":{run}}}"#,
            <Step as oban::Worker>::NAME
        )
    );
    // What the insert answered is what is stored.
    for job in &inserted {
        assert_eq!(db.job(job.id).await.state, job.state);
    }
    // Another insert into a busy sequence waits too, behind the earlier ones.
    let later = db.insert(Step::new(run, 1, 2, 0).build().unwrap()).await;
    assert_eq!(later.state, Suspended);
    let oban = node(&db, "batch", 5).await;
    db.wait_for_count(
        JobFilter::new().state(JobState::Completed),
        6,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(started(run, 1), [0, 1, 2]);
    assert_eq!(started(run, 2), [0, 1]);
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_batch_starts_only_the_first_of_each_sequence_on_postgres() {
    a_batch_starts_only_the_first_of_each_sequence(Kind::Postgres).await;
}

#[tokio::test]
async fn a_batch_starts_only_the_first_of_each_sequence_on_sqlite() {
    a_batch_starts_only_the_first_of_each_sequence(Kind::Sqlite).await;
}

#[tokio::test]
async fn a_batch_starts_only_the_first_of_each_sequence_in_a_prefix() {
    a_batch_starts_only_the_first_of_each_sequence(Kind::PostgresPrefix).await;
}

/// A job that will retry holds its sequence: the next runs after the retry completes.
async fn a_retrying_job_holds_the_next(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "retry", 5).await;
    let run = run_id();
    let jobs = oban::insert_all(
        &oban,
        vec![
            RetriesOnce::new(run, 1).build().unwrap(),
            RetriesOnce::new(run, 2).build().unwrap(),
        ],
    )
    .await
    .unwrap();
    db.wait_for_state(jobs[1].id, JobState::Completed).await;
    // Job 1's two attempts, then job 2's two.
    assert_eq!(started(run, 0), [11, 12, 21, 22]);
    let first = db.job(jobs[0].id).await;
    let second = db.job(jobs[1].id).await;
    assert_eq!(first.state, JobState::Completed);
    assert!(second.attempted_at.unwrap() >= first.completed_at.unwrap());
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_retrying_job_holds_the_next_on_postgres() {
    a_retrying_job_holds_the_next(Kind::Postgres).await;
}

#[tokio::test]
async fn a_retrying_job_holds_the_next_on_sqlite() {
    a_retrying_job_holds_the_next(Kind::Sqlite).await;
}

/// By default a discarded job releases its sequence: the next runs.
async fn a_discarded_job_releases_its_sequence_by_default(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "release", 5).await;
    let run = run_id();
    let jobs = oban::insert_all(
        &oban,
        vec![
            FailsFirst::new(run, 1).build().unwrap(),
            FailsFirst::new(run, 2).build().unwrap(),
            FailsFirst::new(run, 3).build().unwrap(),
        ],
    )
    .await
    .unwrap();
    for job in &jobs {
        db.wait_for_state(job.id, JobState::Discarded).await;
    }
    assert_eq!(started(run, 0), [11, 21, 31]);
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_discarded_job_releases_its_sequence_by_default_on_postgres() {
    a_discarded_job_releases_its_sequence_by_default(Kind::Postgres).await;
}

#[tokio::test]
async fn a_discarded_job_releases_its_sequence_by_default_on_sqlite() {
    a_discarded_job_releases_its_sequence_by_default(Kind::Sqlite).await;
}

/// Under `OnFailure::Hold`, a discarded job keeps the next waiting (a release finds nothing to
/// start) until an operator retries it: it runs again first, then the next.
async fn a_discarded_job_holds_under_hold_until_retried(kind: Kind) {
    let db = Db::new(kind).await;
    let oban = node(&db, "hold", 5).await;
    let run = run_id();
    let held = |n| {
        FailsFirst::new(run, n)
            .sequence_on_failure(OnFailure::Hold)
            .build()
            .unwrap()
    };
    let jobs = oban::insert_all(&oban, vec![held(1), held(2)])
        .await
        .unwrap();
    assert_eq!(jobs[0].meta["sequence_hold"], json!(true));
    db.wait_for_state(jobs[0].id, JobState::Discarded).await;
    let key = jobs[0].meta["sequence"].as_str().unwrap().to_owned();
    // Neither the ack's release nor the leader's pass starts the next.
    assert_eq!(
        db.engine.sequence_waiting(None, 10).await.unwrap(),
        std::slice::from_ref(&key)
    );
    assert_eq!(db.engine.sequence_release(&[key]).await.unwrap(), 0);
    assert_eq!(db.job(jobs[1].id).await.state, JobState::Suspended);

    let retried = admin(&db)
        .await
        .retry(&JobQuery::new(JobFilter::id(jobs[0].id)), 10, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(retried, 1);
    db.wait_for_state(jobs[0].id, JobState::Completed).await;
    // The second fails its first attempt and is held in turn.
    db.wait_for_state(jobs[1].id, JobState::Discarded).await;
    assert_eq!(started(run, 0), [11, 12, 21]);
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_discarded_job_holds_under_hold_until_retried_on_postgres() {
    a_discarded_job_holds_under_hold_until_retried(Kind::Postgres).await;
}

#[tokio::test]
async fn a_discarded_job_holds_under_hold_until_retried_on_sqlite() {
    a_discarded_job_holds_under_hold_until_retried(Kind::Sqlite).await;
}

/// A holder deleted or cancelled (not running) by an operator lets the next job start at once.
async fn a_deleted_or_cancelled_holder_releases_its_sequence_at_once(kind: Kind) {
    let db = Db::new(kind).await;
    let run = run_id();
    let jobs = db
        .insert_via_pool(
            (0..3)
                .map(|n| Step::new(run, 6, n, 0).build().unwrap())
                .collect(),
        )
        .await;
    let admin = admin(&db).await;
    admin
        .delete(&JobQuery::new(JobFilter::id(jobs[0].id)), 10, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(db.job(jobs[1].id).await.state, JobState::Available);
    assert_eq!(db.job(jobs[2].id).await.state, JobState::Suspended);
    admin
        .cancel(&JobQuery::new(JobFilter::id(jobs[1].id)), 10, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(db.job(jobs[2].id).await.state, JobState::Available);
}

#[tokio::test]
async fn a_deleted_or_cancelled_holder_releases_its_sequence_at_once_on_postgres() {
    a_deleted_or_cancelled_holder_releases_its_sequence_at_once(Kind::Postgres).await;
}

#[tokio::test]
async fn a_deleted_or_cancelled_holder_releases_its_sequence_at_once_on_sqlite() {
    a_deleted_or_cancelled_holder_releases_its_sequence_at_once(Kind::Sqlite).await;
}

/// A bulk retry over a queue matches the waiting jobs of a sequence (retry takes any state but
/// executing and available): they stay waiting, in order, rather than all becoming runnable.
async fn a_bulk_retry_leaves_the_waiting_jobs_of_a_sequence_waiting(kind: Kind) {
    let db = Db::new(kind).await;
    let run = run_id();
    let jobs = db
        .insert_via_pool(
            (0..3)
                .map(|n| Step::new(run, 7, n, 0).build().unwrap())
                .collect(),
        )
        .await;
    let retried = admin(&db)
        .await
        .retry(
            &JobQuery::new(JobFilter::new().queue("seq")),
            10,
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(retried, 2, "the two waiting jobs");
    let states = [
        db.job(jobs[0].id).await.state,
        db.job(jobs[1].id).await.state,
        db.job(jobs[2].id).await.state,
    ];
    assert_eq!(
        states,
        [
            JobState::Available,
            JobState::Suspended,
            JobState::Suspended
        ]
    );
}

#[tokio::test]
async fn a_bulk_retry_leaves_the_waiting_jobs_of_a_sequence_waiting_on_postgres() {
    a_bulk_retry_leaves_the_waiting_jobs_of_a_sequence_waiting(Kind::Postgres).await;
}

#[tokio::test]
async fn a_bulk_retry_leaves_the_waiting_jobs_of_a_sequence_waiting_on_sqlite() {
    a_bulk_retry_leaves_the_waiting_jobs_of_a_sequence_waiting(Kind::Sqlite).await;
}

/// A holder finished without an ack of ours (an Elixir or Python node's ack, written here as
/// it would write it): the leader's pass starts the next.
async fn a_holder_finished_elsewhere_is_released_by_the_leader_pass(kind: Kind) {
    let db = Db::new(kind).await;
    let run = run_id();
    let jobs = db
        .insert_via_pool(vec![
            Step::new(run, 5, 0, 0).build().unwrap(),
            Step::new(run, 5, 1, 0).build().unwrap(),
        ])
        .await;
    assert_eq!(jobs[1].state, JobState::Suspended);
    const ACK: &str =
        "UPDATE oban_jobs SET state = 'completed', completed_at = CURRENT_TIMESTAMP WHERE id = $1";
    match kind {
        Kind::Sqlite => {
            sqlx::query(&ACK.replace("$1", "?1"))
                .bind(jobs[0].id)
                .execute(db.sqlite_pool().unwrap())
                .await
                .unwrap();
        }
        _ => {
            sqlx::query(ACK)
                .bind(jobs[0].id)
                .execute(db.pg_pool().unwrap())
                .await
                .unwrap();
        }
    }
    assert_eq!(db.job(jobs[1].id).await.state, JobState::Suspended);
    // The node's leader pass (every rescue interval, 200 ms here) starts it.
    let oban = node(&db, "pass", 5).await;
    db.wait_for_state(jobs[1].id, JobState::Completed).await;
    assert_eq!(started(run, 5), [1]);
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_holder_finished_elsewhere_is_released_by_the_leader_pass_on_postgres() {
    a_holder_finished_elsewhere_is_released_by_the_leader_pass(Kind::Postgres).await;
}

#[tokio::test]
async fn a_holder_finished_elsewhere_is_released_by_the_leader_pass_on_sqlite() {
    a_holder_finished_elsewhere_is_released_by_the_leader_pass(Kind::Sqlite).await;
}

/// Sequenced jobs inserted in a transaction that rolls back leave nothing; in one that commits,
/// the first runs and the next waits.
async fn a_sequenced_insert_commits_or_rolls_back_with_its_transaction(kind: Kind) {
    let db = Db::new(kind).await;
    let run = run_id();
    let batch = || {
        vec![
            Step::new(run, 1, 0, 0).build().unwrap(),
            Step::new(run, 1, 1, 0).build().unwrap(),
        ]
    };
    let jobs = match kind {
        Kind::Sqlite => {
            let pool = db.sqlite_pool().unwrap();
            let mut tx = pool.begin().await.unwrap();
            oban::insert_all(&mut *tx, batch()).await.unwrap();
            tx.rollback().await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            let jobs = oban::insert_all(&mut *tx, batch()).await.unwrap();
            tx.commit().await.unwrap();
            jobs
        }
        _ => {
            let pool = db.pg_pool().unwrap();
            let mut tx = pool.begin().await.unwrap();
            oban::insert_all(&mut *tx, batch()).await.unwrap();
            tx.rollback().await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            let jobs = oban::insert_all(&mut *tx, batch()).await.unwrap();
            tx.commit().await.unwrap();
            jobs
        }
    };
    assert_eq!(
        db.count(JobFilter::new()).await,
        2,
        "only the committed ones"
    );
    assert_eq!(
        (jobs[0].state, jobs[1].state),
        (JobState::Available, JobState::Suspended)
    );
    let oban = node(&db, "tx", 5).await;
    db.wait_for_state(jobs[1].id, JobState::Completed).await;
    assert_eq!(started(run, 1), [0, 1]);
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_sequenced_insert_commits_or_rolls_back_with_its_transaction_on_postgres() {
    a_sequenced_insert_commits_or_rolls_back_with_its_transaction(Kind::Postgres).await;
}

#[tokio::test]
async fn a_sequenced_insert_commits_or_rolls_back_with_its_transaction_on_sqlite() {
    a_sequenced_insert_commits_or_rolls_back_with_its_transaction(Kind::Sqlite).await;
}

/// A job inserted (through another pool) while the last job of its sequence finishes is never
/// left waiting: `rounds` times, insert a job, then another after 0 to 3 ms, and wait for the
/// second to complete. No leader pass helps (its interval is an hour here).
async fn an_insert_racing_the_last_ack_never_strands_a_job(kind: Kind, rounds: u32) {
    let db = Db::new(kind).await;
    let oban = db
        .builder("race")
        .queue("seq", 10)
        .rescue(Duration::from_secs(3600), Duration::from_secs(60))
        .register::<Step>()
        .start()
        .await
        .unwrap();
    let other = db.another_engine().await;
    let run = run_id();
    for round in 0..rounds {
        let account = 1000 + round;
        let first = db
            .insert(Step::new(run, account, 0, 0).build().unwrap())
            .await;
        let delay = Duration::from_micros(u64::from(round % 8) * 400);
        let second = tokio::spawn({
            let other = Arc::clone(&other);
            async move {
                tokio::time::sleep(delay).await;
                other
                    .job_insert_many(vec![Step::new(run, account, 1, 0).build().unwrap()])
                    .await
                    .unwrap()
                    .remove(0)
            }
        })
        .await
        .unwrap();
        wait::wait_until_every(
            format!(
                "round {round}: job {} completes after {}",
                second.id, first.id
            ),
            Duration::from_secs(10),
            Duration::from_millis(2),
            async || db.job(second.id).await.state == JobState::Completed,
        )
        .await;
    }
    assert_eq!(
        db.count(JobFilter::new().state(JobState::Suspended)).await,
        0
    );
    assert_eq!(overlaps(run), Vec::new());
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_insert_racing_the_last_ack_never_strands_a_job_on_postgres() {
    an_insert_racing_the_last_ack_never_strands_a_job(Kind::Postgres, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_racing_the_last_ack_never_strands_a_job_on_sqlite() {
    an_insert_racing_the_last_ack_never_strands_a_job(Kind::Sqlite, 200).await;
}

/// A unique sequenced job is allowed: its duplicate conflicts as usual; a workflow step in a
/// sequence is refused with a reason; so is an empty key.
async fn unique_sequences_are_allowed_and_workflow_steps_refused(kind: Kind) {
    let db = Db::new(kind).await;
    let unique = || {
        NewJob::new("Seq.Unique", json!({"id": 1}))
            .queue("nowhere")
            .sequence("shared", OnFailure::Release)
            .unique(oban::UniqueOptions::new())
    };
    let first = db.insert(unique()).await;
    let again = db.insert(unique()).await;
    assert!(again.conflict && again.id == first.id, "{again:?}");
    let next = db
        .insert(
            NewJob::new("Seq.Other", json!({}))
                .queue("nowhere")
                .sequence("shared", OnFailure::Release),
        )
        .await;
    assert_eq!(
        (first.state, next.state),
        (JobState::Available, JobState::Suspended)
    );

    let step = NewJob::new("Seq.Step", json!({}))
        .meta("workflow_id", "w1")
        .meta("name", "a")
        .meta("deps", json!([]))
        .sequence("k", OnFailure::Release);
    let refused = db.engine.job_insert_many(vec![step]).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("both a workflow step and in a sequence"),
        "{refused}"
    );
    let empty = NewJob::new("Seq.Empty", json!({})).sequence("", OnFailure::Release);
    assert!(db.engine.job_insert_many(vec![empty]).await.is_err());
}

#[tokio::test]
async fn unique_sequences_are_allowed_and_workflow_steps_refused_on_postgres() {
    unique_sequences_are_allowed_and_workflow_steps_refused(Kind::Postgres).await;
}

#[tokio::test]
async fn unique_sequences_are_allowed_and_workflow_steps_refused_on_sqlite() {
    unique_sequences_are_allowed_and_workflow_steps_refused(Kind::Sqlite).await;
}

/// The builder's raw key (shared by workers) and `not_in_sequence`.
#[tokio::test]
async fn a_raw_key_is_shared_across_workers_and_can_be_dropped() {
    let db = Db::new(Kind::Sqlite).await;
    let run = run_id();
    let a = Step::new(run, 1, 0, 0)
        .sequence("account:1")
        .build()
        .unwrap();
    let b = Quick::new(1).sequence("account:1").build().unwrap();
    let c = Step::new(run, 1, 1, 0).not_in_sequence().build().unwrap();
    assert_eq!(a.meta["sequence"], "account:1");
    assert!(c.meta.get("sequence").is_none());
    let jobs = db.insert_via_pool(vec![a, b, c]).await;
    let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
    assert_eq!(
        states,
        [
            JobState::Available,
            JobState::Suspended,
            JobState::Available
        ]
    );
}

/// Inline testing runs each job at its insert: a sequence holds trivially.
#[tokio::test]
async fn inline_mode_runs_sequenced_jobs_at_insert() {
    let oban = Oban::builder()
        .register::<Step>()
        .queue("seq", 5)
        .testing(oban::testing::Testing::Inline)
        .start()
        .await
        .unwrap();
    let run = run_id();
    for n in 0..3 {
        let job = Step::new(run, 9, n, 0).insert(&oban).await.unwrap();
        assert_eq!(job.state, JobState::Completed);
    }
    assert_eq!(started(run, 9), [0, 1, 2]);
}

/// A figure, not a check: how long one sequence of 200 jobs that do nothing takes from insert to
/// its last completion (each job waits for the previous one's ack and release), on one node and
/// on three. `cargo test --release --test sequences -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a figure for docs/flow_control.md"]
async fn figure_the_time_from_one_job_of_a_sequence_to_the_next() {
    for (kind, nodes) in [(Kind::Postgres, 1), (Kind::Postgres, 3), (Kind::Sqlite, 1)] {
        let db = Db::new(kind).await;
        let mut obans = Vec::new();
        for i in 0..nodes {
            obans.push(node(&db, &format!("figure-{i}"), 10).await);
        }
        let run = run_id();
        let jobs: Vec<NewJob> = (0..200)
            .map(|n| Step::new(run, 1, n, 0).build().unwrap())
            .collect();
        let began = std::time::Instant::now();
        let inserted = oban::insert_all(&obans[0], jobs).await.unwrap();
        let last = inserted.last().unwrap().id;
        wait::wait_until_every(
            "the last job completes",
            Duration::from_secs(120),
            Duration::from_millis(1),
            async || db.job(last).await.state == JobState::Completed,
        )
        .await;
        let elapsed = began.elapsed();
        eprintln!(
            "{kind:?}, {nodes} node(s): 200 jobs of one sequence in {elapsed:?}, {:?} from one to the next",
            elapsed / 200
        );
        for oban in obans {
            oban.shutdown(Duration::from_secs(5)).await;
        }
    }
}
