//! Three worker processes (real OS processes, this test binary re-run as a node) share one
//! database: 10,000 jobs complete, a node killed with SIGKILL has its jobs rescued, and a killed
//! leader is replaced.

mod common;

use std::time::Duration;

use common::process::{child_node_env, spawn_child_node, until_parent_gone, ChildGuard};
use common::wait::wait_until_every;
use oban::{JobContext, JobError, NewJob, Oban, Outcome, Worker};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

#[derive(Serialize, Deserialize)]
struct Work {
    n: i64,
}

impl Worker for Work {
    const NAME: &'static str = "Test.Work";
    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        // The job's work, long enough that a killed node always has jobs in flight.
        tokio::time::sleep(Duration::from_millis(5 + (self.n % 20) as u64)).await;
        let _ = ctx.job().id;
        Ok(Outcome::Complete)
    }
}

/// Not a test: the body of a child node process, run by `spawn_node` below.
#[tokio::test]
#[ignore = "runs only as a child process of `nodes_share_work_survive_sigkill_and_replace_the_leader`"]
async fn child_node() {
    let Some((url, node)) = child_node_env() else {
        return;
    };
    let oban = Oban::builder()
        .database(url)
        .node(node)
        .queue("default", 10)
        .register::<Work>()
        .migrate(false)
        .heartbeat_interval(Duration::from_millis(250))
        .rescue(Duration::from_millis(250), Duration::from_secs(1))
        .leader_ttl(Duration::from_secs(1))
        .stage_interval(Duration::from_millis(200))
        .start()
        .await
        .expect("child node starts");
    // Run until killed, or until the parent test is gone even if it could not kill us (its end
    // of our stdin closes), and at most 10 minutes.
    until_parent_gone(Duration::from_secs(600)).await;
    oban.shutdown(Duration::from_secs(1)).await;
}

/// A node process, killed when the guard drops (when the test ends, whether or not it passed).
fn spawn_node(url: &str, node: &str) -> ChildGuard {
    spawn_child_node("child_node", url, node)
}

async fn completed(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM oban_jobs WHERE state = 'completed'")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn leader(pool: &PgPool) -> Option<String> {
    sqlx::query_scalar(
        "SELECT node FROM oban_peers WHERE name = 'Oban' AND expires_at > timezone('UTC', now())",
    )
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// How often the test polls the database: counting 10,000 rows is not free.
const POLL: Duration = Duration::from_millis(50);

#[tokio::test]
async fn nodes_share_work_survive_sigkill_and_replace_the_leader() {
    let (pool, name) = common::empty_database().await;
    oban::migrate(&pool).await.unwrap();
    let url = common::database_url_for(&name);

    let jobs: Vec<NewJob> = (0..10_000)
        .map(|n| NewJob::new("Test.Work", json!({"n": n})))
        .collect();
    oban::insert_all(&pool, jobs).await.unwrap();

    let mut nodes: Vec<ChildGuard> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| spawn_node(&url, n))
        .collect();

    // Kill a node that is not the leader while it has jobs in flight.
    wait_until_every(
        "a third of the jobs",
        Duration::from_secs(120),
        POLL,
        async || completed(&pool).await >= 3_000,
    )
    .await;
    let current = leader(&pool).await.expect("a leader");
    let victim = nodes.iter().position(|n| n.name() != current).unwrap();
    let in_flight: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM oban_jobs WHERE state = 'executing' AND attempted_by[1] = $1",
    )
    .bind(nodes[victim].name())
    .fetch_one(&pool)
    .await
    .unwrap();
    let victim = nodes.remove(victim);
    let victim_name = victim.name().to_owned();
    victim.kill(); // SIGKILL

    // Kill the leader too; one of the others takes over.
    wait_until_every(
        "two thirds of the jobs",
        Duration::from_secs(120),
        POLL,
        async || completed(&pool).await >= 6_000,
    )
    .await;
    let current = leader(&pool).await.expect("a leader");
    let at = nodes
        .iter()
        .position(|n| n.name() == current)
        .expect("the leader is a live node");
    nodes.remove(at).kill();
    let survivor = nodes[0].name().to_owned();
    wait_until_every(
        "the survivor to lead",
        Duration::from_secs(10),
        POLL,
        async || leader(&pool).await.as_deref() == Some(survivor.as_str()),
    )
    .await;

    wait_until_every(
        "all jobs to complete",
        Duration::from_secs(180),
        POLL,
        async || completed(&pool).await == 10_000,
    )
    .await;
    for node in nodes {
        node.kill();
    }

    let (total, done, rescued): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE meta ? 'rescued') FROM oban_jobs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (total, done),
        (10_000, 10_000),
        "every job completed, none lost or duplicated"
    );
    assert!(
        in_flight > 0,
        "{victim_name} had jobs in flight when killed"
    );
    assert!(
        rescued >= 1,
        "the killed nodes' jobs were rescued ({rescued})"
    );
    let by_node: Vec<(String, i64)> =
        sqlx::query_as("SELECT attempted_by[1], count(*) FROM oban_jobs GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(by_node.len(), 3, "all three nodes worked: {by_node:?}");
}
