//! Workflow steps on PostgreSQL: releasing waiting steps, cancelling those whose dependencies
//! failed, and reading steps by name ([`crate::workflow`]).
//!
//! A check runs under a transaction-scoped advisory lock per workflow whose steps it may
//! change, taken in one order by every caller, then reads the dependencies in a statement
//! that starts after the lock is held. Two transactions finishing the last two dependencies
//! of one step therefore never both miss the other: the second to take the lock sees the
//! first's commit.
//!
//! The statement checks each candidate's dependencies one at a time, the ones just finished
//! first, then from the last listed backwards, and stops at the first that is not done: a
//! step waiting on 10,000 others costs a few index lookups per check, not 10,000, because the
//! last listed are the last to run. It reads the index on `(workflow_id, name)`
//! (`migrations/postgres/008_workflow_indexes.sql`); candidates come from the index of
//! suspended steps.

use serde_json::Value;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Row};

use super::lease::Lease;
use super::prefix::{channel_name, qualify};
use super::row::{job_columns, job_from_row};
use crate::engine::{Channel, FinishedStep};
use crate::error::Result;
use crate::job::Job;
use crate::prefix::Prefix;

/// At most this many rounds of cascading cancellation run in one check; a deeper chain is
/// finished by the leader's next pass.
const MAX_ROUNDS: usize = 64;

/// Checks the steps waiting on `finished` (all waiting steps of `all` as well) in one
/// transaction; returns how many steps changed.
pub(super) async fn release(
    pool: &PgPool,
    prefix: Prefix,
    finished: Vec<FinishedStep>,
    all: &[String],
) -> Result<u64> {
    if finished.is_empty() && all.is_empty() {
        return Ok(0);
    }
    let mut lease = Lease::acquire(pool).await?;
    let changed = release_on(&mut lease, prefix, finished, all).await;
    lease.release();
    changed
}

async fn release_on(
    conn: &mut PgConnection,
    prefix: Prefix,
    mut finished: Vec<FinishedStep>,
    all: &[String],
) -> Result<u64> {
    let mut tx = conn.begin().await?;
    let mut locked: Vec<String> = Vec::new();
    let mut changed = 0;
    let mut check_all = all.to_vec();
    for _ in 0..MAX_ROUNDS {
        let mut workflows = FinishedStep::workflows(&finished);
        workflows.extend(check_all.iter().cloned());
        workflows.extend(sub_workflows(&mut tx, prefix, &workflows).await?);
        workflows.sort();
        workflows.dedup();
        lock(&mut tx, prefix, &mut locked, &workflows).await?;
        let mut next = Vec::new();
        if !check_all.is_empty() {
            next.extend(check(&mut tx, prefix, &check_all, None).await?);
        }
        if !finished.is_empty() {
            next.extend(check(&mut tx, prefix, &workflows, Some(&finished)).await?);
        }
        changed += next.len() as u64;
        // Released steps change nothing for others; cancelled ones are failures to pass on.
        finished = next.into_iter().flatten().collect();
        check_all.clear();
        if finished.is_empty() {
            break;
        }
    }
    tx.commit().await?;
    Ok(changed)
}

/// Workflows with suspended steps whose parent is one of `workflows`: their first steps may
/// wait for a step of the parent.
async fn sub_workflows(
    conn: &mut PgConnection,
    prefix: Prefix,
    workflows: &[String],
) -> Result<Vec<String>> {
    const SQL: &str = "SELECT DISTINCT j.meta->>'workflow_id' FROM oban_jobs j
         WHERE j.state = 'suspended' AND j.meta->>'sup_workflow_id' = ANY($1::text[])";
    Ok(sqlx::query_scalar(qualify(prefix, SQL))
        .bind(workflows)
        .fetch_all(conn)
        .await?)
}

