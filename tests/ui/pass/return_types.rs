//! Each accepted return type: `()`, `Outcome`, `Result<(), E>`, `Result<Outcome, E>`.
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

fn main() {
    let _ = (
        ReturnsUnit::new(1),
        ReturnsOutcome::new(1),
        ReturnsResultUnit::new(1),
        ReturnsResultOutcome::new(1),
        ReturnsJobError::new(1),
        ReturnsStringError::new(1),
    );
}
