//! Numbers and durations as people read them on the dashboard.

use std::time::Duration;

/// A duration in the unit that suits it, with two or three significant digits: `850 µs`,
/// `2.3 ms`, `230 ms`, `4.25 s`, `42.0 s`, `3.5 min`, `1.2 h`.
pub(crate) fn duration(d: Duration) -> String {
    let us = d.as_micros();
    let f = us as f64;
    match us {
        0 => "0 ms".to_owned(),
        1..1_000 => format!("{us} µs"),
        1_000..9_950 => format!("{:.1} ms", f / 1e3),
        9_950..999_500 => format!("{:.0} ms", f / 1e3),
        999_500..9_995_000 => format!("{:.2} s", f / 1e6),
        9_995_000..59_950_000 => format!("{:.1} s", f / 1e6),
        59_950_000..3_597_000_000 => format!("{:.1} min", f / 60e6),
        _ => format!("{:.1} h", f / 3600e6),
    }
}

/// A count with thousands separated by commas: `12,345`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count for an axis label, short: `950`, `1.5k`, `12k`, `3.2M`.
pub(crate) fn short_count(n: u64) -> String {
    let f = n as f64;
    match n {
        0..1_000 => n.to_string(),
        1_000..10_000 => trim(format!("{:.1}k", f / 1e3)),
        10_000..1_000_000 => format!("{:.0}k", f / 1e3),
        1_000_000..10_000_000 => trim(format!("{:.1}M", f / 1e6)),
        _ => format!("{:.0}M", f / 1e6),
    }
}

/// `2.0k` as `2k`.
fn trim(label: String) -> String {
    label.replace(".0", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_their_unit() {
        let cases = [
            (Duration::ZERO, "0 ms"),
            (Duration::from_micros(850), "850 µs"),
            (Duration::from_micros(2_340), "2.3 ms"),
            (Duration::from_micros(9_960), "10 ms"),
            (Duration::from_millis(230), "230 ms"),
            (Duration::from_micros(999_700), "1.00 s"),
            (Duration::from_millis(4_250), "4.25 s"),
            (Duration::from_millis(42_040), "42.0 s"),
            (Duration::from_secs(210), "3.5 min"),
            (Duration::from_secs(3_599), "1.0 h"),
            (Duration::from_secs(4_320), "1.2 h"),
        ];
        for (d, want) in cases {
            assert_eq!(duration(d), want, "{d:?}");
        }
        assert!(duration(Duration::MAX).ends_with(" h"));
    }

    #[test]
    fn counts_with_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn short_counts_for_axes() {
        assert_eq!(short_count(950), "950");
        assert_eq!(short_count(2_000), "2k");
        assert_eq!(short_count(1_500), "1.5k");
        assert_eq!(short_count(12_000), "12k");
        assert_eq!(short_count(3_200_000), "3.2M");
        assert_eq!(short_count(50_000_000), "50M");
    }
}
