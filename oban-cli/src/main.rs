//! `oban`, the operator's command line for Oban for Rust.
//!
//! ```text
//! cargo install --path oban-cli
//! export DATABASE_URL=postgres://app@db/app
//! oban queues                      # depth by queue and state, per node limit/running/paused
//! oban failing --since 1h          # top failing workers and their errors
//! oban pause reports               # pause a non-critical queue (every node)
//! oban scale mailers 5             # or throttle it
//! oban jobs --state retryable      # watch retries drain
//! oban replay --worker SendReceipt --state discarded   # replay dead jobs
//! ```
//!
//! Every read command takes `--json` and prints one JSON document: the `oban_core::admin`
//! types serialized as they are (timestamps RFC 3339, durations in seconds as numbers), and for
//! the commands that change jobs the [`commands::bulk::Report`] shape. See the README's
//! "Operating it" section. Exit codes are in [`exit`].

mod cli;
mod commands;
mod confirm;
mod exit;
mod output;
mod parse;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A usage mistake exits here with clap's code 2, before anything connects.
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.code())
        }
    }
}
