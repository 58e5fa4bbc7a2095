//! Inserting jobs into SQLite, unique jobs included.
//!
//! The algorithm is the PostgreSQL engine's (`engines/postgres.rs`, `insert_jobs` and its
//! helpers), copied here with SQLite's SQL so both engines give the same guarantees; see
//! [`crate::unique`]. The engine-agnostic parts, which could later move to a shared module, are
//! the preparation of the jobs (validation, `meta.uniq_states`, keys) and the loop that maps
//! inserted rows back to inputs, releases keys held outside their unique states and reports
//! conflicts against the key holders.
//!
//! What differs: the rows travel as one JSON array read by `json_each` (SQLite has no arrays), the
//! insert state and timestamps come from the process clock, and the unique path runs in a `BEGIN
//! IMMEDIATE` transaction (or a savepoint of the caller's), i.e. it holds SQLite's write lock
//! from its first statement: no other writer can change a key holder under it.

use std::collections::HashMap;

use serde_json::{json, Value};
use sqlx::{Connection, Row, SqliteConnection};

use super::row::{job_from_row, minus, now, ts, JOB_COLUMNS};
use crate::error::{Error, Result};
use crate::job::{Job, JobState};
use crate::new_job::NewJob;
use crate::unique::{unique_key, ReplaceField, UniqueTimestamp};

/// `uniq_key` after a change of state to the SQL expression `state` (over the job aliased `j`):
/// kept while the new state is one of the job's unique states (`meta.uniq_states`), cleared
/// otherwise. The SQLite form of the PostgreSQL engine's macro of the same name.
macro_rules! keep_uniq_key {
    ($state:expr) => {
        concat!(
            "uniq_key = CASE WHEN j.uniq_key IS NULL THEN NULL WHEN EXISTS (SELECT 1 FROM json_each(j.meta, '$.uniq_states') AS us WHERE us.value = (",
            $state,
            ")) THEN j.uniq_key END"
        )
    };
}
pub(crate) use keep_uniq_key;

