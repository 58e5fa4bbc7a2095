//! Engine implementations, one per database.

pub mod inline;
pub mod pool;
pub mod postgres;
pub mod sqlite;
