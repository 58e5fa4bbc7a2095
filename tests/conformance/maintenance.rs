//! Maintenance: staging due jobs, rescuing orphaned ones, pruning finished ones.

use std::time::Duration;

use oban::engine::Ack;
use oban::{JobFilter, JobState, NewJob};
use serde_json::json;

use crate::harness::{Db, Kind};
use crate::helpers::{
    ack, attempted_by, backdate_jobs, backdate_producers, error_entry, fetch, finish_as, ids, ms,
};

pub(crate) async fn staging_makes_due_jobs_available_within_the_limit(kind: Kind) {
    let db = Db::new(kind).await;
    let soon = db
        .insert(NewJob::new("W", json!({})).schedule_in(ms(300)))
        .await;
    let other = db
        .insert(
            NewJob::new("W", json!({}))
                .queue("other")
                .schedule_in(ms(310)),
        )
        .await;
    let later = db
        .insert(NewJob::new("W", json!({})).schedule_in(Duration::from_secs(3600)))
        .await;
    assert_eq!(soon.state, JobState::Scheduled);
    assert!(
        db.engine.job_stage_due(100).await.unwrap().is_empty(),
        "nothing due yet"
    );
    // Not synchronisation: time passes until both jobs are due (300 and 310 ms); staging is
    // what is tested, so it must not run before.
    tokio::time::sleep(ms(450)).await;
    assert_eq!(
        db.engine.job_stage_due(1).await.unwrap(),
        ["default"],
        "oldest first"
    );
    assert_eq!(db.job(soon.id).await.state, JobState::Available);
    assert_eq!(db.job(other.id).await.state, JobState::Scheduled, "limit 1");
    assert_eq!(db.engine.job_stage_due(100).await.unwrap(), ["other"]);
    assert_eq!(db.job(later.id).await.state, JobState::Scheduled);

    // Retryable jobs are staged too.
    let fetched = fetch(&db, "default", 1).await;
    db.engine
        .job_ack_many(&[Ack {
            schedule_in: Some(Duration::ZERO),
            error: Some(error_entry(1, "retry me")),
            ..ack(&fetched[0], JobState::Retryable)
        }])
        .await
        .unwrap();
    assert_eq!(db.job(soon.id).await.state, JobState::Retryable);
    assert_eq!(db.engine.job_stage_due(100).await.unwrap(), ["default"]);
    let next = fetch(&db, "default", 1).await;
    assert_eq!((next[0].id, next[0].attempt), (soon.id, 2));
}

pub(crate) async fn rescue_returns_orphaned_jobs_and_forgets_dead_producers(kind: Kind) {
    let db = Db::new(kind).await;
    let (live, dead, unknown) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    for uuid in [live, dead] {
        db.engine
            .producer_heartbeat(uuid, "conformance", "q", json!({}))
            .await
            .unwrap();
    }
    let mut held = Vec::new();
    for (queue, producer, max_attempts) in [
        ("q1", dead, 3),
        ("q2", dead, 1),
        ("q3", live, 3),
        ("q4", unknown, 3),
    ] {
        db.insert(
            NewJob::new("W", json!({}))
                .queue(queue)
                .max_attempts(max_attempts)
                .meta("keep", 1),
        )
        .await;
        let by = attempted_by(&producer.to_string());
        let jobs = db
            .engine
            .job_fetch_available(queue, 1, &by, None)
            .await
            .unwrap();
        held.push(jobs[0].clone());
    }
    // The dead producer's heartbeat and every attempt age past the one-minute rescue threshold,
    // moved back in the table rather than waited for: `live` stays a minute inside it however
    // slowly the statements run.
    let threshold = ms(60_000);
    let aged = ms(120_000);
    backdate_producers(&db, &[dead], aged).await;
    backdate_jobs(&db, "attempted_at", &ids(&held), aged).await;
    let rescued = db
        .engine
        .job_rescue_orphaned(threshold, threshold)
        .await
        .unwrap();
    assert_eq!(rescued, 3);

    let back = db.job(held[0].id).await;
    assert_eq!(back.state, JobState::Available);
    assert_eq!(
        back.attempt, 1,
        "the attempt counts: the node may have run it"
    );
    assert_eq!(back.meta["rescued"], 1);
    assert_eq!(back.meta["keep"], 1);
    assert_eq!(back.meta["rescued_from"], json!(held[0].attempted_by));
    let spent = db.job(held[1].id).await;
    assert_eq!(spent.state, JobState::Discarded);
    assert!(spent.discarded_at.is_some());
    assert_eq!(
        db.job(held[2].id).await.state,
        JobState::Executing,
        "a live producer's job"
    );
    assert_eq!(
        db.job(held[3].id).await.state,
        JobState::Available,
        "unknown producer, started long ago"
    );

    // Rescued again later: the counter grows.
    let refetched = fetch(&db, "q1", 1).await;
    assert_eq!(refetched[0].attempt, 2);
    // Its claimant has no row: it is rescued once the attempt is old. The dead producer stays
    // silent past 3x the threshold.
    backdate_jobs(&db, "attempted_at", &ids(&refetched), aged).await;
    backdate_producers(&db, &[dead], aged).await;
    assert_eq!(
        db.engine
            .job_rescue_orphaned(threshold, threshold)
            .await
            .unwrap(),
        1
    );
    assert_eq!(db.job(held[0].id).await.meta["rescued"], 2);
    // The dead producer, silent for 3x the threshold with nothing executing, is forgotten.
    let producers: Vec<uuid::Uuid> = db
        .engine
        .producer_list(None)
        .await
        .unwrap()
        .iter()
        .map(|p| p.uuid)
        .collect();
    assert_eq!(producers, [live]);
    assert_eq!(
        db.engine
            .job_rescue_orphaned(threshold, threshold)
            .await
            .unwrap(),
        0
    );
}

