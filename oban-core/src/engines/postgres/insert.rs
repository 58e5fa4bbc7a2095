//! Inserting jobs on PostgreSQL: the statements of the shared insert algorithm
//! ([`crate::engine::insert`]), and inserts through pools and transactions.

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::postgres::PgPool;
use sqlx::{Connection, PgConnection, Postgres, Row, Transaction};

use super::lease::Lease;
use super::millis;
use super::notify::notify_after_commit;
use super::prefix::{channel_name, qualify};
use super::row::{job_columns, job_from_row, utc};
use crate::engine::insert::{
    self as algorithm, Expiring, InsertStatements, Keyed, Replacement, Rounds, StoredRow,
};
use crate::error::{Error, Result};
use crate::insert::{JobInserter, Prefixed};
use crate::job::{Job, JobState};
use crate::new_job::NewJob;
use crate::notifier::Channel;
use crate::prefix::Prefix;

/// How an insert tells the queues of the jobs it made runnable.
#[derive(Debug, Clone, Copy)]
pub(crate) enum InsertNotify<'a> {
    /// Inside a caller's transaction: the insert statement itself notifies, so the notification
    /// goes out if and only if the transaction commits.
    WithCommit,
    /// The insert commits on its own (through a pool or a node): notify after it, through the
    /// insert notifier of this pool's database (see `notify.rs`).
    AfterCommit(&'a PgPool),
}

/// Inserts `jobs` on any PostgreSQL connection (see [`crate::engine::insert`]): one statement
/// with one array bind per column; unique jobs in a transaction (a savepoint inside the
/// caller's), into the tables of `prefix`. Queues that received runnable jobs are notified as
/// `notify` says.
pub(crate) async fn insert_jobs(
    conn: &mut PgConnection,
    prefix: Prefix,
    jobs: Vec<NewJob>,
    notify: InsertNotify<'_>,
) -> Result<Vec<Job>> {
    let mut statements = Statements {
        conn: &mut *conn,
        prefix,
        notify_in_statement: matches!(notify, InsertNotify::WithCommit),
    };
    let jobs = algorithm::insert_jobs(&mut statements, jobs)
        .await
        .map_err(explain_schema_error)?;
    if let InsertNotify::AfterCommit(pool) = notify {
        notify_after_commit(conn, pool, prefix, &jobs).await;
    }
    Ok(jobs)
}

/// Inserts `jobs` on a connection of `pool` and notifies after the commit. The connection is
/// leased (see `lease.rs`): an insert dropped at the `BEGIN` of its unique rounds must not leave
/// the session in a transaction.
pub(super) async fn insert_through_pool(
    pool: &PgPool,
    prefix: Prefix,
    jobs: Vec<NewJob>,
) -> Result<Vec<Job>> {
    let mut conn = Lease::acquire(pool).await?;
    let inserted = insert_jobs(&mut conn, prefix, jobs, InsertNotify::AfterCommit(pool)).await;
    conn.release();
    inserted
}

/// An insert error that comes from the shape of a schema another implementation installed, as
/// an error that says what to do; any other error as it is.
///
/// - A unique insert on a schema without `uniq_key` (or its index): [`Error::NotMigrated`]. Only
///   unique inserts name the column (see `insert_rows`).
/// - A `max_attempts` above 32767 where the column is `smallint` (Python Oban's schema):
///   [`Error::InvalidJob`] naming the bound.
fn explain_schema_error(error: Error) -> Error {
    if let Error::Database(sqlx::Error::Database(db)) = &error {
        // 42703 undefined_column; 42P10 invalid_column_reference, the ON CONFLICT target with
        // no matching unique index; 22003 numeric_value_out_of_range.
        match db.code().as_deref() {
            Some("42703" | "42P10") if mentions_uniq_key(db.message()) => {
                return Error::NotMigrated {
                    needs: "a unique insert",
                };
            }
            Some("22003") if db.message().contains("smallint") => {
                return Error::InvalidJob(
                    "max_attempts is above 32767, and this database's oban_jobs stores it as \
                     smallint (the schema Python Oban installs): use at most 32767"
                        .into(),
                );
            }
            _ => {}
        }
    }
    error
}

