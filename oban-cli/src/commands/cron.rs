//! `cron`: the cron entries seen in recent cron jobs, with their next run time where the
//! expression is known.
//!
//! `--json` prints an array of `oban_core::admin::CronSummary`:
//!
//! ```json
//! [{"worker": "DailyReport", "queue": "reports", "expression": "0 9 * * *",
//!   "name": "DailyReport 0 9 * * * Europe/Paris", "timezone": "Europe/Paris", "jobs": 3,
//!   "last_inserted_at": "2026-12-04T08:00:00.012Z", "next_run_at": "2026-12-05T08:00:00Z"}]
//! ```

use std::time::Duration;

use chrono::Utc;
use oban_core::admin::Admin;

use crate::commands::jobs::relative;
use crate::exit::{Result, Status};
use crate::output::Output;
use crate::parse::human_duration;

pub(crate) async fn run(admin: &Admin, out: Output, since: Duration) -> Result<Status> {
    let entries = admin.cron(since).await?;
    if out.json {
        out.json(&entries)?;
        return Ok(Status::Done);
    }
    if entries.is_empty() {
        println!("no cron job inserted in the last {}", human_duration(since));
        return Ok(Status::Done);
    }
    let now = Utc::now();
    let mut table = out.table([
        "worker",
        "queue",
        "expression",
        "time zone",
        "jobs",
        "last inserted",
        "next run",
    ]);
    for entry in &entries {
        table.add_row(vec![
            entry.worker.clone(),
            entry.queue.clone(),
            entry.expression.clone().unwrap_or_else(|| "?".to_owned()),
            entry.timezone.clone().unwrap_or_else(|| "UTC".to_owned()),
            entry.jobs.to_string(),
            relative(entry.last_inserted_at, now),
            entry
                .next_run_at
                .map_or_else(|| "-".to_owned(), |at| relative(at, now)),
        ]);
    }
    println!("{table}");
    Ok(Status::Done)
}
