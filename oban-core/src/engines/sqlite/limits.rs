//! Fleet-wide queue limits on SQLite: the same rules as PostgreSQL's `oban_fetch_limited`
//! (`migrations/postgres/009_queue_limits.sql`, [`crate::limits`]), counted and claimed in Rust
//! under the hub's write lock, so every node of the file takes turns.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde_json::Value;
use sqlx::Row;

use super::fetch::{bind_discarded_at, claim_head, discard_spent_sql};
use super::insert::keep_uniq_key;
use super::row::{job_from_row, now, ts, JOB_COLUMNS};
use super::SqliteEngine;
use crate::engine::{LimitsUsage, PartitionCount};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::limits::{Limits, Partition};

/// How many available jobs a partitioned claim reads at a time while it walks the queue.
const WALK_PAGE: i64 = 500;

/// See [`Engine::job_fetch_limited`](crate::engine::Engine::job_fetch_limited).
pub(super) async fn fetch_limited(
    engine: &SqliteEngine,
    queue: &str,
    demand: u32,
    attempted_by: &[String],
) -> Result<Vec<Job>> {
    if demand == 0 {
        return Ok(Vec::new());
    }
    let _write = engine.hub.write.lock().await;
    let at = now();
    let limits = match read(engine, Some(queue)).await?.pop() {
        Some((_, limits)) if !limits.is_empty() => limits,
        _ => return claim_head(engine, queue, demand, attempted_by, at).await,
    };
    let now_ms = at.and_utc().timestamp_millis();
    let mut room = i64::from(demand);
    if let Some(rate) = &limits.rate {
        const FORGET: &str =
            "DELETE FROM oban_rust_rate_buckets WHERE queue = ?1 AND bucket_ms <= ?2";
        sqlx::query(FORGET)
            .bind(queue)
            .bind(window_start(now_ms, rate))
            .execute(&engine.pool)
            .await?;
        if !rate.partition.is_partitioned() {
            room = room.min(
                i64::from(rate.allowed) - started(engine, queue).await?.remove("").unwrap_or(0),
            );
        }
    }
    if let Some(global) = &limits.global {
        if !global.partition.is_partitioned() {
            room = room.min(
                i64::from(global.allowed)
                    - running(engine, queue, &Partition::None)
                        .await?
                        .remove("")
                        .unwrap_or(0),
            );
        }
    }
    if room <= 0 {
        return Ok(Vec::new());
    }
    let room = u32::try_from(room).unwrap_or(demand);
    let partitioned = limits
        .global
        .as_ref()
        .is_some_and(|g| g.partition.is_partitioned())
        || limits
            .rate
            .as_ref()
            .is_some_and(|r| r.partition.is_partitioned());
    let count = async |jobs: &[Job]| match &limits.rate {
        Some(rate) => {
            count_starts(
                engine,
                queue,
                jobs,
                &rate.partition,
                bucket_of(now_ms, rate),
            )
            .await
        }
        None => Ok(()),
    };
    if !partitioned {
        let jobs = claim_head(engine, queue, room, attempted_by, at).await?;
        count(&jobs).await?;
        return Ok(jobs);
    }
    // Repeated while a pass discarded spent jobs: they took room the jobs behind them may use,
    // and a short claim tells the producer that the queue is empty.
    let mut jobs = Vec::new();
    let mut room = room;
    loop {
        let (claimed, spent) =
            claim_partitioned(engine, queue, room, attempted_by, at, &limits).await?;
        // Counted before the next pass reads the buckets.
        count(&claimed).await?;
        room = room.saturating_sub(u32::try_from(claimed.len()).unwrap_or(u32::MAX));
        jobs.extend(claimed);
        if spent == 0 || room == 0 {
            break;
        }
    }
    jobs.sort_by_key(|job| (job.priority, job.scheduled_at, job.id));
    Ok(jobs)
}

