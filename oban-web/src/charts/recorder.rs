//! The recorder: a node's job stops of the last hour, kept in memory in minute buckets.
//!
//! Completed jobs are pruned and no index serves "completed in the last hour" on a table of
//! millions of rows, so the charts never read the job table: a node's recorder counts the
//! [`JobStop`] events it emits instead. Each node sees only its own jobs; a dashboard mounted
//! without a node has no recorder and shows no charts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeZone, Utc};
use oban_core::events::JobStop;
use oban_core::{Event, JobOutcome, Oban};
use tokio::sync::broadcast::error::RecvError;

use super::histogram::{self, HourHistogram, MinuteHistogram};
use super::snapshot::{Minute, QueueTimes, Snapshot};

/// Minutes a snapshot shows before the current one.
const WINDOW: i64 = 60;

/// Keeps a node's job stops of the last hour in memory for the dashboard's charts: per minute,
/// the attempts completed, failed and cancelled, and per queue a histogram of queue times and
/// one of execution times.
///
/// Memory is bounded whatever the throughput: one bucket per minute, kept 61 minutes, holding
/// for each queue that had jobs that minute two histograms of a fixed size (about 2 KiB each,
/// see [`Percentiles`](super::Percentiles) for their precision). At most
/// [`MAX_QUEUES`](Self::MAX_QUEUES) queues are told apart over the hour; jobs of further queues
/// are counted together as [`OTHER`](Self::OTHER), so a producer inventing queue names cannot
/// grow it. At worst (every one of those queues busy every minute) that is about 30 MB; a node
/// with ten busy queues holds under 3 MB.
///
/// An event counts in the minute it is recorded, by this machine's clock, not by the job's
/// timestamps, so jobs of a skewed clock or events read late still land in the hour shown. If
/// the clock steps back by more than a minute, the buckets ahead of it are dropped.
///
/// Cheap to clone: clones share the buckets.
///
/// ```no_run
/// # async fn example() -> oban_core::Result<()> {
/// use oban_core::Oban;
/// use oban_web::{latency_table, throughput_chart, Recorder};
///
/// let oban = Oban::builder().queue("default", 10).start().await?;
/// let recorder = Recorder::attach(&oban);
/// // ... later, in a handler:
/// let snapshot = recorder.snapshot();
/// let page = maud::html! {
///     (throughput_chart(&snapshot))
///     (latency_table(&snapshot))
/// };
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    node: Option<String>,
    state: Mutex<State>,
}

/// The buckets, by minute (minutes since the Unix epoch).
#[derive(Default)]
struct State {
    minutes: BTreeMap<i64, Bucket>,
    /// Every queue name held in some bucket, [`Recorder::OTHER`] included, with the number of
    /// buckets that hold it: a queue is tracked while one of its minutes is kept.
    queues: HashMap<String, usize>,
}

/// One minute.
#[derive(Default)]
struct Bucket {
    completed: u64,
    failed: u64,
    cancelled: u64,
    missed: u64,
    queues: HashMap<String, QueueBucket>,
}

/// One queue's times in one minute.
struct QueueBucket {
    queue_time: MinuteHistogram,
    duration: MinuteHistogram,
}

impl Recorder {
    /// Queues told apart over the hour. Jobs of any other queue count as [`OTHER`](Self::OTHER)
    /// until a tracked queue has had no job for an hour.
    pub const MAX_QUEUES: usize = 100;

    /// The name under which queues beyond [`MAX_QUEUES`](Self::MAX_QUEUES) are counted.
    pub const OTHER: &'static str = "(other)";

    /// An empty recorder that holds only what [`record`](Self::record) is given; its snapshots
    /// name no node.
    ///
    /// ```
    /// use std::time::Duration;
    /// use oban_core::{JobInfo, JobOutcome, JobStop};
    /// use oban_web::Recorder;
    ///
    /// let recorder = Recorder::new();
    /// recorder.record(&JobStop {
    ///     job: JobInfo { id: 1, worker: "Mailer".into(), queue: "mailers".into(), attempt: 1, max_attempts: 20 },
    ///     outcome: JobOutcome::Completed,
    ///     duration: Duration::from_millis(120),
    ///     queue_time: Duration::from_millis(4),
    ///     error: None,
    /// });
    /// let snapshot = recorder.snapshot();
    /// assert_eq!(snapshot.minutes.last().unwrap().completed, 1);
    /// assert_eq!(snapshot.queues[0].queue, "mailers");
    /// ```
    pub fn new() -> Recorder {
        Recorder::named(None)
    }

