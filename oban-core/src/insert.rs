//! Where jobs can be inserted: an [`Oban`], a pool, or a connection in your own transaction.

use futures_util::future::BoxFuture;

use crate::error::Result;
use crate::job::Job;
use crate::new_job::NewJob;
use crate::node::Oban;
use crate::prefix::Prefix;

/// Something jobs can be inserted into.
///
/// Each engine implements it for its own pools and connections (in `engines/`); the algorithm
/// they share, unique jobs included, lives in `engine/insert.rs`.
///
/// - `&Oban`: the node's pool; queues on this node are woken at once.
/// - `&PgPool`: any pool on an Oban database (a web server that only enqueues).
/// - `&mut PgConnection` (`&mut *tx`) or `&mut Transaction<Postgres>`: the jobs commit or roll
///   back with the rest of your transaction. Nodes pick them up on their next poll after commit.
/// - `&SqlitePool`, `&mut SqliteConnection`, `&mut Transaction<Sqlite>`: the same on SQLite (see
///   [`crate::engines::sqlite`]); a pool insert wakes the queues of this process at once.
///
/// Pools and connections insert into the default prefix, `public`; wrap them in [`Prefixed`] to
/// insert into another schema prefix.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// use oban_core::NewJob;
/// use serde_json::json;
///
/// let mut tx = pool.begin().await?;
/// sqlx::query("INSERT INTO orders (id) VALUES (42)").execute(&mut *tx).await?;
/// NewJob::new("SendReceipt", json!({"order_id": 42})).insert(&mut *tx).await?;
/// tx.commit().await?; // the order and its job, or neither
/// # Ok(()) }
/// ```
pub trait JobInserter<'a>: Send {
    /// Inserts `jobs` in one statement and returns the stored rows in input order.
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>>;
}

impl<'a> JobInserter<'a> for &'a Oban {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        Box::pin(self.insert_all(jobs))
    }
}

/// A PostgreSQL pool, connection or transaction that inserts into the tables of a schema
/// [`Prefix`] instead of the default `public`, as a node started with
/// [`Builder::prefix`](crate::Builder::prefix) of that name reads them. Its
/// [`JobInserter`] impls are those of the plain pool, connection and transaction: in a
/// transaction, the jobs and their insert notification commit with it.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// use oban_core::{NewJob, Prefix, Prefixed};
/// use serde_json::json;
///
/// let tenant = Prefix::new("tenant_a")?;
///
/// // Through the pool, committed at once:
/// NewJob::new("Reports.Nightly", json!({})).insert(Prefixed::new(tenant, &pool)).await?;
///
/// // Inside your own transaction, with your other writes:
/// let mut tx = pool.begin().await?;
/// sqlx::query("INSERT INTO orders (id) VALUES (42)").execute(&mut *tx).await?;
/// NewJob::new("SendReceipt", json!({"order_id": 42}))
///     .insert(Prefixed::new(tenant, &mut *tx))
///     .await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
///
/// A node hands out one for its own prefix with [`Oban::within`]. SQLite's pools and
/// connections take `Prefixed` too, with the default prefix only (one instance per file).
#[derive(Debug)]
pub struct Prefixed<T> {
    prefix: Prefix,
    target: T,
}

impl<T> Prefixed<T> {
    /// `target` (a `&PgPool`, `&mut PgConnection` or `&mut Transaction<Postgres>`), inserting
    /// into `prefix`.
    pub fn new(prefix: Prefix, target: T) -> Self {
        Self { prefix, target }
    }

    /// The prefix and the pool, connection or transaction.
    pub fn into_parts(self) -> (Prefix, T) {
        (self.prefix, self.target)
    }
}

/// Inserts many jobs in one statement into any [`JobInserter`].
///
/// ```no_run
/// # async fn demo(oban: oban_core::Oban) -> oban_core::Result<()> {
/// use oban_core::NewJob;
/// let jobs = (0..10_000).map(|i| NewJob::new("Index", serde_json::json!({"page": i}))).collect();
/// let inserted = oban_core::insert_all(&oban, jobs).await?;
/// assert_eq!(inserted.len(), 10_000);
/// # Ok(()) }
/// ```
pub async fn insert_all<'a, I: JobInserter<'a>>(target: I, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
    target.insert_jobs(jobs).await
}
