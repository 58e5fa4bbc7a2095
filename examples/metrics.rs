//! A node serving its metrics to Prometheus while it runs a mix of jobs that succeed, fail and
//! snooze.
//!
//! ```text
//! cargo run --example metrics --features prometheus                 # until Ctrl-C
//! cargo run --example metrics --features prometheus -- --seconds 30
//! curl -s http://127.0.0.1:9568/metrics | grep '^oban_'
//! ```
//!
//! It uses the embedded SQLite file unless `DATABASE_URL` is set. `--addr HOST:PORT` serves
//! somewhere else than `127.0.0.1:9568`.

use std::time::Duration;

use oban::{worker, Job, Oban, Outcome};

/// Renders a thumbnail: quick, and nearly always fine.
#[worker(queue = "media", max_attempts = 5)]
async fn render_thumbnail(image_id: i64) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(5 + (image_id % 40) as u64)).await;
    if image_id % 25 == 0 {
        return Err(format!("image {image_id}: decoder ran out of memory"));
    }
    Ok(())
}

/// Calls a flaky partner API: fails a third of the time, and is rate limited now and then.
#[worker(queue = "partners", max_attempts = 3)]
async fn sync_partner(account_id: i64, job: &Job) -> Result<Outcome, String> {
    tokio::time::sleep(Duration::from_millis(20 + (account_id % 80) as u64)).await;
    match (account_id + i64::from(job.attempt)) % 6 {
        0 => Ok(Outcome::Snooze(Duration::from_secs(2))),
        1 | 2 => Err(format!("partner API for account {account_id}: 503")),
        _ => Ok(Outcome::Complete),
    }
}

struct Options {
    addr: String,
    seconds: Option<u64>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        addr: "127.0.0.1:9568".to_owned(),
        seconds: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => options.addr = value("--addr")?,
            "--seconds" => {
                let seconds = value("--seconds")?;
                options.seconds = Some(
                    seconds
                        .parse()
                        .map_err(|_| format!("--seconds takes a whole number, not `{seconds}`"))?,
                );
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}`; use --addr HOST:PORT or --seconds N"
                ))
            }
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "oban=error".into()))
        .init();
    let options = options()?;

    let oban = Oban::builder()
        .queue("media", 10)
        .queue("partners", 4)
        .metrics_interval(Duration::from_secs(5))
        .prometheus(&options.addr)
        .start()
        .await?;
    let addr = oban.prometheus_addr().expect("serving metrics");
    println!("serving metrics at http://{addr}/metrics; Ctrl-C stops");

    // A steady trickle of work, some of it scheduled a little ahead.
    let producer = {
        let oban = oban.clone();
        tokio::spawn(async move {
            let mut next = 1_i64;
            loop {
                let mut jobs = Vec::new();
                for id in next..next + 20 {
                    jobs.push(RenderThumbnail::new(id).build()?);
                }
                for id in next..next + 5 {
                    let ahead = Duration::from_secs((id % 3) as u64);
                    jobs.push(SyncPartner::new(id).schedule_in(ahead).build()?);
                }
                oban.insert_all(jobs).await?;
                next += 20;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            #[allow(unreachable_code)]
            Ok::<(), oban::Error>(())
        })
    };

    match options.seconds {
        Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
        None => tokio::signal::ctrl_c().await?,
    }
    producer.abort();
    oban.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
