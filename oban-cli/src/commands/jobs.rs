//! `jobs` (a filtered list) and `job ID` (one job in full).
//!
//! `--json`: `jobs` prints an array of jobs, `job` one job, each as `oban_core::Job`
//! serializes: `id`, `state`, `queue`, `worker`, `args`, `meta`, `tags`, `errors` (`attempt`,
//! `at`, `error`), `attempt`, `max_attempts`, `priority`, `attempted_by`, and the timestamps
//! `inserted_at`, `scheduled_at`, `attempted_at`, `completed_at`, `discarded_at`,
//! `cancelled_at` (RFC 3339, UTC; `null` when not reached). No job: `[]` or `null`, exit 3.

use chrono::{DateTime, Utc};
use comfy_table::Cell;
use oban_core::admin::Admin;
use oban_core::Job;

use crate::cli::FilterArgs;
use crate::exit::{Result, Status};
use crate::output::Output;
use crate::parse::human_duration;

/// Lists the jobs matching `filter`, lowest id first.
pub(crate) async fn list(
    admin: &Admin,
    out: Output,
    filter: &FilterArgs,
    limit: u32,
) -> Result<Status> {
    let jobs = admin.jobs(&filter.query(Some(limit))).await?;
    let status = if jobs.is_empty() {
        Status::NothingMatched
    } else {
        Status::Done
    };
    if out.json {
        out.json(&jobs)?;
        return Ok(status);
    }
    if jobs.is_empty() {
        println!("no job matches");
        return Ok(status);
    }
    let now = Utc::now();
    let mut table = out.table([
        "id",
        "state",
        "queue",
        "worker",
        "attempt",
        "inserted",
        "scheduled",
        "last error",
    ]);
    for job in &jobs {
        table.add_row(vec![
            Cell::new(job.id),
            out.state_cell(job.state),
            Cell::new(&job.queue),
            Cell::new(&job.worker),
            Cell::new(format!("{}/{}", job.attempt, job.max_attempts)),
            Cell::new(relative(job.inserted_at, now)),
            Cell::new(relative(job.scheduled_at, now)),
            Cell::new(
                job.errors
                    .last()
                    .map(|error| first_line(&error.error, 60))
                    .unwrap_or_default(),
            ),
        ]);
    }
    println!("{table}");
    Ok(status)
}

/// One job: its fields, args, meta, error history and timeline.
pub(crate) async fn show(admin: &Admin, out: Output, id: i64) -> Result<Status> {
    let job = admin.job(id).await?;
    if out.json {
        out.json(&job)?;
    }
    let Some(job) = job else {
        if !out.json {
            println!("no job {id}");
        }
        return Ok(Status::NothingMatched);
    };
    if !out.json {
        print_job(out, &job);
    }
    Ok(Status::Done)
}

fn print_job(out: Output, job: &Job) {
    let now = Utc::now();
    let mut fields = out.table(["job", &job.id.to_string()]);
    fields.add_row(vec![Cell::new("state"), out.state_cell(job.state)]);
    fields.add_row(vec!["queue", &job.queue]);
    fields.add_row(vec!["worker", &job.worker]);
    fields.add_row(vec![
        "attempt".to_owned(),
        format!("{} of {}", job.attempt, job.max_attempts),
    ]);
    fields.add_row(vec!["priority".to_owned(), job.priority.to_string()]);
    fields.add_row(vec!["tags".to_owned(), job.tags.join(", ")]);
    fields.add_row(vec![
        "attempted by".to_owned(),
        job.attempted_by.join(" / "),
    ]);
    fields.add_row(vec!["args".to_owned(), pretty(&job.args)]);
    fields.add_row(vec!["meta".to_owned(), pretty(&job.meta)]);
    println!("{fields}");

    let mut timeline = out.table(["timeline", "at", "ago"]);
    for (event, at) in timeline_of(job) {
        timeline.add_row(vec![
            event.to_owned(),
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            relative(at, now),
        ]);
    }
    println!("{timeline}");

    if job.errors.is_empty() {
        println!("no errors");
    } else {
        let mut errors = out.table(["attempt", "at", "error"]);
        for error in &job.errors {
            errors.add_row(vec![
                error.attempt.to_string(),
                error.at.clone(),
                error.error.clone(),
            ]);
        }
        println!("{errors}");
    }
}

/// The job's times in order: inserted, scheduled, attempted, and how it finished.
fn timeline_of(job: &Job) -> Vec<(&'static str, DateTime<Utc>)> {
    let mut events = vec![
        ("inserted", job.inserted_at),
        ("scheduled", job.scheduled_at),
    ];
    let optional = [
        ("attempted", job.attempted_at),
        ("completed", job.completed_at),
        ("discarded", job.discarded_at),
        ("cancelled", job.cancelled_at),
    ];
    events.extend(
        optional
            .into_iter()
            .filter_map(|(event, at)| Some((event, at?))),
    );
    events.sort_by_key(|&(_, at)| at);
    events
}

/// `3m ago` or `in 2h`.
pub(crate) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = now.signed_duration_since(at);
    match delta.to_std() {
        Ok(ago) => format!("{} ago", human_duration(ago)),
        Err(_) => format!(
            "in {}",
            human_duration((-delta).to_std().unwrap_or_default())
        ),
    }
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The first line of `text`, at most `max` characters.
pub(crate) fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_read_relative_to_now() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let earlier = Utc.with_ymd_and_hms(2026, 1, 1, 11, 45, 30).unwrap();
        assert_eq!(relative(earlier, now), "14m 30s ago");
        assert_eq!(relative(now, earlier), "in 14m 30s");
    }

    #[test]
    fn errors_are_cut_to_their_first_line() {
        assert_eq!(first_line("boom\nat line 3", 60), "boom");
        assert_eq!(first_line("abcdef", 4), "abc…");
    }
}
