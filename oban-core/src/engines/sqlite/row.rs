//! Timestamps, JSON columns and job rows as the SQLite schema stores them.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::error::{Error, Result};
use crate::job::{strings_from_json, AttemptError, Job, JobState};

/// Column list every job query returns (unqualified: RETURNING clauses take no alias).
pub(crate) const JOB_COLUMNS: &str =
    "id, state, queue, worker, args, meta, tags, errors, attempt, \
     max_attempts, priority, attempted_by, inserted_at, scheduled_at, attempted_at, completed_at, \
     discarded_at, cancelled_at";

/// How timestamps are stored: UTC, always six decimals, so text order is time order and equal
/// instants are equal strings.
const FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// The engine's clock: the process clock, microsecond resolution (SQLite's `now` has only
/// milliseconds; every process sharing a file runs on the same machine, hence the same clock).
pub(crate) fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

/// A timestamp as stored. Years past 9999 are clamped so the text stays sortable.
pub(crate) fn ts(at: NaiveDateTime) -> String {
    let max = NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
        .unwrap_or(NaiveDateTime::MAX);
    let min = NaiveDate::from_ymd_opt(0, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or(NaiveDateTime::MIN);
    at.clamp(min, max).format(FORMAT).to_string()
}

/// `at + d`, saturating.
pub(crate) fn plus(at: NaiveDateTime, d: Duration) -> NaiveDateTime {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(NaiveDateTime::MAX)
}

/// `at - d`, saturating.
pub(crate) fn minus(at: NaiveDateTime, d: Duration) -> NaiveDateTime {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_sub_signed(d))
        .unwrap_or(NaiveDateTime::MIN)
}

/// Reads a stored timestamp: the engine's format, and leniently what a person or another tool
/// may have written (`T` separator, fewer decimals, RFC 3339 with an offset).
pub(crate) fn parse_ts(text: &str) -> Result<NaiveDateTime> {
    let trimmed = text.trim();
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(trimmed.trim_end_matches('Z'), format) {
            return Ok(at);
        }
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(at.naive_utc());
    }
    if let Ok(day) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN));
    }
    Err(Error::InvalidJob(format!(
        "`{text}` is not a timestamp (expected `YYYY-MM-DD HH:MM:SS.ffffff` UTC)"
    )))
}

pub(crate) fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&at)
}

fn ts_col(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>> {
    let text: String = row.try_get(column)?;
    parse_ts(&text).map(utc)
}

fn opt_ts_col(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>> {
    let text: Option<String> = row.try_get(column)?;
    text.as_deref()
        .map(parse_ts)
        .transpose()
        .map(|at| at.map(utc))
}

/// A JSON text column; NULL and malformed text read as `default`.
pub(crate) fn json_col(row: &SqliteRow, column: &str, default: Value) -> Result<Value> {
    let text: Option<String> = row.try_get(column)?;
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(default))
}

fn int_col(row: &SqliteRow, column: &str) -> Result<i32> {
    let value: i64 = row.try_get(column)?;
    Ok(i32::try_from(value).unwrap_or(i32::MAX))
}

pub(crate) fn job_from_row(row: &SqliteRow) -> Result<Job> {
    let state: String = row.try_get("state")?;
    let state = state
        .parse::<JobState>()
        .map_err(|e| Error::InvalidJob(e.to_string()))?;
    let errors = match json_col(row, "errors", Value::Array(Vec::new()))? {
        Value::Array(items) => items.into_iter().map(AttemptError::from_json).collect(),
        _ => Vec::new(),
    };
    Ok(Job {
        id: row.try_get("id")?,
        state,
        queue: row.try_get("queue")?,
        worker: row.try_get("worker")?,
        args: json_col(row, "args", Value::Object(Default::default()))?,
        meta: json_col(row, "meta", Value::Object(Default::default()))?,
        tags: strings_from_json(json_col(row, "tags", Value::Array(Vec::new()))?),
        errors,
        attempt: int_col(row, "attempt")?,
        max_attempts: int_col(row, "max_attempts")?,
        priority: int_col(row, "priority")?,
        attempted_by: strings_from_json(json_col(row, "attempted_by", Value::Array(Vec::new()))?),
        inserted_at: ts_col(row, "inserted_at")?,
        scheduled_at: ts_col(row, "scheduled_at")?,
        attempted_at: opt_ts_col(row, "attempted_at")?,
        completed_at: opt_ts_col(row, "completed_at")?,
        discarded_at: opt_ts_col(row, "discarded_at")?,
        cancelled_at: opt_ts_col(row, "cancelled_at")?,
        conflict: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_sort_as_text() {
        let at = NaiveDate::from_ymd_opt(2026, 3, 8)
            .unwrap()
            .and_hms_micro_opt(2, 30, 0, 120)
            .unwrap();
        assert_eq!(ts(at), "2026-03-08 02:30:00.000120");
        assert_eq!(parse_ts(&ts(at)).unwrap(), at);
        assert_eq!(parse_ts("2026-03-08T02:30:00.000120Z").unwrap(), at);
        assert_eq!(
            parse_ts("2026-03-08 02:30:00").unwrap(),
            at - chrono::Duration::microseconds(120)
        );
        assert!(ts(at) < ts(at + chrono::Duration::microseconds(1)));
        assert_eq!(ts(NaiveDateTime::MAX), "9999-12-31 23:59:59.999999");
        assert!(parse_ts("soon").is_err());
    }
}
