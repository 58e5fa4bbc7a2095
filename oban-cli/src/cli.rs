//! The argument grammar: global options, one variant per command, the filter flags they share.
//!
//! Every value is parsed here, by clap, before anything connects: a bad duration, an unknown
//! state or `--args` that is not a JSON object is a usage error (exit 2) naming the flag.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use oban_core::limits::{Partition, RateLimit};
use oban_core::JobState;
use serde_json::Value;

use crate::parse;

/// The operator's command line for Oban for Rust.
///
/// Reads and changes the jobs of an Oban database (PostgreSQL or SQLite) the way a node would:
/// queue depths, failing workers, pause and scale, limits across the fleet, bulk retry, cancel,
/// delete and replay.
///
/// Exit codes: 0 done; 1 error (database, refused confirmation); 2 usage (a bad flag or value);
/// 3 nothing matched the filter (`jobs`, `job`, `retry`, `cancel`, `delete`, `replay`, `prune`,
/// `workflows`, `workflow`).
#[derive(Debug, Parser)]
#[command(name = "oban", version, about, long_about)]
pub(crate) struct Cli {
    /// Database URL: postgres://user@host/db or sqlite://path/to/oban.db.
    #[arg(
        long,
        short = 'd',
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    pub(crate) database: Option<String>,

