//! How long a failed job waits before its next attempt.

use std::time::Duration;

use rand::Rng;

use crate::job::Job;

/// A retry delay strategy, chosen per worker.
///
/// `attempt` below is the attempt that just failed (1 for the first).
///
/// ```
/// use std::time::Duration;
/// use oban_core::Backoff;
///
/// let linear = Backoff::Linear { base: Duration::from_secs(10) };
/// assert_eq!(linear.delay(3, 20), Duration::from_secs(30));
///
/// let capped = Backoff::Exponential { base: Duration::from_secs(1), max: Duration::from_secs(60) };
/// assert_eq!(capped.delay(4, 20), Duration::from_secs(8));
/// assert_eq!(capped.delay(12, 20), Duration::from_secs(60));
///
/// // Oban's default: 15 s + 2^attempt s, plus up to 10 % jitter.
/// let first = Backoff::Default.delay(1, 20);
/// assert!(first >= Duration::from_secs(17) && first <= Duration::from_millis(18_700));
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub enum Backoff {
    /// Oban's default: `15 + 2^attempt` seconds plus up to 10 % jitter; when `max_attempts > 20`
    /// the attempt is scaled onto 1..=20 so the last delays stay in days, not centuries.
    #[default]
    Default,
    /// The same delay after every attempt.
    Constant(Duration),
    /// `base * attempt`.
    Linear {
        /// Delay after the first attempt.
        base: Duration,
    },
    /// `base * 2^(attempt - 1)`, never more than `max`.
    Exponential {
        /// Delay after the first attempt.
        base: Duration,
        /// Upper bound of the delay.
        max: Duration,
    },
    /// Your own function of the failed job (its `attempt`, `errors`, `args`, ...). A delay longer
    /// than [`Ack::MAX_DELAY`](crate::engine::Ack::MAX_DELAY) (100 years) is recorded as that.
    Custom(fn(&Job) -> Duration),
}

impl Backoff {
    /// The delay after failed attempt `attempt` of at most `max_attempts`.
    ///
    /// For [`Backoff::Custom`], which needs the whole job, use [`Backoff::delay_for`]; here it
    /// falls back to the default strategy.
    pub fn delay(&self, attempt: u32, max_attempts: u32) -> Duration {
        let attempt = attempt.max(1);
        match *self {
            Backoff::Default | Backoff::Custom(_) => oban_default(attempt, max_attempts),
            Backoff::Constant(delay) => delay,
            Backoff::Linear { base } => base.saturating_mul(attempt),
            Backoff::Exponential { base, max } => {
                let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
                base.saturating_mul(factor).min(max)
            }
        }
    }

    /// The delay before retrying `job`, whose `attempt` just failed.
    pub fn delay_for(&self, job: &Job) -> Duration {
        match *self {
            Backoff::Custom(f) => f(job),
            _ => self.delay(job.attempt.max(1) as u32, job.max_attempts.max(1) as u32),
        }
    }
}

fn oban_default(attempt: u32, max_attempts: u32) -> Duration {
    let attempt = if max_attempts <= 20 {
        attempt
    } else {
        ((f64::from(attempt) / f64::from(max_attempts)) * 20.0)
            .round()
            .max(1.0) as u32
    };
    // 2^attempt overflows nothing that matters: attempts are at most 20 here, or capped.
    let secs = 15u64.saturating_add(1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX));
    let base = Duration::from_secs(secs);
    let jitter = rand::thread_rng().gen_range(0.0..=0.1);
    base + base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_backoff_grows_and_jitters_within_ten_percent() {
        for attempt in 1..=20u32 {
            let floor = Duration::from_secs(15 + (1u64 << attempt));
            for _ in 0..50 {
                let d = Backoff::Default.delay(attempt, 20);
                assert!(d >= floor, "attempt {attempt}: {d:?} < {floor:?}");
                assert!(
                    d <= floor.mul_f64(1.1),
                    "attempt {attempt}: {d:?} > 110% of {floor:?}"
                );
            }
        }
    }

    #[test]
    fn default_backoff_scales_attempts_past_twenty() {
        // attempt 50 of 100 behaves like attempt 10 of 20.
        let d = Backoff::Default.delay(50, 100);
        let floor = Duration::from_secs(15 + 1024);
        assert!(d >= floor && d <= floor.mul_f64(1.1), "{d:?}");
        // the last attempt never exceeds attempt 20's delay.
        let last = Backoff::Default.delay(100, 100);
        assert!(last <= Duration::from_secs(15 + (1 << 20)).mul_f64(1.1));
    }

    #[test]
    fn strategies() {
        let s = Duration::from_secs;
        assert_eq!(Backoff::Constant(s(7)).delay(9, 20), s(7));
        assert_eq!(Backoff::Linear { base: s(2) }.delay(5, 20), s(10));
        let exp = Backoff::Exponential {
            base: s(1),
            max: s(100),
        };
        assert_eq!(exp.delay(1, 20), s(1));
        assert_eq!(exp.delay(7, 20), s(64));
        assert_eq!(exp.delay(8, 20), s(100));
        assert_eq!(exp.delay(200, 300), s(100));
    }
}