    /// A recorder of `oban`'s job stops from now on: it spawns a task that reads
    /// [`Oban::events`] until the node's event channel closes, or until every clone of the
    /// recorder is dropped (noticed at the next event). When the task falls more than
    /// [`oban_core::events::BUFFER`] events behind, it counts the events it missed (see
    /// [`Snapshot::missed`](super::Snapshot::missed)) and goes on.
    ///
    /// Call it from within a Tokio runtime (it spawns on the current one).
    pub fn attach(oban: &Oban) -> Recorder {
        let recorder = Recorder::named(Some(oban.node().to_owned()));
        let mut events = oban.events();
        let weak = Arc::downgrade(&recorder.inner);
        tokio::spawn(async move {
            loop {
                let event = events.recv().await;
                let Some(inner) = weak.upgrade() else { break };
                match event {
                    Ok(Event::JobStop(stop)) => inner.lock().record(&stop, Utc::now()),
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "the charts' recorder fell behind the events");
                        inner.lock().miss(missed, Utc::now());
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        recorder
    }

    fn named(node: Option<String>) -> Recorder {
        Recorder {
            inner: Arc::new(Inner {
                node,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Counts one attempt's end in the current minute (by this machine's clock): completed,
    /// failed (retryable or discarded) or cancelled, and its queue and execution times under
    /// its queue. A snoozed attempt counts only its times; a deferred one (its worker never ran
    /// here) is ignored.
    pub fn record(&self, stop: &JobStop) {
        self.inner.lock().record(stop, Utc::now());
    }

    /// The last 60 whole minutes and the current one, now.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_at(Utc::now())
    }

    /// The 60 whole minutes before the one holding `now`, and that one; buckets outside them
    /// are not shown (older ones are dropped at the next [`record`](Self::record)).
    pub fn snapshot_at(&self, now: DateTime<Utc>) -> Snapshot {
        let mut snapshot = self.inner.lock().snapshot(minute_of(now));
        snapshot.node.clone_from(&self.inner.node);
        snapshot
    }

    #[cfg(test)]
    fn record_at(&self, stop: &JobStop, now: DateTime<Utc>) {
        self.inner.lock().record(stop, now);
    }

    #[cfg(test)]
    fn miss_at(&self, missed: u64, now: DateTime<Utc>) {
        self.inner.lock().miss(missed, now);
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("Recorder")
            .field("node", &self.inner.node)
            .field("minutes", &state.minutes.len())
            .field("queues", &state.queues.len())
            .finish()
    }
}

impl Inner {
    /// The state; a panic elsewhere while it was held leaves counts that are still valid.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn record(&mut self, stop: &JobStop, now: DateTime<Utc>) {
        if stop.outcome == JobOutcome::Deferred {
            return;
        }
        let minute = minute_of(now);
        self.prune(minute);
        let queue = self.track(minute, &stop.job.queue);
        let bucket = self.minutes.entry(minute).or_default();
        match stop.outcome {
            JobOutcome::Completed => bucket.completed += 1,
            JobOutcome::Retryable | JobOutcome::Discarded => bucket.failed += 1,
            JobOutcome::Cancelled => bucket.cancelled += 1,
            _ => {}
        }
        let times = bucket.queues.entry(queue).or_insert_with(|| QueueBucket {
            queue_time: histogram::minute(),
            duration: histogram::minute(),
        });
        histogram::record(&mut times.queue_time, stop.queue_time);
        histogram::record(&mut times.duration, stop.duration);
    }

    fn miss(&mut self, missed: u64, now: DateTime<Utc>) {
        let minute = minute_of(now);
        self.prune(minute);
        let bucket = self.minutes.entry(minute).or_default();
        bucket.missed = bucket.missed.saturating_add(missed);
    }

    /// The name `queue`'s times go under in `minute`: its own while it is tracked or there is
    /// room to track it, else [`Recorder::OTHER`]. Counts the name's new bucket, if it is one.
    fn track(&mut self, minute: i64, queue: &str) -> String {
        let held = |name: &str| {
            self.minutes
                .get(&minute)
                .is_some_and(|bucket| bucket.queues.contains_key(name))
        };
        let tracked = self.queues.len() - usize::from(self.queues.contains_key(Recorder::OTHER));
        let name = if self.queues.contains_key(queue) || tracked < Recorder::MAX_QUEUES {
            queue
        } else {
            Recorder::OTHER
        };
        if !held(name) {
            *self.queues.entry(name.to_owned()).or_default() += 1;
        }
        name.to_owned()
    }

    /// Drops the buckets before the window ending at `minute`, and those more than a minute
    /// after it (left by a clock that stepped back further than a small correction), forgetting
    /// the queues no bucket holds any more. At most 62 buckets remain.
    fn prune(&mut self, minute: i64) {
        let first = minute - WINDOW;
        let last = minute + 1;
        let stale = self
            .minutes
            .first_key_value()
            .is_some_and(|(&m, _)| m < first);
        let ahead = self
            .minutes
            .last_key_value()
            .is_some_and(|(&m, _)| m > last);
        if !stale && !ahead {
            return;
        }
        let mut kept = self.minutes.split_off(&first);
        let after = kept.split_off(&(last + 1));
        let before = std::mem::replace(&mut self.minutes, kept);
        for bucket in before.into_values().chain(after.into_values()) {
            for name in bucket.queues.keys() {
                if let Some(count) = self.queues.get_mut(name) {
                    *count -= 1;
                    if *count == 0 {
                        self.queues.remove(name);
                    }
                }
            }
        }
    }

    fn snapshot(&self, minute: i64) -> Snapshot {
        let range = minute - WINDOW..=minute;
        let minutes = range
            .clone()
            .map(|m| {
                let bucket = self.minutes.get(&m);
                Minute {
                    start: start_of(m),
                    completed: bucket.map_or(0, |b| b.completed),
                    failed: bucket.map_or(0, |b| b.failed),
                    cancelled: bucket.map_or(0, |b| b.cancelled),
                }
            })
            .collect();
        let mut missed = 0u64;
        let mut hours: BTreeMap<&str, (HourHistogram, HourHistogram)> = BTreeMap::new();
        for bucket in self.minutes.range(range).map(|(_, bucket)| bucket) {
            missed = missed.saturating_add(bucket.missed);
            for (name, times) in &bucket.queues {
                let (queue_time, duration) = hours
                    .entry(name)
                    .or_insert_with(|| (histogram::hour(), histogram::hour()));
                histogram::merge(queue_time, &times.queue_time);
                histogram::merge(duration, &times.duration);
            }
        }
        let other = hours.remove(Recorder::OTHER);
        let queues = hours
            .into_iter()
            .chain(other.map(|hours| (Recorder::OTHER, hours)))
            .map(|(name, (queue_time, duration))| QueueTimes {
                queue: name.to_owned(),
                jobs: duration.len(),
                queue_time: histogram::percentiles(&queue_time),
                duration: histogram::percentiles(&duration),
            })
            .collect();
        Snapshot {
            node: None,
            minutes,
            queues,
            missed,
        }
    }
}

/// The minute (since the Unix epoch) holding `at`.
fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

/// The first instant of `minute`.
fn start_of(minute: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(minute * 60, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeDelta;
    use oban_core::JobInfo;

    use super::*;
    use crate::charts::histogram::PRECISION;

    fn stop(queue: &str, outcome: JobOutcome, duration_ms: u64, queue_ms: u64) -> JobStop {
        JobStop {
            job: JobInfo {
                id: 1,
                worker: "Charts.Worker".to_owned(),
                queue: queue.to_owned(),
                attempt: 1,
                max_attempts: 20,
            },
            outcome,
            duration: Duration::from_millis(duration_ms),
            queue_time: Duration::from_millis(queue_ms),
            error: None,
        }
    }

    /// 12:00:30 UTC on a fixed day.
    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 4, 12, 0, 30).unwrap()
    }

    fn minutes(n: i64) -> TimeDelta {
        TimeDelta::minutes(n)
    }

    #[test]
    fn counts_each_outcome_in_its_minute() {
        let recorder = Recorder::new();
        let now = noon();
        recorder.record_at(
            &stop("default", JobOutcome::Completed, 10, 1),
            now - minutes(5),
        );
        for outcome in [
            JobOutcome::Completed,
            JobOutcome::Completed,
            JobOutcome::Retryable,
            JobOutcome::Discarded,
            JobOutcome::Cancelled,
            JobOutcome::Snoozed,
            JobOutcome::Deferred,
        ] {
            recorder.record_at(&stop("default", outcome, 10, 1), now);
        }

        let snapshot = recorder.snapshot_at(now);
        assert_eq!(snapshot.node, None);
        assert_eq!(snapshot.minutes.len(), 61);
        let last = snapshot.minutes.last().unwrap();
        assert_eq!(
            last.start,
            Utc.with_ymd_and_hms(2026, 5, 4, 12, 0, 0).unwrap()
        );
        assert_eq!((last.completed, last.failed, last.cancelled), (2, 2, 1));
        let earlier = &snapshot.minutes[55];
        assert_eq!(earlier.start, last.start - minutes(5));
        assert_eq!(
            (earlier.completed, earlier.failed, earlier.cancelled),
            (1, 0, 0)
        );
        assert_eq!(snapshot.minutes[0].start, last.start - minutes(60));
        let others: u64 = snapshot.minutes.iter().map(Minute::total).sum();
        assert_eq!(others, 6);
        // Every outcome but the deferral ran the worker: seven attempts in the hour.
        assert_eq!(snapshot.queues.len(), 1);
        assert_eq!(snapshot.queues[0].jobs, 7);
    }

    #[test]
    fn minutes_older_than_the_hour_are_dropped() {
        let recorder = Recorder::new();
        let start = noon();
        recorder.record_at(&stop("old", JobOutcome::Completed, 10, 1), start);
        recorder.record_at(
            &stop("new", JobOutcome::Retryable, 10, 1),
            start + minutes(30),
        );

        // Sixty minutes later the first minute is the oldest one shown.
        let at_60 = recorder.snapshot_at(start + minutes(60));
        assert_eq!(at_60.minutes[0].completed, 1);
        assert_eq!(at_60.queues.len(), 2);

        // One more and it is gone from the snapshot, and from memory at the next record.
        let at_61 = recorder.snapshot_at(start + minutes(61));
        assert_eq!(at_61.minutes.iter().map(|m| m.completed).sum::<u64>(), 0);
        assert_eq!(at_61.queues.len(), 1);
        assert_eq!(at_61.queues[0].queue, "new");
        recorder.record_at(
            &stop("new", JobOutcome::Completed, 10, 1),
            start + minutes(61),
        );
        {
            let state = recorder.inner.lock();
            assert_eq!(state.minutes.len(), 2);
            assert!(!state.queues.contains_key("old"));
        }

        // After two quiet hours nothing is left.
        recorder.record_at(
            &stop("late", JobOutcome::Completed, 10, 1),
            start + minutes(200),
        );
        let state = recorder.inner.lock();
        assert_eq!(state.minutes.len(), 1);
        assert_eq!(state.queues.len(), 1);
    }

    #[test]
    fn a_clock_that_steps_back_keeps_the_next_minute_only() {
        let recorder = Recorder::new();
        let record = |at| recorder.record_at(&stop("q", JobOutcome::Completed, 10, 1), at);
        // A correction of a few seconds across a minute boundary: the next minute stays, and
        // shows once the clock reaches it.
        record(noon() + minutes(1));
        record(noon());
        assert_eq!(recorder.snapshot_at(noon()).minutes[60].completed, 1);
        assert_eq!(
            recorder.snapshot_at(noon() + minutes(1)).minutes[60].completed,
            1
        );
        assert_eq!(recorder.inner.lock().minutes.len(), 2);
        // A step back by ten minutes drops what lies ahead.
        record(noon() + minutes(11));
        record(noon() + minutes(1));
        let snapshot = recorder.snapshot_at(noon() + minutes(1));
        assert_eq!(snapshot.minutes.iter().map(|m| m.completed).sum::<u64>(), 3);
        assert_eq!(recorder.inner.lock().minutes.len(), 2);
    }

    #[test]
    fn percentiles_per_queue_over_the_hour() {
        let recorder = Recorder::new();
        let now = noon();
        // Queue "a": execution 1..=100 ms, spread over the hour; queue time 5 ms.
        for ms in 1..=100u64 {
            let at = now - minutes(60) + minutes(i64::try_from(ms * 60 / 100).unwrap());
            recorder.record_at(&stop("a", JobOutcome::Completed, ms, 5), at);
        }
        recorder.record_at(&stop("b", JobOutcome::Discarded, 2_000, 30_000), now);

        let snapshot = recorder.snapshot_at(now);
        let names: Vec<&str> = snapshot.queues.iter().map(|q| q.queue.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let a = &snapshot.queues[0];
        assert_eq!(a.jobs, 100);
        let close = |got: Duration, want_ms: f64| {
            let got = got.as_secs_f64() * 1000.0;
            assert!(
                (got - want_ms).abs() <= want_ms * PRECISION,
                "{got} ms vs {want_ms} ms"
            );
        };
        close(a.duration.p50, 50.0);
        close(a.duration.p95, 95.0);
        close(a.duration.p99, 99.0);
        close(a.queue_time.p50, 5.0);
        close(a.queue_time.p99, 5.0);
        let b = &snapshot.queues[1];
        assert_eq!(b.jobs, 1);
        close(b.duration.p50, 2_000.0);
        close(b.queue_time.p99, 30_000.0);
    }

    #[test]
    fn queues_beyond_the_cap_are_counted_as_other() {
        let recorder = Recorder::new();
        let now = noon();
        let extra = 5;
        for i in 0..Recorder::MAX_QUEUES + extra {
            recorder.record_at(&stop(&format!("q{i:04}"), JobOutcome::Completed, 1, 1), now);
        }
        // A tracked queue keeps its name; a new one still goes to "other".
        recorder.record_at(
            &stop("q0000", JobOutcome::Completed, 1, 1),
            now + minutes(1),
        );
        recorder.record_at(&stop("new", JobOutcome::Completed, 1, 1), now + minutes(1));

        let snapshot = recorder.snapshot_at(now + minutes(1));
        assert_eq!(snapshot.queues.len(), Recorder::MAX_QUEUES + 1);
        let other = snapshot.queues.last().unwrap();
        assert_eq!(other.queue, Recorder::OTHER);
        assert_eq!(other.jobs, extra as u64 + 1);
        assert_eq!(snapshot.queues[0].queue, "q0000");
        assert_eq!(snapshot.queues[0].jobs, 2);
        assert_eq!(recorder.inner.lock().queues.len(), Recorder::MAX_QUEUES + 1);

        // An hour later the old queues are forgotten and new names are tracked again.
        recorder.record_at(&stop("new", JobOutcome::Completed, 1, 1), now + minutes(62));
        let snapshot = recorder.snapshot_at(now + minutes(62));
        let names: Vec<&str> = snapshot.queues.iter().map(|q| q.queue.as_str()).collect();
        assert_eq!(names, ["new"]);
    }

    #[test]
    fn missed_events_count_over_the_hour() {
        let recorder = Recorder::new();
        recorder.miss_at(3, noon() - minutes(70));
        recorder.miss_at(4, noon() - minutes(10));
        recorder.miss_at(5, noon());
        assert_eq!(recorder.snapshot_at(noon()).missed, 9);
    }

    #[test]
    fn clones_share_the_buckets() {
        let recorder = Recorder::new();
        recorder
            .clone()
            .record(&stop("q", JobOutcome::Completed, 1, 1));
        assert!(!recorder.snapshot().is_empty());
        assert_eq!(recorder.snapshot().queues[0].jobs, 1);
    }
}