/// The partitioned claim: the walk takes from each partition the jobs it has room for (at most
/// `room`) and passes over the rest, and partitions give theirs in rounds. Returns the claimed
/// jobs and how many spent jobs it discarded instead.
async fn claim_partitioned(
    engine: &SqliteEngine,
    queue: &str,
    room: u32,
    attempted_by: &[String],
    at: NaiveDateTime,
    limits: &Limits,
) -> Result<(Vec<Job>, u64)> {
    const PAGE: &str = "SELECT id, worker, args, priority, scheduled_at FROM oban_jobs
         WHERE state = 'available' AND queue = ?1 AND (priority, scheduled_at, id) > (?2, ?3, ?4)
         ORDER BY priority, scheduled_at, id LIMIT ?5";
    let global = limits
        .global
        .as_ref()
        .filter(|g| g.partition.is_partitioned());
    let rate = limits
        .rate
        .as_ref()
        .filter(|r| r.partition.is_partitioned());
    let global_used = match global {
        Some(global) => running(engine, queue, &global.partition).await?,
        None => HashMap::new(),
    };
    let rate_used = match rate {
        Some(_) => started(engine, queue).await?,
        None => HashMap::new(),
    };
    // What a partition may still take: its room under the limit, and at most `room`.
    let room_of = |used: &HashMap<String, i64>, key: &str, allowed: u32| {
        (i64::from(allowed) - used.get(key).copied().unwrap_or(0)).min(i64::from(room))
    };
    let walk = (room as usize * 8).max(200);
    // (round, order, id): a job's round is what its partition(s) already use (jobs running,
    // starts in the window) plus its rank among the partition's jobs taken, so the least used
    // partitions come first, ties in the queue's order.
    let mut chosen: Vec<(i64, usize, i64)> = Vec::new();
    let mut global_taken: HashMap<String, i64> = HashMap::new();
    let mut rate_taken: HashMap<String, i64> = HashMap::new();
    let mut after: (i64, String, i64) = (i64::MIN, String::new(), i64::MIN);
    'walk: loop {
        let rows = sqlx::query(PAGE)
            .bind(queue)
            .bind(after.0)
            .bind(&after.1)
            .bind(after.2)
            .bind(WALK_PAGE)
            .fetch_all(&engine.pool)
            .await?;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let worker: String = row.try_get("worker")?;
            let args: Value =
                serde_json::from_str(&row.try_get::<String, _>("args")?).unwrap_or(Value::Null);
            after = (row.try_get("priority")?, row.try_get("scheduled_at")?, id);
            let global_key = global
                .map(|g| g.partition.key(&worker, &args))
                .unwrap_or_default();
            let rate_key = rate
                .map(|r| r.partition.key(&worker, &args))
                .unwrap_or_default();
            let g = global_taken.get(&global_key).copied().unwrap_or(0) + 1;
            let r = rate_taken.get(&rate_key).copied().unwrap_or(0) + 1;
            let fits = global.is_none_or(|l| g <= room_of(&global_used, &global_key, l.allowed))
                && rate.is_none_or(|l| r <= room_of(&rate_used, &rate_key, l.allowed));
            if fits {
                let used =
                    |used: &HashMap<String, i64>, key: &str| used.get(key).copied().unwrap_or(0);
                let round = global
                    .map_or(0, |_| used(&global_used, &global_key) + g)
                    .max(rate.map_or(0, |_| used(&rate_used, &rate_key) + r));
                chosen.push((round, chosen.len(), id));
                if global.is_some() {
                    global_taken.insert(global_key, g);
                }
                if rate.is_some() {
                    rate_taken.insert(rate_key, r);
                }
                if chosen.len() >= walk {
                    break 'walk;
                }
            }
        }
        if (rows.len() as i64) < WALK_PAGE {
            break;
        }
    }
    chosen.sort_unstable();
    chosen.truncate(room as usize);
    if chosen.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let ids = Value::from(chosen.iter().map(|(_, _, id)| *id).collect::<Vec<_>>()).to_string();
    let spent = discard_spent(engine, &ids).await?;
    let claim = format!(
        concat!(
            "UPDATE oban_jobs AS j
             SET state = 'executing', attempt = j.attempt + 1, attempted_at = ?2, attempted_by = ?3, ",
            keep_uniq_key!("'executing'"),
            " WHERE j.id IN (SELECT value FROM json_each(?1)) AND j.state = 'available'
               AND j.attempt < j.max_attempts
             RETURNING {}"
        ),
        JOB_COLUMNS
    );
    let rows = sqlx::query(&claim)
        .bind(&ids)
        .bind(ts(at))
        .bind(Value::from(attempted_by).to_string())
        .fetch_all(&engine.pool)
        .await?;
    let jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
    Ok((jobs, spent))
}

/// Discards the jobs among `ids` (a JSON array) with no attempt left, as the plain claim does;
/// returns how many.
async fn discard_spent(engine: &SqliteEngine, ids: &str) -> Result<u64> {
    const SQL: &str =
        discard_spent_sql!("j.id IN (SELECT value FROM json_each(?3)) AND j.state = 'available'");
    let done = bind_discarded_at(sqlx::query(SQL))
        .bind(ids)
        .execute(&engine.pool)
        .await?;
    Ok(done.rows_affected())
}

/// Executing jobs of `queue` per partition.
async fn running(
    engine: &SqliteEngine,
    queue: &str,
    partition: &Partition,
) -> Result<HashMap<String, i64>> {
    const SQL: &str = "SELECT worker, args FROM oban_jobs WHERE state = 'executing' AND queue = ?1";
    let rows = sqlx::query(SQL).bind(queue).fetch_all(&engine.pool).await?;
    let mut counts = HashMap::new();
    for row in rows {
        let worker: String = row.try_get("worker")?;
        let args: Value =
            serde_json::from_str(&row.try_get::<String, _>("args")?).unwrap_or(Value::Null);
        *counts.entry(partition.key(&worker, &args)).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Starts of `queue` per partition in the buckets kept (the claim forgot older ones first).
async fn started(engine: &SqliteEngine, queue: &str) -> Result<HashMap<String, i64>> {
    const SQL: &str = "SELECT partition, sum(starts) AS starts FROM oban_rust_rate_buckets
         WHERE queue = ?1 GROUP BY partition";
    let rows = sqlx::query(SQL).bind(queue).fetch_all(&engine.pool).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("partition")?, row.try_get("starts")?)))
        .collect()
}

