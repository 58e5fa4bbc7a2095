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
}
