//! Numbers, durations and times as the pages show them.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// `1234567` as `1,234,567`.
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

/// A duration in the largest unit that keeps it readable: `850µs`, `12ms`, `3.4s`, `5m 02s`,
/// `3h 10m`, `2d 4h`.
pub(crate) fn duration(d: Duration) -> String {
    let micros = d.as_micros();
    let secs = d.as_secs();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{}ms", micros / 1_000)
    } else if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3_600 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h {:02}m", secs / 3_600, secs % 3_600 / 60)
    } else {
        format!("{}d {}h", secs / 86_400, secs % 86_400 / 3_600)
    }
}

/// A measured time (a percentile) with two or three significant digits: `850 µs`,
/// `2.3 ms`, `230 ms`, `4.25 s`, `42.0 s`, `3.5 min`, `1.2 h`.
pub(crate) fn latency(d: Duration) -> String {
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

/// How long ago `at` was, or how far ahead (`in 5m 00s`), from `now`.
pub(crate) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    match (now - at).to_std() {
        Ok(ago) if ago < Duration::from_secs(1) => "just now".to_owned(),
        Ok(ago) => format!("{} ago", duration(truncate(ago))),
        Err(_) => match (at - now).to_std() {
            Ok(ahead) => format!("in {}", duration(truncate(ahead))),
            Err(_) => "now".to_owned(),
        },
    }
}

/// A timestamp in UTC to the second, as `2026-12-04 05:21:07 UTC`.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Whole seconds above a minute, whole milliseconds below it.
fn truncate(d: Duration) -> Duration {
    if d >= Duration::from_secs(60) {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(d.as_millis() as u64)
    }
}

/// `text` cut to `max` characters with an ellipsis.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(Duration::from_micros(850)), "850µs");
        assert_eq!(duration(Duration::from_millis(12)), "12ms");
        assert_eq!(duration(Duration::from_millis(3_400)), "3.4s");
        assert_eq!(duration(Duration::from_secs(302)), "5m 02s");
        assert_eq!(duration(Duration::from_secs(3 * 3600 + 600)), "3h 10m");
        assert_eq!(
            duration(Duration::from_secs(2 * 86_400 + 4 * 3600)),
            "2d 4h"
        );
    }

    #[test]
    fn relative_times_read_both_ways() {
        let now = Utc::now();
        assert_eq!(
            relative(now - chrono::Duration::seconds(90), now),
            "1m 30s ago"
        );
        assert_eq!(
            relative(now + chrono::Duration::seconds(300), now),
            "in 5m 00s"
        );
        assert_eq!(relative(now, now), "just now");
    }

    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(clip("héllo", 10), "héllo");
        assert_eq!(clip("héllo world", 5), "héll…");
    }

    #[test]
    fn latencies_in_their_unit() {
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
            assert_eq!(latency(d), want, "{d:?}");
        }
        assert!(latency(Duration::MAX).ends_with(" h"));
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
