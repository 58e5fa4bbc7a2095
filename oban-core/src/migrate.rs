//! Installing and upgrading the schema.

use futures_util::future::BoxFuture;

use crate::error::Result;
use crate::prefix::Prefix;

/// A database [`migrate`] can install the schema on: `&PgPool` or `&SqlitePool`.
///
/// Each engine implements it for its pool type (in `engines/`), so an engine of another
/// database adds its own implementation there.
pub trait MigrateTarget<'a>: Sized {
    /// Applies what is missing of the schema in `prefix`; see [`migrate_prefix`]. An engine
    /// without schemas refuses any prefix but the default.
    fn apply_schema_in(self, prefix: Prefix) -> BoxFuture<'a, Result<()>>;

    /// Applies what is missing of the schema in the default prefix, `public`; see [`migrate`].
    fn apply_schema(self) -> BoxFuture<'a, Result<()>> {
        self.apply_schema_in(Prefix::PUBLIC)
    }
}

/// Applies what is missing of the schema to the database behind `pool` (a `&PgPool` or a
/// `&SqlitePool`).
///
/// On PostgreSQL (`migrations/postgres`):
///
/// - On an empty database: Oban's `oban_jobs` table, `oban_job_state` type and indexes (as Elixir
///   Oban's migrations leave them, labelled with their latest version, 14, which Elixir Oban's
///   migrator reads from the table's comment), plus `oban_peers` and `oban_producers`.
/// - On a database where Elixir Oban or the Python `oban` package already installed `oban_jobs`:
///   that table is kept as it is; only missing states and tables are added, plus what this
///   runtime needs on the table: the `uniq_key` column and its partial unique index, the partial
///   fetch index and the `oban_fetch_available` function, and a partial index of executing jobs
///   for the lifeline.
/// - Either way, what a Python Oban (0.7) node needs to start beside this runtime's: its
///   `oban_leaders` table and `oban_count_estimate` function, where missing.
///
/// Inserting needs none of this runtime's additions unless the jobs are unique (see
/// [`crate::unique`]): an insert-only client can write to a schema another implementation
/// installed without running this.
///
/// On SQLite (`migrations/sqlite`): the same tables with SQLite's types, and the file switched to
/// WAL mode (see [`crate::engines::sqlite`]).
///
/// Idempotent, and safe to run from many nodes at once: it holds a lock (a transaction-scoped
/// advisory lock; SQLite's write lock) and records each applied step in `oban_rust_migrations`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
/// oban_core::migrate(&pool).await?;
/// oban_core::migrate(&pool).await?; // a no-op the second time
///
/// let lite = oban_core::engines::sqlite::connect("sqlite://jobs.db", 4).await?;
/// oban_core::migrate(&lite).await?;
/// # Ok(()) }
/// ```
pub async fn migrate<'a>(pool: impl MigrateTarget<'a>) -> Result<()> {
    pool.apply_schema().await
}

/// [`migrate`] into the PostgreSQL schema `prefix` (see [`Prefix`]): creates the schema when it
/// is missing (`CREATE SCHEMA IF NOT EXISTS`), then applies every step there, so that the
/// tables, the `oban_job_state` type, the indexes and the `oban_fetch_available` function all
/// live in that schema. Nodes started with [`Builder::prefix`](crate::Builder::prefix) of the
/// same name use them.
///
/// `migrate_prefix(pool, "public")` is [`migrate`]. On SQLite, which keeps one instance per
/// database file, any other prefix is refused: use another file instead.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
/// oban_core::migrate_prefix(&pool, "tenant_a").await?;
/// oban_core::migrate_prefix(&pool, "tenant_b").await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// A prefix that is not a plain identifier (see [`Prefix::new`]), a prefix other than `public`
/// on SQLite, or a failed step.
pub async fn migrate_prefix<'a>(pool: impl MigrateTarget<'a>, prefix: &str) -> Result<()> {
    pool.apply_schema_in(Prefix::new(prefix)?).await
}
