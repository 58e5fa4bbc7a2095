//! The times of one queue: a histogram per minute, merged over the hour for its percentiles.
//!
//! Values are microseconds, from 1 µs to [`HIGHEST`] (one day; longer times count as one day),
//! at one significant digit: 16 counters per doubling, 544 counters in all, so a histogram is
//! about 2 KiB of `u32` counters whatever the throughput. A percentile is reported as the middle
//! of its counter's range, within [`PRECISION`] of the recorded value.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::snapshot::Percentiles;

/// The longest time told apart, in microseconds: one day. Longer ones are recorded as this.
pub(crate) const HIGHEST: u64 = 24 * 3600 * 1_000_000;

/// Significant digits kept. One digit means 16 counters per doubling; reporting the middle of a
/// counter's range puts a percentile within 1/32 of the true value.
const SIGFIG: u8 = 1;

/// How far a reported percentile may be from the recorded value, relative to it.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const PRECISION: f64 = 1.0 / 32.0;

/// One minute's times of one queue: attempts counted at most `u32::MAX` per counter, which a
/// minute does not reach (counts saturate rather than wrap).
pub(crate) type MinuteHistogram = Histogram<u32>;

/// An hour's times of one queue, merged from its minutes.
pub(crate) type HourHistogram = Histogram<u64>;

/// An empty histogram for one minute.
pub(crate) fn minute() -> MinuteHistogram {
    Histogram::new_with_bounds(1, HIGHEST, SIGFIG).expect("constant bounds are valid")
}

/// An empty histogram for the hour.
pub(crate) fn hour() -> HourHistogram {
    Histogram::new_with_bounds(1, HIGHEST, SIGFIG).expect("constant bounds are valid")
}

/// Counts `time`, clamped to [`HIGHEST`].
pub(crate) fn record(histogram: &mut MinuteHistogram, time: Duration) {
    let micros = u64::try_from(time.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.min(HIGHEST));
}

/// Adds a minute's counts to the hour's. Both have the same bounds, so each counter lands in
/// the same place.
pub(crate) fn merge(hour: &mut HourHistogram, minute: &MinuteHistogram) {
    for bin in minute.iter_recorded() {
        hour.saturating_record_n(bin.value_iterated_to(), u64::from(bin.count_at_value()));
    }
}

/// The 50th, 95th and 99th percentiles of `hour` (zero when it is empty).
pub(crate) fn percentiles(hour: &HourHistogram) -> Percentiles {
    let at = |quantile: f64| {
        if hour.is_empty() {
            Duration::ZERO
        } else {
            Duration::from_micros(hour.median_equivalent(hour.value_at_quantile(quantile)))
        }
    };
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_has_a_fixed_small_size() {
        assert_eq!(minute().distinct_values(), 544);
        assert_eq!(hour().distinct_values(), 544);
    }

    #[test]
    fn percentiles_are_within_the_precision() {
        let mut first = minute();
        let mut second = minute();
        // 1..=1000 ms, split over two minutes.
        for ms in 1..=1000u64 {
            let target = if ms % 2 == 0 { &mut first } else { &mut second };
            record(target, Duration::from_millis(ms));
        }
        let mut merged = hour();
        merge(&mut merged, &first);
        merge(&mut merged, &second);
        assert_eq!(merged.len(), 1000);
        let p = percentiles(&merged);
        for (got, want) in [(p.p50, 500.0), (p.p95, 950.0), (p.p99, 990.0)] {
            let got = got.as_secs_f64() * 1000.0;
            assert!(
                (got - want).abs() <= want * PRECISION,
                "{got} ms is not within {PRECISION} of {want} ms"
            );
        }
    }

    #[test]
    fn small_times_are_exact_and_huge_ones_are_clamped() {
        let mut m = minute();
        record(&mut m, Duration::ZERO);
        record(&mut m, Duration::from_micros(7));
        record(&mut m, Duration::MAX);
        let mut h = hour();
        merge(&mut h, &m);
        let p = percentiles(&h);
        assert_eq!(p.p50, Duration::from_micros(7));
        let top = p.p99.as_micros() as f64;
        let highest = HIGHEST as f64;
        assert!((top - highest).abs() <= highest * PRECISION, "{top}");
    }

    #[test]
    fn an_empty_hour_has_zero_percentiles() {
        let p = percentiles(&hour());
        assert_eq!(
            (p.p50, p.p95, p.p99),
            (Duration::ZERO, Duration::ZERO, Duration::ZERO)
        );
    }
}
