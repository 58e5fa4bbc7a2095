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
    let jobs = if partitioned {
        claim_partitioned(engine, queue, room, attempted_by, at, &limits).await?
    } else {
        claim_head(engine, queue, room, attempted_by, at).await?
    };
    if let Some(rate) = &limits.rate {
        count_starts(
            engine,
            queue,
            &jobs,
            &rate.partition,
            bucket_of(now_ms, rate),
        )
        .await?;
    }
    Ok(jobs)
}

/// A job of the walk.
struct Candidate {
    id: i64,
    global: String,
    rate: String,
}

/// The partitioned claim: the walk passes over the jobs of full partitions, and partitions take
/// what they have room for in rounds.
async fn claim_partitioned(
    engine: &SqliteEngine,
    queue: &str,
    room: u32,
    attempted_by: &[String],
    at: NaiveDateTime,
    limits: &Limits,
) -> Result<Vec<Job>> {
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
    let room_of = |used: &HashMap<String, i64>, key: &str, allowed: u32| {
        i64::from(allowed) - used.get(key).copied().unwrap_or(0)
    };
    let walk = (room as usize * 8).max(200);
    let mut candidates: Vec<Candidate> = Vec::new();
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
            let full = global.is_some_and(|g| room_of(&global_used, &global_key, g.allowed) <= 0)
                || rate.is_some_and(|r| room_of(&rate_used, &rate_key, r.allowed) <= 0);
            if !full {
                candidates.push(Candidate {
                    id,
                    global: global_key,
                    rate: rate_key,
                });
                if candidates.len() >= walk {
                    break 'walk;
                }
            }
        }
        if (rows.len() as i64) < WALK_PAGE {
            break;
        }
    }
    // Rounds: a job's round is its rank in its partition(s); every partition's first job comes
    // before any partition's second.
    let mut global_rank: HashMap<&str, i64> = HashMap::new();
    let mut rate_rank: HashMap<&str, i64> = HashMap::new();
    let mut chosen: Vec<(i64, usize, i64)> = Vec::new();
    for (order, candidate) in candidates.iter().enumerate() {
        let g = global_rank.entry(&candidate.global).or_insert(0);
        *g += 1;
        let r = rate_rank.entry(&candidate.rate).or_insert(0);
        *r += 1;
        let fits = global.is_none_or(|l| *g <= room_of(&global_used, &candidate.global, l.allowed))
            && rate.is_none_or(|l| *r <= room_of(&rate_used, &candidate.rate, l.allowed));
        if fits {
            let round = global.map_or(0, |_| *g).max(rate.map_or(0, |_| *r));
            chosen.push((round, order, candidate.id));
        }
    }
    chosen.sort_unstable();
    chosen.truncate(room as usize);
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    let ids = Value::from(chosen.iter().map(|(_, _, id)| *id).collect::<Vec<_>>()).to_string();
    discard_spent(engine, &ids).await?;
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
    let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
    jobs.sort_by_key(|job| (job.priority, job.scheduled_at, job.id));
    Ok(jobs)
}

/// Discards the jobs among `ids` (a JSON array) with no attempt left, as the plain claim does.
async fn discard_spent(engine: &SqliteEngine, ids: &str) -> Result<()> {
    const SQL: &str =
        discard_spent_sql!("j.id IN (SELECT value FROM json_each(?3)) AND j.state = 'available'");
    bind_discarded_at(sqlx::query(SQL))
        .bind(ids)
        .execute(&engine.pool)
        .await?;
    Ok(())
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
