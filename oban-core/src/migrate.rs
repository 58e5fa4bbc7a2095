//! Installing and upgrading the schema.

use sqlx::PgPool;

use crate::engines::postgres;
use crate::error::Result;

/// Applies what is missing of the schema to the database behind `pool`.
///
/// - On an empty database: Oban's `oban_jobs` table, `oban_job_state` type and indexes (as Elixir
///   Oban's migrations leave them), plus `oban_peers` and `oban_producers`.
/// - On a database where Elixir Oban or Oban's Python port already installed `oban_jobs`: that
///   table is kept as it is; only missing states and tables are added.
///
/// Idempotent, and safe to run from many nodes at once: it holds a transaction-scoped advisory
/// lock and records each applied step in `oban_rust_migrations`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
/// oban_core::migrate(&pool).await?;
/// oban_core::migrate(&pool).await?; // a no-op the second time
/// # Ok(()) }
/// ```
pub async fn migrate(pool: &PgPool) -> Result<()> {
    postgres::migrate(pool).await
}
