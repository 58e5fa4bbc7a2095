//! Engine implementations, one per database.

pub mod inline;
pub mod postgres;
pub mod sqlite;