/// Adds the claimed jobs to their partitions' bucket.
async fn count_starts(
    engine: &SqliteEngine,
    queue: &str,
    jobs: &[Job],
    partition: &Partition,
    bucket_ms: i64,
) -> Result<()> {
    const SQL: &str = "INSERT INTO oban_rust_rate_buckets (queue, partition, bucket_ms, starts)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (queue, partition, bucket_ms) DO UPDATE SET starts = starts + excluded.starts";
    let mut counts: HashMap<String, i64> = HashMap::new();
    for job in jobs {
        *counts
            .entry(partition.key(&job.worker, &job.args))
            .or_insert(0) += 1;
    }
    for (key, starts) in counts {
        sqlx::query(SQL)
            .bind(queue)
            .bind(key)
            .bind(bucket_ms)
            .bind(starts)
            .execute(&engine.pool)
            .await?;
    }
    Ok(())
}

/// The last bucket start outside the window: buckets at or before it no longer count.
fn window_start(now_ms: i64, rate: &crate::limits::RateLimit) -> i64 {
    let width = i64::try_from(rate.bucket().as_millis()).unwrap_or(i64::MAX);
    let period = i64::try_from(rate.period.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(period).saturating_sub(width)
}

/// The bucket `now_ms` falls in.
fn bucket_of(now_ms: i64, rate: &crate::limits::RateLimit) -> i64 {
    let width = i64::try_from(rate.bucket().as_millis()).unwrap_or(1).max(1);
    now_ms - now_ms.rem_euclid(width)
}

/// See [`Engine::queue_limits_put`](crate::engine::Engine::queue_limits_put).
pub(super) async fn put(engine: &SqliteEngine, queue: &str, limits: Option<&Limits>) -> Result<()> {
    const UPSERT: &str = "INSERT INTO oban_rust_queue_limits (queue, limits, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (queue) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at";
    const DELETE: &str = "DELETE FROM oban_rust_queue_limits WHERE queue = ?1";
    let _write = engine.hub.write.lock().await;
    match limits.filter(|limits| !limits.is_empty()) {
        Some(limits) => {
            let json =
                serde_json::to_string(limits).map_err(|error| Error::Config(error.to_string()))?;
            sqlx::query(UPSERT)
                .bind(queue)
                .bind(json)
                .bind(ts(now()))
                .execute(&engine.pool)
                .await?;
        }
        None => {
            sqlx::query(DELETE)
                .bind(queue)
                .execute(&engine.pool)
                .await?;
        }
    }
    Ok(())
}

/// See [`Engine::queue_limits_get`](crate::engine::Engine::queue_limits_get).
pub(super) async fn read(
    engine: &SqliteEngine,
    queue: Option<&str>,
) -> Result<Vec<(String, Limits)>> {
    const SQL: &str = "SELECT queue, limits FROM oban_rust_queue_limits
         WHERE ?1 IS NULL OR queue = ?1 ORDER BY queue";
    let rows = sqlx::query(SQL).bind(queue).fetch_all(&engine.pool).await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let queue: String = row.try_get("queue")?;
        match serde_json::from_str::<Limits>(&row.try_get::<String, _>("limits")?) {
            Ok(limits) => found.push((queue, limits)),
            Err(error) => {
                tracing::warn!(%queue, %error, "skipping stored queue limits that do not read as limits")
            }
        }
    }
    Ok(found)
}

/// See [`Engine::queue_limits_usage`](crate::engine::Engine::queue_limits_usage).
pub(super) async fn usage(
    engine: &SqliteEngine,
    queue: &str,
    limits: &Limits,
    top: u32,
) -> Result<LimitsUsage> {
    const STARTED: &str = "SELECT partition, sum(starts) AS starts FROM oban_rust_rate_buckets
         WHERE queue = ?1 AND bucket_ms > ?2 GROUP BY partition";
    let sorted = |counts: HashMap<String, i64>| {
        let mut counts: Vec<PartitionCount> = counts
            .into_iter()
            .map(|(key, count)| PartitionCount::new(key, u64::try_from(count).unwrap_or(0)))
            .collect();
        counts.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.partition.cmp(&b.partition))
        });
        counts.truncate(top as usize);
        counts
    };
    let mut usage = LimitsUsage::default();
    if let Some(global) = &limits.global {
        usage.running = sorted(running(engine, queue, &global.partition).await?);
    }
    if let Some(rate) = &limits.rate {
        let since = window_start(now().and_utc().timestamp_millis(), rate);
        let rows = sqlx::query(STARTED)
            .bind(queue)
            .bind(since)
            .fetch_all(&engine.pool)
            .await?;
        let counts = rows
            .iter()
            .map(|row| Ok((row.try_get("partition")?, row.try_get("starts")?)))
            .collect::<Result<HashMap<String, i64>>>()?;
        usage.started = sorted(counts);
    }
    Ok(usage)
}
