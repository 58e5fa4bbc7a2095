//! `queues`: per queue, jobs by state, the oldest available job's age, per node its limit,
//! running jobs and whether it is paused (from the producers' heartbeats), and its limits across
//! the fleet against what they count now (`global 3/10 by args:tenant_id`, `rate 57/100 per
//! 60s`; details in `oban limits`).
//!
//! `--json` prints an array of `oban_core::admin::QueueOverview`:
//!
//! ```json
//! [{"queue": "mailers", "total": 1204,
//!   "states": [{"state": "available", "count": 1200, "exact": true}, ...],
//!   "oldest_available_secs": 12.5,
//!   "nodes": [{"node": "web-1", "producer": "<uuid>", "limit": 10, "running": 4,
//!              "paused": false, "started_at": "2026-12-04T03:00:00Z",
//!              "last_heartbeat_at": "2026-12-04T03:22:18Z", "heartbeat_age_secs": 0.8}],
//!   "limits": null}]
//! ```
//!
//! `exact` is false where a count is PostgreSQL's planner estimate (above 100,000 rows);
//! `limits` is an `oban_core::admin::QueueLimits` (see `limits.rs`) for a queue with limits.

use comfy_table::{Cell, CellAlignment, Color};
use oban_core::admin::{Admin, QueueOverview};
use oban_core::JobState;

use crate::exit::{Result, Status};
use crate::output::Output;
use crate::parse::human_duration;

/// The states shown as columns, in the order a job goes through them.
const COLUMNS: [JobState; 8] = [
    JobState::Available,
    JobState::Scheduled,
    JobState::Executing,
    JobState::Retryable,
    JobState::Suspended,
    JobState::Completed,
    JobState::Discarded,
    JobState::Cancelled,
];

pub(crate) async fn run(admin: &Admin, out: Output) -> Result<Status> {
    let queues = admin.queues().await?;
    if out.json {
        out.json(&queues)?;
        return Ok(Status::Done);
    }
    if queues.is_empty() {
        println!("no queue: no job and no node running a queue");
        return Ok(Status::Done);
    }
    let mut headers = vec!["queue".to_owned()];
    headers.extend(COLUMNS.iter().map(|state| state.as_str().to_owned()));
    headers.extend([
        "oldest available".to_owned(),
        "nodes (running/limit)".to_owned(),
        "fleet limits".to_owned(),
    ]);
    let mut table = out.table(headers);
    for queue in &queues {
        table.add_row(row(out, queue));
    }
    for column in 1..=COLUMNS.len() {
        if let Some(column) = table.column_mut(column) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    println!("{table}");
    if queues
        .iter()
        .flat_map(|queue| &queue.states)
        .any(|tally| !tally.exact)
    {
        println!("~ marks a planner estimate (exact counts stop at 100,000 per queue and state)");
    }
    Ok(Status::Done)
}

fn row(out: Output, queue: &QueueOverview) -> Vec<Cell> {
    let mut cells = vec![Cell::new(&queue.queue)];
    for state in COLUMNS {
        let tally = queue.states.iter().find(|tally| tally.state == state);
        let count = tally.map_or(0, |tally| tally.count);
        let mark = if tally.is_some_and(|tally| !tally.exact) {
            "~"
        } else {
            ""
        };
        let cell = Cell::new(format!("{mark}{count}"));
        cells.push(match state {
            JobState::Discarded if count > 0 && out.colour => cell.fg(Color::Red),
            JobState::Retryable if count > 0 && out.colour => cell.fg(Color::Yellow),
            _ => cell,
        });
    }
    cells.push(Cell::new(
        queue
            .oldest_available
            .map(human_duration)
            .unwrap_or_else(|| "-".to_owned()),
    ));
    let nodes: Vec<String> = queue
        .nodes
        .iter()
        .map(|node| {
            let paused = if node.paused { " paused" } else { "" };
            format!("{} {}/{}{paused}", node.node, node.running, node.limit)
        })
        .collect();
    cells.push(Cell::new(if nodes.is_empty() {
        "-".to_owned()
    } else {
        nodes.join("\n")
    }));
    // `global 3/10 by args:tenant_id` on one line, the rate on the next.
    cells.push(Cell::new(queue.limits.as_ref().map_or_else(
        || "-".to_owned(),
        |limited| {
            [
                limited
                    .global_summary()
                    .map(|text| format!("global {text}")),
                limited.rate_summary().map(|text| format!("rate {text}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n")
        },
    )));
    cells
}
