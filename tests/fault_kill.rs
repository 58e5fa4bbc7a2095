//! Fault suite (a): three node processes work 20,000 jobs that fail, snooze and complete while
//! nodes are killed with SIGKILL six times, each replaced by a new one. At the end no job is lost
//! or left `executing` or `available`, and every job that ran twice for the same attempt ran the
//! first time on a node that was killed.
//!
//! Every execution writes a marker row (job, attempt, snooze count, node) before its work, so the
//! test counts executions, not only outcomes.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::process::{child_node_env, spawn_child_node, until_parent_gone, ChildGuard};
use common::wait::wait_until_every;
use oban::{Backoff, JobContext, JobError, NewJob, Oban, Outcome, Worker, WorkerOptions};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

const JOBS: i64 = 20_000;
const KILLS: usize = 6;

/// A job that fails its first attempt (n % 10 == 0), snoozes once (n % 10 == 1), or completes.
#[derive(Serialize, Deserialize)]
struct Chaos {
    n: i64,
}

impl Worker for Chaos {
    const NAME: &'static str = "Test.Chaos";

    fn options() -> WorkerOptions {
        WorkerOptions::new().backoff(Backoff::Constant(Duration::from_millis(100)))
    }

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        let job = ctx.job();
        let snoozed = job
            .meta
            .get("snoozed")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        let pool = ctx.state::<PgPool>();
        sqlx::query(
            "INSERT INTO fault_marks (job_id, attempt, snoozed, node) VALUES ($1, $2, $3, $4)",
        )
        .bind(job.id)
        .bind(job.attempt)
        .bind(snoozed)
        .bind(&job.attempted_by[0])
        .execute(&*pool)
        .await
        .map_err(|e| JobError::new(e.to_string()))?;
        // The job's work, long enough that a killed node always has jobs in flight.
        tokio::time::sleep(Duration::from_millis(2 + (self.n % 7) as u64)).await;
        match self.n % 10 {
            0 if job.attempt == 1 => Err(JobError::new("the first attempt fails")),
            1 if snoozed == 0 => Ok(Outcome::Snooze(Duration::from_millis(100))),
            _ => Ok(Outcome::Complete),
        }
    }
}

/// Not a test: the body of a child node process, run by `spawn_node` below.
#[tokio::test]
#[ignore = "runs only as a child process of `fault_suite_nodes_killed_six_times_lose_nothing`"]
async fn chaos_child_node() {
    let Some((url, node)) = child_node_env() else {
        return;
    };
    let marks = PgPool::connect(&url).await.expect("child connects");
    let oban = Oban::builder()
        .database(url)
        .node(node)
        .queue("default", 10)
        .register::<Chaos>()
        .state(marks)
        .migrate(false)
        .heartbeat_interval(Duration::from_millis(250))
        .rescue(Duration::from_millis(250), Duration::from_secs(1))
        .leader_ttl(Duration::from_secs(1))
        .stage_interval(Duration::from_millis(100))
        .start()
        .await
        .expect("child node starts");
    // Run until killed, or until the parent test is gone (its end of our stdin closes).
    until_parent_gone(Duration::from_secs(600)).await;
    oban.shutdown(Duration::from_secs(1)).await;
}

fn spawn_node(url: &str, node: &str) -> ChildGuard {
    spawn_child_node("chaos_child_node", url, node)
}

async fn unfinished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM oban_jobs WHERE state <> 'completed'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// How often the test polls the database: counting 20,000 rows is not free.
const POLL: Duration = Duration::from_millis(100);

#[tokio::test]
async fn fault_suite_nodes_killed_six_times_lose_nothing() {
    let (pool, name) = common::empty_database().await;
    oban::migrate(&pool).await.unwrap();
    sqlx::query(
        "CREATE TABLE fault_marks (job_id bigint, attempt int, snoozed bigint, node text,
                                   at timestamptz DEFAULT clock_timestamp())",
    )
    .execute(&pool)
    .await
    .unwrap();
    let url = common::database_url_for(&name);
    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|n| NewJob::new("Test.Chaos", json!({"n": n})))
        .collect();
    oban::insert_all(&pool, jobs).await.unwrap();

    let mut spawned = 0;
    let mut next_node = || {
        spawned += 1;
        format!("chaos-{spawned}")
    };
    let mut nodes: Vec<ChildGuard> = (0..3).map(|_| spawn_node(&url, &next_node())).collect();
    let mut killed: HashSet<String> = HashSet::new();

    // Six kills, spread over the run: each when another sixth of the jobs has finished, of a
    // node chosen at random, which is replaced at once.
    for kill in 1..=KILLS as i64 {
        let target = JOBS - JOBS * kill / (KILLS as i64 + 2);
        wait_until_every(
            format!("{} jobs left before kill {kill}", target),
            Duration::from_secs(120),
            POLL,
            async || unfinished(&pool).await <= target,
        )
        .await;
        let victim = nodes.remove(rand::thread_rng().gen_range(0..nodes.len()));
        killed.insert(victim.name().to_owned());
        victim.kill(); // SIGKILL
        nodes.push(spawn_node(&url, &next_node()));
    }

    wait_until_every(
        "every job to complete",
        Duration::from_secs(180),
        POLL,
        async || unfinished(&pool).await == 0,
    )
    .await;
    drop(nodes);

    let (total, completed, left): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE state = 'completed'),
                count(*) FILTER (WHERE state IN ('executing', 'available')) FROM oban_jobs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((total, completed, left), (JOBS, JOBS, 0), "nothing lost");

    // Every job ran at least once per planned attempt.
    let never_ran: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM oban_jobs j WHERE NOT EXISTS (SELECT 1 FROM fault_marks m WHERE m.job_id = j.id)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(never_ran, 0, "every job left a marker");

    // A job runs twice when it fails or snoozes once (n % 10 is 0 or 1), else once. Every run
    // beyond those is a duplicate, and must be explained by a kill: an earlier run of the job on
    // a node that was killed.
    let runs: Vec<(i64, i64, Vec<String>)> = sqlx::query_as(
        "SELECT j.id, (j.args->>'n')::int8 % 10, array_agg(m.node ORDER BY m.at)
         FROM oban_jobs j JOIN fault_marks m ON m.job_id = j.id GROUP BY j.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut duplicates = 0;
    let unexplained: Vec<_> = runs
        .iter()
        .filter(|(_, kind, nodes)| {
            let planned = if *kind <= 1 { 2 } else { 1 };
            let extra = nodes.len().saturating_sub(planned);
            duplicates += extra;
            let on_killed = nodes[..nodes.len() - 1]
                .iter()
                .filter(|node| killed.contains(*node))
                .count();
            on_killed < extra
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "duplicate executions not explained by a kill (killed: {killed:?}): {unexplained:?}"
    );
    let failed_then_completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM oban_jobs WHERE (args->>'n')::int % 10 = 0 AND attempt >= 2",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        failed_then_completed,
        JOBS / 10,
        "every job planned to fail once was retried"
    );
    eprintln!(
        "fault suite (a): {JOBS} jobs, {KILLS} kills of {killed:?}, {duplicates} duplicate executions, each after a run on a killed node"
    );
}
