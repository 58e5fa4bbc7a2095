//! Schema prefixes (`Builder::prefix`, `migrate_prefix`, `Prefixed`): several isolated Oban
//! instances in one PostgreSQL database, as Elixir's and Python's `prefix` option; SQLite refuses
//! any prefix but the default.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::wait::{self, sample_for, wait_until};
use oban::engine::Engine;
use oban::engines::postgres::PostgresEngine;
use oban::{
    Backoff, JobContext, JobError, JobFilter, JobState, NewJob, Nodes, Oban, Outcome, Prefix,
    Prefixed, UniqueOptions, Worker, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

const LIMIT: Duration = Duration::from_secs(10);

/// Records which node ran it; fails its first `fail` attempts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tenant {
    label: String,
    #[serde(default)]
    fail: i32,
}

/// The labels a node's `Tenant` jobs ran with.
#[derive(Default, Clone)]
struct Ran(Arc<Mutex<Vec<String>>>);

impl Ran {
    fn labels(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Worker for Tenant {
    const NAME: &'static str = "Test.Tenant";

    fn options() -> WorkerOptions {
        WorkerOptions::new()
            .max_attempts(3)
            .backoff(Backoff::Constant(Duration::from_millis(100)))
    }

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        if ctx.job().attempt <= self.fail {
            return Err(JobError::new(format!("failure #{}", ctx.job().attempt)));
        }
        ctx.state::<Ran>().0.lock().unwrap().push(self.label);
        Ok(Outcome::Complete)
    }
}

fn job(label: &str) -> NewJob {
    NewJob::new(Tenant::NAME, json!({ "label": label }))
}

/// A node of `prefix` on `pool`, named `name`, running `default`, and what its jobs ran.
async fn node(pool: &PgPool, prefix: &str, name: &str, poll: Duration) -> (Oban, Ran) {
    let ran = Ran::default();
    let oban = Oban::builder()
        .pool(pool.clone())
        .prefix(prefix)
        .node(name)
        .queue("default", 5)
        .register::<Tenant>()
        .state(ran.clone())
        .poll_interval(poll)
        .stage_interval(Duration::from_millis(50))
        .heartbeat_interval(Duration::from_millis(50))
        .rescue(Duration::from_millis(50), Duration::from_millis(500))
        .start()
        .await
        .expect("start");
    (oban, ran)
}

/// The engine of `prefix` on `pool`, to read its jobs.
fn engine(pool: &PgPool, prefix: &str) -> PostgresEngine {
    PostgresEngine::with_prefix(pool.clone(), Prefix::new(prefix).unwrap())
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// What Oban objects the `public` schema holds: none, for a node whose prefix is elsewhere.
async fn public_objects(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public'
         UNION ALL SELECT t.typname::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = 'public'
         UNION ALL SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn two_prefixes_in_one_database_are_isolated() {
    let (pool, _) = common::empty_database().await;
    oban::migrate_prefix(&pool, "tenant_a").await.unwrap();
    oban::migrate_prefix(&pool, "tenant_b").await.unwrap();
    oban::migrate_prefix(&pool, "tenant_b").await.unwrap(); // idempotent
    assert_eq!(public_objects(&pool).await, Vec::<String>::new());
    let poll = Duration::from_millis(50);
    let (a, ran_a) = node(&pool, "tenant_a", "node-a", poll).await;
    let (b, ran_b) = node(&pool, "tenant_b", "node-b", poll).await;
    assert_eq!(a.prefix().name(), "tenant_a");
    // Each node leads its own prefix: leadership is per schema.
    wait_until("both nodes to lead", LIMIT, async || {
        a.is_leader() && b.is_leader()
    })
    .await;

    // A job in each prefix runs on its own node only, and is stored only there.
    let in_a = a.insert(job("for-a")).await.unwrap();
    let in_b = b.insert(job("for-b")).await.unwrap();
    wait::wait_for_job_state(
        &engine(&pool, "tenant_a"),
        in_a.id,
        JobState::Completed,
        LIMIT,
    )
    .await;
    wait::wait_for_job_state(
        &engine(&pool, "tenant_b"),
        in_b.id,
        JobState::Completed,
        LIMIT,
    )
    .await;
    assert_eq!(ran_a.labels(), ["for-a"]);
    assert_eq!(ran_b.labels(), ["for-b"]);
    let stored = "SELECT args->>'label' FROM tenant_a.oban_jobs UNION ALL SELECT 'b:' || (args->>'label') FROM tenant_b.oban_jobs ORDER BY 1";
    let labels: Vec<String> = sqlx::query_scalar(stored).fetch_all(&pool).await.unwrap();
    assert_eq!(labels, ["b:for-b", "for-a"]);
    assert_eq!(a.jobs(&JobFilter::all()).await.unwrap().len(), 1);

    // Producers: each prefix sees only its own node.
    let nodes = |infos: Vec<oban::QueueInfo>| infos.into_iter().map(|i| i.node).collect::<Vec<_>>();
    assert_eq!(nodes(a.check_queue("default").await.unwrap()), ["node-a"]);
    assert_eq!(nodes(b.check_queue("default").await.unwrap()), ["node-b"]);

    // A pause sent to every node of tenant_a's queue pauses node-a only.
    a.pause_queue("default", Nodes::All).await.unwrap();
    wait_until("tenant_a's queue to report paused", LIMIT, async || {
        a.check_queue("default").await.unwrap()[0].paused
    })
    .await;
    let held = a.insert(job("while-paused")).await.unwrap();
    let free = b.insert(job("b-not-paused")).await.unwrap();
    wait::wait_for_job_state(
        &engine(&pool, "tenant_b"),
        free.id,
        JobState::Completed,
        LIMIT,
    )
    .await;
    assert!(!b.check_queue("default").await.unwrap()[0].paused);
    sample_for(
        Duration::from_millis(300),
        Duration::from_millis(50),
        async || {
            let job = a.job(held.id).await.unwrap().unwrap();
            assert_eq!(
                job.state,
                JobState::Available,
                "a paused queue runs nothing"
            );
        },
    )
    .await;
    a.resume_queue("default", Nodes::All).await.unwrap();
    wait::wait_for_job_state(
        &engine(&pool, "tenant_a"),
        held.id,
        JobState::Completed,
        LIMIT,
    )
    .await;
    assert_eq!(ran_a.labels(), ["for-a", "while-paused"]);
    assert_eq!(ran_b.labels(), ["for-b", "b-not-paused"]);

    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
}

/// The safety net for statements left unqualified: `public` holds no Oban object at all, so any
/// statement that names a table, type or function without the prefix fails. Every path of the
/// engine runs: insert (plain, unique, in a transaction), fetch, acks of every kind, staging,
/// the lifeline, pruning, leadership, heartbeats, bulk operations, reindexing, notifications.
#[tokio::test]
async fn a_node_in_a_prefix_works_while_public_holds_no_oban_tables() {
    let (pool, _) = common::empty_database().await;
    // `start` migrates the node's prefix itself (the builder's `migrate(true)`).
    let (oban, ran) = node(&pool, "solo", "solo-node", Duration::from_millis(50)).await;
    assert_eq!(public_objects(&pool).await, Vec::<String>::new());
    let solo = engine(&pool, "solo");
    assert!(oban.is_leader(), "leadership in the prefix's oban_peers");
    // The Rust row and the row shared with Elixir Oban (no other node contends for it).
    assert_eq!(
        count(&pool, "SELECT count(*) FROM solo.oban_peers").await,
        2
    );

    // Insert, fetch, ack.
    let plain = oban.insert(job("plain")).await.unwrap();
    wait::wait_for_job_state(&solo, plain.id, JobState::Completed, LIMIT).await;

    // Unique: the second insert is the first job.
    let unique = || job("unique").unique(UniqueOptions::new());
    let first = oban.insert(unique()).await.unwrap();
    let again = oban.insert(unique()).await.unwrap();
    assert!(again.conflict);
    assert_eq!(again.id, first.id);

    // A failing attempt: retryable, staged, then completed.
    let retried = oban
        .insert(NewJob::new(
            Tenant::NAME,
            json!({"label": "retried", "fail": 1}),
        ))
        .await
        .unwrap();
    let done = wait::wait_for_job_state(&solo, retried.id, JobState::Completed, LIMIT).await;
    assert_eq!(done.attempt, 2);
    assert_eq!(done.errors.len(), 1);

    // Scheduled: staged when due.
    let later = oban
        .insert(job("scheduled").schedule_in(Duration::from_millis(200)))
        .await
        .unwrap();
    assert_eq!(later.state, JobState::Scheduled);
    wait::wait_for_job_state(&solo, later.id, JobState::Completed, LIMIT).await;

    // Bulk cancel, retry, delete.
    let far = oban
        .insert(job("far").schedule_in(Duration::from_secs(3600)))
        .await
        .unwrap();
    let filter = JobFilter::id(far.id);
    assert_eq!(oban.cancel_jobs(&filter).await.unwrap(), 1);
    assert_eq!(
        oban.job(far.id).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    assert_eq!(oban.retry_jobs(&filter).await.unwrap(), 1);
    wait::wait_for_job_state(&solo, far.id, JobState::Completed, LIMIT).await;
    assert_eq!(oban.delete_jobs(&filter).await.unwrap(), 1);
    assert!(oban.job(far.id).await.unwrap().is_none());

    // Inserted inside the caller's transaction, in the node's prefix.
    let mut tx = pool.begin().await.unwrap();
    let in_tx = job("in-tx").insert(oban.within(&mut *tx)).await.unwrap();
    tx.commit().await.unwrap();
    wait::wait_for_job_state(&solo, in_tx.id, JobState::Completed, LIMIT).await;

    // The lifeline: an executing job of a producer that stopped heartbeating is rescued, then
    // runs.
    let orphan = oban
        .insert(job("orphan").schedule_in(Duration::from_secs(3600)))
        .await
        .unwrap();
    let gone = uuid::Uuid::new_v4();
    // One transaction: a lifeline pass between the two statements would forget the producer
    // (silent, and no executing job names it yet), leaving the job to the much later rule for
    // unknown producers (seen in CI under load).
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO solo.oban_producers (uuid, node, queue, meta, updated_at)
         VALUES ($1, 'gone', 'default', '{\"runtime\": \"rust\"}', timezone('UTC', now()) - interval '1 hour')",
    )
    .bind(gone)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE solo.oban_jobs SET state = 'executing', attempt = 1,
           attempted_at = timezone('UTC', now()), attempted_by = ARRAY['gone', $2]
         WHERE id = $1",
    )
    .bind(orphan.id)
    .bind(gone.to_string())
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let rescued = wait::wait_for_job_state(&solo, orphan.id, JobState::Completed, LIMIT).await;
    assert_eq!(rescued.meta["rescued"], 1);

    // Heartbeats and producers.
    let queues = oban.check_queue("default").await.unwrap();
    assert_eq!(queues.len(), 1);
    assert_eq!(queues[0].node, "solo-node");

    // Reindexing finds and rebuilds the prefix's indexes (a rebuilt index has a new file).
    let files = "SELECT string_agg(c.relfilenode::text, ',' ORDER BY c.relname) FROM pg_class c
                 JOIN pg_index i ON i.indexrelid = c.oid WHERE i.indrelid = 'solo.oban_jobs'::regclass";
    let before: String = sqlx::query_scalar(files).fetch_one(&pool).await.unwrap();
    solo.schema_reindex().await.unwrap();
    let after: String = sqlx::query_scalar(files).fetch_one(&pool).await.unwrap();
    assert!(
        before.split(',').zip(after.split(',')).all(|(b, a)| b != a),
        "every index rebuilt: {before} -> {after}"
    );

    assert_eq!(
        ran.labels(),
        [
            "plain",
            "unique",
            "retried",
            "scheduled",
            "far",
            "in-tx",
            "orphan"
        ]
    );
    oban.shutdown(Duration::from_secs(5)).await;
    assert_eq!(public_objects(&pool).await, Vec::<String>::new());
}

/// An Elixir Oban schema installed in a prefix (Elixir's `prefix: "elixir"`) is kept as it is by
/// `migrate_prefix`, which adds only what this runtime needs, there; its jobs run.
#[tokio::test]
async fn an_elixir_schema_in_a_prefix_is_kept_and_its_jobs_run() {
    let (pool, _) = common::empty_database().await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql("CREATE SCHEMA elixir; SET search_path TO elixir;")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql(include_str!("fixtures/elixir_oban_v14.sql"))
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO oban_jobs (queue, worker, args) VALUES ('default', 'Test.Tenant', '{\"label\": \"from-elixir\"}');
         RESET search_path;",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    oban::migrate_prefix(&pool, "elixir").await.unwrap();
    // Elixir's own index over every state is still there: the table was kept.
    let kept = "SELECT count(*) FROM pg_indexes WHERE schemaname = 'elixir'
                AND indexname = 'oban_jobs_state_queue_priority_scheduled_at_id_index'";
    assert_eq!(count(&pool, kept).await, 1);
    assert_eq!(public_objects(&pool).await, Vec::<String>::new());
    let (oban, ran) = node(&pool, "elixir", "node-e", Duration::from_millis(50)).await;
    wait_until("the Elixir job to run", LIMIT, async || {
        ran.labels() == ["from-elixir"]
    })
    .await;
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_pruner_deletes_old_jobs_of_its_prefix() {
    let (pool, _) = common::empty_database().await;
    oban::migrate_prefix(&pool, "pruned").await.unwrap();
    sqlx::query(
        "INSERT INTO pruned.oban_jobs (state, queue, worker, args, completed_at)
         VALUES ('completed', 'default', 'Old', '{}', timezone('UTC', now()) - interval '2 hours')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let oban = Oban::builder()
        .pool(pool.clone())
        .prefix("pruned")
        .prune(Some(Duration::from_secs(3600)), Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    wait::wait_for_count(&pool, "SELECT count(*) FROM pruned.oban_jobs", 0, LIMIT).await;
    oban.shutdown(Duration::from_secs(5)).await;
}

/// Inserts from outside a node reach its prefix, and wake it through the prefix's insert channel
/// (the node polls once a minute, so a job that runs at once was announced).
#[tokio::test]
async fn inserts_through_a_pool_or_transaction_go_to_the_prefix_and_wake_its_node() {
    let (pool, _) = common::empty_database().await;
    oban::migrate_prefix(&pool, "tenant_a").await.unwrap();
    oban::migrate(&pool).await.unwrap();
    let (oban, ran) = node(&pool, "tenant_a", "node-a", Duration::from_secs(60)).await;
    assert!(oban.notifications_enabled());
    let tenant = Prefix::new("tenant_a").unwrap();

    let through_pool = job("pool")
        .insert(Prefixed::new(tenant, &pool))
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let through_tx = job("tx")
        .insert(Prefixed::new(tenant, &mut tx))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let through_conn = job("conn")
        .insert(Prefixed::new(tenant, &mut *conn))
        .await
        .unwrap();
    let a = engine(&pool, "tenant_a");
    for id in [through_pool.id, through_tx.id, through_conn.id] {
        wait::wait_for_job_state(&a, id, JobState::Completed, Duration::from_secs(5)).await;
    }

    // A rolled-back transaction leaves nothing behind.
    let mut tx = pool.begin().await.unwrap();
    job("rolled back")
        .insert(Prefixed::new(tenant, &mut *tx))
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    // The plain pool inserts into `public`, which this node does not read.
    let public = job("public").insert(&pool).await.unwrap();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM public.oban_jobs").await,
        1
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tenant_a.oban_jobs").await,
        3
    );
    sample_for(
        Duration::from_millis(200),
        Duration::from_millis(50),
        async || {
            let job = common::fetch_job(&pool, public.id).await;
            assert_eq!(job.state, JobState::Available);
        },
    )
    .await;
    let mut labels = ran.labels();
    labels.sort();
    assert_eq!(labels, ["conn", "pool", "tx"]);
    oban.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_bad_prefix_fails_start_naming_the_option() {
    // Checked before the database is touched: this one is never reached.
    let error = Oban::builder()
        .database("postgres://nobody@127.0.0.1:1/none")
        .prefix("tenant-a; DROP TABLE oban_jobs")
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("`prefix`"), "{error}");
    assert!(error.contains("ASCII letters, digits and `_`"), "{error}");

    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    let error = oban::migrate_prefix(&pool, "a\"b")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("`prefix`"), "{error}");
}

#[tokio::test]
async fn sqlite_refuses_a_prefix_other_than_public() {
    let lite = oban::engines::sqlite::connect("sqlite::memory:", 1)
        .await
        .unwrap();
    let error = Oban::builder()
        .sqlite_pool(lite.clone())
        .prefix("tenant_a")
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("SQLite"), "{error}");
    assert!(error.contains("own file"), "{error}");
    let error = oban::migrate_prefix(&lite, "tenant_a")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("SQLite"), "{error}");
    let tenant = Prefix::new("tenant_a").unwrap();
    let error = job("x")
        .insert(Prefixed::new(tenant, &lite))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("own file"), "{error}");
    // The default prefix is the file's one instance.
    oban::migrate_prefix(&lite, "public").await.unwrap();
    let oban = Oban::builder()
        .sqlite_pool(lite.clone())
        .prefix("public")
        .testing(oban::testing::Testing::Manual)
        .start()
        .await
        .unwrap();
    let mut tx = lite.begin_with("BEGIN IMMEDIATE").await.unwrap();
    job("x").insert(oban.within(&mut *tx)).await.unwrap();
    tx.commit().await.unwrap();
    oban.shutdown(Duration::from_secs(5)).await;
}
