//! `pause`, `resume`, `scale`: the same signals a node sends, heard by every node running the
//! queue (or the one named).
//!
//! `--json`: `{"queue": "mailers", "node": null, "action": "pause"}` (`"scale"` adds `"limit"`).

use oban_core::admin::Admin;
use serde::Serialize;

use crate::cli::QueueTarget;
use crate::exit::{Result, Status};
use crate::output::Output;

/// What was sent, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Sent<'a> {
    action: &'static str,
    queue: &'a str,
    node: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
}

pub(crate) async fn pause(admin: &Admin, out: Output, target: &QueueTarget) -> Result<Status> {
    admin.pause(&target.queue, target.node.as_deref()).await?;
    report(out, "pause", &target.queue, target.node.as_deref(), None)
}

pub(crate) async fn resume(admin: &Admin, out: Output, target: &QueueTarget) -> Result<Status> {
    admin.resume(&target.queue, target.node.as_deref()).await?;
    report(out, "resume", &target.queue, target.node.as_deref(), None)
}

pub(crate) async fn scale(
    admin: &Admin,
    out: Output,
    queue: &str,
    limit: u32,
    node: Option<&str>,
) -> Result<Status> {
    admin.scale(queue, limit, node).await?;
    report(out, "scale", queue, node, Some(limit))
}

fn report(
    out: Output,
    action: &'static str,
    queue: &str,
    node: Option<&str>,
    limit: Option<u32>,
) -> Result<Status> {
    if out.json {
        out.json(&Sent {
            action,
            queue,
            node,
            limit,
        })?;
    } else {
        let nodes = node.map_or_else(|| "every node".to_owned(), |node| format!("node {node}"));
        match limit {
            Some(limit) => println!("asked {nodes} to run queue {queue} with limit {limit}"),
            None => println!("asked {nodes} to {action} queue {queue}"),
        }
    }
    Ok(Status::Done)
}
