//! The cron scheduler: each minute once, across schedulers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use oban::cron::{CronEntry, CronScheduler};
use oban::{JobFilter, NewJob};
use serde_json::json;

use crate::harness::{Db, Kind};

pub(crate) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub(crate) async fn cron_scheduler_inserts_each_minute_once(kind: Kind) {
    let db = Db::new(kind).await;
    let other = db.another_engine().await;
    let entries =
        || vec![CronEntry::new("* * * * *", NewJob::new("Cron.Tick", json!({}))).unwrap()];
    let catch_up = Duration::from_secs(180);
    let mut first = CronScheduler::new(entries(), catch_up);
    assert_eq!(
        first
            .run_at(&*db.engine, at("2026-06-01T12:00:00.050Z"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        first
            .run_at(&*db.engine, at("2026-06-01T12:01:00.050Z"))
            .await
            .unwrap(),
        1
    );
    let mut second = CronScheduler::new(entries(), catch_up);
    assert_eq!(
        second
            .run_at(&*other, at("2026-06-01T12:03:10Z"))
            .await
            .unwrap(),
        2,
        "12:02 and 12:03 only"
    );
    assert_eq!(
        first
            .run_at(&*db.engine, at("2026-06-01T12:04:00.050Z"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        second
            .run_at(&*other, at("2026-06-01T12:04:00.080Z"))
            .await
            .unwrap(),
        0
    );
    let mut minutes: Vec<String> = db
        .jobs(JobFilter::new().worker("Cron.Tick"))
        .await
        .iter()
        .map(|j| j.meta["cron_at"].as_str().unwrap().to_owned())
        .collect();
    minutes.sort();
    let expected: Vec<String> = (58..60)
        .map(|m| format!("2026-06-01T11:{m}:00+00:00"))
        .chain((0..5).map(|m| format!("2026-06-01T12:0{m}:00+00:00")))
        .collect();
    assert_eq!(minutes, expected, "every minute exactly once");

    let boot = CronEntry::new("@reboot", NewJob::new("Cron.Boot", json!({}))).unwrap();
    let mut scheduler = CronScheduler::new(vec![boot], Duration::from_secs(60));
    assert_eq!(
        scheduler
            .run_at(&*db.engine, at("2026-06-01T12:00:00Z"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        scheduler
            .run_at(&*db.engine, at("2026-06-01T12:01:00Z"))
            .await
            .unwrap(),
        0
    );
}
