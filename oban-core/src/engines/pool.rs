//! [`DbPool`]: a connection pool on either engine, opened from a URL or the environment.

use std::sync::Arc;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::SqlitePool;

use crate::engine::Engine;
use crate::engines::postgres::PostgresEngine;
use crate::engines::sqlite::{self, SqliteEngine};
use crate::error::{Error, Result};

/// A connection pool on either engine: what a node runs on, and what an application can use for
/// its own tables too (one database for the jobs and the data they commit with).
///
/// ```no_run
/// # async fn demo() -> oban_core::Result<()> {
/// use oban_core::DbPool;
///
/// // DATABASE_URL (postgres://.. or sqlite://..), else the SQLite file ./oban.db
/// let db = DbPool::from_env().await?;
/// let oban = oban_core::Oban::builder().db_pool(db.clone()).start().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub enum DbPool {
    /// A PostgreSQL pool.
    Postgres(PgPool),
    /// A SQLite pool (see [`crate::engines::sqlite`]).
    Sqlite(SqlitePool),
}

impl DbPool {
    /// Opens a pool on `url`, choosing the engine by its scheme: `postgres://..` (or
    /// `postgresql://..`) or `sqlite://path/to/file.db` (created when missing).
    pub async fn connect(url: &str) -> Result<Self> {
        connect(url, 10).await
    }

    /// [`connect`](Self::connect) to `DATABASE_URL`, or, when it is not set, to the SQLite file
    /// `oban.db` in the working directory (its path is printed).
    pub async fn from_env() -> Result<Self> {
        from_env(10).await
    }

    /// The engine that runs jobs on this pool.
    pub(crate) fn engine(&self) -> Arc<dyn Engine> {
        match self {
            DbPool::Postgres(pool) => Arc::new(PostgresEngine::new(pool.clone())),
            DbPool::Sqlite(pool) => Arc::new(SqliteEngine::new(pool.clone())),
        }
    }
}

impl From<PgPool> for DbPool {
    fn from(pool: PgPool) -> Self {
        Self::Postgres(pool)
    }
}

impl From<SqlitePool> for DbPool {
    fn from(pool: SqlitePool) -> Self {
        Self::Sqlite(pool)
    }
}

/// Opens a pool of `size` connections on `DATABASE_URL`, or on the default SQLite file (saying
/// so).
pub(crate) async fn from_env(size: u32) -> Result<DbPool> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => connect(&url, size).await,
        _ => {
            let path = std::env::current_dir()
                .map(|dir| dir.join(sqlite::DEFAULT_PATH))
                .unwrap_or_else(|_| sqlite::DEFAULT_PATH.into());
            tracing::info!(path = %path.display(), "no database configured (no `.database(url)`, no DATABASE_URL): using SQLite");
            eprintln!(
                "oban: no database configured; using the SQLite file {} (set DATABASE_URL=postgres://... or sqlite://... to choose)",
                path.display()
            );
            Ok(DbPool::Sqlite(
                sqlite::connect_with(sqlite::file_options(&path), size).await?,
            ))
        }
    }
}

/// Opens a pool of `size` connections on `url`, choosing the engine by its scheme.
pub(crate) async fn connect(url: &str, size: u32) -> Result<DbPool> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "postgres" | "postgresql" => Ok(DbPool::Postgres(
            PgPoolOptions::new()
                .max_connections(size.max(2))
                .connect(url)
                .await?,
        )),
        "sqlite" => Ok(DbPool::Sqlite(sqlite::connect(url, size).await?)),
        _ => Err(Error::Config(format!(
            "the database URL's scheme `{scheme}` is not supported: use postgres://user@host:port/db or sqlite://path/to/file.db"
        ))),
    }
}