pub(crate) async fn prune_deletes_old_finished_jobs_in_batches(kind: Kind) {
    let db = Db::new(kind).await;
    let mut old = Vec::new();
    for (queue, state) in [
        ("a", JobState::Completed),
        ("b", JobState::Cancelled),
        ("c", JobState::Discarded),
        ("d", JobState::Completed),
        ("e", JobState::Completed),
    ] {
        let job = db.insert(NewJob::new("W", json!({})).queue(queue)).await;
        finish_as(&db, &job, state).await;
        old.push(job.id);
    }
    let waiting = db.insert(NewJob::new("W", json!({})).queue("f")).await;
    let running = db.insert(NewJob::new("W", json!({})).queue("g")).await;
    fetch(&db, "g", 1).await;
    // Not synchronisation: the finished jobs age past the 500 ms the pruner keeps.
    tokio::time::sleep(ms(800)).await;
    let recent = db.insert(NewJob::new("W", json!({})).queue("h")).await;
    finish_as(&db, &recent, JobState::Completed).await;

    assert_eq!(db.engine.job_prune(ms(500), 2).await.unwrap(), 2, "a batch");
    assert_eq!(db.engine.job_prune(ms(500), 10).await.unwrap(), 3);
    assert_eq!(db.engine.job_prune(ms(500), 10).await.unwrap(), 0);
    let mut left = ids(&db.jobs(JobFilter::new()).await);
    left.sort_unstable();
    assert_eq!(left, [waiting.id, running.id, recent.id]);
}

/// Regression (issue 16): the heartbeat lifeline rescued jobs of other Oban implementations: an
/// Elixir Oban job (`attempted_by` is `[node]`) once it had run past the unknown-producer age,
/// and a live Python Oban producer's job once its row was older than the rescue age (Python
/// refreshes its rows every 15 s, whatever our age). It rescues Rust producers' jobs only, and
/// forgets only Rust producers' rows.
pub(crate) async fn rescue_leaves_jobs_of_other_implementations_alone(kind: Kind) {
    let db = Db::new(kind).await;
    let (python, python_idle, rust_dead, gone) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    for uuid in [python, python_idle, rust_dead] {
        db.engine
            .producer_heartbeat(uuid, "node", "q", json!({"paused": false}))
            .await
            .unwrap();
    }
    // Python's rows: written by Python Oban, without this runtime's mark.
    let unmark = "UPDATE oban_producers SET meta = meta - 'runtime' WHERE uuid = ANY($1)";
    let unmark_sqlite =
        "UPDATE oban_producers SET meta = json_remove(meta, '$.runtime') WHERE uuid IN (?1, ?2)";
    if let Some(pool) = db.pg_pool() {
        // In the harness's prefix when it has one: the table is found through the search path.
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(db.prefix().name())
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(unmark)
            .bind([python, python_idle])
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    } else if let Some(pool) = db.sqlite_pool() {
        sqlx::query(unmark_sqlite)
            .bind(python.to_string())
            .bind(python_idle.to_string())
            .execute(pool)
            .await
            .unwrap();
    }
    let mut held = Vec::new();
    for (queue, by) in [
        ("elixir", vec!["elixir@web-1".to_owned()]),
        ("python", vec!["py-1".to_owned(), python.to_string()]),
        ("rust", attempted_by(&rust_dead.to_string())),
        ("gone", attempted_by(&gone.to_string())),
    ] {
        db.insert(NewJob::new("W", json!({})).queue(queue)).await;
        let jobs = db
            .engine
            .job_fetch_available(queue, 1, &by, None)
            .await
            .unwrap();
        held.push(jobs[0].clone());
    }
    // Not synchronisation: every row and every attempt ages past the 200 ms thresholds, and
    // past three times the rescue age (600 ms), after which dead producers are forgotten.
    tokio::time::sleep(ms(700)).await;
    let rescued = db
        .engine
        .job_rescue_orphaned(ms(200), ms(200))
        .await
        .unwrap();
    assert_eq!(
        rescued, 2,
        "the dead Rust producer's job and the unknown producer's"
    );
    assert_eq!(
        db.job(held[0].id).await.state,
        JobState::Executing,
        "Elixir's"
    );
    assert_eq!(
        db.job(held[1].id).await.state,
        JobState::Executing,
        "Python's"
    );
    assert_eq!(db.job(held[2].id).await.state, JobState::Available);
    assert_eq!(db.job(held[3].id).await.state, JobState::Available);
    // A second pass forgets the dead Rust producer, now with nothing executing; Python's rows
    // are Python's to forget.
    db.engine
        .job_rescue_orphaned(ms(200), ms(200))
        .await
        .unwrap();
    let mut producers: Vec<uuid::Uuid> = db
        .engine
        .producer_list(None)
        .await
        .unwrap()
        .iter()
        .map(|p| p.uuid)
        .collect();
    producers.sort();
    let mut expected = vec![python, python_idle];
    expected.sort();
    assert_eq!(producers, expected);
}