/// Inserts `jobs` on `conn` (see [`crate::insert`]): one statement, and for unique jobs a
/// transaction (`BEGIN IMMEDIATE`, or a savepoint inside the caller's transaction).
pub(crate) async fn insert_jobs(
    conn: &mut SqliteConnection,
    jobs: Vec<NewJob>,
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
        let rows = insert_rows(&mut *conn, &jobs, &keys).await?;
        return Ok(rows.into_iter().map(|(job, _)| job).collect());
    }

    let mut tx = if conn.is_in_transaction() {
        conn.begin().await?
    } else {
        conn.begin_with("BEGIN IMMEDIATE").await?
    };
    let mut results: Vec<Option<Job>> = vec![None; jobs.len()];
    let mut pending: Vec<usize> = (0..jobs.len()).collect();
    for _round in 0..5 {
        release_expired(&mut tx, &jobs, &keys, &pending).await?;
        let batch: Vec<NewJob> = pending.iter().map(|&i| jobs[i].clone()).collect();
        let batch_keys: Vec<Option<String>> = pending.iter().map(|&i| keys[i].clone()).collect();
        let rows = insert_rows(&mut tx, &batch, &batch_keys).await?;

        // Map the inserted rows back to inputs: unkeyed in order, keyed by key (the first input
        // with a key wins; later equal inputs of the batch conflict with it).
        let mut unkeyed = rows
            .iter()
            .filter(|(_, key)| key.is_none())
            .map(|(job, _)| job);
        let mut by_key: HashMap<&str, &Job> = rows
            .iter()
            .filter_map(|(job, key)| key.as_deref().map(|k| (k, job)))
            .collect();
        let mut conflicted = Vec::new();
        for &i in &pending {
            match keys[i].as_deref() {
                None => results[i] = unkeyed.next().cloned(),
                Some(key) => match by_key.remove(key) {
                    Some(job) => results[i] = Some(job.clone()),
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
            sqlx::query("UPDATE oban_jobs SET uniq_key = NULL WHERE id IN (SELECT value FROM json_each(?1))")
                .bind(Value::from(outside).to_string())
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
        let sql = format!(
            "SELECT {JOB_COLUMNS}, uniq_key FROM oban_jobs
             WHERE uniq_key IN (SELECT value FROM json_each(?1))"
        );
        let holders = sqlx::query(&sql)
            .bind(Value::from(wanted).to_string())
            .fetch_all(&mut *tx)
            .await?;
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

/// The insert statement; returns each stored row with the key it holds, in input order.
async fn insert_rows(
    conn: &mut SqliteConnection,
    jobs: &[NewJob],
    keys: &[Option<String>],
) -> Result<Vec<(Job, Option<String>)>> {
    let now = now();
    let rows: Vec<Value> = jobs
        .iter()
        .zip(keys)
        .map(|(job, key)| {
            let scheduled_at = job.scheduled_at.map(|at| at.naive_utc()).unwrap_or(now);
            let state = if scheduled_at > now {
                JobState::Scheduled
            } else {
                JobState::Available
            };
            json!({
                "state": state.as_str(),
                "queue": job.queue,
                "worker": job.worker,
                "args": job.args,
                "meta": job.meta,
                "tags": job.tags,
                "priority": job.priority,
                "max_attempts": job.max_attempts,
                "scheduled_at": ts(scheduled_at),
                "uniq_key": key,
            })
        })
        .collect();
    // `WHERE true` keeps SQLite from reading ON CONFLICT as a join constraint.
    let sql = format!(
        "INSERT INTO oban_jobs (state, queue, worker, args, meta, tags, priority, max_attempts,
                                inserted_at, scheduled_at, uniq_key)
         SELECT t.value->>'state', t.value->>'queue', t.value->>'worker', t.value->'args',
                t.value->'meta', t.value->'tags', t.value->>'priority', t.value->>'max_attempts',
                ?2, t.value->>'scheduled_at', t.value->>'uniq_key'
         FROM json_each(?1) AS t WHERE true ORDER BY t.key
         ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
         RETURNING {JOB_COLUMNS}, uniq_key"
    );
    let rows = sqlx::query(&sql)
        .bind(Value::Array(rows).to_string())
        .bind(ts(now))
        .fetch_all(&mut *conn)
        .await?;
    let mut rows = rows
        .iter()
        .map(|row| {
            Ok((
                job_from_row(row)?,
                row.try_get::<Option<String>, _>("uniq_key")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    rows.sort_by_key(|(job, _)| job.id);
    Ok(rows)
}

/// Releases the keys of `pending` jobs held by jobs whose unique period is over.
async fn release_expired(
    conn: &mut SqliteConnection,
    jobs: &[NewJob],
    keys: &[Option<String>],
    pending: &[usize],
) -> Result<()> {
    let now = now();
    let mut expiring = Vec::new();
    for &i in pending {
        if let (Some(key), Some(unique)) = (&keys[i], &jobs[i].unique) {
            if let Some(period) = unique.period_duration() {
                expiring.push(json!({
                    "key": key,
                    "cutoff": ts(minus(now, period)),
                    "by_scheduled": unique.timestamp == UniqueTimestamp::ScheduledAt,
                }));
            }
        }
    }
    if expiring.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE oban_jobs SET uniq_key = NULL
         WHERE id IN (
           SELECT j.id FROM json_each(?1) AS t JOIN oban_jobs AS j ON j.uniq_key = t.value->>'key'
           WHERE CASE WHEN t.value->>'by_scheduled' THEN j.scheduled_at ELSE j.inserted_at END
                 < t.value->>'cutoff')",
    )
    .bind(Value::Array(expiring).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies `job`'s replace rules for the state `existing` is in; returns the job as it now is.
async fn replace_fields(conn: &mut SqliteConnection, existing: &Job, job: &NewJob) -> Result<Job> {
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
        "UPDATE oban_jobs SET
           args = CASE WHEN ?3 THEN json(?4) ELSE args END,
           max_attempts = CASE WHEN ?5 THEN max(?6, attempt) ELSE max_attempts END,
           meta = CASE WHEN ?7 THEN json(?8) ELSE meta END,
           priority = CASE WHEN ?9 THEN ?10 ELSE priority END,
           queue = CASE WHEN ?11 THEN ?12 ELSE queue END,
           scheduled_at = CASE WHEN ?13 THEN ?14 ELSE scheduled_at END,
           tags = CASE WHEN ?15 THEN json(?16) ELSE tags END
         WHERE id = ?1 AND state = ?2
         RETURNING {JOB_COLUMNS}"
    );
    let scheduled_at = job
        .scheduled_at
        .map(|at| at.naive_utc())
        .unwrap_or_else(now);
    let row = sqlx::query(&sql)
        .bind(existing.id)
        .bind(existing.state.as_str())
        .bind(has(ReplaceField::Args))
        .bind(job.args.to_string())
        .bind(has(ReplaceField::MaxAttempts))
        .bind(job.max_attempts)
        .bind(has(ReplaceField::Meta))
        .bind(job.meta.to_string())
        .bind(has(ReplaceField::Priority))
        .bind(job.priority)
        .bind(has(ReplaceField::Queue))
        .bind(&job.queue)
        .bind(has(ReplaceField::ScheduledAt))
        .bind(ts(scheduled_at))
        .bind(has(ReplaceField::Tags))
        .bind(Value::from(job.tags.clone()).to_string())
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => job_from_row(&row),
        // It changed state between the lookup and now; report it as found.
        None => Ok(existing.clone()),
    }
}