/// Takes the advisory locks of `workflows` not yet in `locked`, in one order.
async fn lock(
    conn: &mut PgConnection,
    prefix: Prefix,
    locked: &mut Vec<String>,
    workflows: &[String],
) -> Result<()> {
    let keys: Vec<String> = workflows
        .iter()
        .filter(|id| !locked.contains(id))
        .map(|id| format!("oban_workflow:{prefix}:{id}"))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    // Volatile functions in a select list run after its ORDER BY: the locks are taken in
    // key order, so two checks never wait on each other in a circle.
    const SQL: &str = "SELECT pg_advisory_xact_lock(k.key)
         FROM (SELECT DISTINCT hashtextextended(t, 0) AS key FROM unnest($1::text[]) AS t) k
         ORDER BY k.key";
    sqlx::query(SQL).bind(&keys).fetch_all(&mut *conn).await?;
    let fresh: Vec<String> = workflows
        .iter()
        .filter(|id| !locked.contains(id))
        .cloned()
        .collect();
    locked.extend(fresh);
    Ok(())
}

/// One round: checks the suspended steps of `workflows` (only those whose `deps` name one of
/// `finished`, when given). Returns, per changed step, the step to pass on when it was
/// cancelled.
async fn check(
    conn: &mut PgConnection,
    prefix: Prefix,
    workflows: &[String],
    finished: Option<&[FinishedStep]>,
) -> Result<Vec<Option<FinishedStep>>> {
    let names: Option<Vec<String>> = finished.map(FinishedStep::names);
    let entries: Vec<Value> = finished
        .map(FinishedStep::foreign_entries)
        .unwrap_or_default();
    const SQL: &str = "WITH candidate AS (
           SELECT c.id, c.meta->>'workflow_id' AS wf, c.meta->'deps' AS deps,
                  coalesce(c.meta->>'ignore_cancelled' = 'true', false) AS ignore_cancelled,
                  coalesce(c.meta->>'ignore_discarded' = 'true', false) AS ignore_discarded,
                  coalesce(c.meta->>'ignore_deleted' = 'true', false) AS ignore_deleted
           FROM oban_jobs c
           WHERE c.state = 'suspended' AND c.meta->>'workflow_id' = ANY($1::text[])
             AND ($2::text[] IS NULL OR c.meta->'deps' ?| $2::text[]
                  OR c.meta->'deps' @> ANY($3::jsonb[]))
         ), judged AS (
           SELECT c.id, (
             SELECT jsonb_build_array(coalesce(s.state, 'deleted'), s.label)
             FROM (SELECT d.entry, d.ord,
                          CASE WHEN jsonb_typeof(d.entry) = 'string' THEN c.wf ELSE d.entry->>0 END AS wf,
                          CASE WHEN jsonb_typeof(d.entry) = 'string' THEN d.entry #>> '{}' ELSE d.entry->>1 END AS name
                   FROM jsonb_array_elements(c.deps) WITH ORDINALITY AS d(entry, ord)
                   ORDER BY (jsonb_typeof(d.entry) = 'string' AND d.entry #>> '{}' = ANY(coalesce($2::text[], '{}'))) DESC,
                            d.ord DESC
                   OFFSET 0) r
             CROSS JOIN LATERAL (
               SELECT CASE WHEN r.name = '*' THEN (
                        SELECT CASE WHEN count(*) = 0 THEN NULL
                                    WHEN bool_or(x.state::text NOT IN ('completed', 'cancelled', 'discarded')) THEN 'waiting'
                                    WHEN bool_or(x.state::text = 'discarded') THEN 'discarded'
                                    WHEN bool_or(x.state::text = 'cancelled') THEN 'cancelled'
                                    ELSE 'completed' END
                        FROM oban_jobs x
                        WHERE x.meta ? 'workflow_id' AND x.meta->>'workflow_id' = r.wf)
                      ELSE (
                        SELECT x.state::text FROM oban_jobs x
                        WHERE x.meta ? 'workflow_id' AND x.meta->>'workflow_id' = r.wf
                          AND x.meta->>'name' = r.name
                        ORDER BY x.id DESC LIMIT 1) END AS state,
                      CASE WHEN r.name = '*' THEN 'sub-workflow ' || r.wf ELSE 'step \"' || r.name || '\"' END AS label
             ) s
             WHERE NOT (s.state IS NOT DISTINCT FROM 'completed'
                        OR (s.state IS NULL AND c.ignore_deleted)
                        OR (s.state = 'cancelled' AND c.ignore_cancelled)
                        OR (s.state = 'discarded' AND c.ignore_discarded))
             LIMIT 1) AS blocker
           FROM candidate c
         ), changed AS (
           UPDATE oban_jobs j SET
             state = CASE WHEN g.blocker IS NOT NULL THEN 'cancelled'
                          WHEN j.scheduled_at > timezone('UTC', now()) THEN 'scheduled'
                          ELSE 'available' END::oban_job_state,
             cancelled_at = CASE WHEN g.blocker IS NULL THEN j.cancelled_at ELSE timezone('UTC', now()) END,
             errors = CASE WHEN g.blocker IS NULL THEN j.errors
                           ELSE j.errors || jsonb_build_object(
                             'at', to_char(timezone('UTC', now()), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                             'attempt', j.attempt,
                             'error', 'cancelled: upstream ' || (g.blocker->>1) || ' was ' || (g.blocker->>0)) END
           FROM judged g
           WHERE j.id = g.id AND j.state = 'suspended'
             AND (g.blocker IS NULL OR g.blocker->>0 IN ('cancelled', 'discarded', 'deleted'))
           RETURNING j.id, j.state::text AS state, j.queue, j.meta->>'workflow_id' AS wf,
                     j.meta->>'sup_workflow_id' AS sup, j.meta->>'name' AS name
         ), notified AS (
           SELECT pg_notify($4, json_build_object('queue', q.queue)::text)
           FROM (SELECT DISTINCT queue FROM changed WHERE state = 'available') q
         )
         SELECT c.state, c.wf, c.sup, c.name
         FROM changed c CROSS JOIN (SELECT count(*) FROM notified) n";
    let rows = sqlx::query(qualify(prefix, SQL))
        .bind(workflows)
        .bind(names)
        .bind(entries)
        .bind(channel_name(prefix, Channel::Insert))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            // Released rows are not finished; cancelled ones are failures to pass on.
            let state: &str = row.try_get(0)?;
            Ok(FinishedStep::of_row(
                state,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            ))
        })
        .collect()
}

