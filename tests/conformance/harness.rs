//! One isolated, migrated database per test, on either engine, seen through the `Engine` trait;
//! on PostgreSQL also in a schema prefix of its own while `public` holds no Oban object, so a
//! statement that ignores the prefix fails every case that runs it.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oban::engine::Engine;
use oban::engines::postgres::PostgresEngine;
use oban::engines::sqlite::{self, SqliteEngine};
use oban::{Job, JobFilter, JobState, NewJob, Prefix, Prefixed};
use sqlx::{PgPool, SqlitePool};

use crate::common::{self, wait};

/// The engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    /// PostgreSQL in the schema [`PREFIX`], with nothing in `public`.
    PostgresPrefix,
    Sqlite,
}

/// The schema of [`Kind::PostgresPrefix`].
pub const PREFIX: &str = "conformance";

enum Target {
    Postgres {
        pool: PgPool,
        url: String,
        prefix: Prefix,
    },
    Sqlite {
        pool: SqlitePool,
        path: PathBuf,
    },
}

/// A database of its own for one test, migrated, with an engine on it.
pub struct Db {
    pub kind: Kind,
    pub engine: Arc<dyn Engine>,
    target: Target,
    dir: Option<TempDir>,
}

impl Db {
    pub async fn new(kind: Kind) -> Self {
        match kind {
            Kind::Postgres | Kind::PostgresPrefix => {
                let (pool, name) = common::empty_database().await;
                let prefix = match kind {
                    Kind::PostgresPrefix => Prefix::new(PREFIX).unwrap(),
                    _ => Prefix::PUBLIC,
                };
                oban::migrate_prefix(&pool, prefix.name())
                    .await
                    .expect("migrate postgres");
                Self {
                    kind,
                    engine: Arc::new(PostgresEngine::with_prefix(pool.clone(), prefix)),
                    target: Target::Postgres {
                        pool,
                        url: common::database_url_for(&name),
                        prefix,
                    },
                    dir: None,
                }
            }
            Kind::Sqlite => {
                let dir = TempDir::new();
                let path = dir.0.join("oban.db");
                let pool = sqlite::connect_with(sqlite::file_options(&path), 8)
                    .await
                    .expect("open sqlite");
                oban::migrate(&pool).await.expect("migrate sqlite");
                Self {
                    kind,
                    engine: Arc::new(SqliteEngine::new(pool.clone())),
                    target: Target::Sqlite { pool, path },
                    dir: Some(dir),
                }
            }
        }
    }

    /// An engine on a second pool of the same database, as another node would have.
    pub async fn another_engine(&self) -> Arc<dyn Engine> {
        match &self.target {
            Target::Postgres { url, prefix, .. } => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(8)
                    .connect(url)
                    .await
                    .expect("second postgres pool");
                Arc::new(PostgresEngine::with_prefix(pool, *prefix))
            }
            Target::Sqlite { path, .. } => {
                let pool = sqlite::connect_with(sqlite::file_options(path), 8)
                    .await
                    .expect("second sqlite pool");
                Arc::new(SqliteEngine::new(pool))
            }
        }
    }

    /// A node builder on this database.
    pub fn builder(&self, node: &str) -> oban::Builder {
        let builder = match &self.target {
            Target::Postgres { pool, prefix, .. } => oban::Oban::builder()
                .pool(pool.clone())
                .prefix(prefix.name()),
            Target::Sqlite { pool, .. } => oban::Oban::builder().sqlite_pool(pool.clone()),
        };
        builder.node(node)
    }

    /// The URL of this database (`postgres://..` or `sqlite://..`).
    pub fn url(&self) -> String {
        match &self.target {
            Target::Postgres { url, .. } => url.clone(),
            Target::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
        }
    }

    pub fn sqlite_path(&self) -> Option<&PathBuf> {
        match &self.target {
            Target::Sqlite { path, .. } => Some(path),
            Target::Postgres { .. } => None,
        }
    }

    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.target {
            Target::Postgres { pool, .. } => Some(pool),
            Target::Sqlite { .. } => None,
        }
    }

    /// The schema prefix: [`PREFIX`] for [`Kind::PostgresPrefix`], else `public`.
    pub fn prefix(&self) -> Prefix {
        match &self.target {
            Target::Postgres { prefix, .. } => *prefix,
            Target::Sqlite { .. } => Prefix::PUBLIC,
        }
    }

    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.target {
            Target::Sqlite { pool, .. } => Some(pool),
            Target::Postgres { .. } => None,
        }
    }

    /// `oban::insert_all(&pool, jobs)`: the pool inserter, not the engine (`Prefixed` in a
    /// prefix).
    pub async fn insert_via_pool(&self, jobs: Vec<NewJob>) -> Vec<Job> {
        match &self.target {
            Target::Postgres { pool, prefix, .. } if !prefix.is_public() => {
                oban::insert_all(Prefixed::new(*prefix, pool), jobs).await
            }
            Target::Postgres { pool, .. } => oban::insert_all(pool, jobs).await,
            Target::Sqlite { pool, .. } => oban::insert_all(pool, jobs).await,
        }
        .expect("insert through the pool")
    }

    pub async fn insert(&self, job: NewJob) -> Job {
        let mut jobs = self
            .engine
            .job_insert_many(vec![job])
            .await
            .expect("insert");
        jobs.pop().expect("one job")
    }

    pub async fn job(&self, id: i64) -> Job {
        self.engine
            .job_get(id)
            .await
            .expect("read job")
            .expect("job exists")
    }

    pub async fn jobs(&self, filter: JobFilter) -> Vec<Job> {
        self.engine
            .job_list(&filter, 1_000_000)
            .await
            .expect("list")
    }

    pub async fn count(&self, filter: JobFilter) -> usize {
        self.jobs(filter).await.len()
    }

    /// Polls until job `id` is in `state` (15 s at most).
    pub async fn wait_for_state(&self, id: i64, state: JobState) -> Job {
        wait::wait_for_job_state(&*self.engine, id, state, Duration::from_secs(15)).await
    }

    /// Polls until `filter` matches `expected` jobs.
    pub async fn wait_for_count(&self, filter: JobFilter, expected: usize, limit: Duration) {
        wait::wait_for_job_count(&*self.engine, &filter, expected, limit).await;
    }
}

/// A directory of its own, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "oban-conformance-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
