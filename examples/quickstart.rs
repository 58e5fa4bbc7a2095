//! The smallest complete Oban program: one worker, one job, run, stop.
//!
//! ```text
//! cargo run --example quickstart                      # embedded SQLite file, no server
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example quickstart
//! ```

use std::time::Duration;

use oban::{worker, Job, JobState, Oban};

/// Greets someone. `name` is stored in the job's args as `{"name": "..."}`.
#[worker(queue = "default", max_attempts = 3)]
async fn greet(name: String, job: &Job) -> Result<(), std::io::Error> {
    println!("Hello, {name}! (job {}, attempt {})", job.id, job.attempt);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every #[worker] in the binary is found on its own; the database comes from DATABASE_URL.
    let oban = Oban::builder().queue("default", 10).start().await?;

    let job = Greet::new("world".into()).insert(&oban).await?;
    println!("inserted job {} into queue `{}`", job.id, job.queue);

    // Wait until the queue has run it, then stop gracefully.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let state = oban.job(job.id).await?.map(|job| job.state);
        if state == Some(JobState::Completed) {
            println!("job {} completed", job.id);
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("job {} did not complete in time: {state:?}", job.id).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    oban.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