/// See [`Engine::workflow_waiting`](crate::engine::Engine::workflow_waiting).
pub(super) async fn waiting(
    pool: &PgPool,
    prefix: Prefix,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<String>> {
    const SQL: &str = "SELECT DISTINCT j.meta->>'workflow_id' AS wf FROM oban_jobs j
         WHERE j.state = 'suspended' AND j.meta ? 'workflow_id'
           AND ($1::text IS NULL OR j.meta->>'workflow_id' > $1)
         ORDER BY wf LIMIT $2";
    Ok(sqlx::query_scalar(qualify(prefix, SQL))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?)
}

/// See [`Engine::workflow_steps`](crate::engine::Engine::workflow_steps).
pub(super) async fn steps(
    pool: &PgPool,
    prefix: Prefix,
    workflow_id: &str,
    names: &[String],
) -> Result<Vec<Job>> {
    const SQL: &str = concat!(
        "SELECT DISTINCT ON (j.meta->>'name') ",
        job_columns!(),
        " FROM oban_jobs j
         WHERE j.meta ? 'workflow_id' AND j.meta->>'workflow_id' = $1
           AND j.meta->>'name' = ANY($2::text[])
         ORDER BY j.meta->>'name', j.id DESC"
    );
    let rows = sqlx::query(qualify(prefix, SQL))
        .bind(workflow_id)
        .bind(names)
        .fetch_all(pool)
        .await?;
    rows.iter().map(job_from_row).collect()
}
