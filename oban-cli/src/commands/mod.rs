//! One module per command; [`run`] connects and dispatches.

pub(crate) mod bulk;
mod control;
mod cron;
mod failing;
mod jobs;
mod limits;
mod migrate;
mod queues;
mod web;
mod workflows;

use oban_core::admin::Admin;

use crate::cli::{Cli, Command};
use crate::exit::{Error, Result, Status};
use crate::output::Output;

/// Runs the command `cli` names.
pub(crate) async fn run(cli: Cli) -> Result<Status> {
    let out = Output::detect(cli.json);
    // Whatever can be refused without the database is refused before connecting.
    let plan = bulk::Plan::check(&cli.command)?;
    let Some(url) = cli.database.as_deref().filter(|url| !url.trim().is_empty()) else {
        return Err(Error::usage(
            "no database: pass --database URL or set DATABASE_URL \
             (postgres://user@host/db or sqlite://path/to/oban.db)",
        ));
    };
    let admin = Admin::connect(url, &cli.prefix).await?;
    match cli.command {
        Command::Queues => queues::run(&admin, out).await,
        Command::Jobs { filter, limit } => jobs::list(&admin, out, &filter, limit).await,
        Command::Job { id } => jobs::show(&admin, out, id).await,
        Command::Failing { since, top } => failing::run(&admin, out, since, top).await,
        Command::Pause(target) => control::pause(&admin, out, &target).await,
        Command::Resume(target) => control::resume(&admin, out, &target).await,
        Command::Scale { queue, limit, node } => {
            control::scale(&admin, out, &queue, limit, node.as_deref()).await
        }
        Command::Limits(args) => limits::run(&admin, out, &args).await,
        Command::Retry(_)
        | Command::Cancel(_)
        | Command::Delete(_)
        | Command::Replay(_)
        | Command::Prune { .. } => {
            let plan = plan.expect("bulk commands have a plan");
            bulk::run(&admin, out, plan).await
        }
        Command::Migrate { check } => migrate::run(&admin, out, check).await,
        Command::Cron { since } => cron::run(&admin, out, since).await,
        Command::Workflows { limit, before } => workflows::list(&admin, out, before, limit).await,
        Command::Workflow(args) => workflows::show(&admin, out, &args).await,
        Command::Web {
            listen,
            token,
            private,
        } => web::run(admin, listen, token, private).await,
    }
}
