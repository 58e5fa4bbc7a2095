//! Where jobs can be inserted: an [`Oban`], a pool, or a connection in your own transaction.

use futures_util::future::BoxFuture;

use crate::error::Result;
use crate::job::Job;
use crate::new_job::NewJob;
use crate::node::Oban;

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
