//! `oban::migrate` on a fresh database and on schemas other Oban implementations installed.

mod common;

use std::time::Duration;

use common::wait;
use oban::{
    Error, JobBuilder, JobContext, JobError, JobState, Oban, Outcome, UniqueOptions, Worker,
};
use serde::{Deserialize, Serialize};
use sqlx::{Executor, PgPool};

#[derive(Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Probe {
    Ok,
}

impl Worker for Probe {
    const NAME: &'static str = "Test.Probe";
    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        Ok(Outcome::Complete)
    }
}

/// The shape without what this runtime adds (the `uniq_key` column and index for unique jobs,
/// the partial fetch index, the partial index of executing jobs for the lifeline), and how many
/// of those additions are there.
async fn shape_besides_additions(pool: &PgPool) -> (Vec<String>, usize) {
    let (added, kept): (Vec<String>, Vec<String>) =
        jobs_table_shape(pool).await.into_iter().partition(|l| {
            l.contains("uniq_key")
                || l.contains("oban_jobs_fetch_index")
                || l.contains("oban_jobs_executing_index")
                || l.contains("oban_jobs_rust_workflow_")
                || l.contains("oban_jobs_rust_sequence_")
        });
    (kept, added.len())
}

/// Everything about `oban_jobs` a migration could change: columns with types and defaults,
/// indexes, constraints, the version comment.
async fn jobs_table_shape(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT 'column ' || column_name || ' ' || data_type || ' ' || coalesce(column_default, '') || ' ' || is_nullable
           FROM information_schema.columns WHERE table_name = 'oban_jobs'
         UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE tablename = 'oban_jobs'
         UNION ALL SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'oban_jobs'::regclass
         UNION ALL SELECT 'comment ' || coalesce(obj_description('oban_jobs'::regclass, 'pg_class'), '')
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn enum_values(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT unnest(enum_range(NULL::oban_job_state))::text")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn fresh_database_gets_obans_schema_and_migrate_is_idempotent() {
    let (pool, _) = common::empty_database().await;
    oban::migrate(&pool).await.unwrap();
    let first = jobs_table_shape(&pool).await;
    oban::migrate(&pool).await.unwrap();
    assert_eq!(
        jobs_table_shape(&pool).await,
        first,
        "a second run changes nothing"
    );

    assert_eq!(
        enum_values(&pool).await,
        [
            "available",
            "suspended",
            "scheduled",
            "executing",
            "retryable",
            "completed",
            "discarded",
            "cancelled"
        ]
    );
    assert!(
        first.contains(&"comment 14".to_owned()),
        "Elixir Oban's version comment: {first:?}"
    );
    for column in [
        "errors ARRAY",
        "tags ARRAY",
        "attempted_by ARRAY",
        "args jsonb",
        "meta jsonb",
        "priority integer",
    ] {
        assert!(
            first
                .iter()
                .any(|l| l.starts_with(&format!("column {column}"))),
            "{column} in {first:?}"
        );
    }
    for index in ["oban_jobs_fetch_index", "oban_jobs_staging_idx"] {
        assert!(
            first.iter().any(|l| l.contains(index)),
            "{index} in {first:?}"
        );
    }
    assert!(
        !first
            .iter()
            .any(|l| l.contains("oban_jobs_state_queue_priority_scheduled_at_id_index")),
        "a fresh install has no index over every state (each change of state would write to it)"
    );
    let fetch_fn: bool =
        sqlx::query_scalar("SELECT to_regproc('oban_fetch_available') IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(fetch_fn, "the fetch function is installed");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'oban%' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "oban_jobs",
            "oban_leaders",
            "oban_peers",
            "oban_producers",
            "oban_rust_migrations",
            "oban_rust_queue_limits",
            "oban_rust_rate_buckets",
            "oban_rust_rate_totals"
        ]
    );
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM oban_rust_migrations ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    let estimate: bool =
        sqlx::query_scalar("SELECT oban_count_estimate('available', 'default') >= 0")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(estimate, "Python Oban's count estimate is there");
}

