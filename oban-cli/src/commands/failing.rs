//! `failing`: the top failing workers, retryable against discarded, and their most frequent
//! errors (the last error of each job).
//!
//! `--json` prints an array of `oban_core::admin::FailingWorker`, most failures first:
//!
//! ```json
//! [{"worker": "SendReceipt", "queue": "mailers", "retryable": 12, "discarded": 3,
//!   "errors": [{"message": "smtp timeout", "count": 14}, {"message": "bad address", "count": 1}]}]
//! ```

use std::time::Duration;

use comfy_table::{Cell, Color};
use oban_core::admin::Admin;

use crate::commands::jobs::first_line;
use crate::exit::{Result, Status};
use crate::output::Output;
use crate::parse::human_duration;

pub(crate) async fn run(admin: &Admin, out: Output, since: Duration, top: usize) -> Result<Status> {
    let workers = admin.failing(since, top).await?;
    if out.json {
        out.json(&workers)?;
        return Ok(Status::Done);
    }
    if workers.is_empty() {
        println!("no failure in the last {}", human_duration(since));
        return Ok(Status::Done);
    }
    let mut table = out.table(["worker", "queue", "retryable", "discarded", "top errors"]);
    for worker in &workers {
        let errors: Vec<String> = worker
            .errors
            .iter()
            .map(|error| format!("{:>5} × {}", error.count, first_line(&error.message, 70)))
            .collect();
        let coloured = |count: u64, colour: Color| {
            let cell = Cell::new(count);
            if count > 0 && out.colour {
                cell.fg(colour)
            } else {
                cell
            }
        };
        table.add_row(vec![
            Cell::new(&worker.worker),
            Cell::new(&worker.queue),
            coloured(worker.retryable, Color::Yellow),
            coloured(worker.discarded, Color::Red),
            Cell::new(errors.join("\n")),
        ]);
    }
    println!("{table}");
    println!(
        "retryable jobs will run again by themselves; discarded ones need `oban replay` once \
         the cause is fixed"
    );
    Ok(Status::Done)
}
