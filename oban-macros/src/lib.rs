//! The `#[worker]` attribute of Oban for Rust.
//!
//! Use it through the `oban` crate, as `oban::worker`; this crate holds only the macro, documented
//! on [`macro@worker`]. The source is split the way the macro works: `attr/` parses and checks
//! the options (one file per family of options), `ast.rs` models the fn, `valid.rs` checks the
//! two against each other, and `expand.rs` writes the code. Every mistake is collected in a
//! context (`ctxt.rs`) and reported at once, each on its own token. Cron expressions are checked
//! with the grammar the runtime reads them with, from the `oban-cron` crate.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod valid;

use proc_macro::TokenStream;

/// Turns an `async fn` into an Oban worker: the fn stays as it is, and beside it you get a struct
/// of its arguments that is the job's args, a `new(..)` to enqueue a job, the `oban::Worker` impl
/// that runs the fn, and a registration that lets every `Oban` node of the binary find the worker
/// without listing it.
///
/// # Example
///
/// ```no_run
/// use std::fmt;
/// use std::time::Duration;
///
/// use oban::{worker, Job, Oban, Outcome, State};
///
/// pub struct Mailer;
///
/// impl Mailer {
///     async fn send(&self, order_id: i64, to: &str) -> Result<(), MailError> {
///         # let _ = (order_id, to);
///         Ok(())
///     }
/// }
///
/// #[derive(Debug)]
/// pub enum MailError {
///     InvalidAddress,
///     RateLimited(u64),
///     Smtp(String),
/// }
///
/// impl fmt::Display for MailError {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         write!(f, "{self:?}")
///     }
/// }
///
/// impl std::error::Error for MailError {}
///
/// /// Sends the receipt of an order.
/// #[worker(queue = "mailers", max_attempts = 10, unique(period = 300, keys = [order_id]))]
/// pub async fn send_receipt(
///     order_id: i64,     // stored in the job's args: {"order_id": 42, "recipient": "..."}
///     recipient: String, // stored too
///     job: &Job,         // injected: the running job
///     mailer: State<Mailer>, // injected: registered with `.state(..)`
/// ) -> Result<Outcome, MailError> {
///     if job.attempt > 1 {
///         println!("attempt {} at sending receipt {order_id}", job.attempt);
///     }
///     match mailer.send(order_id, &recipient).await {
///         Ok(()) => Ok(Outcome::Complete),
///         Err(MailError::InvalidAddress) => Ok(Outcome::Discard("invalid address".into())),
///         Err(MailError::RateLimited(secs)) => Ok(Outcome::Snooze(Duration::from_secs(secs))),
///         Err(e) => Err(e), // retried with backoff, at most 10 attempts in all
///     }
/// }
///
/// # async fn run() -> oban::Result<()> {
/// // A node: every `#[worker]` of the binary is found without being listed.
/// let oban = Oban::builder()
///     .database("postgres://localhost/shop")
///     .queue("mailers", 10)
///     .state(Mailer)
///     .start()
///     .await?;
///
/// // Enqueue: the arguments in parameter order, per-job options on the builder.
/// SendReceipt::new(42, "ada@example.com".into())
///     .schedule_in(Duration::from_secs(60))
///     .insert(&oban)
///     .await?;
/// # Ok(()) }
/// ```
///
/// # What it expands to
///
/// For the worker above, beside the fn itself (unchanged, with
/// `#[allow(clippy::unused_async, clippy::needless_pass_by_value)]` added, since the macro is
/// what asks for an `async fn` with owned arguments):
///
/// ```ignore
/// /// Sends the receipt of an order.
/// #[derive(Serialize, Deserialize)]
/// #[serde(crate = "::oban::__private::serde")]
/// pub struct SendReceipt {
///     /// The `order_id` argument of `send_receipt`.
///     pub order_id: i64,
///     /// The `recipient` argument of `send_receipt`.
///     pub recipient: String,
/// }
///
/// const _: () = {
///     impl SendReceipt {
///         /// A `send_receipt` job with these arguments: set per-job options on the builder,
///         /// then `.insert(..)` it.
///         pub fn new(order_id: i64, recipient: String) -> ::oban::JobBuilder<Self> {
///             ::oban::JobBuilder::new(Self { order_id, recipient })
///         }
///     }
///
///     impl ::oban::Worker for SendReceipt {
///         const NAME: &'static str = "SendReceipt";
///
///         fn options() -> ::oban::WorkerOptions {
///             ::oban::WorkerOptions::new()
///                 .queue("mailers")
///                 .max_attempts(10)
///                 .unique(::oban::UniqueOptions::new().period(300).keys(&["order_id"]))
///         }
///
///         fn required_state() -> Vec<::oban::StateKey> {
///             vec![::oban::StateKey::of::<Mailer>()]
///         }
///
///         fn perform(self, ctx: ::oban::JobContext)
///             -> impl Future<Output = Result<::oban::Outcome, ::oban::JobError>> + Send
///         {
///             async move {
///                 let Self { order_id, recipient } = self;
///                 let output = send_receipt(order_id, recipient, ctx.job(), ctx.state::<Mailer>()).await;
///                 ::oban::IntoJobResult::into_job_result(output)
///             }
///         }
///     }
///
///     ::inventory::submit! { ::oban::WorkerRegistration::of::<SendReceipt>() }
/// };
/// ```
///
/// (The real expansion spells every path in full, `::core::result::Result` and so on, and adds
/// `#[allow(..)]`s and compile-time checks that put type errors on your argument types.)
///
/// # Parameters
///
/// A parameter is injected when its type is `&Job` or `Job` (the running job: id, attempt,
/// errors of earlier attempts, meta) or `State<T>` (a value registered on the builder with
/// `.state(value)`; `Oban::start` fails when one is missing, so a worker never runs without it).
/// Every other parameter is stored: a field of the args struct with the parameter's name, which
/// is the key in the job's JSON args, as an Elixir or Python Oban client writes it. Stored types
/// must be owned and implement `Serialize` and `DeserializeOwned`. When decoding, an `Option`
/// argument whose key is missing is `None`, and keys the fn does not know are ignored; args that
/// do not decode discard the job (retrying cannot fix them).
///
/// # Return type
///
/// `()`, `Outcome`, `Result<(), E>` or `Result<Outcome, E>` where `E` is an error
/// (`std::error::Error + Send + Sync`, `anyhow::Error`, `Box<dyn Error + Send + Sync>`,
/// `JobError`) or a `String` / `&str`. `Ok` / `()` completes the job; an `Err` is a failed
/// attempt, retried with backoff until `max_attempts`, and recorded in the job's `errors` with
/// its whole source chain (`"top: cause: root"`).
///
/// # Options
///
/// All optional, all checked at compile time:
///
/// | option | example | meaning |
/// | --- | --- | --- |
/// | `queue` | `queue = "mailers"` | queue of the jobs; `[a-z0-9_]`, default `"default"` |
/// | `max_attempts` | `max_attempts = 10` | attempts before the job is discarded, at least 1; default 20 |
/// | `priority` | `priority = 1` | 0 (highest, the default) to 9 |
/// | `timeout` | `timeout = 30`, `timeout = "500ms"` | time limit of one attempt: seconds, or a string with units `ms`, `s`, `m`, `h`, `d` |
/// | `tags` | `tags = ["billing", "email"]` | tags stored with every job |
/// | `name` | `name = "MyApp.Workers.SendReceipt"` | stored worker name (default: the struct's name); keep it stable |
/// | `args` | `args = ReceiptArgs` | name of the args struct (default: the fn's name in PascalCase) |
/// | `derive` | `derive(Debug, Clone, PartialEq)` | more derives for the args struct (it always derives `Serialize` and `Deserialize`) |
/// | `backoff` | `backoff = exponential(base = 1, max = 3600)` | `default` (Oban's), `constant(SECS)`, `linear(SECS)`, `exponential(base = SECS, max = SECS)`, or the path of your own `fn(&Job) -> Duration` |
/// | `unique` | `unique(period = 300, keys = [order_id])` | which jobs are duplicates: `period = SECS \| infinity`, `keys = [argument, ..]`, `fields = [args, queue, worker, meta]`, `states = successful \| incomplete \| scheduled \| all`, `timestamp = inserted_at \| scheduled_at`; plain `unique` takes Oban's defaults |
/// | `cron` | `cron = "0 * * * *"`, `cron = ["0 9 * * MON-FRI", "@daily"]` | insert a job with empty args on this schedule (five fields with ranges, steps, lists and names, or `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`, `@reboot`); only for fns without stored arguments; the leader inserts each due minute once across the cluster |
/// | `timezone` | `timezone = "Europe/Paris"` | IANA time zone the `cron` expressions are read in (default UTC) |
/// | `record_limit` | `record_limit = 256_000` | for a fn returning `Result<T, E>` with a value to record: the longest encoded result kept, in characters (default 32,000); a longer one fails the attempt |
#[proc_macro_attribute]
pub fn worker(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::worker(args.into(), input.into()).into()
}
