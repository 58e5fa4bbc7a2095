//! Leadership, notifications and producer heartbeats.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use oban::engine::{Channel, Notice};
use oban::NewJob;
use serde_json::json;

use crate::common::wait;
use crate::harness::{Db, Kind};
use crate::helpers::{close, ms};

pub(crate) async fn leader_election_holds_renews_and_hands_over(kind: Kind) {
    let db = Db::new(kind).await;
    let other = db.another_engine().await;
    let ttl = ms(600);
    assert!(db.engine.leader_elect("Oban", "a", ttl).await.unwrap());
    assert!(
        !other.leader_elect("Oban", "b", ttl).await.unwrap(),
        "a leads"
    );
    assert!(
        db.engine.leader_elect("Oban", "a", ttl).await.unwrap(),
        "renewed"
    );
    assert!(
        other.leader_elect("Other", "b", ttl).await.unwrap(),
        "names are separate"
    );
    // Not synchronisation: time passes so that, without the renewal at 350 ms, a's first lease
    // (600 ms) would have run out by the second check at 700 ms.
    tokio::time::sleep(ms(350)).await;
    assert!(db.engine.leader_elect("Oban", "a", ttl).await.unwrap());
    // Not synchronisation: 700 ms since a's first lease, 350 ms since its renewal.
    tokio::time::sleep(ms(350)).await;
    assert!(
        !other.leader_elect("Oban", "b", ttl).await.unwrap(),
        "the renewal extended the lease"
    );
    other.leader_resign("Oban", "b").await.unwrap();
    assert!(
        !other.leader_elect("Oban", "b", ttl).await.unwrap(),
        "resigning what one does not hold changes nothing"
    );
    db.engine.leader_resign("Oban", "a").await.unwrap();
    assert!(
        other.leader_elect("Oban", "b", ttl).await.unwrap(),
        "taken over at once"
    );
    // Not synchronisation: b's lease (600 ms) runs out without a renewal.
    tokio::time::sleep(ms(700)).await;
    assert!(
        db.engine.leader_elect("Oban", "a", ttl).await.unwrap(),
        "after the TTL"
    );

    // Many contenders at once: exactly one wins.
    let mut tasks = Vec::new();
    let name = format!("race-{}", uuid::Uuid::new_v4().simple());
    for i in 0..6 {
        let engine = if i % 2 == 0 {
            Arc::clone(&db.engine)
        } else {
            Arc::clone(&other)
        };
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            engine
                .leader_elect(&name, &format!("n{i}"), Duration::from_secs(5))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
}

pub(crate) async fn notify_reaches_every_listener_on_the_database(kind: Kind) {
    let db = Db::new(kind).await;
    let other = db.another_engine().await;
    let (stop, stop_rx) = tokio::sync::watch::channel(None);
    let mut sinks = Vec::new();
    for engine in [&db.engine, &other] {
        let (sink, notices) = tokio::sync::mpsc::unbounded_channel();
        assert!(
            engine.listen(sink, stop_rx.clone()).await.unwrap(),
            "notifications work"
        );
        sinks.push(notices);
    }
    other
        .notify(
            Channel::Signal,
            json!({"action": "pause", "queue": "mailers"}),
        )
        .await
        .unwrap();
    for rx in &mut sinks {
        let Notice::Signal(signal) = wait::recv(rx, "the pause signal", NOTICE_LIMIT).await else {
            panic!("a signal")
        };
        assert_eq!(
            (signal.command.action(), signal.queue.as_deref()),
            ("pause", Some("mailers"))
        );
    }
    db.engine
        .notify(Channel::Leader, json!({"down": "Oban"}))
        .await
        .unwrap();
    for rx in &mut sinks {
        assert_eq!(
            wait::recv(rx, "the leader-down notice", NOTICE_LIMIT).await,
            Notice::LeaderDown {
                name: "Oban".into()
            }
        );
    }
    // An insert of runnable jobs notifies their queues, once each.
    other
        .job_insert_many(vec![
            NewJob::new("W", json!({})).queue("alpha"),
            NewJob::new("W", json!({})).queue("alpha"),
            NewJob::new("W", json!({}))
                .queue("beta")
                .schedule_in(Duration::from_secs(60)),
        ])
        .await
        .unwrap();
    for rx in &mut sinks {
        assert_eq!(
            wait::recv(rx, "the insert notice", NOTICE_LIMIT).await,
            Notice::Insert {
                queue: "alpha".into()
            }
        );
    }
    // Not synchronisation: a window in which a notice for the scheduled job, or a second one for
    // alpha, would arrive.
    tokio::time::sleep(ms(200)).await;
    for rx in &mut sinks {
        assert!(
            rx.try_recv().is_err(),
            "no notice for a scheduled job, none twice"
        );
    }
    // Stopping ends listening.
    stop.send(Some(tokio::time::Instant::now())).unwrap();
    for rx in &mut sinks {
        wait::closed(rx, "listening to end", NOTICE_LIMIT).await;
    }
}

/// How long a notice may take to arrive.
const NOTICE_LIMIT: Duration = Duration::from_secs(5);

pub(crate) async fn producer_heartbeats_are_listed_and_deleted(kind: Kind) {
    let db = Db::new(kind).await;
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    db.engine
        .producer_heartbeat(
            a,
            "node-1",
            "mailers",
            json!({"limit": 5, "paused": false, "running": 0}),
        )
        .await
        .unwrap();
    db.engine
        .producer_heartbeat(b, "node-2", "default", json!({"limit": 1}))
        .await
        .unwrap();
    let first = db.engine.producer_list(Some("mailers")).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (
            first[0].uuid,
            first[0].node.as_str(),
            first[0].queue.as_str()
        ),
        (a, "node-1", "mailers")
    );
    assert_eq!(first[0].meta["limit"], 5);
    assert!(close(
        first[0].updated_at,
        Utc::now(),
        Duration::from_secs(2)
    ));
    // Not synchronisation: the clock moves on, so the next heartbeat's updated_at is later.
    tokio::time::sleep(ms(20)).await;
    db.engine
        .producer_heartbeat(
            a,
            "node-1",
            "mailers",
            json!({"limit": 9, "paused": true, "running": 2}),
        )
        .await
        .unwrap();
    let beat = db.engine.producer_list(Some("mailers")).await.unwrap();
    assert_eq!(
        beat[0].meta,
        json!({"limit": 9, "paused": true, "running": 2, "runtime": "rust"}),
        "the heartbeat's meta, marked as this runtime's"
    );
    assert_eq!(
        beat[0].started_at, first[0].started_at,
        "started_at is kept"
    );
    assert!(beat[0].updated_at > first[0].updated_at);
    let all: Vec<String> = db
        .engine
        .producer_list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.queue)
        .collect();
    assert_eq!(all, ["default", "mailers"], "ordered by queue");
    db.engine.producer_delete(a).await.unwrap();
    db.engine.producer_delete(a).await.unwrap();
    assert!(db
        .engine
        .producer_list(Some("mailers"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(db.engine.producer_list(None).await.unwrap().len(), 1);
}
