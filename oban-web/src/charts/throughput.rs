//! The throughput chart: jobs completed and failed per minute over the hour, as an inline SVG.

use maud::{html, Markup};

use super::snapshot::{Minute, Snapshot};
use crate::format::{count, short_count};

/// The drawing's size in user units; the page's CSS sizes it (it scales with its width).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
/// Room for the y labels, the legend, the x labels.
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 22.0;

/// Colours used when the page's CSS does not set them through the classes.
const COMPLETED_FILL: &str = "#2563eb";
const FAILED_FILL: &str = "#ea580c";

/// The minutes (counted back from the current one) that get a time label.
const LABEL_EVERY: usize = 15;

/// A bar chart of the snapshot's minutes, oldest on the left: completed attempts, with failed
/// ones (retryable and discarded) stacked on them; each minute's `<title>` gives its figures,
/// cancelled ones included, as a tooltip. Times are UTC.
///
/// It is an `<svg role="img">` whose `aria-label` sums the hour up, drawn without script.
/// Bars carry the classes `chart-completed` and `chart-failed` (and have default fills the
/// page's CSS overrides); the SVG is `chart chart-throughput`, a minute's group `chart-minute`
/// (`chart-current` for the minute under way), grid lines `chart-grid`, labels `chart-axis`,
/// the note on missed events `chart-note`. Text takes the page's colour (`currentColor`).
///
/// ```
/// use oban_web::{throughput_chart, Recorder};
///
/// let svg = throughput_chart(&Recorder::new().snapshot()).into_string();
/// assert!(svg.starts_with("<svg"));
/// assert!(svg.contains(r#"role="img""#));
/// ```
pub fn throughput_chart(snapshot: &Snapshot) -> Markup {
    let peak = snapshot
        .minutes
        .iter()
        .map(|m| m.completed + m.failed)
        .max()
        .unwrap_or(0);
    let (step, top) = scale(peak);
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let baseline = TOP + plot_height;
    let y = |value: u64| baseline - plot_height * value as f64 / top as f64;
    let height = |value: u64| {
        if value == 0 {
            0.0
        } else {
            // A single failure stays visible beside thousands of completions.
            (plot_height * value as f64 / top as f64).max(1.0)
        }
    };
    let slots = snapshot.minutes.len().max(1);
    let slot = plot_width / slots as f64;
    let gap = slot * 0.1;
    let last = snapshot.minutes.len().saturating_sub(1);
    let ticks = (0..=top / step).map(|i| i * step);
    let view_box = format!("0 0 {WIDTH} {HEIGHT}");

    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="chart chart-throughput"
            viewBox=(view_box) role="img" aria-label=(summary(snapshot))
            font-size="11" fill="currentColor" {
            text class="chart-axis" x="0" y="12" { "jobs/min" }
            g class="chart-legend" {
                rect class="chart-completed" x=(px(LEFT + 8.0)) y="3" width="10" height="10"
                    fill=(COMPLETED_FILL) {}
                text x=(px(LEFT + 22.0)) y="12" { "completed" }
                rect class="chart-failed" x=(px(LEFT + 92.0)) y="3" width="10" height="10"
                    fill=(FAILED_FILL) {}
                text x=(px(LEFT + 106.0)) y="12" { "failed" }
            }
            @if snapshot.missed > 0 {
                text class="chart-note" x=(px(WIDTH - RIGHT)) y="12" text-anchor="end" {
                    (count(snapshot.missed)) " events missed: counts are low"
                }
            }
            @for tick in ticks {
                line class="chart-grid" x1=(px(LEFT)) x2=(px(WIDTH - RIGHT)) y1=(px(y(tick)))
                    y2=(px(y(tick))) stroke="currentColor" stroke-opacity="0.15" {}
                text class="chart-axis" x=(px(LEFT - 6.0)) y=(px(y(tick) + 4.0))
                    text-anchor="end" { (short_count(tick)) }
            }
            @for (i, minute) in snapshot.minutes.iter().enumerate() {
                @let x = LEFT + i as f64 * slot;
                @let completed = height(minute.completed);
                @let failed = height(minute.failed);
                g class=(if i == last { "chart-minute chart-current" } else { "chart-minute" }) {
                    title { (tooltip(minute, i == last)) }
                    rect class="chart-slot" x=(px(x)) y=(px(TOP)) width=(px(slot))
                        height=(px(plot_height)) fill="transparent" {}
                    @if minute.completed > 0 {
                        rect class="chart-completed" x=(px(x + gap)) y=(px(baseline - completed))
                            width=(px(slot - 2.0 * gap)) height=(px(completed))
                            fill=(COMPLETED_FILL) {}
                    }
                    @if minute.failed > 0 {
                        rect class="chart-failed" x=(px(x + gap))
                            y=(px(baseline - completed - failed)) width=(px(slot - 2.0 * gap))
                            height=(px(failed)) fill=(FAILED_FILL) {}
                    }
                }
            }
            line class="chart-axis" x1=(px(LEFT)) x2=(px(WIDTH - RIGHT)) y1=(px(baseline))
                y2=(px(baseline)) stroke="currentColor" stroke-opacity="0.5" {}
            @for (i, minute) in snapshot.minutes.iter().enumerate() {
                @if (last - i) % LABEL_EVERY == 0 {
                    // The newest label ends at the plot's edge rather than past it.
                    @let (x, anchor) = if i == last {
                        (WIDTH - RIGHT, "end")
                    } else {
                        (LEFT + (i as f64 + 0.5) * slot, "middle")
                    };
                    text class="chart-axis" x=(px(x)) y=(px(HEIGHT - 6.0)) text-anchor=(anchor) {
                        (minute.start.format("%H:%M"))
                    }
                }
            }
            @if peak == 0 {
                text class="chart-empty" x=(px(LEFT + plot_width / 2.0))
                    y=(px(TOP + plot_height / 2.0)) text-anchor="middle" {
                    "No jobs in the last hour"
                }
            }
        }
    }
}

