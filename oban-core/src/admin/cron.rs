//! The cron entries seen in recent jobs: [`Admin::cron`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::Admin;
use crate::cron::CronEntry;
use crate::error::Result;
use crate::new_job::NewJob;

/// A cron entry as its jobs show it: the entry's worker, queue and expression (from the meta
/// cron schedulers write: `cron_expr`, `cron_name`, `cron_tz`, as this runtime, Elixir Oban's
/// Cron plugin and Python Oban do), when it last inserted a job, and when it runs next.
///
/// JSON: `{"worker": "DailyReport", "queue": "reports", "expression": "0 9 * * *", "name":
/// "DailyReport 0 9 * * * Europe/Paris", "timezone": "Europe/Paris", "jobs": 3,
/// "last_inserted_at": "2026-12-04T08:00:00.012Z", "next_run_at": "2026-12-05T08:00:00Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CronSummary {
    /// The worker.
    pub worker: String,
    /// The queue its jobs went to.
    pub queue: String,
    /// The expression (`meta.cron_expr`), when the jobs carry it.
    pub expression: Option<String>,
    /// The entry's name (`meta.cron_name`), when the jobs carry one.
    pub name: Option<String>,
    /// The time zone the expression is read in (`meta.cron_tz`); `None` means UTC. Elixir
    /// Oban's Cron plugin records only `cron` and `cron_expr` in the versions that write no
    /// `cron_tz`: a plugin-level `timezone` is then unknown here, and [`next_run_at`](Self::next_run_at)
    /// is computed in UTC.
    pub timezone: Option<String>,
    /// How many of its jobs were inserted within the window.
    pub jobs: u64,
    /// When it last inserted a job (RFC 3339).
    pub last_inserted_at: DateTime<Utc>,
    /// Its next run after now, when the expression parses (five fields or a nickname) in a
    /// known time zone and ever fires again; `None` (`null`) otherwise.
    pub next_run_at: Option<DateTime<Utc>>,
}

impl Admin {
    /// The cron entries whose jobs were inserted within `since`, by worker, queue and entry,
    /// sorted by worker then queue then expression. Entries that inserted nothing in the window
    /// (or run less often than it) do not appear: widen `since` to a day or a week for those.
    pub async fn cron(&self, since: Duration) -> Result<Vec<CronSummary>> {
        let now = Utc::now();
        let mut entries: Vec<CronSummary> = self
            .engine
            .job_cron_seen(since)
            .await?
            .into_iter()
            .map(|seen| {
                let next_run_at = seen.expression.as_deref().and_then(|expression| {
                    next_run(expression, seen.timezone.as_deref(), &seen.worker, now)
                });
                CronSummary {
                    worker: seen.worker,
                    queue: seen.queue,
                    expression: seen.expression,
                    name: seen.name,
                    timezone: seen.timezone,
                    jobs: seen.count,
                    last_inserted_at: seen.last_inserted_at,
                    next_run_at,
                }
            })
            .collect();
        entries.sort_by(|a, b| {
            (&a.worker, &a.queue, &a.expression, &a.name).cmp(&(
                &b.worker,
                &b.queue,
                &b.expression,
                &b.name,
            ))
        });
        Ok(entries)
    }
}

/// The entry's next run after `now`, read as the runtime's scheduler reads it (`oban-cron`).
fn next_run(
    expression: &str,
    timezone: Option<&str>,
    worker: &str,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let entry = CronEntry::new(expression, NewJob::new(worker, json!({}))).ok()?;
    let entry = match timezone {
        Some(tz) => entry.timezone(tz).ok()?,
        None => entry,
    };
    entry.next_after(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_reads_expression_and_zone() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T03:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        assert_eq!(
            next_run("0 * * * *", None, "W", now),
            at("2026-12-04T04:00:00Z")
        );
        assert_eq!(
            next_run("0 9 * * *", Some("Europe/Paris"), "W", now),
            at("2026-12-04T08:00:00Z")
        );
        assert_eq!(
            next_run("@hourly", Some("Etc/UTC"), "W", now),
            at("2026-12-04T04:00:00Z")
        );
        assert_eq!(next_run("not cron", None, "W", now), None);
        assert_eq!(next_run("0 9 * * *", Some("Mars/Olympus"), "W", now), None);
        assert_eq!(next_run("@reboot", None, "W", now), None);
    }
}
