//! # Oban for Rust
//!
//! Durable background jobs where a worker is an `async fn` with an attribute on it. Jobs are
//! rows in Oban's own `oban_jobs` table (PostgreSQL, or an embedded SQLite file), so Rust,
//! Elixir and Python Oban nodes can share a database and work each other's jobs.
//!
//! ```ignore
//! use std::time::Duration;
//! use oban::{worker, Job, Oban, Outcome, State};
//!
//! #[worker(queue = "mailers", max_attempts = 10, unique(period = 300, keys = [order_id]))]
//! async fn send_receipt(order_id: i64, job: &Job, mailer: State<Mailer>) -> Result<Outcome, MailError> {
//!     mailer.send_receipt(order_id).await?;
//!     Ok(Outcome::Complete)
//! }
//!
//! let oban = Oban::builder().queue("mailers", 10).state(mailer).start().await?;
//! SendReceipt::new(42).insert(&oban).await?;
//! oban.shutdown_on_signal(Duration::from_secs(30)).await;
//! ```
//!
//! The [`worker`](macro@worker) attribute documents what it generates; the runtime's pieces are documented in
//! [`oban_core`] and re-exported here. The rest of this page is the guide.
//!
//! # Writing idempotent workers
//!
//! A job runs **at least once**, not exactly once. It runs again when an attempt fails, when
//! the node running it is killed (the lifeline makes it available again once the node stops
//! heartbeating), when a shutdown outlasts the grace period, and when the database was
//! unreachable as the outcome was recorded. So a worker must be safe to repeat:
//!
//! - **Make the side effect unique where it lands.** Write rows with a natural key and
//!   `ON CONFLICT DO NOTHING` (or an upsert) rather than a plain insert; the delivery log of
//!   `examples/email_receipts` is keyed by `(job_id, attempt)` for that reason.
//! - **Store the provider's id before moving on.** When an external API returns an id (a
//!   payment, a message), record it against the job's business key in your own table; on a
//!   retry, look it up first and skip the call if it is there. Pass an idempotency key derived
//!   from the job (`job.id`, or the args) to APIs that accept one.
//! - **Do the database part in one transaction.** Inserting follow-up jobs inside your own
//!   transaction (`SomeWorker::new(..).insert(&mut *tx)`) makes them commit or roll back with
//!   your data: no job for a row that does not exist, no row without its job.
//! - **Keep args small and stable.** Store ids, not whole records: the record may have changed
//!   by the time the job runs, and args are JSON that other Oban nodes must be able to read.
//!   Add fields as `Option<..>` so jobs already in the table still decode.
//! - **Use unique jobs against duplicate enqueues**, not against duplicate execution: a unique
//!   key stops a double click from enqueuing two receipts; it does not stop a retry.
//! - **Say what an error means.** Return `Ok(Outcome::Discard(..))` for errors no retry can fix
//!   (an invalid address), `Ok(Outcome::Snooze(..))` for "not now" (a rate limit), and `Err(..)`
//!   for the rest, which are retried with backoff until `max_attempts`.
//!
//! # Designing queues
//!
//! A queue is a concurrency limit and a unit of control (pause, scale, stop). Split work into
//! queues by what it needs, not by what it is:
//!
//! - **By latency target.** User-facing work (password resets, receipts) gets its own queue with
//!   enough slots that a burst of slow batch work never stands in front of it.
//! - **By failure profile.** Calls to a flaky or rate-limited provider go to their own queue
//!   with a limit below the provider's quota, so their retries and snoozes do not occupy slots
//!   other jobs need, and you can pause just that queue during an outage.
//! - **By resource.** Memory- or CPU-heavy jobs (exports, image processing) get a small limit
//!   on nodes sized for them (`.queue("media", 2)` on those nodes only).
//! - **Priorities** (0 highest to 9) order jobs within a queue; they do not reserve capacity.
//!   When work must never wait behind other work, use another queue.
//! - **Timeouts** (`timeout = 30`) turn a hung attempt into a failed one; set them on every
//!   worker that calls the network.
//!
//! Nodes share queues through the database: run the same queue on several nodes to scale it,
//! and watch `Oban::check_queue` for each node's limit, pause state and running jobs.
//!
//! A node needs the `State<T>` of the workers of the queues it runs, and only those: a web
//! server that only inserts starts with no state at all. During a rolling deploy, a node of the
//! old release that claims a job of a worker only the new release has defers it without
//! spending an attempt (scheduled again within a minute, counted in `meta.worker_deferrals`,
//! with an error entry naming the node), so the job waits for a node that knows its worker;
//! after about an hour of deferrals it fails as usual. See [`deferral`].
//!
//! A queue whose jobs finish faster than a fetch round trip (a millisecond or two) claims a few
//! jobs ahead of its free slots, up to its limit again, so the next fetch runs while jobs do.
//! Such a job is `executing` in the database from its claim, waits in memory about one round
//! trip for a slot, and goes back to `available` (attempt restored) if the queue pauses or the
//! node stops first. Jobs slower than a fetch are never claimed ahead: a slow queue holds no
//! jobs that another node could start sooner.
//!
//! # Beside Elixir and Python Oban
//!
//! Rust nodes can share `oban_jobs` with Elixir Oban and Python Oban nodes. What holds then:
//!
//! - **Notifications** go both ways. Rust nodes read plain JSON and both compressed forms
//!   (Elixir Oban 2.22+'s `"Z:"` + base64(gzip), and the base64(gzip) of Elixir 2.15 to 2.21
//!   and Python Oban), and send plain JSON up to 512 bytes and base64(gzip) above, which every
//!   one of them reads. Pauses, resumes, scales and job cancels from Elixir nodes or Oban Web
//!   reach Rust queues; a signal for one node (`"ident": "Oban.<node>"`) reaches only the Rust
//!   node of that name. A payload that cannot be decoded is logged and dropped.
//! - **Leadership.** Rust nodes elect one Rust leader among themselves (their own row in
//!   `oban_peers`, `"Oban.rust"`); there is never more than one. It runs this runtime's cron
//!   entries, the heartbeat lifeline and the reindexer whichever implementation leads. It also
//!   contends for Elixir Oban's row `"Oban"`, and stages and prunes only while it holds it, so
//!   between Rust and Elixir nodes each of those runs on one node per interval. Python Oban
//!   elects in its own `oban_leaders` table: its leader stages, prunes and rescues beside
//!   ours (harmless for staging and pruning).
//! - **Rescue.** Rust's heartbeat lifeline rescues only jobs of Rust producers; a job executing
//!   on an Elixir or Python node is never touched, however long it runs. Their lifelines are
//!   time-based instead: Python Oban's always runs and makes any job executing for more than
//!   its `rescue_after` (default 5 minutes) available again, Elixir Oban's `Lifeline` plugin,
//!   when configured, after its `rescue_after` (default 60 minutes). A Rust job running longer
//!   than that is rescued while it still runs and may run twice: keep such jobs' timeouts
//!   below those ages, or raise the ages.
//!
//! The details are in the docs of `oban_core`'s `maintenance/leader.rs`.
//!
//! # Traces
//!
//! Each attempt runs in a `tracing` span `oban.job` with `job.id`, `job.worker`, `job.queue`,
//! `job.attempt`, and records `job.queue_time_ms` as it starts, `job.outcome` and
//! `job.duration_ms` as it ends. With the `opentelemetry` feature and a `tracing-opentelemetry`
//! layer, the trace context at insert is kept in the job's meta (W3C `traceparent`, the keys
//! Elixir's `OpentelemetryOban` uses) and becomes the parent of that span on whichever node
//! runs the job, so a request and the jobs it enqueued are one trace. See [`trace_context`].
//!
//! # Testing
//!
//! [`testing`] has the helpers, and the way we recommend to test:
//!
//! - **The worker alone**: `testing::perform_job(SendReceipt { order_id: 42 })` (or
//!   `testing::Perform` to give state, an attempt number or meta) runs one attempt through the
//!   same JSON round trip and execution path as a queue, and returns its outcome.
//! - **What your code enqueued**: start a node with `.testing(Testing::Manual)` on a test
//!   database; it inserts but never runs jobs. Then
//!   `testing::assert_enqueued(&oban, Enqueued::worker::<SendReceipt>().args(json!({"order_id": 42})))`.
//!   A miss lists what was enqueued instead.
//! - **The whole flow**: `testing::drain_queue(&oban, Drain::queue("mailers").with_scheduled(true).with_recursion(true))`
//!   runs the queue's jobs in the test's task, retries included, and counts the outcomes.
//! - **No database at all**: `.testing(Testing::Inline)` runs each job as it is inserted through
//!   the node and returns it in its final state.
//!
//! `tests/email_receipts.rs` shows all of these on the flagship example.

pub use oban_core::*;
pub use oban_macros::worker;
