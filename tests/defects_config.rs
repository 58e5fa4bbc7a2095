//! Issue 15, defects 4, 5 and 7: configuration that cannot panic or misbehave, a shutdown bounded
//! by its grace whatever the database does, and distinct default node names.
//!
//! Run: `cargo test --test defects_config -- --nocapture` (the shutdown test prints what it
//! measured).

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use common::wait;
use harness::{Db, Kind};
use oban::testing::{self, Enqueued, Testing};
use oban::{NewJob, Oban};
use sqlx::{Connection, PgConnection};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `start`'s error for `builder`, which must be a configuration error whose message mentions
/// every one of `words`.
async fn refused(builder: oban::Builder, words: &[&str]) -> String {
    let error = match builder.start().await {
        Ok(oban) => {
            oban.shutdown(Duration::ZERO).await;
            panic!("expected the configuration to be refused (mentioning {words:?})");
        }
        Err(error) => error,
    };
    let message = error.to_string();
    assert!(
        matches!(error, oban::Error::Config(_)),
        "a configuration error, got {message}"
    );
    for word in words {
        assert!(message.contains(word), "`{message}` names `{word}`");
    }
    message
}

#[tokio::test]
async fn a_zero_interval_is_refused_with_the_option_named() {
    let pool = common::test_pool().await;
    let base = || Oban::builder().pool(pool.clone()).testing(Testing::Manual);
    refused(
        base().poll_interval(Duration::ZERO),
        &["`poll_interval`", "at least"],
    )
    .await;
    refused(base().stage_interval(Duration::ZERO), &["`stage_interval`"]).await;
    refused(
        base().heartbeat_interval(Duration::ZERO),
        &["`heartbeat_interval`"],
    )
    .await;
    refused(
        base().rescue(Duration::ZERO, Duration::from_secs(60)),
        &["`rescue(interval, ..)`"],
    )
    .await;
    refused(
        base().prune(Some(Duration::from_secs(60)), Duration::ZERO),
        &["`prune(.., interval)`"],
    )
    .await;
    refused(
        base()
            .heartbeat_interval(ms(1))
            .rescue(ms(100), Duration::ZERO),
        &["`rescue(.., after)`", "zero"],
    )
    .await;
    // Intervals so long that the timers would overflow are refused too, with the way out.
    refused(
        base().prune(Some(Duration::from_secs(60)), Duration::MAX),
        &["`prune(.., interval)`", "prune(None, ..)"],
    )
    .await;
    refused(
        base().poll_interval(Duration::MAX),
        &["`poll_interval`", "at most"],
    )
    .await;
    // A zero dispatch cooldown is fine (no cooldown), and so are the smallest intervals.
    let oban = base()
        .dispatch_cooldown(Duration::ZERO)
        .poll_interval(ms(1))
        .stage_interval(ms(1))
        .start()
        .await
        .expect("the smallest intervals are accepted");
    oban.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn a_heartbeat_at_or_above_the_rescue_age_is_refused() {
    let pool = common::test_pool().await;
    let base = || Oban::builder().pool(pool.clone()).testing(Testing::Manual);
    // The default heartbeat (5 s) against an 8 s rescue age.
    let message = refused(
        base().rescue(Duration::from_secs(1), Duration::from_secs(8)),
        &[
            "`heartbeat_interval` (5s)",
            "`rescue(.., after)` (8s)",
            "run twice",
        ],
    )
    .await;
    assert!(message.contains("shorten"), "says what to do: {message}");
    // Equal, and just above half: one late heartbeat would get live jobs rescued.
    refused(
        base()
            .heartbeat_interval(ms(1000))
            .rescue(ms(100), ms(1000)),
        &["`heartbeat_interval`"],
    )
    .await;
    refused(
        base().heartbeat_interval(ms(501)).rescue(ms(100), ms(1000)),
        &["`heartbeat_interval`"],
    )
    .await;
    let oban = base()
        .heartbeat_interval(ms(500))
        .rescue(ms(100), ms(1000))
        .start()
        .await
        .expect("a heartbeat of half the rescue age is accepted");
    oban.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn forever_durations_do_not_overflow() {
    // A leader TTL of "forever" would keep a dead leader forever: refused, with the bounds.
    let pool = common::test_pool().await;
    refused(
        Oban::builder()
            .pool(pool.clone())
            .testing(Testing::Manual)
            .leader_ttl(Duration::MAX),
        &["`leader_ttl`", "between"],
    )
    .await;
    refused(
        Oban::builder()
            .pool(pool.clone())
            .testing(Testing::Manual)
            .dispatch_cooldown(Duration::MAX),
        &["`dispatch_cooldown`"],
    )
    .await;

    // Ages meaning "never" run: a node that never rescues and keeps finished jobs forever.
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("default", 2)
        .poll_interval(ms(50))
        .rescue(ms(20), Duration::MAX)
        .prune(Some(Duration::MAX), ms(20))
        .start()
        .await
        .expect("Duration::MAX ages are accepted");
    // The lifeline and the pruner run their statements with these ages, and check_queue
    // measures liveness with the rescue age.
    wait::wait_until("the node leads", Duration::from_secs(3), async || {
        oban.is_leader()
    })
    .await;
    wait::wait_until(
        "the producer is listed",
        Duration::from_secs(3),
        async || {
            oban.check_queue("default")
                .await
                .is_ok_and(|queues| queues.len() == 1)
        },
    )
    .await;
    // A forever grace, with nothing running, returns at once.
    wait::within(
        "shutdown(Duration::MAX)",
        Duration::from_secs(5),
        oban.shutdown(Duration::MAX),
    )
    .await;

    // The engines take "forever" ages as such.
    for kind in [Kind::Postgres, Kind::Sqlite] {
        let db = Db::new(kind).await;
        db.insert(NewJob::new("Test.Nap", serde_json::json!({ "ms": 0 })))
            .await;
        assert_eq!(
            db.engine
                .job_prune(Duration::MAX, 10)
                .await
                .expect("prune forever"),
            0,
            "{kind:?}"
        );
        assert_eq!(
            db.engine
                .job_rescue_orphaned(Duration::MAX, Duration::MAX)
                .await
                .expect("rescue never"),
            0,
            "{kind:?}"
        );
    }

    // A testing assertion that may wait forever, and finds its job at once.
    let oban = Oban::builder()
        .pool(pool)
        .testing(Testing::Manual)
        .start()
        .await
        .expect("start");
    oban.insert(NewJob::new("Test.Nap", serde_json::json!({ "ms": 0 })))
        .await
        .expect("insert");
    wait::within(
        "assert_enqueued(within MAX)",
        Duration::from_secs(5),
        testing::assert_enqueued(&oban, Enqueued::named("Test.Nap").within(Duration::MAX)),
    )
    .await;
    oban.shutdown(Duration::MAX).await;
}

/// While another session holds `ACCESS EXCLUSIVE` on `oban_jobs`, the node's fetch, stager,
/// lifeline and pruner statements block; shutdown still returns within grace + the margin.
#[tokio::test]
async fn shutdown_returns_within_its_grace_while_a_statement_blocks() {
    let (pool, name) = common::empty_database().await;
    oban::migrate(&pool).await.expect("migrate");
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("default", 2)
        .poll_interval(ms(20))
        .stage_interval(ms(20))
        .heartbeat_interval(ms(200))
        .rescue(ms(20), Duration::from_secs(1))
        .prune(Some(Duration::ZERO), ms(20))
        .start()
        .await
        .expect("start");
    wait::wait_until("the node leads", Duration::from_secs(3), async || {
        oban.is_leader()
    })
    .await;

    let mut locker = PgConnection::connect(&common::database_url_for(&name))
        .await
        .expect("connect");
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE oban_jobs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    // The fetch and at least one maintenance statement are waiting for the lock.
    wait::wait_until(
        "statements blocked on oban_jobs",
        Duration::from_secs(3),
        async || {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'oban_jobs'::regclass",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            waiting >= 3
        },
    )
    .await;

    let grace = ms(500);
    let bound = grace + Oban::SHUTDOWN_MARGIN + ms(250);
    let started = Instant::now();
    let returned = tokio::time::timeout(bound + Duration::from_secs(1), oban.shutdown(grace)).await;
    let took = started.elapsed();
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert!(
        returned.is_ok(),
        "shutdown({grace:?}) had not returned after {took:?} while statements were blocked"
    );
    println!("shutdown({grace:?}) with fetch, stage, rescue and prune blocked returned in {took:?} (bound {bound:?})");
    assert!(took <= bound, "shutdown took {took:?}, bound {bound:?}");
}

#[tokio::test]
async fn two_nodes_in_one_process_get_distinct_default_names() {
    let pool = common::test_pool().await;
    let start = || {
        Oban::builder()
            .pool(pool.clone())
            .queue("default", 1)
            .start()
    };
    let a = start().await.expect("first node");
    let b = start().await.expect("second node");
    assert_ne!(a.node(), b.node(), "two default node names in one process");
    assert!(
        !(a.is_leader() && b.is_leader()),
        "two nodes named {} and {} both lead",
        a.node(),
        b.node()
    );
    // An explicit name is kept as given.
    let c = Oban::builder()
        .pool(pool.clone())
        .testing(Testing::Manual)
        .node("web-1")
        .start()
        .await
        .expect("named node");
    assert_eq!(c.node(), "web-1");
    for node in [a, b, c] {
        node.shutdown(Duration::ZERO).await;
    }
}