/// Whether a database message is about the unique key: the column's name, or the conflict
/// target's missing index (whose message names no column).
fn mentions_uniq_key(message: &str) -> bool {
    message.contains("uniq_key") || message.contains("ON CONFLICT")
}

impl<'a> JobInserter<'a> for &'a PgPool {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        Box::pin(insert_through_pool(self, Prefix::PUBLIC, jobs))
    }
}

impl<'a> JobInserter<'a> for &'a mut PgConnection {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        Box::pin(insert_jobs(
            self,
            Prefix::PUBLIC,
            jobs,
            InsertNotify::WithCommit,
        ))
    }
}

impl<'a, 't: 'a> JobInserter<'a> for &'a mut Transaction<'t, Postgres> {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        Box::pin(insert_jobs(
            self,
            Prefix::PUBLIC,
            jobs,
            InsertNotify::WithCommit,
        ))
    }
}

impl<'a> JobInserter<'a> for Prefixed<&'a PgPool> {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        let (prefix, pool) = self.into_parts();
        Box::pin(insert_through_pool(pool, prefix, jobs))
    }
}

impl<'a> JobInserter<'a> for Prefixed<&'a mut PgConnection> {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        let (prefix, conn) = self.into_parts();
        Box::pin(insert_jobs(conn, prefix, jobs, InsertNotify::WithCommit))
    }
}

impl<'a, 't: 'a> JobInserter<'a> for Prefixed<&'a mut Transaction<'t, Postgres>> {
    fn insert_jobs(self, jobs: Vec<NewJob>) -> BoxFuture<'a, Result<Vec<Job>>> {
        let (prefix, tx) = self.into_parts();
        Box::pin(insert_jobs(tx, prefix, jobs, InsertNotify::WithCommit))
    }
}

/// The insert algorithm's statements on one connection.
struct Statements<'c> {
    conn: &'c mut PgConnection,
    /// The schema of the tables.
    prefix: Prefix,
    /// Whether the insert statement itself notifies the queues it made runnable.
    notify_in_statement: bool,
}

