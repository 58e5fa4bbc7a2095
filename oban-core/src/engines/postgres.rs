//! The PostgreSQL engine: all of the runtime's SQL for PostgreSQL lives in this file.
//!
//! Timestamps are `timestamp without time zone` holding UTC, as in Elixir Oban's schema; the
//! database clock (`timezone('UTC', now())`) is the only clock used for scheduling decisions.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgListener, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::Postgres;
use std::collections::HashMap;
use tokio::sync::mpsc;

use sqlx::{Executor, PgConnection, Row};

use crate::engine::{Ack, Engine, FetchCursor, ProducerInfo, StopSignal};
use crate::error::{Error, Result};
use crate::filter::JobFilter;
use crate::job::{strings_from_json, AttemptError, Job, JobState};
use crate::new_job::NewJob;
use crate::notifier::{Channel, Notice};
use crate::unique::{unique_key, ReplaceField, UniqueTimestamp};

/// Column list every job query returns first, normalised so that schemas installed by Elixir
/// Oban (integer, `text[]` tags, `jsonb[]` errors) and by Oban's Python port (smallint, jsonb)
/// decode alike; empty tags and errors come as NULL, which decodes without a JSON parse.
/// [`job_from_row`] reads the columns by position, in this order.
macro_rules! job_columns {
    () => {
        "j.id, j.state::text AS state, j.queue, j.worker, j.args, \
     coalesce(j.meta, '{}'::jsonb) AS meta, nullif(to_jsonb(j.tags), '[]'::jsonb) AS tags, \
     nullif(to_jsonb(j.errors), '[]'::jsonb) AS errors, j.attempt::int4 AS attempt, \
     j.max_attempts::int4 AS max_attempts, j.priority::int4 AS priority, \
     coalesce(j.attempted_by, ARRAY[]::text[]) AS attempted_by, j.inserted_at, j.scheduled_at, \
     j.attempted_at, j.completed_at, j.discarded_at, j.cancelled_at"
    };
}
const JOB_COLUMNS: &str = job_columns!();

const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "install oban_jobs",
        include_str!("../../../migrations/postgres/001_install_oban_jobs.sql"),
    ),
    (
        2,
        "runtime tables",
        include_str!("../../../migrations/postgres/002_runtime_tables.sql"),
    ),
    (
        3,
        "unique key",
        include_str!("../../../migrations/postgres/003_unique_key.sql"),
    ),
    (
        4,
        "fetch index and function",
        include_str!("../../../migrations/postgres/004_fetch.sql"),
    ),
];

/// `uniq_key` after a change of state to the SQL expression `state`: kept while the new state is
/// one of the job's unique states (`meta.uniq_states`), cleared otherwise.
macro_rules! keep_uniq_key {
    ($state:literal) => {
        concat!(
            "uniq_key = CASE WHEN j.uniq_key IS NOT NULL AND coalesce(j.meta->'uniq_states' ? (",
            $state,
            ")::text, false) THEN j.uniq_key END"
        )
    };
}

/// Arbitrary but fixed key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x0ba7_0001;

/// The PostgreSQL engine over a connection pool.
#[derive(Debug, Clone)]
pub struct PostgresEngine {
    pool: PgPool,
}