/// The chart said in one sentence, for screen readers.
fn summary(snapshot: &Snapshot) -> String {
    let sum = |field: fn(&Minute) -> u64| snapshot.minutes.iter().map(field).sum::<u64>();
    let node = match &snapshot.node {
        Some(node) => format!(" on node {node}"),
        None => String::new(),
    };
    let mut text = format!(
        "Jobs per minute over the last hour{node}: {} completed, {} failed, {} cancelled.",
        count(sum(|m| m.completed)),
        count(sum(|m| m.failed)),
        count(sum(|m| m.cancelled)),
    );
    if snapshot.missed > 0 {
        text.push_str(&format!(
            " {} events were missed, so these counts are low.",
            count(snapshot.missed)
        ));
    }
    text
}

/// One minute's figures.
fn tooltip(minute: &Minute, current: bool) -> String {
    let so_far = if current { " (so far)" } else { "" };
    format!(
        "{} UTC{so_far}: {} completed, {} failed, {} cancelled",
        minute.start.format("%H:%M"),
        count(minute.completed),
        count(minute.failed),
        count(minute.cancelled),
    )
}

/// The y axis for a tallest bar of `peak`: a round step (1, 2 or 5 times a power of ten) for
/// about four intervals, and the top, the first multiple of the step at or above the peak.
fn scale(peak: u64) -> (u64, u64) {
    let wanted = peak.div_ceil(4).max(1);
    let mut power: u64 = 1;
    let step = loop {
        if let Some(step) = [1, 2, 5]
            .into_iter()
            .map(|m| power.saturating_mul(m))
            .find(|&step| step >= wanted)
        {
            break step;
        }
        power = power.saturating_mul(10);
    };
    (step, peak.div_ceil(step).max(1).saturating_mul(step))
}