#[tokio::test]
async fn concurrent_migrations_from_many_nodes_all_succeed() {
    let (pool, _) = common::empty_database().await;
    let runs: Vec<_> = (0..6)
        .map(|_| {
            tokio::spawn({
                let pool = pool.clone();
                async move { oban::migrate(&pool).await }
            })
        })
        .collect();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_rust_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(versions, 10);
}

async fn run_existing_job(pool: &PgPool) -> oban::Job {
    let oban = Oban::builder()
        .pool(pool.clone())
        .queue("default", 2)
        .register::<Probe>()
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let id: i64 = sqlx::query_scalar("SELECT min(id) FROM oban_jobs")
        .fetch_one(pool)
        .await
        .unwrap();
    let job = wait::wait_for_state(pool, id, "completed").await;
    oban.shutdown(Duration::from_secs(1)).await;
    job
}

#[tokio::test]
async fn an_elixir_oban_schema_is_kept_and_its_jobs_run() {
    let (pool, _) = common::empty_database().await;
    pool.execute(include_str!("fixtures/elixir_oban_v14.sql"))
        .await
        .unwrap();
    let before = jobs_table_shape(&pool).await;
    oban::migrate(&pool).await.unwrap();
    let (after, added) = shape_besides_additions(&pool).await;
    assert_eq!(
        after, before,
        "all of oban_jobs as Elixir Oban made it is kept"
    );
    assert_eq!(
        added, 8,
        "only the uniq_key column, its index, the fetch, executing, two workflow and two sequence indexes are added"
    );
    assert!(
        enum_values(&pool).await.contains(&"suspended".to_owned()),
        "every state is there"
    );
    let peers: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_peers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(peers, 0);
    let job = run_existing_job(&pool).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.tags, ["elixir"]);
    assert_eq!(job.errors[0].error, "from elixir");
    assert_eq!(job.meta["origin"], "elixir");
}

#[tokio::test]
async fn a_python_oban_schema_is_kept_and_its_jobs_run() {
    let Some(python) = common::python::interpreter("a_python_oban_schema_is_kept_and_its_jobs_run")
    else {
        return;
    };
    let (pool, _) = common::empty_database().await;
    // The schema the pinned package installs, and a job as a Python node inserts and fails it.
    pool.execute(common::python::install_sql(&python).await.as_str())
        .await
        .unwrap();
    pool.execute(
        r#"INSERT INTO oban_jobs (worker, queue, args, errors, tags, meta, attempt)
           VALUES ('Test.Probe', 'default', '{"action": "ok"}',
                   '[{"at": "2026-01-01T00:00:00+00:00", "attempt": 1, "error": "from python"}]',
                   ARRAY['python'], '{"origin": "python"}', 1)"#,
    )
    .await
    .unwrap();
    let before = jobs_table_shape(&pool).await;
    let tables_before = python_tables_shape(&pool).await;
    oban::migrate(&pool).await.unwrap();
    oban::migrate(&pool).await.unwrap();
    let (after, added) = shape_besides_additions(&pool).await;
    assert_eq!(
        after, before,
        "all of oban_jobs as the Python package made it is kept"
    );
    assert_eq!(
        added, 8,
        "only the uniq_key column, its index, the fetch, executing, two workflow and two sequence indexes are added"
    );
    assert_eq!(
        python_tables_shape(&pool).await,
        tables_before,
        "oban_leaders, oban_producers and oban_count_estimate are kept as they are"
    );
    let job = run_existing_job(&pool).await;
    assert_eq!(job.tags, ["python"]);
    assert_eq!(job.errors[0].error, "from python");
    assert_eq!(job.meta["origin"], "python");
}