impl PostgresEngine {
    /// An engine using `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Applies the schema on `conn` (see [`crate::migrate`]).
pub(crate) async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    (&mut *tx)
        .execute(
            "CREATE TABLE IF NOT EXISTS oban_rust_migrations (
               version integer PRIMARY KEY,
               description text NOT NULL,
               installed_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let applied: Vec<i32> = sqlx::query_scalar("SELECT version FROM oban_rust_migrations")
        .fetch_all(&mut *tx)
        .await?;
    let jobs_table_exists: bool = sqlx::query_scalar("SELECT to_regclass('oban_jobs') IS NOT NULL")
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
                .execute(*sql)
                .await
                .map_err(|e| Error::Migration(format!("step {version} ({description}): {e}")))?;
        }
        sqlx::query("INSERT INTO oban_rust_migrations (version, description) VALUES ($1, $2)")
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

/// Inserts `jobs` on any PostgreSQL connection: one statement with one array bind per column.
///
/// Unique jobs (see [`crate::unique`]) take a transaction (a savepoint inside the caller's):
/// release keys whose period is over, insert with `ON CONFLICT DO NOTHING`, then report every
/// job that lost to an existing one as that job with `conflict` set.
///
/// Queues that received runnable jobs are notified as `notify` says.
pub(crate) async fn insert_jobs(
    conn: &mut PgConnection,
    jobs: Vec<NewJob>,
    notify: InsertNotify<'_>,
) -> Result<Vec<Job>> {
    let in_statement = matches!(notify, InsertNotify::WithCommit);
    let jobs = insert_and_map(&mut *conn, jobs, in_statement).await?;
    if let InsertNotify::AfterCommit(pool) = notify {
        let queues = jobs
            .iter()
            .filter(|job| job.state == JobState::Available && !job.conflict)
            .map(|job| job.queue.as_str());
        let now = InsertNotifier::for_pool(pool).plan(pool, queues);
        if !now.is_empty() {
            // The jobs are committed; a failed notification only leaves them to the poll.
            if let Err(error) = notify_inserted(&mut *conn, &now).await {
                tracing::debug!(%error, "could not notify queues of inserted jobs");
            }
        }
    }
    Ok(jobs)
}

/// [`insert_jobs`] without its notification after commit; `in_statement` makes the insert
/// statement notify.
async fn insert_and_map(
    conn: &mut PgConnection,
    jobs: Vec<NewJob>,
    in_statement: bool,
) -> Result<Vec<Job>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut jobs = jobs;
    for job in &mut jobs {
        job.validate()?;
        if let (Some(unique), Value::Object(meta)) = (&job.unique, &mut job.meta) {
            let states: Vec<&str> = unique.states.states().iter().map(|s| s.as_str()).collect();
            meta.insert("uniq_states".to_owned(), Value::from(states));
        }
    }
    let keys: Vec<Option<String>> = jobs
        .iter()
        .map(|job| job.unique.as_ref().map(|u| unique_key(job, u)))
        .collect();
    if keys.iter().all(Option::is_none) {
        let all: Vec<&NewJob> = jobs.iter().collect();
        let rows = insert_rows(&mut *conn, &all, &keys, in_statement).await?;
        if rows.len() != jobs.len() {
            return Err(Error::InvalidJob(
                "the insert returned fewer rows than jobs".into(),
            ));
        }
        return Ok(jobs
            .into_iter()
            .zip(rows)
            .map(|(job, row)| row.into_job(job))
            .collect());
    }

    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut results: Vec<Option<Job>> = vec![None; jobs.len()];
    let mut pending: Vec<usize> = (0..jobs.len()).collect();
    for _round in 0..5 {
        release_expired(&mut tx, &jobs, &keys, &pending).await?;
        let batch: Vec<&NewJob> = pending.iter().map(|&i| &jobs[i]).collect();
        let batch_keys: Vec<Option<String>> = pending.iter().map(|&i| keys[i].clone()).collect();
        let rows = insert_rows(&mut tx, &batch, &batch_keys, in_statement).await?;

        // Map the inserted rows back to inputs: unkeyed in order, keyed by key (the first input
        // with a key wins; later equal inputs of the batch conflict with it).
        let mut unkeyed = rows.iter().filter(|row| row.uniq_key.is_none());
        let mut by_key: HashMap<&str, &Inserted> = rows
            .iter()
            .filter_map(|row| row.uniq_key.as_deref().map(|k| (k, row)))
            .collect();
        let mut conflicted = Vec::new();
        for &i in &pending {
            match keys[i].as_deref() {
                None => {
                    results[i] = unkeyed
                        .next()
                        .map(|row| row.clone().into_job(jobs[i].clone()))
                }
                Some(key) => match by_key.remove(key) {
                    Some(row) => results[i] = Some(row.clone().into_job(jobs[i].clone())),
                    None => conflicted.push(i),
                },
            }
        }
        // A job inserted outside its own unique states must not hold its key.
        let outside: Vec<i64> = pending
            .iter()
            .filter_map(|&i| {
                results[i]
                    .as_ref()
                    .filter(|_| keys[i].is_some())
                    .map(|job| (i, job))
            })
            .filter(|(i, job)| {
                jobs[*i]
                    .unique
                    .is_some_and(|u| !u.states.states().contains(&job.state))
            })
            .map(|(_, job)| job.id)
            .collect();
        if !outside.is_empty() {
            sqlx::query("UPDATE oban_jobs SET uniq_key = NULL WHERE id = ANY($1)")
                .bind(&outside)
                .execute(&mut *tx)
                .await?;
        }
        if conflicted.is_empty() {
            pending.clear();
            break;
        }
        // The holders of the conflicting keys (committed, or inserted earlier in this batch).
        let wanted: Vec<&str> = conflicted
            .iter()
            .filter_map(|&i| keys[i].as_deref())
            .collect();
        let sql =
            format!("SELECT {JOB_COLUMNS}, j.uniq_key FROM oban_jobs j WHERE j.uniq_key = ANY($1)");
        let holders = sqlx::query(&sql).bind(&wanted).fetch_all(&mut *tx).await?;
        let holders: HashMap<String, Job> = holders
            .iter()
            .map(|row| Ok((row.try_get::<String, _>("uniq_key")?, job_from_row(row)?)))
            .collect::<Result<_>>()?;
        pending.clear();
        for i in conflicted {
            let key = keys[i].as_deref().unwrap_or_default();
            match holders.get(key) {
                Some(existing) => {
                    let mut existing = replace_fields(&mut tx, existing, &jobs[i]).await?;
                    existing.conflict = true;
                    results[i] = Some(existing);
                }
                // The holder left its unique states meanwhile: try again.
                None => pending.push(i),
            }
        }
        if pending.is_empty() {
            break;
        }
    }
    if !pending.is_empty() {
        return Err(Error::InvalidJob(format!(
            "{} unique job(s) kept conflicting with jobs that changed state under them; try again",
            pending.len()
        )));
    }
    tx.commit().await?;
    results
        .into_iter()
        .map(|job| {
            job.ok_or_else(|| Error::InvalidJob("the insert returned fewer rows than jobs".into()))
        })
        .collect()
}

/// How an insert tells the queues of the jobs it made runnable.
#[derive(Debug, Clone, Copy)]
pub(crate) enum InsertNotify<'a> {
    /// Inside a caller's transaction: the insert statement itself notifies, so the notification
    /// goes out if and only if the transaction commits.
    WithCommit,
    /// The insert commits on its own (through a pool or a node): notify after it, through the
    /// [`InsertNotifier`] of this pool's database.
    AfterCommit(&'a PgPool),
}

