//! Workers several test files share.

use std::time::Duration;

use oban::{JobContext, JobError, Outcome, Worker};
use serde::{Deserialize, Serialize};

/// Sleeps for `ms`, then completes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Nap {
    pub ms: u64,
}

impl Worker for Nap {
    const NAME: &'static str = "Test.Nap";

    async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
        // The job's work: a job that takes time.
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        Ok(Outcome::Complete)
    }
}
