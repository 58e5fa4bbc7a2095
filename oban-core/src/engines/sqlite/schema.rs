//! The schema: migrations (`migrations/sqlite`) and maintenance in place of reindexing.

use futures_util::future::BoxFuture;
use sqlx::sqlite::SqlitePool;
use sqlx::{Connection, Executor};

use super::hub::Hub;
use super::SqliteEngine;
use crate::engine::SchemaVersions;
use crate::error::{Error, Result};
use crate::migrate::MigrateTarget;
use crate::prefix::Prefix;

const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "install oban_jobs",
        include_str!("../../../../migrations/sqlite/001_install_oban_jobs.sql"),
    ),
    (
        2,
        "runtime tables",
        include_str!("../../../../migrations/sqlite/002_runtime_tables.sql"),
    ),
    (
        3,
        "workflow indexes",
        include_str!("../../../../migrations/sqlite/003_workflow_indexes.sql"),
    ),
    (
        4,
        "queue limits",
        include_str!("../../../../migrations/sqlite/004_queue_limits.sql"),
    ),
    (
        5,
        "sequence indexes",
        include_str!("../../../../migrations/sqlite/005_sequences.sql"),
    ),
];

impl<'a> MigrateTarget<'a> for &'a SqlitePool {
    fn apply_schema_in(self, prefix: Prefix) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            super::check_prefix(prefix)?;
            migrate(self).await
        })
    }
}

/// Applies the schema (see [`crate::migrate`]): idempotent, and serialised between processes by
/// SQLite's write lock (`BEGIN IMMEDIATE`).
pub(super) async fn migrate(pool: &SqlitePool) -> Result<()> {
    let hub = Hub::for_pool(pool);
    let _write = hub.write.lock().await;
    let mut conn = pool.acquire().await?;
    // Persistent in the file; a no-op once set (and for in-memory databases).
    if let Err(error) = (&mut *conn).execute("PRAGMA journal_mode = WAL").await {
        tracing::warn!(%error, "could not switch the SQLite database to WAL mode");
    }
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    (&mut *tx)
        .execute(
            "CREATE TABLE IF NOT EXISTS oban_rust_migrations (
               version INTEGER PRIMARY KEY,
               description TEXT NOT NULL,
               installed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')))",
        )
        .await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM oban_rust_migrations")
        .fetch_all(&mut *tx)
        .await?;
    for (version, description, sql) in MIGRATIONS {
        if applied.contains(&i64::from(*version)) {
            continue;
        }
        (&mut *tx)
            .execute(*sql)
            .await
            .map_err(|e| Error::Migration(format!("step {version} ({description}): {e}")))?;
        sqlx::query("INSERT INTO oban_rust_migrations (version, description) VALUES (?1, ?2)")
            .bind(version)
            .bind(*description)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// See [`Engine::schema_reindex`](crate::engine::Engine::schema_reindex).
pub(super) async fn reindex(engine: &SqliteEngine) -> Result<()> {
    // SQLite's B-trees do not bloat like PostgreSQL's indexes, and REINDEX would block every
    // writer: refresh the planner's statistics and fold the WAL back into the file instead.
    // `optimize` may run ANALYZE, which writes. (The lock comes before the connection, as
    // everywhere: a one-connection pool must not deadlock.)
    let _write = engine.hub.write.lock().await;
    let mut conn = engine.pool.acquire().await?;
    (&mut *conn).execute("PRAGMA optimize").await?;
    let (busy, log, checkpointed): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut *conn)
            .await?;
    tracing::info!(
        busy,
        log,
        checkpointed,
        "SQLite maintenance: PRAGMA optimize and a WAL checkpoint (no REINDEX needed)"
    );
    Ok(())
}

/// See [`Engine::schema_versions`](crate::engine::Engine::schema_versions).
pub(super) async fn versions(pool: &SqlitePool) -> Result<SchemaVersions> {
    let known = MIGRATIONS
        .iter()
        .map(|(version, description, _)| (*version, (*description).to_owned()))
        .collect();
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'oban_rust_migrations')",
    )
    .fetch_one(pool)
    .await?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar("SELECT version FROM oban_rust_migrations ORDER BY version")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    let applied = applied
        .into_iter()
        .filter_map(|v| i32::try_from(v).ok())
        .collect();
    Ok(SchemaVersions::new(known, applied))
}