/// Notifications for inserts that commit on their own: one statement after the commit, at most
/// one per queue per window, and a trailing one for whatever was inserted within the window.
///
/// A transaction that sent NOTIFY holds a global lock from its commit through its WAL flush, so
/// notifying inside every insert serialises concurrent inserts (measured: 8 clients inserting one
/// job each, 11,300 commits/s without notifications, 4,300 with one inside each insert, 8,100
/// with one in its own statement after each insert, which writes no WAL). After the commit and
/// throttled, concurrent inserts keep their pace; the trailing notification means no job waits
/// for the poll (a dropped one did: 10 ms at p99 to start a job inserted on another pool).
#[derive(Debug, Default)]
pub(crate) struct InsertNotifier {
    queues: std::sync::Mutex<HashMap<String, QueueNotices>>,
}

/// The notifications of one queue.
#[derive(Debug)]
struct QueueNotices {
    /// When the last one was sent.
    last: std::time::Instant,
    /// A trailing notification is scheduled.
    trailing: bool,
}

impl InsertNotifier {
    const WINDOW: Duration = Duration::from_millis(5);

    /// After a commit that made jobs of `queues` runnable: the queues to notify now. A queue
    /// notified within the window gets one trailing notification at the window's end instead,
    /// sent through `pool` (which covers every insert committed before it goes out).
    fn plan<'q>(
        self: &std::sync::Arc<Self>,
        pool: &PgPool,
        queues: impl Iterator<Item = &'q str>,
    ) -> Vec<String> {
        let now = std::time::Instant::now();
        let mut notify_now = Vec::new();
        let mut state = self.queues.lock().expect("insert notifier lock");
        for queue in queues {
            if notify_now.iter().any(|q| q == queue) {
                continue;
            }
            match state.get_mut(queue) {
                Some(notices) if now.duration_since(notices.last) < Self::WINDOW => {
                    if !notices.trailing {
                        notices.trailing = true;
                        let at = notices.last + Self::WINDOW;
                        let notifier = std::sync::Arc::clone(self);
                        tokio::spawn(notifier.trailing(pool.clone(), queue.to_owned(), at));
                    }
                }
                Some(notices) => {
                    notices.last = now;
                    notify_now.push(queue.to_owned());
                }
                None => {
                    let notices = QueueNotices {
                        last: now,
                        trailing: false,
                    };
                    state.insert(queue.to_owned(), notices);
                    notify_now.push(queue.to_owned());
                }
            }
        }
        notify_now
    }

    /// Sends the trailing notification of `queue` at `at`.
    async fn trailing(
        self: std::sync::Arc<Self>,
        pool: PgPool,
        queue: String,
        at: std::time::Instant,
    ) {
        tokio::time::sleep_until(at.into()).await;
        if let Some(notices) = self
            .queues
            .lock()
            .expect("insert notifier lock")
            .get_mut(&queue)
        {
            notices.trailing = false;
            notices.last = std::time::Instant::now();
        }
        let sent = match pool.acquire().await {
            Ok(mut conn) => notify_inserted(&mut conn, std::slice::from_ref(&queue)).await,
            Err(error) => Err(error.into()),
        };
        if let Err(error) = sent {
            tracing::debug!(%error, %queue, "could not notify a queue of inserted jobs");
        }
    }

    /// The notifier shared by every insert through pools on the same database.
    fn for_pool(pool: &PgPool) -> std::sync::Arc<InsertNotifier> {
        static NOTIFIERS: std::sync::LazyLock<
            std::sync::Mutex<HashMap<String, std::sync::Arc<InsertNotifier>>>,
        > = std::sync::LazyLock::new(Default::default);
        let options = pool.connect_options();
        let key = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        NOTIFIERS
            .lock()
            .expect("insert notifiers lock")
            .entry(key)
            .or_default()
            .clone()
    }
}

