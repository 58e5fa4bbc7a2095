//! A database connection lost mid-run: the queue backs off and resumes, and the outcome of a
//! job that finished during the outage is recorded once the database is back.

mod common;

use std::net::ToSocketAddrs;
use std::time::Duration;

use common::wait;
use common::workers::Nap;
use oban::{JobBuilder, JobState, Oban};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[tokio::test]
async fn outcome_is_recorded_once_the_database_is_back() {
    let (direct, name) = common::empty_database().await;
    oban::migrate(&direct).await.unwrap();

    let options: PgConnectOptions = common::database_url().parse().unwrap();
    let upstream = format!("{}:{}", options.get_host(), options.get_port())
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let proxy = common::proxy::Proxy::start(upstream).await;
    let through_proxy = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(
            options
                .host("127.0.0.1")
                .port(proxy.addr.port())
                .database(&name),
        )
        .await
        .unwrap();

    let oban = Oban::builder()
        .pool(through_proxy)
        .queue("default", 5)
        .register::<Nap>()
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();

    let running = JobBuilder::new(Nap { ms: 800 })
        .insert(&direct)
        .await
        .unwrap();
    wait::wait_for_state(&direct, running.id, "executing").await;

    // The database goes away while the job runs, and stays away after it finished.
    proxy.cut();
    let during = JobBuilder::new(Nap { ms: 10 })
        .insert(&direct)
        .await
        .unwrap();
    // Not synchronisation: the outage lasts past the end of the running job (800 ms), through
    // the queue's backoff; meanwhile nothing can be recorded or fetched.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        common::fetch_job(&direct, running.id).await.state,
        JobState::Executing
    );
    assert_eq!(
        common::fetch_job(&direct, during.id).await.state,
        JobState::Available
    );

    proxy.restore();
    let finished =
        wait::wait_for_state_within(&direct, running.id, "completed", Duration::from_secs(30))
            .await;
    assert_eq!(finished.attempt, 1, "recorded once, not retried");
    let later =
        wait::wait_for_state_within(&direct, during.id, "completed", Duration::from_secs(30)).await;
    assert_eq!(later.attempt, 1);
    oban.shutdown(Duration::from_secs(2)).await;
}