#[async_trait]
impl InsertStatements for Statements<'_> {
    async fn insert_rows(&mut self, jobs: &[Keyed<'_>]) -> Result<Vec<StoredRow>> {
        insert_rows(self.conn, self.prefix, jobs, self.notify_in_statement).await
    }

    async fn release_expired(&mut self, expiring: &[Expiring<'_>]) -> Result<()> {
        if expiring.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = expiring.iter().map(|e| e.key).collect();
        let periods: Vec<i64> = expiring.iter().map(|e| millis(e.period)).collect();
        let by_scheduled: Vec<bool> = expiring.iter().map(|e| e.by_scheduled_at).collect();
        const SQL: &str = "UPDATE oban_jobs j SET uniq_key = NULL
             FROM unnest($1::text[], $2::int8[], $3::bool[]) AS t(uniq_key, period_ms, by_scheduled)
             WHERE j.uniq_key = t.uniq_key
               AND CASE WHEN t.by_scheduled THEN j.scheduled_at ELSE j.inserted_at END
                   < timezone('UTC', now()) - t.period_ms * interval '1 millisecond'";
        sqlx::query(qualify(self.prefix, SQL))
            .bind(keys)
            .bind(periods)
            .bind(by_scheduled)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn clear_keys(&mut self, ids: &[i64]) -> Result<()> {
        const SQL: &str = "UPDATE oban_jobs SET uniq_key = NULL WHERE id = ANY($1)";
        sqlx::query(qualify(self.prefix, SQL))
            .bind(ids)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn key_holders(&mut self, keys: &[&str]) -> Result<Vec<(String, Job)>> {
        // uniq_key comes after the job columns, at position 18.
        const SQL: &str = concat!(
            "SELECT ",
            job_columns!(),
            ", j.uniq_key FROM oban_jobs j WHERE j.uniq_key = ANY($1)"
        );
        let rows = sqlx::query(qualify(self.prefix, SQL))
            .bind(keys)
            .fetch_all(&mut *self.conn)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(18)?, job_from_row(row)?)))
            .collect()
    }

    async fn replace(&mut self, existing: &Job, with: &Replacement<'_>) -> Result<Option<Job>> {
        const SQL: &str = concat!(
            "UPDATE oban_jobs j SET
               args = coalesce($3, j.args),
               max_attempts = CASE WHEN $4::int4 IS NULL THEN j.max_attempts
                                   ELSE greatest($4, j.attempt + $11) END,
               meta = coalesce($5, j.meta),
               priority = coalesce($6, j.priority),
               queue = coalesce($7, j.queue),
               scheduled_at = CASE WHEN $8 THEN coalesce($9, timezone('UTC', now()))
                                   ELSE j.scheduled_at END,
               tags = coalesce($10, j.tags)
             WHERE j.id = $1 AND j.state = $2::oban_job_state
             RETURNING ",
            job_columns!()
        );
        let row = sqlx::query(qualify(self.prefix, SQL))
            .bind(existing.id)
            .bind(existing.state.as_str())
            .bind(with.args)
            .bind(with.max_attempts)
            .bind(with.meta)
            .bind(with.priority)
            .bind(with.queue)
            .bind(with.scheduled_at.is_some())
            .bind(with.scheduled_at.flatten().map(|at| at.naive_utc()))
            .bind(with.tags)
            .bind(with.attempts_left)
            .fetch_optional(&mut *self.conn)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn lock_sequences(&mut self, keys: &[String]) -> Result<()> {
        super::sequence::lock(self.conn, self.prefix, keys).await
    }

    async fn release_sequences(&mut self, keys: &[String]) -> Result<Vec<(i64, JobState)>> {
        super::sequence::release_locked(self.conn, self.prefix, keys, self.notify_in_statement)
            .await
    }

    async fn transaction(&mut self, rounds: Rounds) -> Result<Vec<Job>> {
        let mut tx = self.conn.begin().await?;
        let mut statements = Statements {
            conn: &mut tx,
            prefix: self.prefix,
            notify_in_statement: self.notify_in_statement,
        };
        let jobs = rounds(&mut statements).await?;
        tx.commit().await?;
        Ok(jobs)
    }
}

/// `items` as a PostgreSQL array literal (`{"a","b"}`), which the statement casts to `text[]`:
/// one text per job binds a list of tags without a subquery per row.
fn text_array_literal(items: &[String]) -> String {
    let mut out = String::with_capacity(2 + items.iter().map(|t| t.len() + 3).sum::<usize>());
    out.push('{');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// The insert statement (one array bind per column); returns, in input order, what the database
/// decided for each row it stored. Rows that lost a unique conflict are absent.
async fn insert_rows(
    conn: &mut PgConnection,
    prefix: Prefix,
    jobs: &[Keyed<'_>],
    notify_in_statement: bool,
) -> Result<Vec<StoredRow>> {
    let len = jobs.len();
    let mut queues = Vec::with_capacity(len);
    let mut workers = Vec::with_capacity(len);
    let mut args = Vec::with_capacity(len);
    let mut metas = Vec::with_capacity(len);
    let mut tags = Vec::with_capacity(len);
    let mut priorities = Vec::with_capacity(len);
    let mut max_attempts = Vec::with_capacity(len);
    let mut scheduled = Vec::with_capacity(len);
    let mut keys = Vec::with_capacity(len);
    for &Keyed { job, key } in jobs {
        keys.push(key);
        queues.push(job.queue.as_str());
        workers.push(job.worker.as_str());
        args.push(&job.args);
        metas.push(&job.meta);
        tags.push(text_array_literal(&job.tags));
        priorities.push(job.priority);
        max_attempts.push(job.max_attempts);
        scheduled.push(job.scheduled_at.map(|at| at.naive_utc()));
    }
    // A batch without unique jobs names no `uniq_key` (the column default, NULL, is what it
    // would write), so it works on a schema another Oban implementation installed and this
    // runtime never migrated: Elixir Oban's and Python Oban's have no such column.
    const INSERT: &str = "WITH inserted AS (
           INSERT INTO oban_jobs AS j (state, queue, worker, args, meta, tags, priority, max_attempts, scheduled_at{key_column})
           SELECT CASE WHEN t.meta ? 'workflow_id' AND jsonb_typeof(t.meta->'deps') = 'array'
                            AND t.meta->'deps' <> '[]'::jsonb THEN 'suspended'
                       -- a sequenced job waits; the release that follows in the same
                       -- transaction starts the first of an idle sequence (sequence.rs)
                       WHEN t.meta ? 'sequence' THEN 'suspended'
                       WHEN t.scheduled_at > timezone('UTC', now()) THEN 'scheduled'
                       ELSE 'available' END::oban_job_state,
                  t.queue, t.worker, t.args, t.meta, t.tags::text[], t.priority, t.max_attempts,
                  coalesce(t.scheduled_at, timezone('UTC', now())){key_value}
           FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[], $5::text[],
                       $6::int4[], $7::int4[], $8::timestamp[]{key_array})
                WITH ORDINALITY AS t(queue, worker, args, meta, tags, priority, max_attempts, scheduled_at{key_value_name}, ord)
           ORDER BY t.ord
           {on_conflict}
           RETURNING j.id, j.state::text AS state, j.inserted_at, j.scheduled_at, {key_returned} AS uniq_key, j.queue
         )";
    // Only a batch with unique jobs names the conflict target: ON CONFLICT makes every row a
    // speculative insertion, which costs a conflict check and one more WAL record per row.
    const ON_CONFLICT: &str = "ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING";
    // The join with the notifications' count makes PostgreSQL evaluate them (a LEFT JOIN
    // would be removed by the planner, and the notifications with it).
    const NOTIFY: &str = ", notified AS (
           SELECT pg_notify({channel}, json_build_object('queue', q.queue)::text)
           FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') q
         )
         SELECT i.id, i.state, i.inserted_at, i.scheduled_at, i.uniq_key
         FROM inserted i CROSS JOIN (SELECT count(*) FROM notified) n ORDER BY i.id";
    const QUIET: &str =
        " SELECT i.id, i.state, i.inserted_at, i.scheduled_at, i.uniq_key FROM inserted i ORDER BY i.id";
    // Four fixed statement texts (with or without unique keys, with or without a notification),
    // so every one stays prepared on the connection.
    static STATEMENTS: std::sync::LazyLock<[String; 4]> = std::sync::LazyLock::new(|| {
        let insert = |unique: bool| {
            let parts: [(&str, &str); 6] = if unique {
                [
                    ("{key_column}", ", uniq_key"),
                    ("{key_value}", ", t.uniq_key"),
                    ("{key_array}", ", $9::text[]"),
                    ("{key_value_name}", ", uniq_key"),
                    ("{on_conflict}", ON_CONFLICT),
                    ("{key_returned}", "j.uniq_key"),
                ]
            } else {
                [
                    ("{key_column}", ""),
                    ("{key_value}", ""),
                    ("{key_array}", ""),
                    ("{key_value_name}", ""),
                    ("{on_conflict}", ""),
                    ("{key_returned}", "NULL::text"),
                ]
            };
            parts.iter().fold(INSERT.to_owned(), |sql, (hole, part)| {
                sql.replace(hole, part)
            })
        };
        [
            // The channel follows the keys when they are bound.
            format!("{}{QUIET}", insert(false)),
            format!("{}{}", insert(false), NOTIFY.replace("{channel}", "$9")),
            format!("{}{QUIET}", insert(true)),
            format!("{}{}", insert(true), NOTIFY.replace("{channel}", "$10")),
        ]
    });
    let unique = keys.iter().any(Option::is_some);
    let sql = STATEMENTS[usize::from(unique) * 2 + usize::from(notify_in_statement)].as_str();
    let mut query = sqlx::query(qualify(prefix, sql))
        .bind(queues)
        .bind(workers)
        .bind(args)
        .bind(metas)
        .bind(tags)
        .bind(priorities)
        .bind(max_attempts)
        .bind(scheduled);
    if unique {
        query = query.bind(keys);
    }
    if notify_in_statement {
        query = query.bind(channel_name(prefix, Channel::Insert));
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            let state: &str = row.try_get(1)?;
            Ok(StoredRow {
                id: row.try_get(0)?,
                state: state
                    .parse::<JobState>()
                    .map_err(|e| Error::InvalidJob(e.to_string()))?,
                inserted_at: utc(row.try_get(2)?),
                scheduled_at: utc(row.try_get(3)?),
                uniq_key: row.try_get(4)?,
            })
        })
        .collect()
}