/// Tells every node that `queues` have new runnable jobs (Oban's insert channel and payload).
async fn notify_inserted(conn: &mut PgConnection, queues: &[String]) -> Result<()> {
    sqlx::query(
        "SELECT pg_notify('public.oban_insert', json_build_object('queue', q)::text)
         FROM unnest($1::text[]) q",
    )
    .bind(queues)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What the database decided for one inserted row; the rest of the job is what was sent.
#[derive(Debug, Clone)]
struct Inserted {
    id: i64,
    state: JobState,
    inserted_at: NaiveDateTime,
    scheduled_at: NaiveDateTime,
    /// The unique key the row holds, if any.
    uniq_key: Option<String>,
}

impl Inserted {
    /// The stored job: `job` as sent, with the id, state and times the database gave it.
    fn into_job(self, job: NewJob) -> Job {
        Job {
            id: self.id,
            state: self.state,
            queue: job.queue,
            worker: job.worker,
            args: job.args,
            meta: job.meta,
            tags: job.tags,
            errors: Vec::new(),
            attempt: 0,
            max_attempts: job.max_attempts,
            priority: job.priority,
            attempted_by: Vec::new(),
            inserted_at: utc(self.inserted_at),
            scheduled_at: utc(self.scheduled_at),
            attempted_at: None,
            completed_at: None,
            discarded_at: None,
            cancelled_at: None,
            conflict: false,
        }
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
    jobs: &[&NewJob],
    keys: &[Option<String>],
    notify_in_statement: bool,
) -> Result<Vec<Inserted>> {
    let len = jobs.len();
    let mut queues = Vec::with_capacity(len);
    let mut workers = Vec::with_capacity(len);
    let mut args = Vec::with_capacity(len);
    let mut metas = Vec::with_capacity(len);
    let mut tags = Vec::with_capacity(len);
    let mut priorities = Vec::with_capacity(len);
    let mut max_attempts = Vec::with_capacity(len);
    let mut scheduled = Vec::with_capacity(len);
    for job in jobs {
        queues.push(job.queue.as_str());
        workers.push(job.worker.as_str());
        args.push(&job.args);
        metas.push(&job.meta);
        tags.push(text_array_literal(&job.tags));
        priorities.push(job.priority);
        max_attempts.push(job.max_attempts);
        scheduled.push(job.scheduled_at.map(|at| at.naive_utc()));
    }
    const INSERT: &str = "WITH inserted AS (
           INSERT INTO oban_jobs AS j (state, queue, worker, args, meta, tags, priority, max_attempts, scheduled_at, uniq_key)
           SELECT CASE WHEN t.scheduled_at > timezone('UTC', now()) THEN 'scheduled' ELSE 'available' END::oban_job_state,
                  t.queue, t.worker, t.args, t.meta, t.tags::text[], t.priority, t.max_attempts,
                  coalesce(t.scheduled_at, timezone('UTC', now())), t.uniq_key
           FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[], $5::text[],
                       $6::int4[], $7::int4[], $8::timestamp[], $9::text[])
                WITH ORDINALITY AS t(queue, worker, args, meta, tags, priority, max_attempts, scheduled_at, uniq_key, ord)
           ORDER BY t.ord
           {on_conflict}
           RETURNING j.id, j.state::text AS state, j.inserted_at, j.scheduled_at, j.uniq_key, j.queue
         )";
    // Only a batch with unique jobs names the conflict target: ON CONFLICT makes every row a
    // speculative insertion, which costs a conflict check and one more WAL record per row.
    const ON_CONFLICT: &str = "ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING";
    // The join with the notifications' count makes PostgreSQL evaluate them (a LEFT JOIN
    // would be removed by the planner, and the notifications with it).
    const NOTIFY: &str = ", notified AS (
           SELECT pg_notify('public.oban_insert', json_build_object('queue', q.queue)::text)
           FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') q
         )
         SELECT i.id, i.state, i.inserted_at, i.scheduled_at, i.uniq_key
         FROM inserted i CROSS JOIN (SELECT count(*) FROM notified) n ORDER BY i.id";
    const QUIET: &str =
        " SELECT i.id, i.state, i.inserted_at, i.scheduled_at, i.uniq_key FROM inserted i ORDER BY i.id";
    // Four fixed statement texts (with or without unique keys, with or without a notification),
    // so every one stays prepared on the connection.
    static STATEMENTS: std::sync::LazyLock<[String; 4]> = std::sync::LazyLock::new(|| {
        let insert = |conflict: &str| INSERT.replace("{on_conflict}", conflict);
        [
            format!("{}{QUIET}", insert("")),
            format!("{}{NOTIFY}", insert("")),
            format!("{}{QUIET}", insert(ON_CONFLICT)),
            format!("{}{NOTIFY}", insert(ON_CONFLICT)),
        ]
    });
    let unique = keys.iter().any(Option::is_some);
    let sql = STATEMENTS[usize::from(unique) * 2 + usize::from(notify_in_statement)].as_str();
    let rows = sqlx::query(sql)
        .bind(queues)
        .bind(workers)
        .bind(args)
        .bind(metas)
        .bind(tags)
        .bind(priorities)
        .bind(max_attempts)
        .bind(scheduled)
        .bind(keys)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            let state: &str = row.try_get(1)?;
            Ok(Inserted {
                id: row.try_get(0)?,
                state: state
                    .parse::<JobState>()
                    .map_err(|e| Error::InvalidJob(e.to_string()))?,
                inserted_at: row.try_get(2)?,
                scheduled_at: row.try_get(3)?,
                uniq_key: row.try_get(4)?,
            })
        })
        .collect()
}

/// Releases the keys of `pending` jobs held by jobs whose unique period is over.
async fn release_expired(
    conn: &mut PgConnection,
    jobs: &[NewJob],
    keys: &[Option<String>],
    pending: &[usize],
) -> Result<()> {
    let mut release_keys = Vec::new();
    let mut periods = Vec::new();
    let mut by_scheduled = Vec::new();
    for &i in pending {
        if let (Some(key), Some(unique)) = (&keys[i], &jobs[i].unique) {
            if let Some(period) = unique.period_duration() {
                release_keys.push(key.as_str());
                periods.push(millis(period));
                by_scheduled.push(unique.timestamp == UniqueTimestamp::ScheduledAt);
            }
        }
    }
    if release_keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE oban_jobs j SET uniq_key = NULL
         FROM unnest($1::text[], $2::int8[], $3::bool[]) AS t(uniq_key, period_ms, by_scheduled)
         WHERE j.uniq_key = t.uniq_key
           AND CASE WHEN t.by_scheduled THEN j.scheduled_at ELSE j.inserted_at END
               < timezone('UTC', now()) - t.period_ms * interval '1 millisecond'",
    )
    .bind(release_keys)
    .bind(periods)
    .bind(by_scheduled)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies `job`'s replace rules for the state `existing` is in; returns the job as it now is.
