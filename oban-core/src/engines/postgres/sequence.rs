//! Sequences on PostgreSQL ([`crate::sequence`]): the lock of a sequence and the release of its
//! next job.
//!
//! Every change that can start or end a sequence's run takes the sequence's transaction-scoped
//! advisory lock (a hash of the prefix and the key), in key order, then reads in a statement
//! that starts after the lock is held: an insert (inside the caller's transaction when it
//! inserts in one) and the release after an ack or by the leader. An insert that comes while
//! the last job of its sequence finishes therefore either sees that job still holding (and
//! waits, `suspended`, for the release that follows the ack, which sees the insert's commit)
//! or sees it finished (and the release finds the new job holding). Nothing is left waiting.
//!
//! The checks read two partial indexes (`migrations/postgres/010_sequences.sql`): the jobs that
//! hold a sequence without waiting (about one per sequence), and the waiting jobs by id, whose
//! first entry is the next to run. Each is a lookup, not a walk of the sequence.

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Row};

use super::lease::Lease;
use super::prefix::{channel_name, qualify};
use crate::engine::Channel;
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::prefix::Prefix;

/// Takes the advisory locks of these sequences (sorted, without repeats) until the transaction
/// on `conn` ends.
pub(super) async fn lock(conn: &mut PgConnection, prefix: Prefix, keys: &[String]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = keys
        .iter()
        .map(|key| format!("oban_sequence:{prefix}:{key}"))
        .collect();
    // Volatile functions in a select list run after its ORDER BY: the locks are taken in key
    // order, so two transactions never wait on each other in a circle.
    const SQL: &str = "SELECT pg_advisory_xact_lock(k.key)
         FROM (SELECT DISTINCT hashtextextended(t, 0) AS key FROM unnest($1::text[]) AS t) k
         ORDER BY k.key";
    sqlx::query(SQL).bind(&keys).fetch_all(&mut *conn).await?;
    Ok(())
}

/// With the locks of `keys` held: in each of these sequences where no job holds without
/// waiting, moves the first waiting job to `available` (`scheduled` when its time is ahead).
/// Notifies the queues that received runnable jobs when `notify` is set (delivered at the
/// commit). Returns the released jobs with their new state.
pub(super) async fn release_locked(
    conn: &mut PgConnection,
    prefix: Prefix,
    keys: &[String],
    notify: bool,
) -> Result<Vec<(i64, JobState)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    // The conditions repeat the indexes' predicates, so the planner reads them.
    const SQL: &str = "WITH head AS (
           SELECT (SELECT w.id FROM oban_jobs w
                   WHERE w.meta ? 'sequence' AND w.state = 'suspended'
                     AND w.meta->>'sequence' = s.seq
                   ORDER BY w.meta->>'sequence', w.id LIMIT 1) AS id
           FROM (SELECT DISTINCT t AS seq FROM unnest($1::text[]) AS t) s
           WHERE NOT EXISTS (
             SELECT 1 FROM oban_jobs b
             WHERE b.meta ? 'sequence' AND b.state NOT IN ('completed', 'suspended')
               AND (b.state NOT IN ('discarded', 'cancelled') OR b.meta ? 'sequence_hold')
               AND b.meta->>'sequence' = s.seq)
         ), changed AS (
           UPDATE oban_jobs j SET
             state = CASE WHEN j.scheduled_at > timezone('UTC', now()) THEN 'scheduled'
                          ELSE 'available' END::oban_job_state
           FROM head h
           WHERE j.id = h.id AND j.state = 'suspended'
           RETURNING j.id, j.state::text AS state, j.queue
         ), notified AS (
           SELECT pg_notify($2, json_build_object('queue', q.queue)::text)
           FROM (SELECT DISTINCT queue FROM changed WHERE state = 'available' AND $3) q
         )
         SELECT c.id, c.state FROM changed c CROSS JOIN (SELECT count(*) FROM notified) n";
    let rows = sqlx::query(qualify(prefix, SQL))
        .bind(keys)
        .bind(channel_name(prefix, Channel::Insert))
        .bind(notify)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            let state: &str = row.try_get(1)?;
            let state = state
                .parse::<JobState>()
                .map_err(|e| Error::InvalidJob(e.to_string()))?;
            Ok((row.try_get(0)?, state))
        })
        .collect()
}

/// How long a release waits for the lock of a sequence before it leaves the sequence to the
/// leader's next pass: a caller's transaction that inserted a job of it holds the lock until
/// it ends, and the release after an ack must not stall the node's acks meanwhile.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '2s'";

/// Releases the next job of each of these sequences that nothing holds, in one transaction
/// under their locks; returns how many jobs were released. See
/// [`Engine::sequence_release`](crate::engine::Engine::sequence_release).
pub(super) async fn release(pool: &PgPool, prefix: Prefix, keys: &[String]) -> Result<u64> {
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return Ok(0);
    }
    let mut lease = Lease::acquire(pool).await?;
    let released = release_on(&mut lease, prefix, &keys).await;
    lease.release();
    released
}

async fn release_on(conn: &mut PgConnection, prefix: Prefix, keys: &[String]) -> Result<u64> {
    let mut tx = conn.begin().await?;
    sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
    lock(&mut tx, prefix, keys).await?;
    let released = release_locked(&mut tx, prefix, keys, true).await?;
    tx.commit().await?;
    Ok(released.len() as u64)
}

/// See [`Engine::sequence_waiting`](crate::engine::Engine::sequence_waiting): the keys of
/// sequences with waiting jobs after `after`, one index probe per key (a loose index scan).
pub(super) async fn waiting(
    pool: &PgPool,
    prefix: Prefix,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<String>> {
    const SQL: &str = "WITH RECURSIVE s(seq) AS (
           (SELECT w.meta->>'sequence' FROM oban_jobs w
            WHERE w.meta ? 'sequence' AND w.state = 'suspended'
              AND ($1::text IS NULL OR w.meta->>'sequence' > $1)
            ORDER BY w.meta->>'sequence' LIMIT 1)
           UNION ALL
           SELECT (SELECT w.meta->>'sequence' FROM oban_jobs w
                   WHERE w.meta ? 'sequence' AND w.state = 'suspended'
                     AND w.meta->>'sequence' > s.seq
                   ORDER BY w.meta->>'sequence' LIMIT 1)
           FROM s WHERE s.seq IS NOT NULL
         )
         SELECT seq FROM s WHERE seq IS NOT NULL LIMIT $2";
    Ok(sqlx::query_scalar(qualify(prefix, SQL))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?)
}