    /// Schema prefix of the Oban tables (PostgreSQL).
    #[arg(
        long,
        default_value = "public",
        global = true,
        value_name = "SCHEMA",
        value_parser = parse::prefix
    )]
    pub(crate) prefix: String,

    /// Print JSON (one document on stdout) instead of tables; the shapes are documented in
    /// the crate docs and are stable.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// The command.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// One variant per command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Per queue: jobs by state, oldest available job's age, per node its limit, running jobs
    /// and whether it is paused, and its limits across the fleet.
    Queues,
    /// Lists jobs matching a filter, oldest (lowest id) first.
    Jobs {
        /// Which jobs.
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// One job: args, meta, attempts, its error history and a timeline.
    Job {
        /// The job's id.
        id: i64,
    },
    /// Top failing workers: retryable against discarded, most frequent errors.
    Failing {
        /// Jobs that failed within this long (15m, 2h, 7d).
        #[arg(long, default_value = "1h", value_parser = parse::duration)]
        since: Duration,
        /// Error messages shown per worker.
        #[arg(long, default_value_t = 3)]
        top: usize,
    },
    /// Pauses a queue on every node, or on one.
    Pause(QueueTarget),
    /// Resumes a queue on every node, or on one.
    Resume(QueueTarget),
    /// Sets a queue's concurrency limit on every node, or on one.
    Scale {
        /// The queue.
        queue: String,
        /// Its new limit (jobs at once per node).
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
    },
    /// Queue limits across the fleet: every limited queue (or one) with what runs and what
    /// started now; with --global, --rate, --no-global, --no-rate or --clear, changes a
    /// queue's limits on every node (asking first).
    Limits(LimitsArgs),
    /// Makes matching jobs available to run again (not executing, not available ones).
    Retry(Bulk),
    /// Cancels matching jobs; executing ones are cancelled on their node.
    Cancel(Bulk),
    /// Deletes matching jobs (executing ones excluded).
    Delete(Bulk),
    /// Discarded or cancelled jobs back to available, with an attempt more if they had none
    /// left.
    Replay(Bulk),
    /// Deletes completed, cancelled and discarded jobs older than a duration.
    Prune {
        /// Finished before this long ago (15m, 2h, 7d).
        #[arg(long, default_value = "7d", value_parser = parse::duration)]
        older_than: Duration,
        /// Confirmation.
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Installs or upgrades the schema; with --check only reports.
    Migrate {
        /// Only tell whether migrations are pending (exit 3 if they are).
        #[arg(long)]
        check: bool,
    },
    /// Cron entries seen in recent cron jobs, with their next run time.
    Cron {
        /// Look at cron jobs inserted within this long.
        #[arg(long, default_value = "7d", value_parser = parse::duration)]
        since: Duration,
    },
    /// The most recent workflows, newest first: state, steps by state, started, finished.
    Workflows {
        /// At most this many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Only workflows whose newest step's id is below this (the `last_job_id` of the last
        /// workflow of the previous page).
        #[arg(long, value_name = "JOB_ID")]
        before: Option<i64>,
    },
    /// One workflow: its steps and sub-workflows; --mermaid prints its graph; --cancel or
    /// --retry changes it.
    Workflow(WorkflowArgs),
    /// Serves the dashboard (queues, jobs, crons; retry, cancel, pause, scale) until Ctrl-C.
    ///
    /// Read-only for everyone who can reach it; a browser that signs in with the token (or a
    /// script sending `Authorization: Bearer <token>`) gets full access.
    Web {
        /// The address to listen on; loopback unless you say otherwise.
        #[arg(long, default_value = "127.0.0.1:4000", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// The token that grants full access (at least 16 characters). Without it the dashboard
        /// is read-only for everyone.
        #[arg(long, env = "OBAN_WEB_TOKEN", hide_env_values = true, value_parser = parse::token)]
        token: Option<String>,
        /// Nobody without the token sees anything (default: read-only without it).
        #[arg(long, requires = "token")]
        private: bool,
    },
}

/// `workflow ID`: what to show or do.
#[derive(Debug, Args)]
pub(crate) struct WorkflowArgs {
    /// The workflow's id (`meta.workflow_id`).
    pub(crate) id: String,
    /// Print the graph as Mermaid text (a `flowchart TD`) instead of tables.
    #[arg(long, conflicts_with_all = ["cancel", "retry"])]
    pub(crate) mermaid: bool,
    /// Cancel every unfinished step, and those of its sub-workflows; executing ones are
    /// cancelled on their node.
    #[arg(long, conflicts_with = "retry")]
    pub(crate) cancel: bool,
    /// Run the failed part again: cancelled and discarded steps (and those of its
    /// sub-workflows) back to suspended, then released when their deps are met.
    #[arg(long)]
    pub(crate) retry: bool,
    /// Do it without asking.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Only count the steps the change would touch; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `limits [QUEUE]`: show, or change one queue's limits. A change keeps what it does not name:
/// `--global` replaces the global limit, `--rate` the rate limit, `--no-global` and `--no-rate`
/// remove one, `--clear` both.
#[derive(Debug, Args)]
pub(crate) struct LimitsArgs {
    /// The queue (every limited queue without it).
    pub(crate) queue: Option<String>,
    /// At most this many jobs of the queue running at once, on every node together (per
    /// partition with --global-by).
    #[arg(long, value_name = "N", requires = "queue",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) global: Option<u32>,
    /// Split the global limit, each part with the whole limit: worker, args (all of the
    /// args), args:KEY,KEY or worker+args:KEY.
    #[arg(long, value_name = "PARTITION", requires = "global", value_parser = parse::partition)]
    pub(crate) global_by: Option<Partition>,
    /// Remove the global limit.
    #[arg(long, requires = "queue", conflicts_with = "global")]
    pub(crate) no_global: bool,
    /// At most ALLOWED job starts per PERIOD, on every node together: 100/60s, 1000/1h (a
    /// whole number of seconds from 1s to 1d).
    #[arg(long, value_name = "ALLOWED/PERIOD", requires = "queue", value_parser = parse::rate)]
    pub(crate) rate: Option<RateLimit>,
    /// Split the rate limit, as --global-by.
    #[arg(long, value_name = "PARTITION", requires = "rate", value_parser = parse::partition)]
    pub(crate) rate_by: Option<Partition>,
    /// Remove the rate limit.
    #[arg(long, requires = "queue", conflicts_with = "rate")]
    pub(crate) no_rate: bool,
    /// Remove every limit of the queue: each node's own limit alone bounds it.
    #[arg(long, requires = "queue",
          conflicts_with_all = ["global", "no_global", "rate", "no_rate"])]
    pub(crate) clear: bool,
    /// Change without asking.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Partitions shown per limit, the fullest first.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) top: u32,
}

impl LimitsArgs {
    /// Whether the command changes anything.
    pub(crate) fn changes(&self) -> bool {
        self.global.is_some() || self.no_global || self.rate.is_some() || self.no_rate || self.clear
    }
}

/// A queue, on every node or on one.
#[derive(Debug, Args)]
pub(crate) struct QueueTarget {
    /// The queue.
    pub(crate) queue: String,
    /// Only this node.
    #[arg(long)]
    pub(crate) node: Option<String>,
}