async fn replace_fields(conn: &mut PgConnection, existing: &Job, job: &NewJob) -> Result<Job> {
    let fields: Vec<ReplaceField> = job
        .replace
        .iter()
        .filter(|(state, _)| *state == existing.state)
        .flat_map(|(_, fields)| fields.iter().copied())
        .collect();
    if fields.is_empty() {
        return Ok(existing.clone());
    }
    let has = |field: ReplaceField| fields.contains(&field);
    let sql = format!(
        "UPDATE oban_jobs j SET
           args = CASE WHEN $3 THEN $4 ELSE j.args END,
           max_attempts = CASE WHEN $5 THEN greatest($6, j.attempt) ELSE j.max_attempts END,
           meta = CASE WHEN $7 THEN $8 ELSE j.meta END,
           priority = CASE WHEN $9 THEN $10 ELSE j.priority END,
           queue = CASE WHEN $11 THEN $12 ELSE j.queue END,
           scheduled_at = CASE WHEN $13 THEN coalesce($14, timezone('UTC', now())) ELSE j.scheduled_at END,
           tags = CASE WHEN $15 THEN $16 ELSE j.tags END
         WHERE j.id = $1 AND j.state = $2::oban_job_state
         RETURNING {JOB_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(existing.id)
        .bind(existing.state.as_str())
        .bind(has(ReplaceField::Args))
        .bind(&job.args)
        .bind(has(ReplaceField::MaxAttempts))
        .bind(job.max_attempts)
        .bind(has(ReplaceField::Meta))
        .bind(&job.meta)
        .bind(has(ReplaceField::Priority))
        .bind(job.priority)
        .bind(has(ReplaceField::Queue))
        .bind(&job.queue)
        .bind(has(ReplaceField::ScheduledAt))
        .bind(job.scheduled_at.map(|at| at.naive_utc()))
        .bind(has(ReplaceField::Tags))
        .bind(&job.tags)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => job_from_row(&row),
        // It changed state between the lookup and now; report it as found.
        None => Ok(existing.clone()),
    }
}

#[async_trait]
impl Engine for PostgresEngine {
    async fn schema_migrate(&self) -> Result<()> {
        migrate(&self.pool).await
    }

    async fn job_insert_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        let mut conn = self.pool.acquire().await?;
        insert_jobs(&mut conn, jobs, InsertNotify::AfterCommit(&self.pool)).await
    }

    async fn job_fetch_available(
        &self,
        queue: &str,
        demand: u32,
        attempted_by: &[String],
        after: Option<FetchCursor>,
    ) -> Result<Vec<Job>> {
        // The claim is `oban_fetch_available` (migrations/postgres/004_fetch.sql): a function so
        // that its plan is pinned to the ordered scan of the fetch index.
        const SQL: &str = concat!(
            "SELECT ",
            job_columns!(),
            " FROM oban_fetch_available($1, $2, $3, $4, $5, $6) j"
        );
        let rows = sqlx::query(SQL)
            .bind(queue)
            .bind(i32::try_from(demand).unwrap_or(i32::MAX))
            .bind(attempted_by)
            .bind(after.map(|c| c.priority))
            .bind(after.map(|c| c.scheduled_at))
            .bind(after.map(|c| c.id))
            .fetch_all(&self.pool)
            .await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|job| (job.priority, job.scheduled_at, job.id));
        Ok(jobs)
    }

    async fn job_ack_many(&self, acks: &[Ack]) -> Result<Vec<i64>> {
        // Plain completions, nearly every ack of a busy queue, take a statement that writes two
        // columns; every other outcome takes the general one.
        let (completed, other): (Vec<&Ack>, Vec<&Ack>) =
            acks.iter().partition(|ack| ack.is_plain_completion());
        let mut acked = ack_completed(&self.pool, &completed).await?;
        acked.extend(ack_other(&self.pool, &other).await?);
        Ok(acked)
    }

    async fn job_stage_due(&self, limit: u32) -> Result<Vec<String>> {
        let queues = sqlx::query_scalar(concat!(
            "WITH due AS (
               SELECT id FROM oban_jobs
               WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= timezone('UTC', now())
               ORDER BY scheduled_at, id
               LIMIT $1
               FOR UPDATE SKIP LOCKED
             ), staged AS (
               UPDATE oban_jobs j SET state = 'available', ",
            keep_uniq_key!("'available'"),
            " FROM due WHERE j.id = due.id RETURNING j.queue
             )
             SELECT DISTINCT queue FROM staged"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(queues)
    }

    async fn job_rescue_orphaned(
        &self,
        stale_after: Duration,
        unknown_after: Duration,
    ) -> Result<u64> {
        let result = sqlx::query(concat!(
            "WITH orphans AS (
               SELECT j.id FROM oban_jobs j
               LEFT JOIN oban_producers p ON p.uuid::text = j.attempted_by[2]
               WHERE j.state = 'executing'
                 AND ((p.uuid IS NOT NULL AND p.updated_at < timezone('UTC', now()) - $1 * interval '1 millisecond')
                   OR (p.uuid IS NULL AND j.attempted_at < timezone('UTC', now()) - $2 * interval '1 millisecond'))
               FOR UPDATE OF j SKIP LOCKED
             )
             UPDATE oban_jobs j SET
               state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END::oban_job_state, ",
            keep_uniq_key!("CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END"),
            ",
               discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN timezone('UTC', now()) ELSE j.discarded_at END,
               meta = coalesce(j.meta, '{}'::jsonb) || jsonb_build_object(
                 'rescued', coalesce((j.meta->>'rescued')::int, 0) + 1,
                 'rescued_from', to_jsonb(j.attempted_by))
             FROM orphans WHERE j.id = orphans.id"
        ))
        .bind(millis(stale_after))
        .bind(millis(unknown_after))
        .execute(&self.pool)
        .await?;
        // Producers silent for three times the threshold, with nothing left to rescue, are gone.
        sqlx::query(
            "DELETE FROM oban_producers p
             WHERE p.updated_at < timezone('UTC', now()) - 3 * $1 * interval '1 millisecond'
               AND NOT EXISTS (SELECT 1 FROM oban_jobs j WHERE j.state = 'executing' AND j.attempted_by[2] = p.uuid::text)",
        )
        .bind(millis(stale_after))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn job_list(&self, filter: &JobFilter, limit: u32) -> Result<Vec<Job>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM oban_jobs j WHERE {FILTER_SQL} ORDER BY j.id LIMIT $8"
        );
        let rows = bind_filter(sqlx::query(&sql), filter)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn job_get(&self, id: i64) -> Result<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM oban_jobs j WHERE j.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn job_retry_many(&self, filter: &JobFilter) -> Result<u64> {
        let sql = format!(
            concat!(
                "UPDATE oban_jobs j SET state = 'available', scheduled_at = timezone('UTC', now()),
                   max_attempts = greatest(j.max_attempts, j.attempt + 1),
                   completed_at = NULL, discarded_at = NULL, cancelled_at = NULL, ",
                keep_uniq_key!("'available'"),
                " WHERE {} AND j.state NOT IN ('executing', 'available')"
            ),
            FILTER_SQL
        );
        let result = bind_filter(sqlx::query(&sql), filter)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    async fn job_cancel_many(&self, filter: &JobFilter) -> Result<(u64, Vec<i64>)> {
        let sql = format!(
            concat!(
                "WITH target AS (
                   SELECT j.id, j.state FROM oban_jobs j
                   WHERE {} AND j.state NOT IN ('completed', 'discarded', 'cancelled')
                   FOR UPDATE
                 )
                 UPDATE oban_jobs j SET state = 'cancelled', cancelled_at = timezone('UTC', now()), ",
                keep_uniq_key!("'cancelled'"),
                " FROM target WHERE j.id = target.id
                 RETURNING j.id, target.state = 'executing' AS was_executing"
            ),
            FILTER_SQL
        );
        let rows: Vec<(i64, bool)> = bind_filter(sqlx::query(&sql), filter)
            .try_map(|row: PgRow| Ok((row.try_get(0)?, row.try_get(1)?)))
            .fetch_all(&self.pool)
            .await?;
        let executing = rows.iter().filter(|(_, e)| *e).map(|(id, _)| *id).collect();
        Ok((rows.len() as u64, executing))
    }

    async fn job_delete_many(&self, filter: &JobFilter) -> Result<u64> {
        let sql = format!("DELETE FROM oban_jobs j WHERE {FILTER_SQL} AND j.state <> 'executing'");
        let result = bind_filter(sqlx::query(&sql), filter)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    async fn job_prune(&self, max_age: Duration, limit: u32) -> Result<u64> {
        let result = sqlx::query(
            "WITH cutoff AS (SELECT timezone('UTC', now()) - $1 * interval '1 millisecond' AS at),
             doomed AS (
               (SELECT id FROM oban_jobs, cutoff WHERE state = 'completed' AND completed_at < cutoff.at LIMIT $2)
               UNION ALL
               (SELECT id FROM oban_jobs, cutoff WHERE state = 'cancelled' AND cancelled_at < cutoff.at LIMIT $2)
               UNION ALL
               (SELECT id FROM oban_jobs, cutoff WHERE state = 'discarded' AND discarded_at < cutoff.at LIMIT $2)
             ),
             locked AS (
               SELECT j.id FROM oban_jobs j JOIN doomed USING (id)
               ORDER BY j.id LIMIT $2 FOR UPDATE OF j SKIP LOCKED
             )
             DELETE FROM oban_jobs j USING locked WHERE j.id = locked.id",
        )
        .bind(millis(max_age))
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn schema_reindex(&self) -> Result<()> {
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(indexname) FROM pg_indexes
             WHERE tablename = 'oban_jobs' AND schemaname = current_schema()",
        )
        .fetch_all(&self.pool)
        .await?;
        for index in indexes {
            // One index at a time, outside any transaction, so writes never block.
            (&self.pool)
                .execute(format!("REINDEX INDEX CONCURRENTLY {index}").as_str())
                .await?;
        }
        Ok(())
    }

    async fn notify(&self, channel: Channel, payload: Value) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel.name())
            .bind(payload.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn listen(
        &self,
        sink: mpsc::UnboundedSender<Notice>,
        mut stop: StopSignal,
    ) -> Result<bool> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        let probe = format!("oban_probe_{}", uuid::Uuid::new_v4().simple());
        let mut channels: Vec<&str> = Channel::ALL.iter().map(|c| c.name()).collect();
        channels.push(&probe);
        listener.listen_all(channels).await?;
        sqlx::query("SELECT pg_notify($1, 'probe')")
            .bind(&probe)
            .execute(&self.pool)
            .await?;
        // A notification to ourselves proves LISTEN works on this connection (it does not behind
        // a transaction-mode pooler).
        let heard = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match listener.recv().await {
                    Ok(n) if n.channel() == probe => return true,
                    Ok(_) => continue,
                    Err(_) => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        if !heard {
            return Ok(false);
        }
        listener.unlisten(&probe).await?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    received = listener.try_recv() => match received {
                        Ok(Some(n)) => {
                            let notice = Channel::from_name(n.channel()).and_then(|c| Notice::decode(c, n.payload()));
                            if let Some(notice) = notice {
                                if sink.send(notice).is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(None) => {
                            tracing::warn!("the notification connection was lost; reconnecting");
                            if sink.send(Notice::Reconnected).is_err() {
                                return;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "listening for notifications failed; retrying in 1 s");
                            tokio::select! {
                                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = stop.changed() => return,
                            }
                        }
                    },
                }
            }
        });
        Ok(true)
    }

    async fn leader_elect(&self, name: &str, node: &str, ttl: Duration) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM oban_peers WHERE name = $1 AND expires_at < timezone('UTC', now())",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let leader: Option<String> = sqlx::query_scalar(
            "INSERT INTO oban_peers (name, node, started_at, expires_at)
             VALUES ($1, $2, timezone('UTC', now()), timezone('UTC', now()) + $3 * interval '1 millisecond')
             ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at
               WHERE oban_peers.node = excluded.node
             RETURNING node",
        )
        .bind(name)
        .bind(node)
        .bind(millis(ttl))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(leader.as_deref() == Some(node))
    }

    async fn leader_resign(&self, name: &str, node: &str) -> Result<()> {
        sqlx::query("DELETE FROM oban_peers WHERE name = $1 AND node = $2")
            .bind(name)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn producer_list(&self, queue: Option<&str>) -> Result<Vec<ProducerInfo>> {
        let rows = sqlx::query(
            "SELECT uuid, node, queue, meta, started_at, updated_at FROM oban_producers
             WHERE $1::text IS NULL OR queue = $1 ORDER BY queue, node, started_at",
        )
        .bind(queue)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ProducerInfo {
                    uuid: row.try_get("uuid")?,
                    node: row.try_get("node")?,
                    queue: row.try_get("queue")?,
                    meta: row.try_get("meta")?,
                    started_at: utc(row.try_get("started_at")?),
                    updated_at: utc(row.try_get("updated_at")?),
                })
            })
            .collect()
    }

    async fn producer_heartbeat(
        &self,
        uuid: uuid::Uuid,
        node: &str,
        queue: &str,
        meta: Value,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO oban_producers (uuid, node, queue, meta) VALUES ($1, $2, $3, $4)
             ON CONFLICT (uuid) DO UPDATE SET meta = excluded.meta, updated_at = timezone('UTC', now())",
        )
        .bind(uuid)
        .bind(node)
        .bind(queue)
        .bind(meta)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn producer_delete(&self, uuid: uuid::Uuid) -> Result<()> {
        sqlx::query("DELETE FROM oban_producers WHERE uuid = $1")
            .bind(uuid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Records plain completions: one statement over ids and the attempt each ack belongs to.
async fn ack_completed(pool: &PgPool, acks: &[&Ack]) -> Result<Vec<i64>> {
    if acks.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = acks.iter().map(|a| a.id).collect();
    let attempted: Vec<NaiveDateTime> = acks.iter().map(|a| a.attempted_at).collect();
    let ids = sqlx::query_scalar(concat!(
        "UPDATE oban_jobs j SET state = 'completed', completed_at = timezone('UTC', now()), ",
        keep_uniq_key!("'completed'"),
        " FROM unnest($1::int8[], $2::timestamp[]) AS a(id, attempted_at)
         -- state::text keeps the planner on the primary key where a schema has a state index
         -- (Elixir Oban's): statistics taken while nothing ran estimate one executing row, and
         -- scanning the state index instead walks every dead entry that fetches and acks left
         -- behind (measured: seconds per ack with 200,000 finished jobs in the table).
         WHERE j.id = a.id AND j.state::text = 'executing' AND j.attempted_at = a.attempted_at
         RETURNING j.id"
    ))
    .bind(ids)
    .bind(attempted)
    .fetch_all(pool)
    .await?;
    Ok(ids)
}

/// Records any outcome: retries, discards, cancels, snoozes, hand-backs.
async fn ack_other(pool: &PgPool, acks: &[&Ack]) -> Result<Vec<i64>> {
    if acks.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = acks.iter().map(|a| a.id).collect();
    let attempted: Vec<NaiveDateTime> = acks.iter().map(|a| a.attempted_at).collect();
    let states: Vec<&str> = acks.iter().map(|a| a.state.as_str()).collect();
    let delays: Vec<Option<i64>> = acks
        .iter()
        .map(|a| {
            a.schedule_in
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        })
        .collect();
    let give_back: Vec<i32> = acks
        .iter()
        .map(|a| i32::from(a.give_back_attempt))
        .collect();
    let errors: Vec<Option<Value>> = acks.iter().map(|a| a.error.clone()).collect();
    let metas: Vec<Option<Value>> = acks.iter().map(|a| a.meta.clone()).collect();
    let ids = sqlx::query_scalar(concat!(
        "UPDATE oban_jobs j SET
           state = a.state::oban_job_state, ",
        keep_uniq_key!("a.state"),
        ",
           completed_at = CASE WHEN a.state = 'completed' THEN timezone('UTC', now()) ELSE j.completed_at END,
           discarded_at = CASE WHEN a.state = 'discarded' THEN timezone('UTC', now()) ELSE j.discarded_at END,
           cancelled_at = CASE WHEN a.state = 'cancelled' THEN timezone('UTC', now()) ELSE j.cancelled_at END,
           scheduled_at = CASE WHEN a.delay_ms IS NULL THEN j.scheduled_at
                               ELSE timezone('UTC', now()) + a.delay_ms * interval '1 millisecond' END,
           attempt = greatest(j.attempt - a.give_back, 0),
           errors = CASE WHEN a.error IS NULL THEN j.errors ELSE j.errors || a.error END,
           meta = CASE WHEN a.meta IS NULL THEN j.meta ELSE coalesce(j.meta, '{}'::jsonb) || a.meta END
         FROM unnest($1::int8[], $2::timestamp[], $3::text[], $4::int8[], $5::int4[], $6::jsonb[], $7::jsonb[])
           AS a(id, attempted_at, state, delay_ms, give_back, error, meta)
         -- state::text: see ack_completed
         WHERE j.id = a.id AND j.state::text = 'executing' AND j.attempted_at = a.attempted_at
         RETURNING j.id"
    ))
    .bind(ids)
    .bind(attempted)
    .bind(states)
    .bind(delays)
    .bind(give_back)
    .bind(errors)
    .bind(metas)
    .fetch_all(pool)
    .await?;
    Ok(ids)
}

/// The conditions of a [`JobFilter`], over binds `$1`..`$7` (see [`bind_filter`]).
const FILTER_SQL: &str = "($1::int8[] IS NULL OR j.id = ANY($1))
     AND (cardinality($2::text[]) = 0 OR j.queue = ANY($2))
     AND (cardinality($3::text[]) = 0 OR j.worker = ANY($3))
     AND (cardinality($4::text[]) = 0 OR j.state::text = ANY($4))
     AND coalesce(to_jsonb(j.tags), '[]'::jsonb) @> $5::jsonb
     AND ($6::jsonb IS NULL OR j.args @> $6)
     AND ($7::jsonb IS NULL OR j.meta @> $7)";

fn bind_filter<'q>(
    query: Query<'q, Postgres, PgArguments>,
    filter: &'q JobFilter,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(filter.ids.as_deref())
        .bind(&filter.queues)
        .bind(&filter.workers)
        .bind(filter.states.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .bind(Value::from(filter.tags.clone()))
        .bind(filter.args.as_ref())
        .bind(filter.meta.as_ref())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn utc(at: NaiveDateTime) -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&at)
}

/// A job from the columns of [`JOB_COLUMNS`], read by position (a fetch decodes a row per job:
/// by name, every field cost a lookup of its column).
fn job_from_row(row: &PgRow) -> Result<Job> {
    let state = row
        .try_get::<&str, _>(1)?
        .parse::<JobState>()
        .map_err(|e| Error::InvalidJob(e.to_string()))?;
    let tags = row
        .try_get::<Option<Value>, _>(6)?
        .map(strings_from_json)
        .unwrap_or_default();
    let errors = match row.try_get::<Option<Value>, _>(7)? {
        Some(Value::Array(items)) => items.into_iter().map(AttemptError::from_json).collect(),
        _ => Vec::new(),
    };
    let at = |index: usize| -> Result<Option<chrono::DateTime<Utc>>> {
        Ok(row.try_get::<Option<NaiveDateTime>, _>(index)?.map(utc))
    };
    Ok(Job {
        id: row.try_get(0)?,
        state,
        queue: row.try_get(2)?,
        worker: row.try_get(3)?,
        args: row.try_get(4)?,
        meta: row.try_get(5)?,
        tags,
        errors,
        attempt: row.try_get(8)?,
        max_attempts: row.try_get(9)?,
        priority: row.try_get(10)?,
        attempted_by: row.try_get(11)?,
        inserted_at: utc(row.try_get(12)?),
        scheduled_at: utc(row.try_get(13)?),
        attempted_at: at(14)?,
        completed_at: at(15)?,
        discarded_at: at(16)?,
        cancelled_at: at(17)?,
        conflict: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inserts_within_the_window_get_one_trailing_notification() {
        // Never connects: the trailing notification's failure to send is only logged.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let notifier = std::sync::Arc::new(InsertNotifier::default());
        let trailing = |notifier: &InsertNotifier| notifier.queues.lock().unwrap()["q"].trailing;

        assert_eq!(notifier.plan(&pool, ["q", "q"].into_iter()), ["q"]);
        assert!(!trailing(&notifier));
        // Within the window: nothing now, one trailing notification scheduled, and only one.
        assert!(notifier.plan(&pool, ["q"].into_iter()).is_empty());
        assert!(trailing(&notifier));
        assert!(notifier.plan(&pool, ["q"].into_iter()).is_empty());
        tokio::time::sleep(InsertNotifier::WINDOW + Duration::from_millis(50)).await;
        assert!(!trailing(&notifier), "sent at the window's end");
        // A new window: notified at once again.
        tokio::time::sleep(InsertNotifier::WINDOW).await;
        assert_eq!(
            notifier.plan(&pool, ["q", "other"].into_iter()),
            ["q", "other"]
        );
    }
}
