//! Each accepted return type: `()`, `Outcome`, `Result<(), E>`, `Result<Outcome, E>`,
//! `Result<T, E>` recording a serializable `T`, with `E` an error, `JobError`, `String`, `&str` or
//! a boxed error.
#![deny(warnings, clippy::pedantic)]

use std::fmt;

use oban::{worker, JobError, Outcome};

#[derive(Debug)]
struct Failure;

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failure")
    }
}

impl std::error::Error for Failure {}

#[worker]
async fn returns_unit(n: i64) {
    let _ = n;
}

#[worker]
async fn returns_outcome(n: i64) -> Outcome {
    if n > 0 {
        Outcome::Complete
    } else {
        Outcome::Cancel("negative".into())
    }
}

#[worker]
async fn returns_result_unit(n: i64) -> Result<(), Failure> {
    if n > 0 {
        Ok(())
    } else {
        Err(Failure)
    }
}

#[worker]
async fn returns_result_outcome(n: i64) -> Result<Outcome, Failure> {
    if n > 0 {
        Ok(Outcome::Complete)
    } else {
        Err(Failure)
    }
}

#[worker]
async fn returns_job_error(n: i64) -> Result<(), JobError> {
    if n > 0 {
        Ok(())
    } else {
        Err(JobError::new("negative"))
    }
}

#[worker]
async fn returns_string_error(n: i64) -> Result<Outcome, String> {
    if n > 0 {
        Ok(Outcome::Complete)
    } else {
        Err(format!("{n} is negative"))
    }
}

#[worker]
async fn returns_str_error(n: i64) -> Result<(), &'static str> {
    if n > 0 {
        Ok(())
    } else {
        Err("negative")
    }
}

#[worker]
async fn returns_boxed_error(n: i64) -> Result<Outcome, Box<dyn std::error::Error + Send + Sync>> {
    if n > 0 {
        Ok(Outcome::Complete)
    } else {
        Err(Box::new(Failure))
    }
}

fn main() {
    let _ = (
        ReturnsUnit::new(1),
        ReturnsOutcome::new(1),
        ReturnsResultUnit::new(1),
        ReturnsResultOutcome::new(1),
        ReturnsJobError::new(1),
        ReturnsStringError::new(1),
        ReturnsStrError::new(1),
        ReturnsBoxedError::new(1),
    );
}

/// A value to record.
#[derive(serde::Serialize)]
struct Totals {
    rows: u64,
}

#[worker]
async fn returns_a_value_to_record(n: u64) -> Result<Totals, Failure> {
    Ok(Totals { rows: n })
}

#[worker]
async fn returns_a_plain_value_to_record(n: i64) -> Result<Vec<String>, String> {
    Ok(vec![n.to_string()])
}
