//! The engine conformance suite: every behaviour the runtime needs from a database, written once
//! and run against each engine (PostgreSQL and SQLite), through the `Engine` trait and through
//! `Oban` nodes. `conformance!` below stamps out one `#[tokio::test]` per engine per behaviour,
//! named `postgres::<behaviour>` and `sqlite::<behaviour>`, and once more on PostgreSQL in a
//! schema prefix while `public` holds nothing (`postgres_prefix::<behaviour>`); the behaviours
//! live by topic in `conformance/*.rs`.
//!
//! What an engine cannot do is tested as its documented degradation: SQLite's notifications
//! reach the nodes of one process (here, every node is in this process).

mod common;
#[path = "conformance/harness.rs"]
mod harness;
#[path = "conformance/helpers.rs"]
mod helpers;
#[path = "conformance/probe.rs"]
mod probe;

#[path = "conformance/acks.rs"]
mod acks;
#[path = "conformance/coordination.rs"]
mod coordination;
#[path = "conformance/cron.rs"]
mod cron;
#[path = "conformance/deploy.rs"]
mod deploy;
#[path = "conformance/engine_choice.rs"]
mod engine_choice;
#[path = "conformance/fetch.rs"]
mod fetch;
#[path = "conformance/filters.rs"]
mod filters;
#[path = "conformance/insert.rs"]
mod insert;
#[path = "conformance/maintenance.rs"]
mod maintenance;
#[path = "conformance/nodes.rs"]
mod nodes;
#[path = "conformance/schema.rs"]
mod schema;
#[path = "conformance/unique.rs"]
mod unique;

/// One `#[tokio::test]` per engine for every behaviour named `topic::behaviour`, named
/// `postgres::behaviour` and `sqlite::behaviour`.
macro_rules! conformance {
    ($($topic:ident :: $name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$topic::$name(crate::harness::Kind::Postgres).await
                }
            )*
        }
        mod postgres_prefix {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$topic::$name(crate::harness::Kind::PostgresPrefix).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$topic::$name(crate::harness::Kind::Sqlite).await
                }
            )*
        }
    };
}

conformance!(
    schema::schema_migrate_is_idempotent_and_reindex_works,
    insert::insert_many_keeps_input_order_and_every_field,
    insert::insert_refuses_invalid_jobs_and_accepts_an_empty_batch,
    fetch::fetch_takes_available_jobs_in_priority_scheduled_at_id_order,
    fetch::concurrent_fetchers_never_get_the_same_job,
    acks::acks_record_every_outcome_and_ignore_stale_attempts,
    maintenance::staging_makes_due_jobs_available_within_the_limit,
    maintenance::rescue_returns_orphaned_jobs_and_forgets_dead_producers,
    maintenance::rescue_leaves_jobs_of_other_implementations_alone,
    maintenance::prune_deletes_old_finished_jobs_in_batches,
    filters::list_retry_cancel_and_delete_by_filter,
    unique::unique_conflict_returns_the_existing_job,
    unique::unique_fields_and_keys_choose_what_is_compared,
    unique::unique_period_expires_by_inserted_at_or_scheduled_at,
    unique::unique_states_groups_follow_every_state_change,
    unique::unique_replace_updates_the_duplicate_by_its_state,
    unique::unique_insert_all_dedups_within_the_batch,
    unique::unique_concurrent_inserts_never_duplicate,
    insert::pool_and_transaction_inserters,
    coordination::leader_election_holds_renews_and_hands_over,
    coordination::notify_reaches_every_listener_on_the_database,
    coordination::producer_heartbeats_are_listed_and_deleted,
    cron::cron_scheduler_inserts_each_minute_once,
    nodes::node_runs_every_outcome,
    nodes::nodes_share_queue_control_and_cancel_running_jobs,
    nodes::node_hands_back_unfinished_jobs_at_shutdown,
    nodes::node_leadership_moves_when_the_leader_stops,
    nodes::node_runs_a_thousand_jobs_exactly_once,
    deploy::insert_only_node_needs_no_worker_state,
    deploy::rolling_deploy_defers_unknown_workers_without_spending_attempts,
    deploy::unknown_workers_fail_as_usual_after_the_last_deferral,
);
