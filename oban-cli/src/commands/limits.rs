//! `limits [QUEUE]`: queue limits across the fleet. Without a change, every limited queue (or
//! `QUEUE`) with its global limit against the jobs running now and its rate limit against the
//! starts in its window, per partition, the fullest first (`--top` of them). With `--global N
//! [--global-by P]`, `--rate ALLOWED/PERIOD [--rate-by P]`, `--no-global`, `--no-rate` or
//! `--clear`, changes `QUEUE`'s limits (what the change does not name is kept), after asking
//! (`--yes` does not ask): stored at once, and every node told.
//!
//! `--json` for a listing prints an array of `oban_core::admin::QueueLimits` (for `QUEUE`, one
//! object, or `null` when it has no limits):
//!
//! ```json
//! [{"queue": "emails",
//!   "limits": {"global": {"allowed": 5, "partition": {"fields": ["args"], "keys": ["tenant_id"]}},
//!              "rate": {"allowed": 100, "period_secs": 60, "partition": {"fields": [], "keys": []}}},
//!   "usage": {"running": [{"partition": "\u001f[7]", "count": 5}],
//!             "started": [{"partition": "", "count": 57}]}}]
//! ```
//!
//! For a change: `{"action": "set", "queue": "emails", "before": <limits or null>, "after":
//! <limits or null>}` (`"clear"` when no limit is left).

use comfy_table::Cell;
use oban_core::admin::{Admin, QueueLimits};
use oban_core::engine::PartitionCount;
use oban_core::limits::{GlobalLimit, Limits};
use serde::Serialize;

use crate::cli::LimitsArgs;
use crate::confirm;
use crate::exit::{Error, Result, Status};
use crate::output::Output;

/// A change, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Changed<'a> {
    action: &'static str,
    queue: &'a str,
    before: Option<&'a Limits>,
    after: Option<&'a Limits>,
}

pub(crate) async fn run(admin: &Admin, out: Output, args: &LimitsArgs) -> Result<Status> {
    match (&args.queue, args.changes()) {
        (Some(queue), true) => change(admin, out, queue, args).await,
        (Some(queue), false) => {
            let found = admin.queue_limits(queue, args.top).await?;
            if out.json {
                out.json(&found)?;
            } else {
                match found {
                    Some(limited) => print(out, &[limited]),
                    None => println!("queue {queue} has no limits across the fleet"),
                }
            }
            Ok(Status::Done)
        }
        (None, _) => {
            let all = admin.limits(args.top).await?;
            if out.json {
                out.json(&all)?;
            } else if all.is_empty() {
                println!("no queue has limits across the fleet");
            } else {
                print(out, &all);
            }
            Ok(Status::Done)
        }
    }
}

/// The limits `args` asks for, from `before`.
fn wanted(before: &Limits, args: &LimitsArgs) -> Limits {
    if args.clear {
        return Limits::new();
    }
    let mut after = before.clone();
    if args.no_global {
        after.global = None;
    }
    if let Some(allowed) = args.global {
        let partition = args.global_by.clone().unwrap_or_default();
        after.global = Some(GlobalLimit::new(allowed).partitioned(partition));
    }
    if args.no_rate {
        after.rate = None;
    }
    if let Some(rate) = &args.rate {
        let partition = args.rate_by.clone().unwrap_or_default();
        after.rate = Some(rate.clone().partitioned(partition));
    }
    after
}

async fn change(admin: &Admin, out: Output, queue: &str, args: &LimitsArgs) -> Result<Status> {
    let before = admin
        .queue_limits(queue, 1)
        .await?
        .map(|limited| limited.limits)
        .unwrap_or_default();
    let after = wanted(&before, args);
    let action = if after.is_empty() { "clear" } else { "set" };
    if after != before {
        after.check(queue)?;
        let question = if after.is_empty() {
            format!("Remove the limits of queue {queue} ({before}) on every node?")
        } else {
            format!("Set the limits of queue {queue} to {after} (now: {before}) on every node?")
        };
        if !confirm::ask(&question, args.yes)? {
            return Err(Error::new(format!(
                "limits of queue {queue}: not confirmed, nothing changed"
            )));
        }
        admin.set_queue_limits(queue, after.clone()).await?;
    }
    if out.json {
        out.json(&Changed {
            action,
            queue,
            before: (!before.is_empty()).then_some(&before),
            after: (!after.is_empty()).then_some(&after),
        })?;
    } else if after == before {
        println!("queue {queue}: limits unchanged ({after})");
    } else {
        println!("queue {queue}: limits now {after} (were {before}); every node told");
    }
    Ok(Status::Done)
}

fn print(out: Output, all: &[QueueLimits]) {
    let mut table = out.table(["queue", "global", "running now", "rate", "starts in window"]);
    for limited in all {
        let limits = &limited.limits;
        let usage = &limited.usage;
        table.add_row(vec![
            Cell::new(&limited.queue),
            Cell::new(
                limits
                    .global
                    .as_ref()
                    .map_or("-".into(), ToString::to_string),
            ),
            Cell::new(match &limits.global {
                Some(global) => counts(&usage.running, global.partition.is_partitioned()),
                None => "-".into(),
            }),
            Cell::new(limits.rate.as_ref().map_or("-".into(), ToString::to_string)),
            Cell::new(match &limits.rate {
                Some(rate) => counts(&usage.started, rate.partition.is_partitioned()),
                None => "-".into(),
            }),
        ]);
    }
    println!("{table}");
}

/// One line per partition, `5 [7]`, the fullest first; the whole queue's count without
/// partitions.
fn counts(counts: &[PartitionCount], partitioned: bool) -> String {
    if !partitioned || counts.is_empty() {
        return counts.first().map_or(0, |count| count.count).to_string();
    }
    counts
        .iter()
        .map(|count| format!("{} {}", count.count, count.label()))
        .collect::<Vec<_>>()
        .join("\n")
}
