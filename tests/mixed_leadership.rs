//! Leadership beside Elixir Oban nodes: the row `"Oban"` in `oban_peers` held by a node that is
//! not a Rust node. Rust cron entries and the heartbeat lifeline still run on the Rust leader;
//! staging and pruning wait for the shared row; there is never more than one Rust leader.

mod common;

use std::time::Duration;

use common::wait;
use oban::engine::{Engine as _, Notifier as _, Peer as _};
use oban::engines::postgres::PostgresEngine;
use oban::{NewJob, Oban};
use serde_json::json;
use sqlx::postgres::PgListener;
use sqlx::PgPool;

const ELIXIR_NODE: &str = "elixir@web-1";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The shared row, held by an Elixir node until `expires_in` from now.
async fn elixir_leads(pool: &PgPool, expires_in: &str) {
    sqlx::query(
        "INSERT INTO oban_peers (name, node, started_at, expires_at)
         VALUES ('Oban', $1, timezone('UTC', now()), timezone('UTC', now()) + $2::interval)",
    )
    .bind(ELIXIR_NODE)
    .bind(expires_in)
    .execute(pool)
    .await
    .unwrap();
}

/// The holder of leadership row `name`, if its term runs.
async fn holder(pool: &PgPool, name: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT node FROM oban_peers WHERE name = $1 AND expires_at > timezone('UTC', now())",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .unwrap()
}

fn builder(pool: &PgPool, node: &str) -> oban::Builder {
    Oban::builder()
        .pool(pool.clone())
        .node(node)
        .queue("default", 2)
        .leader_ttl(ms(900))
        .heartbeat_interval(ms(100))
        .stage_interval(ms(50))
        .cron(
            "* * * * *",
            NewJob::new("Test.Tick", json!({})).queue("cron"),
        )
}

/// What must hold at every moment: at most one node believes it leads the Rust nodes, and it
/// is the holder of the Rust row; none believes it holds the shared row while Elixir does.
async fn one_rust_leader_at_most(pool: &PgPool, nodes: &[Oban], elixir_holds_shared: bool) {
    // A node believes it leads only while its row runs, so a believer holds the row at some
    // moment between the two reads.
    let before = holder(pool, "Oban.rust").await;
    let believers: Vec<&str> = nodes
        .iter()
        .filter(|n| n.is_leader())
        .map(Oban::node)
        .collect();
    let after = holder(pool, "Oban.rust").await;
    assert!(believers.len() <= 1, "several Rust leaders: {believers:?}");
    if let Some(leader) = believers.first() {
        assert!(
            before.as_deref() == Some(*leader) || after.as_deref() == Some(*leader),
            "{leader} believes it leads; the row was held by {before:?}, then {after:?}"
        );
    }
    if elixir_holds_shared {
        assert!(nodes.iter().all(|n| !n.is_shared_leader()));
        assert_eq!(holder(pool, "Oban").await.as_deref(), Some(ELIXIR_NODE));
    }
}

/// Cron jobs by minute slot.
async fn cron_slots(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT meta->>'cron_at', count(*) FROM oban_jobs WHERE meta->>'cron' = 'true'
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn rust_cron_fires_exactly_once_per_minute_while_an_elixir_node_leads() {
    let pool = common::test_pool().await;
    elixir_leads(&pool, "1 day").await;
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(builder(&pool, name).start().await.unwrap());
    }
    // The Rust leader's first cron pass inserts the minutes of its catch-up window (TTL + 1
    // minute): one or two every-minute slots at once, without waiting for a minute to turn.
    wait::wait_until("a cron job", Duration::from_secs(10), async || {
        !cron_slots(&pool).await.is_empty()
    })
    .await;
    wait::sample_for(Duration::from_secs(1), ms(50), async || {
        one_rust_leader_at_most(&pool, &nodes, true).await;
    })
    .await;

    // The Rust leader stops; another Rust node takes over at once (its resignation is
    // announced), and its own catch-up pass over the same minutes inserts nothing twice.
    let leader = nodes
        .iter()
        .position(Oban::is_leader)
        .expect("a Rust leader");
    let old = nodes.remove(leader);
    old.shutdown(Duration::from_secs(1)).await;
    wait::wait_until("a new Rust leader", Duration::from_secs(3), async || {
        nodes.iter().any(Oban::is_leader)
    })
    .await;
    wait::sample_for(Duration::from_secs(1), ms(50), async || {
        one_rust_leader_at_most(&pool, &nodes, true).await;
    })
    .await;

    let slots = cron_slots(&pool).await;
    assert!(!slots.is_empty());
    assert!(
        slots.iter().all(|(_, count)| *count == 1),
        "one job per minute slot: {slots:?}"
    );
    // Every slot is a minute of the last few.
    let now = chrono::Utc::now();
    for (slot, _) in &slots {
        let at = chrono::DateTime::parse_from_rfc3339(slot).unwrap();
        let age = now.signed_duration_since(at);
        assert!(
            age >= chrono::Duration::zero() && age < chrono::Duration::minutes(3),
            "slot {slot}"
        );
    }
    for node in &nodes {
        node.shutdown(Duration::from_secs(1)).await;
    }
    assert_eq!(holder(&pool, "Oban").await.as_deref(), Some(ELIXIR_NODE));
}

