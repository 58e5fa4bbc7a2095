//! [`DbPool`]: a connection pool on either engine, opened from a URL or the environment.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::SqlitePool;
use sqlx::{Connection, PgConnection};

use crate::engine::Engine;
use crate::engines::postgres::PostgresEngine;
use crate::engines::sqlite::{self, SqliteEngine};
use crate::error::{redact, Error, Result};
use crate::prefix::Prefix;

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

    /// The engine that runs jobs on this pool, in the schema `prefix`.
    ///
    /// # Errors
    /// A prefix other than `public` on SQLite, which keeps one instance per database file.
    pub(crate) fn engine(&self, prefix: Prefix) -> Result<Arc<dyn Engine>> {
        Ok(match self {
            DbPool::Postgres(pool) => Arc::new(PostgresEngine::with_prefix(pool.clone(), prefix)),
            DbPool::Sqlite(pool) => {
                sqlite::check_prefix(prefix)?;
                Arc::new(SqliteEngine::new(pool.clone()))
            }
        })
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

/// How long the first connection may take before `connect` gives up on the server.
const FIRST_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a pool of `size` connections on `url`, choosing the engine by its scheme.
///
/// Errors name the database by its URL with any password masked ([`redact`]).
pub(crate) async fn connect(url: &str, size: u32) -> Result<DbPool> {
    match scheme(url) {
        Some("postgres" | "postgresql") => Ok(DbPool::Postgres(connect_postgres(url, size).await?)),
        Some("sqlite") => Ok(DbPool::Sqlite(sqlite::connect(url, size).await?)),
        Some(scheme) => Err(Error::Config(format!(
            "the database URL's scheme `{scheme}` is not supported: use postgres://user@host:port/db or sqlite://path/to/file.db"
        ))),
        None => Err(Error::Config(format!(
            "the database `{}` is not a URL: use postgres://user:password@host:port/db (key=value connection strings are not supported) or sqlite://path/to/file.db",
            redact(url)
        ))),
    }
}

/// The URL's scheme, when it starts with one (`letter *(letter / digit / "+" / "-" / ".") ":"`).
fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.trim().split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// A PostgreSQL pool on `url`, after one connection of its own: a pool retries a refused
/// connection until its acquire timeout (30 s) and then reports only that timeout, where the
/// single connection fails at once with the reason ("Connection refused", an unknown host, a
/// failed login).
async fn connect_postgres(url: &str, size: u32) -> Result<PgPool> {
    let target = || redact(url);
    let options = PgConnectOptions::from_str(url.trim()).map_err(|e| {
        Error::Config(format!(
            "`{}` is not a PostgreSQL URL: {}",
            target(),
            redact(&e.to_string())
        ))
    })?;
    match tokio::time::timeout(
        FIRST_CONNECTION_TIMEOUT,
        PgConnection::connect_with(&options),
    )
    .await
    {
        Ok(Ok(first)) => {
            let _ = first.close().await;
        }
        Ok(Err(source)) => {
            return Err(Error::Connect {
                target: target(),
                source,
            })
        }
        Err(_) => {
            return Err(Error::Connect {
                target: target(),
                source: sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", FIRST_CONNECTION_TIMEOUT.as_secs()),
                )),
            })
        }
    }
    PgPoolOptions::new()
        .max_connections(size.max(2))
        .connect_with(options)
        .await
        .map_err(|source| Error::Connect {
            target: target(),
            source,
        })
}
