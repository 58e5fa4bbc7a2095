//! The schema: migrations (`migrations/postgres`) and reindexing, in a schema prefix.

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Executor};

use super::lease::Lease;
use super::prefix::qualify;
use crate::engine::SchemaVersions;
use crate::error::{Error, Result};
use crate::migrate::MigrateTarget;
use crate::prefix::Prefix;

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
    (
        8,
        "workflow indexes",
        include_str!("../../../../migrations/postgres/008_workflow_indexes.sql"),
    ),
    (
        9,
        "queue limits",
        include_str!("../../../../migrations/postgres/009_queue_limits.sql"),
    ),
    (
        10,
        "sequence indexes",
        include_str!("../../../../migrations/postgres/010_sequences.sql"),
    ),
];

/// Arbitrary but fixed key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x0ba7_0001;

impl<'a> MigrateTarget<'a> for &'a PgPool {
    fn apply_schema_in(self, prefix: Prefix) -> BoxFuture<'a, Result<()>> {
        Box::pin(migrate(self, prefix))
    }
}

/// Applies what is missing of the schema (see [`crate::migrate()`]) in `prefix`, creating its
/// schema when missing, under an advisory lock.
pub(super) async fn migrate(pool: &PgPool, prefix: Prefix) -> Result<()> {
    // Leased: a migration dropped at its `BEGIN` must not leave the session in a transaction.
    let mut conn = Lease::acquire(pool).await?;
    let migrated = migrate_on(&mut conn, prefix).await;
    conn.release();
    migrated
}

async fn migrate_on(conn: &mut PgConnection, prefix: Prefix) -> Result<()> {
    const CREATE_LOG: &str = "CREATE TABLE IF NOT EXISTS oban_rust_migrations (
           version integer PRIMARY KEY,
           description text NOT NULL,
           installed_at timestamptz NOT NULL DEFAULT now())";
    const APPLIED: &str = "SELECT version FROM oban_rust_migrations";
    // `to_regclass` reads its argument as a name: qualified, it looks in the prefix's schema.
    const JOBS_TABLE_EXISTS: &str = "SELECT to_regclass('oban_jobs') IS NOT NULL";
    const RECORD: &str = "INSERT INTO oban_rust_migrations (version, description) VALUES ($1, $2)";
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    if !prefix.is_public() {
        // The name is a validated identifier (see `Prefix::new`), quoted as it is everywhere.
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", prefix.name());
        (&mut *tx).execute(create.as_str()).await.map_err(|e| {
            Error::Migration(format!("creating the schema of prefix `{prefix}`: {e}"))
        })?;
    }
    (&mut *tx).execute(qualify(prefix, CREATE_LOG)).await?;
    let applied: Vec<i32> = sqlx::query_scalar(qualify(prefix, APPLIED))
        .fetch_all(&mut *tx)
        .await?;
    let jobs_table_exists: bool = sqlx::query_scalar(qualify(prefix, JOBS_TABLE_EXISTS))
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
                .execute(qualify(prefix, sql))
                .await
                .map_err(|e| Error::Migration(format!("step {version} ({description}): {e}")))?;
        }
        sqlx::query(qualify(prefix, RECORD))
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

/// Rebuilds the job table's indexes in `prefix` one at a time, without blocking writes.
pub(super) async fn reindex(pool: &PgPool, prefix: Prefix) -> Result<()> {
    // Names compared as data: not qualified (see `prefix.rs`); the schema is bound instead, the
    // search path's for the default prefix.
    let schema = (!prefix.is_public()).then(|| prefix.name());
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(schemaname) || '.' || quote_ident(indexname) FROM pg_indexes
         WHERE tablename = 'oban_jobs' AND schemaname = coalesce($1, current_schema())",
    )
    .bind(schema)
    .fetch_all(pool)
    .await?;
    for index in indexes {
        // One index at a time, outside any transaction, so writes never block.
        pool.execute(format!("REINDEX INDEX CONCURRENTLY {index}").as_str())
            .await?;
    }
    Ok(())
}

/// See [`Engine::schema_versions`](crate::engine::Engine::schema_versions).
pub(super) async fn versions(pool: &PgPool, prefix: Prefix) -> Result<SchemaVersions> {
    // `to_regclass` reads its argument as a name: qualified, it looks in the prefix's schema.
    const LOG_EXISTS: &str = "SELECT to_regclass('oban_rust_migrations') IS NOT NULL";
    const APPLIED: &str = "SELECT version FROM oban_rust_migrations ORDER BY version";
    let known = MIGRATIONS
        .iter()
        .map(|(version, description, _)| (*version, (*description).to_owned()))
        .collect();
    let exists: bool = sqlx::query_scalar(qualify(prefix, LOG_EXISTS))
        .fetch_one(pool)
        .await?;
    let applied = if exists {
        sqlx::query_scalar(qualify(prefix, APPLIED))
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(SchemaVersions::new(known, applied))
}