/// Which jobs: every flag given must hold; a repeated flag means any of its values.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct FilterArgs {
    /// Job id (repeatable).
    #[arg(long = "id", value_name = "ID")]
    pub(crate) ids: Vec<i64>,
    /// State (repeatable): available, scheduled, suspended, executing, retryable, completed,
    /// discarded, cancelled.
    #[arg(long = "state", value_name = "STATE", value_parser = parse::state)]
    pub(crate) states: Vec<JobState>,
    /// Queue (repeatable).
    #[arg(long = "queue", value_name = "QUEUE")]
    pub(crate) queues: Vec<String>,
    /// Worker name as stored (repeatable).
    #[arg(long = "worker", value_name = "WORKER")]
    pub(crate) workers: Vec<String>,
    /// Tag the job must have (repeatable: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// JSON object the args must contain, e.g. '{"user_id": 7}'.
    #[arg(long, value_name = "JSON", value_parser = parse::json_object)]
    pub(crate) args: Option<Value>,
    /// JSON object the meta must contain.
    #[arg(long, value_name = "JSON", value_parser = parse::json_object)]
    pub(crate) meta: Option<Value>,
    /// Inserted within this long (15m, 2h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub(crate) since: Option<Duration>,
    /// The steps of this workflow (its `meta.workflow_id`).
    #[arg(long, value_name = "ID")]
    pub(crate) workflow: Option<String>,
}

impl FilterArgs {
    /// Whether no condition was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
            && self.states.is_empty()
            && self.queues.is_empty()
            && self.workers.is_empty()
            && self.tags.is_empty()
            && self.args.is_none()
            && self.meta.is_none()
            && self.since.is_none()
            && self.workflow.is_none()
    }
}

/// A bulk operation: its filter, confirmation and batch size.
#[derive(Debug, Args)]
pub(crate) struct Bulk {
    /// Which jobs.
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Every job, on purpose (a bulk command without a filter is refused otherwise).
    #[arg(long)]
    pub(crate) all: bool,
    /// Confirmation.
    #[command(flatten)]
    pub(crate) confirm: Confirm,
}

/// How a change is confirmed and carried out.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct Confirm {
    /// Do it without asking.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Only count the matching jobs; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Jobs per batch: each batch is one short statement, so no lock outlives it.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) batch: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn filters_parse_before_anything_runs() {
        let cli = Cli::try_parse_from([
            "oban",
            "jobs",
            "--state",
            "retryable",
            "--state",
            "discarded",
            "--queue",
            "mail",
            "--args",
            r#"{"user": 7}"#,
            "--since",
            "2h",
        ])
        .expect("parses");
        let Command::Jobs { filter, limit } = cli.command else {
            panic!("jobs");
        };
        assert_eq!(limit, 20);
        assert_eq!(filter.states, [JobState::Retryable, JobState::Discarded]);
        assert_eq!(filter.since, Some(Duration::from_secs(7200)));
        assert_eq!(filter.args, Some(serde_json::json!({"user": 7})));
    }

    #[test]
    fn a_bad_filter_is_a_usage_error_naming_the_flag() {
        let cases = [
            (vec!["jobs", "--state", "dead"], "unknown job state `dead`"),
            (vec!["jobs", "--args", "{user: 7}"], "not JSON"),
            (vec!["jobs", "--args", "[1]"], "a JSON object"),
            (vec!["jobs", "--since", "2 fortnights"], "invalid duration"),
            (vec!["retry", "--batch", "0", "--all"], "--batch"),
        ];
        for (args, expected) in cases {
            let err = Cli::try_parse_from(std::iter::once("oban").chain(args.clone()))
                .expect_err("refused");
            assert_eq!(err.exit_code(), 2, "{args:?}");
            let text = err.to_string();
            assert!(text.contains(expected), "{args:?}: {text}");
        }
    }

    #[test]
    fn json_and_database_are_global() {
        let cli =
            Cli::try_parse_from(["oban", "queues", "--json", "--database", "sqlite::memory:"])
                .expect("parses");
        assert!(cli.json);
        assert_eq!(cli.database.as_deref(), Some("sqlite::memory:"));
    }
}
