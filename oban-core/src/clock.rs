//! Deadlines and ages from user durations, without overflow: `Instant + Duration` panics when the
//! sum does not fit, and a database interval of `Duration::MAX` is out of range, so every user
//! duration goes through these.

use std::time::Duration;

use tokio::time::Instant;

/// What "forever" means for an age (`rescue(.., after)`, `prune(max_age, ..)`): 100 years. Longer
/// ages are treated as this one, which every engine can subtract from the current time.
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A deadline far enough away to mean "never" for a timer (tokio's own "far future").
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `at + d`, or a moment 30 years after `at` when the sum does not fit.
pub(crate) fn saturating_add(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(FAR_FUTURE))
        .unwrap_or(at)
}

/// The moment `d` from now, saturating (see [`saturating_add`]).
pub(crate) fn after(d: Duration) -> Instant {
    saturating_add(Instant::now(), d)
}

/// `age`, at most [`FOREVER`].
pub(crate) fn age(age: Duration) -> Duration {
    age.min(FOREVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_duration_max_saturates() {
        let now = Instant::now();
        assert!(saturating_add(now, Duration::MAX) > now + Duration::from_secs(365 * 24 * 3600));
        assert_eq!(
            saturating_add(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(after(Duration::MAX) > now);
        assert_eq!(age(Duration::MAX), FOREVER);
        assert_eq!(age(Duration::ZERO), Duration::ZERO);
    }
}
