//! # Oban for Rust
//!
//! Durable, PostgreSQL-backed background jobs where a worker is an `async fn` with an attribute
//! on it. Jobs are rows in Oban's own `oban_jobs` table, so Elixir and Python Oban nodes can share
//! the database.
//!
//! See the README for a tour; the runtime's pieces are documented in [`oban_core`] and
//! re-exported here, with the [`worker`] attribute.

pub use oban_core::*;
pub use oban_macros::worker;
