//! `migrate`: installs or upgrades the schema; `migrate --check` only reports.
//!
//! `--json` prints an `oban_core::admin::MigrationStatus` (after migrating, without `--check`):
//!
//! ```json
//! {"up_to_date": false, "steps": [{"version": 1, "description": "install oban_jobs",
//!   "applied": true}], "pending": [7], "unknown": []}
//! ```
//!
//! `--check` exits 3 when steps are pending, so a deploy script can tell.

use oban_core::admin::{Admin, MigrationStatus};

use crate::exit::{Result, Status};
use crate::output::Output;

pub(crate) async fn run(admin: &Admin, out: Output, check: bool) -> Result<Status> {
    let before = admin.migration_status().await?;
    let status = if check {
        before
    } else {
        if !before.up_to_date() {
            admin.migrate().await?;
        }
        let after = admin.migration_status().await?;
        if !out.json {
            let applied = before.pending.len();
            if applied == 0 {
                println!("the schema was up to date");
            } else {
                println!("applied {applied} migration(s): {:?}", before.pending);
            }
        }
        after
    };
    if out.json {
        out.json(&status)?;
    } else {
        print_status(out, &status);
    }
    Ok(if status.up_to_date() {
        Status::Done
    } else {
        Status::NothingMatched
    })
}

fn print_status(out: Output, status: &MigrationStatus) {
    let mut table = out.table(["version", "description", "applied"]);
    for step in &status.steps {
        table.add_row(vec![
            step.version.to_string(),
            step.description.clone(),
            if step.applied { "yes" } else { "pending" }.to_owned(),
        ]);
    }
    println!("{table}");
    if !status.unknown.is_empty() {
        println!(
            "applied but unknown to this build (a newer release migrated): {:?}",
            status.unknown
        );
    }
    if status.up_to_date() {
        println!("up to date");
    } else {
        println!("pending: {:?}; run `oban migrate`", status.pending);
    }
}
