//! The schema: migrations (`migrations/postgres`) and reindexing.

use futures_util::future::BoxFuture;
use sqlx::postgres::PgPool;
use sqlx::Executor;

use crate::error::{Error, Result};
use crate::migrate::MigrateTarget;

const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "install oban_jobs",
        include_str!("../../../../migrations/postgres/001_install_oban_jobs.sql"),
    ),
    (
        2,
        "runtime tables",
        include_str!("../../../../migrations/postgres/002_runtime_tables.sql"),
    ),
    (
        3,
        "unique key",
        include_str!("../../../../migrations/postgres/003_unique_key.sql"),
    ),
    (
        4,
        "fetch index and function",
        include_str!("../../../../migrations/postgres/004_fetch.sql"),
    ),
    (
        5,
        "fetch discards exhausted jobs",
        include_str!("../../../../migrations/postgres/005_fetch_exhausted.sql"),
    ),
    (
        6,
        "executing index",
        include_str!("../../../../migrations/postgres/006_executing_index.sql"),
    ),
    (
        7,
        "python oban tables, version comment",
        include_str!("../../../../migrations/postgres/007_python_oban_tables.sql"),
    ),
];

/// Arbitrary but fixed key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x0ba7_0001;

impl<'a> MigrateTarget<'a> for &'a PgPool {
    fn apply_schema(self) -> BoxFuture<'a, Result<()>> {
        Box::pin(migrate(self))
    }
}

/// Applies what is missing of the schema (see [`crate::migrate()`]), under an advisory lock.
pub(super) async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    (&mut *tx)
        .execute(
            "CREATE TABLE IF NOT EXISTS oban_rust_migrations (
               version integer PRIMARY KEY,
               description text NOT NULL,
               installed_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let applied: Vec<i32> = sqlx::query_scalar("SELECT version FROM oban_rust_migrations")
        .fetch_all(&mut *tx)
        .await?;
    let jobs_table_exists: bool = sqlx::query_scalar("SELECT to_regclass('oban_jobs') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await?;
    for (version, description, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        // Version 1 installs the job table; a table some other Oban installed is kept as it is.
        let skip = *version == 1 && jobs_table_exists;
        if !skip {
            (&mut *tx)
                .execute(*sql)
                .await
                .map_err(|e| Error::Migration(format!("step {version} ({description}): {e}")))?;
        }
        sqlx::query("INSERT INTO oban_rust_migrations (version, description) VALUES ($1, $2)")
            .bind(version)
            .bind(if skip {
                format!("{description} (kept the existing table)")
            } else {
                (*description).to_owned()
            })
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Rebuilds the job table's indexes one at a time, without blocking writes.
pub(super) async fn reindex(pool: &PgPool) -> Result<()> {
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(schemaname) || '.' || quote_ident(indexname) FROM pg_indexes
         WHERE tablename = 'oban_jobs' AND schemaname = current_schema()",
    )
    .fetch_all(pool)
    .await?;
    for index in indexes {
        // One index at a time, outside any transaction, so writes never block.
        pool.execute(format!("REINDEX INDEX CONCURRENTLY {index}").as_str())
            .await?;
    }
    Ok(())
}
