//! Engine implementations, one per database.

pub mod postgres;
