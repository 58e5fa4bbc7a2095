//! How many jobs a producer claims ahead of its free slots.
//!
//! A queue whose jobs finish in microseconds spends most of its time waiting for the next fetch:
//! every slot frees at once, the producer asks for them all, and nothing runs until the answer
//! comes. Claiming a few jobs ahead, held in memory until a slot frees, lets the next fetch run
//! while the current jobs do, and makes every fetch larger.
//!
//! How many is Little's law: as many jobs as the queue finishes during one fetch round trip,
//! `limit × fetch time / job time`, and never more than `limit`. A claimed job so waits about one
//! round trip before it starts. Jobs that take longer than a fetch round trip get no claim ahead
//! at all, so a slow queue never holds jobs that another node could start sooner, and jobs
//! inserted later at a higher priority wait behind at most one round trip of work.

use std::time::Duration;

/// The weight of the newest sample in the running averages: about the last 16 samples count.
const WEIGHT: f64 = 1.0 / 16.0;

/// Running averages of how long jobs and fetches take, and the claim-ahead they imply.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ClaimAhead {
    /// Seconds from a job's start to its end, as the producer sees it.
    job_secs: Option<f64>,
    /// Seconds from a fetch's start to its answer.
    fetch_secs: Option<f64>,
}

impl ClaimAhead {
    /// A job that started here ended after `ran`.
    pub(crate) fn job_finished(&mut self, ran: Duration) {
        self.job_secs = Some(average(self.job_secs, ran.as_secs_f64()));
    }

    /// A fetch came back after `took`.
    pub(crate) fn fetch_returned(&mut self, took: Duration) {
        self.fetch_secs = Some(average(self.fetch_secs, took.as_secs_f64()));
    }

    /// How many jobs to hold claimed beyond `limit` running ones: none until both a job and a
    /// fetch have been timed.
    pub(crate) fn target(&self, limit: u32) -> u32 {
        let (Some(job), Some(fetch)) = (self.job_secs, self.fetch_secs) else {
            return 0;
        };
        let during_fetch = f64::from(limit) * fetch / job.max(f64::MIN_POSITIVE);
        if during_fetch >= f64::from(limit) {
            limit
        } else {
            // Below `limit`, so within u32: the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let target = during_fetch.floor() as u32;
            target
        }
    }
}

fn average(previous: Option<f64>, sample: f64) -> f64 {
    match previous {
        None => sample,
        Some(previous) => previous + WEIGHT * (sample - previous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(job: Duration, fetch: Duration) -> ClaimAhead {
        let mut ahead = ClaimAhead::default();
        for _ in 0..64 {
            ahead.job_finished(job);
            ahead.fetch_returned(fetch);
        }
        ahead
    }

    #[test]
    fn nothing_is_claimed_ahead_before_jobs_and_fetches_are_timed() {
        let mut ahead = ClaimAhead::default();
        assert_eq!(ahead.target(50), 0);
        ahead.fetch_returned(Duration::from_millis(2));
        assert_eq!(ahead.target(50), 0);
    }

    #[test]
    fn jobs_faster_than_a_fetch_claim_a_whole_limit_ahead() {
        let ahead = timed(Duration::from_micros(20), Duration::from_millis(2));
        assert_eq!(ahead.target(50), 50);
    }

    #[test]
    fn jobs_slower_than_a_fetch_claim_nothing_ahead() {
        let ahead = timed(Duration::from_secs(1), Duration::from_millis(2));
        assert_eq!(ahead.target(50), 0);
        let ahead = timed(Duration::from_millis(150), Duration::from_millis(2));
        assert_eq!(ahead.target(50), 0);
    }

    #[test]
    fn in_between_what_finishes_during_one_fetch_is_claimed() {
        // 50 slots, 10 ms jobs, 2 ms fetches: 10 jobs end while a fetch is in flight.
        let ahead = timed(Duration::from_millis(10), Duration::from_millis(2));
        assert_eq!(ahead.target(50), 10);
    }

    #[test]
    fn the_averages_follow_a_change_of_pace() {
        let mut ahead = timed(Duration::from_micros(20), Duration::from_millis(2));
        for _ in 0..200 {
            ahead.job_finished(Duration::from_secs(2));
        }
        assert_eq!(ahead.target(50), 0);
    }
}
