//! The latency table: per queue, the percentiles of queue time and execution time over the hour.

use maud::{html, Markup};

use super::snapshot::{Percentiles, Snapshot};
use crate::format::{count, latency};

/// A `<table class="latency">` with a row per queue of the snapshot: its jobs, and the 50th,
/// 95th and 99th percentiles of how long jobs waited (queue time, from when they were due) and
/// how long they ran (execution time), in the unit that suits each (`850 µs`, `230 ms`,
/// `4.25 s`, `3.5 min`). Queue names are escaped like every value maud interpolates. Number
/// cells have the class `num`; a snapshot without jobs gives one row saying so (class
/// `empty`).
///
/// ```
/// use oban_web::{latency_table, Recorder};
///
/// let html = latency_table(&Recorder::new().snapshot()).into_string();
/// assert!(html.starts_with(r#"<table class="latency">"#));
/// assert!(html.contains("No jobs ran"));
/// ```
pub fn latency_table(snapshot: &Snapshot) -> Markup {
    html! {
        table class="latency" {
            caption { "Queue and execution times over the last hour" }
            thead {
                tr {
                    th scope="col" rowspan="2" { "Queue" }
                    th scope="col" rowspan="2" class="num" { "Jobs" }
                    th scope="colgroup" colspan="3" { "Queue time" }
                    th scope="colgroup" colspan="3" { "Execution time" }
                }
                tr {
                    @for _ in 0..2 {
                        th scope="col" class="num" { "p50" }
                        th scope="col" class="num" { "p95" }
                        th scope="col" class="num" { "p99" }
                    }
                }
            }
            tbody {
                @for queue in &snapshot.queues {
                    tr {
                        th scope="row" { (queue.queue) }
                        td class="num" { (count(queue.jobs)) }
                        (cells(&queue.queue_time))
                        (cells(&queue.duration))
                    }
                }
                @if snapshot.queues.is_empty() {
                    tr {
                        td class="empty" colspan="8" { "No jobs ran on this node in the last hour." }
                    }
                }
            }
        }
    }
}

/// Three cells: p50, p95, p99.
fn cells(p: &Percentiles) -> Markup {
    html! {
        td class="num" { (latency(p.p50)) }
        td class="num" { (latency(p.p95)) }
        td class="num" { (latency(p.p99)) }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::charts::snapshot::QueueTimes;

    fn snapshot(queues: Vec<QueueTimes>) -> Snapshot {
        Snapshot {
            node: None,
            minutes: Vec::new(),
            queues,
            missed: 0,
        }
    }

    fn times(queue: &str) -> QueueTimes {
        QueueTimes {
            queue: queue.to_owned(),
            jobs: 12_345,
            queue_time: Percentiles {
                p50: Duration::from_micros(850),
                p95: Duration::from_millis(12),
                p99: Duration::from_millis(230),
            },
            duration: Percentiles {
                p50: Duration::from_millis(4_250),
                p95: Duration::from_secs(210),
                p99: Duration::from_secs(4_320),
            },
        }
    }

    #[test]
    fn a_row_per_queue_with_human_durations() {
        let html = latency_table(&snapshot(vec![times("mailers"), times("media")])).into_string();
        assert!(html.contains(
            r#"<tr><th scope="row">mailers</th><td class="num">12,345</td><td class="num">850 µs</td><td class="num">12 ms</td><td class="num">230 ms</td><td class="num">4.25 s</td><td class="num">3.5 min</td><td class="num">1.2 h</td></tr>"#
        ), "{html}");
        assert!(html.contains(r#"<th scope="row">media</th>"#));
        assert!(!html.contains("No jobs ran"));
    }

    #[test]
    fn a_queue_named_script_renders_as_text() {
        let html =
            latency_table(&snapshot(vec![times("<script>alert(\"x\")</script>")])).into_string();
        assert!(!html.contains("<script>"));
        assert!(html
            .contains(r#"<th scope="row">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</th>"#));
    }

    #[test]
    fn no_queues_says_so() {
        let html = latency_table(&snapshot(Vec::new())).into_string();
        assert!(html.contains(r#"<td class="empty" colspan="8">"#));
    }
}
