//! The expansion names everything by absolute paths: shadowing the prelude, `std`, `core` and
//! serde's names in the caller's module changes nothing.
#![deny(warnings, clippy::pedantic)]
#![allow(dead_code, unused_macros, non_camel_case_types, clippy::all)]

mod std {}
mod core {}
mod serde {}
mod inventory {}
mod oban_core {}

struct Result;
struct Ok;
struct Err;
struct Option;
struct Some;
struct None;
struct Vec;
struct Box;
struct String;
struct Duration;
struct JobContext;
struct JobBuilder;
struct WorkerOptions;
struct Outcome;
struct JobError;
struct StateKey;
trait Send {}
trait Sync {}
trait Sized {}
trait Clone {}
trait Future {}
trait Default {}
trait Serialize {}
trait Deserialize {}
trait Worker {}
trait IntoJobResult {}
macro_rules! vec {
    () => {};
}
macro_rules! unreachable {
    () => {};
}

/// Shared configuration.
struct Config;

#[oban::worker(
    queue = "shadowed",
    timeout = "1m30s",
    tags = ["a"],
    backoff = exponential(base = 1, max = 60),
    unique(period = infinity, fields = [args, worker], keys = [ctx])
)]
async fn shadowed(
    ctx: i64,
    self_: ::std::string::String,
    __oban_ctx: ::std::vec::Vec<u8>,
    job: &oban::Job,
    config: oban::State<Config>,
) -> ::core::result::Result<oban::Outcome, ::std::string::String> {
    let _ = (ctx, self_, __oban_ctx, job.id, &*config);
    ::core::result::Result::Ok(oban::Outcome::Complete)
}

fn main() {
    let _job = Shadowed::new(1, ::std::string::String::new(), ::std::vec::Vec::new());
}
