//! The Oban for Rust dashboard.