#[tokio::test]
async fn staging_and_pruning_wait_for_the_shared_row_and_run_once_it_expires() {
    let pool = common::test_pool().await;
    elixir_leads(&pool, "1 day").await;
    let engine = PostgresEngine::new(pool.clone());
    // Due a minute ago, in a queue no node runs: staging makes it available, nothing runs it.
    let due = engine
        .job_insert_many(vec![NewJob::new("Test.Due", json!({}))
            .queue("elsewhere")
            .schedule_in(Duration::from_secs(3600))])
        .await
        .unwrap()
        .remove(0);
    let finished = engine
        .job_insert_many(vec![NewJob::new("Test.Old", json!({})).queue("elsewhere")])
        .await
        .unwrap()
        .remove(0);
    sqlx::query(
        "UPDATE oban_jobs SET scheduled_at = timezone('UTC', now()) - interval '1 minute'
         WHERE id = $1",
    )
    .bind(due.id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE oban_jobs SET state = 'completed',
           completed_at = timezone('UTC', now()) - interval '2 days' WHERE id = $1",
    )
    .bind(finished.id)
    .execute(&pool)
    .await
    .unwrap();

    let nodes = vec![
        builder(&pool, "a")
            .prune(Some(Duration::from_secs(3600)), ms(50))
            .start()
            .await
            .unwrap(),
        builder(&pool, "b")
            .prune(Some(Duration::from_secs(3600)), ms(50))
            .start()
            .await
            .unwrap(),
    ];
    wait::wait_until("a Rust leader", Duration::from_secs(3), async || {
        nodes.iter().any(Oban::is_leader)
    })
    .await;
    let state = async |id: i64| -> Option<String> {
        sqlx::query_scalar("SELECT state::text FROM oban_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&pool)
            .await
            .unwrap()
    };
    // Many stage and prune intervals (50 ms) pass: neither runs on a Rust node.
    wait::sample_for(ms(600), ms(50), async || {
        one_rust_leader_at_most(&pool, &nodes, true).await;
        assert_eq!(state(due.id).await.as_deref(), Some("scheduled"));
        assert_eq!(state(finished.id).await.as_deref(), Some("completed"));
    })
    .await;

    // The Elixir node's term runs out (it stopped without resigning): the Rust leader takes
    // the shared row at its next renewal, then stages and prunes.
    sqlx::query(
        "UPDATE oban_peers SET expires_at = timezone('UTC', now()) - interval '1 second'
         WHERE name = 'Oban'",
    )
    .execute(&pool)
    .await
    .unwrap();
    wait::wait_until(
        "the shared row is taken",
        Duration::from_secs(3),
        async || nodes.iter().any(Oban::is_shared_leader),
    )
    .await;
    let shared = holder(&pool, "Oban").await;
    assert!(
        matches!(shared.as_deref(), Some("a" | "b")),
        "a Rust node holds the shared row: {shared:?}"
    );
    assert!(nodes.iter().filter(|n| n.is_shared_leader()).count() <= 1);
    wait::wait_until(
        "the due job is staged",
        Duration::from_secs(3),
        async || state(due.id).await.as_deref() == Some("available"),
    )
    .await;
    wait::wait_until(
        "the old job is pruned",
        Duration::from_secs(3),
        async || state(finished.id).await.is_none(),
    )
    .await;
    for node in &nodes {
        node.shutdown(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn the_heartbeat_lifeline_rescues_a_dead_rust_nodes_job_while_an_elixir_node_leads() {
    let pool = common::test_pool().await;
    elixir_leads(&pool, "1 day").await;
    let engine = PostgresEngine::new(pool.clone());
    // A Rust node that died holding a job: its producer's heartbeat stopped a minute ago.
    let dead = uuid::Uuid::new_v4();
    engine
        .producer_heartbeat(dead, "dead", "lost", json!({"limit": 1, "held": []}))
        .await
        .unwrap();
    let job = engine
        .job_insert_many(vec![NewJob::new("Test.Lost", json!({})).queue("lost")])
        .await
        .unwrap()
        .remove(0);
    let by = ["dead".to_owned(), dead.to_string()];
    let claimed = engine
        .job_fetch_available("lost", 1, &by, None)
        .await
        .unwrap();
    assert_eq!(claimed[0].id, job.id);
    sqlx::query(
        "UPDATE oban_producers SET updated_at = timezone('UTC', now()) - interval '1 minute'",
    )
    .execute(&pool)
    .await
    .unwrap();

    let node = builder(&pool, "a")
        .rescue(ms(50), ms(500))
        .start()
        .await
        .unwrap();
    assert!(node.is_leader());
    assert!(!node.is_shared_leader());
    let rescued =
        wait::wait_for_state_within(&pool, job.id, "available", Duration::from_secs(3)).await;
    assert_eq!(rescued.meta["rescued"], 1);
    assert_eq!(holder(&pool, "Oban").await.as_deref(), Some(ELIXIR_NODE));
    node.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_clean_stop_resigns_both_rows_and_announces_each_as_elixir_does() {
    let pool = common::test_pool().await;
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("public.oban_leader").await.unwrap();
    let node = builder(&pool, "a").start().await.unwrap();
    assert!(node.is_leader() && node.is_shared_leader());
    assert_eq!(holder(&pool, "Oban").await.as_deref(), Some("a"));
    assert_eq!(holder(&pool, "Oban.rust").await.as_deref(), Some("a"));
    node.shutdown(Duration::from_secs(1)).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_peers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let mut downs = Vec::new();
    for _ in 0..2 {
        let notice = wait::within("a leader notice", Duration::from_secs(3), listener.recv())
            .await
            .unwrap();
        downs.push(notice.payload().to_owned());
    }
    // The shared row first, in Elixir's payload, so Elixir nodes elect at once.
    assert_eq!(downs, [r#"{"down":"Oban"}"#, r#"{"down":"Oban.rust"}"#]);
}

#[tokio::test]
async fn an_elixir_leaders_down_notice_hands_the_shared_row_to_the_rust_leader_at_once() {
    let pool = common::test_pool().await;
    elixir_leads(&pool, "1 day").await;
    // Renewals every 10 s: only the notice can explain a take-over within 2 s.
    let node = builder(&pool, "a")
        .leader_ttl(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    assert!(node.is_leader() && !node.is_shared_leader());
    // What Elixir's peer does on a clean stop: delete its row, then notify
    // (`%{down: inspect(conf.name)}`, as Elixir 2.15-2.21 sent it, compressed).
    sqlx::query("DELETE FROM oban_peers WHERE name = 'Oban'")
        .execute(&pool)
        .await
        .unwrap();
    let fixtures = include_str!("fixtures/elixir_notifications.txt");
    let down = fixtures
        .lines()
        .find(|l| l.starts_with("legacy\tleader\t"))
        .and_then(|l| l.split('\t').nth(3))
        .expect("the leader fixture");
    sqlx::query("SELECT pg_notify('public.oban_leader', $1)")
        .bind(down)
        .execute(&pool)
        .await
        .unwrap();
    wait::wait_until(
        "the shared row is taken",
        Duration::from_secs(2),
        async || node.is_shared_leader(),
    )
    .await;
    assert_eq!(holder(&pool, "Oban").await.as_deref(), Some("a"));
    node.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_rust_leader_that_loses_its_row_gives_up_the_shared_row() {
    let pool = common::test_pool().await;
    let engine = PostgresEngine::new(pool.clone());
    let node = builder(&pool, "a").start().await.unwrap();
    assert!(node.is_shared_leader());
    // Another Rust node takes the Rust row (as after this node was partitioned past its TTL).
    sqlx::query(
        "UPDATE oban_peers SET node = 'b',
           expires_at = timezone('UTC', now()) + interval '1 minute' WHERE name = 'Oban.rust'",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(!engine
        .leader_elect("Oban.rust", "a", Duration::from_secs(60))
        .await
        .unwrap());
    engine
        .notify(oban::engine::Channel::Leader, json!({"down": "Oban.rust"}))
        .await
        .unwrap();
    wait::wait_until("a steps down", Duration::from_secs(3), async || {
        !node.is_leader() && !node.is_shared_leader()
    })
    .await;
    wait::wait_until(
        "the shared row is free",
        Duration::from_secs(3),
        async || holder(&pool, "Oban").await.is_none(),
    )
    .await;
    node.shutdown(Duration::from_secs(1)).await;
}