/// The columns of Python Oban's own tables and the text of its count estimate function.
async fn python_tables_shape(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || coalesce(column_default, '')
           FROM information_schema.columns WHERE table_name IN ('oban_leaders', 'oban_producers')
         UNION ALL SELECT pg_get_functiondef('oban_count_estimate(text, text)'::regprocedure)
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn plain_inserts_work_on_an_unmigrated_elixir_schema_and_a_unique_one_says_to_migrate() {
    let (pool, _) = common::empty_database().await;
    pool.execute(include_str!("fixtures/elixir_oban_v14.sql"))
        .await
        .unwrap();
    let job = JobBuilder::new(Probe::Ok)
        .tags(["rust"])
        .insert(&pool)
        .await
        .expect("a plain insert needs no migration");
    assert_eq!(job.tags, ["rust"]);

    let mut tx = pool.begin().await.unwrap();
    let in_tx = JobBuilder::new(Probe::Ok).insert(&mut tx).await.unwrap();
    let error = JobBuilder::new(Probe::Ok)
        .unique(UniqueOptions::new())
        .insert(&mut tx)
        .await
        .expect_err("no uniq_key column");
    assert!(matches!(error, Error::NotMigrated { .. }), "{error:?}");
    assert!(error.to_string().contains("oban::migrate"), "{error}");
    tx.commit()
        .await
        .expect("the caller's transaction is still usable");
    assert!(common::fetch_job(&pool, in_tx.id).await.id == in_tx.id);
    let tables: bool = sqlx::query_scalar("SELECT to_regclass('oban_rust_migrations') IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(tables, "inserting migrated nothing");

    oban::migrate(&pool).await.unwrap();
    JobBuilder::new(Probe::Ok)
        .unique(UniqueOptions::new())
        .insert(&pool)
        .await
        .expect("a unique insert after oban::migrate");
}

#[tokio::test]
async fn migration_7_corrects_our_version_comment_15_and_no_one_elses() {
    // A database this runtime installed before migration 7 said '15'.
    let (ours, _) = common::empty_database().await;
    oban::migrate(&ours).await.unwrap();
    ours.execute(
        "COMMENT ON TABLE oban_jobs IS '15'; DELETE FROM oban_rust_migrations WHERE version = 7",
    )
    .await
    .unwrap();
    oban::migrate(&ours).await.unwrap();
    assert!(jobs_table_shape(&ours)
        .await
        .contains(&"comment 14".to_owned()));

    // A table Elixir Oban installed keeps whatever its migrator wrote.
    let (theirs, _) = common::empty_database().await;
    theirs
        .execute(include_str!("fixtures/elixir_oban_v14.sql"))
        .await
        .unwrap();
    theirs
        .execute("COMMENT ON TABLE oban_jobs IS '15'")
        .await
        .unwrap();
    oban::migrate(&theirs).await.unwrap();
    assert!(jobs_table_shape(&theirs)
        .await
        .contains(&"comment 15".to_owned()));
}

#[tokio::test]
async fn a_node_that_does_not_migrate_inserts_on_an_unmigrated_elixir_schema() {
    let (pool, _) = common::empty_database().await;
    pool.execute(include_str!("fixtures/elixir_oban_v14.sql"))
        .await
        .unwrap();
    let client = Oban::builder()
        .pool(pool.clone())
        .migrate(false)
        .start()
        .await
        .expect("an insert-only node starts without migrating");
    let job = JobBuilder::new(Probe::Ok)
        .insert(&client)
        .await
        .expect("a plain insert through the node");
    client.shutdown(Duration::from_secs(1)).await;
    assert_eq!(common::fetch_job(&pool, job.id).await.worker, "Test.Probe");
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('oban_rust_migrations') IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(migrated, "nothing was migrated");
}

#[tokio::test]
async fn a_unique_insert_with_uniq_key_but_not_its_index_says_to_migrate() {
    let (pool, _) = common::empty_database().await;
    pool.execute(include_str!("fixtures/elixir_oban_v14.sql"))
        .await
        .unwrap();
    pool.execute("ALTER TABLE oban_jobs ADD COLUMN uniq_key text")
        .await
        .unwrap();
    let error = JobBuilder::new(Probe::Ok)
        .unique(UniqueOptions::new())
        .insert(&pool)
        .await
        .expect_err("no index for ON CONFLICT");
    assert!(matches!(error, Error::NotMigrated { .. }), "{error:?}");
}