/// A coordinate, to a tenth of a unit.
fn px(value: f64) -> String {
    format!("{value:.1}")
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn snapshot(counts: &[(u64, u64)]) -> Snapshot {
        let start = Utc.with_ymd_and_hms(2026, 5, 4, 11, 0, 0).unwrap();
        Snapshot {
            node: Some("web-1".to_owned()),
            minutes: (0..61)
                .map(|i| {
                    let (completed, failed) = counts.get(i).copied().unwrap_or((0, 0));
                    Minute {
                        start: start + chrono::TimeDelta::minutes(i as i64),
                        completed,
                        failed,
                        cancelled: 0,
                    }
                })
                .collect(),
            queues: Vec::new(),
            missed: 0,
        }
    }

    #[test]
    fn round_scales() {
        assert_eq!(scale(0), (1, 1));
        assert_eq!(scale(3), (1, 3));
        assert_eq!(scale(7), (2, 8));
        assert_eq!(scale(101), (50, 150));
        assert_eq!(scale(4_000), (1_000, 4_000));
        assert_eq!(scale(u64::MAX).0, 5_000_000_000_000_000_000);
    }

    #[test]
    fn a_bar_per_minute_with_its_tooltip() {
        let svg = throughput_chart(&snapshot(&[(1_200, 3), (0, 4)])).into_string();
        assert_eq!(svg.matches(r#"class="chart-minute"#).count(), 61);
        assert_eq!(svg.matches(r#"<rect class="chart-completed""#).count(), 2); // legend + 1
        assert_eq!(svg.matches(r#"<rect class="chart-failed""#).count(), 3); // legend + 2
        assert!(svg.contains("<title>11:00 UTC: 1,200 completed, 3 failed, 0 cancelled</title>"));
        assert!(
            svg.contains("<title>12:00 UTC (so far): 0 completed, 0 failed, 0 cancelled</title>")
        );
        assert!(svg.contains(
            r#"aria-label="Jobs per minute over the last hour on node web-1: 1,200 completed, 7 failed, 0 cancelled.""#
        ));
        for label in ["11:00", "11:15", "11:30", "11:45", "12:00"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        assert!(svg.contains(">1.5k</text>"));
        assert!(!svg.contains("No jobs"));
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn failures_stack_on_completions() {
        // Peak 8: top 8, so 4 completed fill half the plot and 4 failed the other half.
        let svg = throughput_chart(&snapshot(&[(4, 4)])).into_string();
        let plot = HEIGHT - TOP - BOTTOM;
        let half = px(plot / 2.0);
        assert!(svg.contains(&format!(
            r#"class="chart-completed" x="{}" y="{}" width="{}" height="{half}""#,
            px(LEFT + 0.1 * (WIDTH - LEFT - RIGHT) / 61.0),
            px(TOP + plot / 2.0),
            px(0.8 * (WIDTH - LEFT - RIGHT) / 61.0),
        )));
        assert!(svg.contains(&format!(r#"y="{}" "#, px(TOP))));
    }

    #[test]
    fn an_empty_hour_says_so() {
        let svg = throughput_chart(&snapshot(&[])).into_string();
        assert!(svg.contains("No jobs in the last hour"));
        assert_eq!(svg.matches(r#"<rect class="chart-completed""#).count(), 1);
    }

    #[test]
    fn missed_events_are_noted() {
        let mut snap = snapshot(&[(1, 0)]);
        snap.missed = 1_500;
        let svg = throughput_chart(&snap).into_string();
        assert!(svg.contains("1,500 events missed: counts are low"));
        assert!(svg.contains("1,500 events were missed, so these counts are low."));
    }

    #[test]
    fn the_node_name_is_escaped() {
        let mut snap = snapshot(&[(1, 0)]);
        snap.node = Some(r#""><script>alert(1)</script>"#.to_owned());
        let svg = throughput_chart(&snap).into_string();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn no_minutes_at_all_still_draws() {
        let snap = Snapshot {
            node: None,
            minutes: Vec::new(),
            queues: Vec::new(),
            missed: 0,
        };
        assert!(throughput_chart(&snap).into_string().contains("No jobs"));
    }
}
