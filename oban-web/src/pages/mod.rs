//! The pages, one per file: each reads through the [`Admin`](oban_core::admin::Admin) and
//! renders with maud, which escapes every interpolated value (args, errors and names are user
//! data).

pub(crate) mod crons;
pub(crate) mod job;
pub(crate) mod jobs;
pub(crate) mod login;
pub(crate) mod overview;
pub(crate) mod queues;
pub(crate) mod workflow;
pub(crate) mod workflows;

use oban_core::admin::QueueOverview;
use oban_core::JobState;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters kept as they are in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// `name` as one path segment (a queue named `a/b?c` stays one segment).
pub(crate) fn segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// `path?key=value&..` with each pair encoded; empty values left out.
pub(crate) fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (key, value) in pairs {
        if !value.is_empty() {
            query.append_pair(key, value);
            any = true;
        }
    }
    if any {
        format!("{path}?{}", query.finish())
    } else {
        path.to_owned()
    }
}

/// A queue across its nodes: running jobs and limits summed, and whether every node that runs
/// it has it paused (a queue no node runs is not paused).
pub(crate) struct Load {
    pub(crate) running: u64,
    pub(crate) limit: u64,
    pub(crate) paused: bool,
}

impl Load {
    pub(crate) fn of(queue: &QueueOverview) -> Load {
        Load {
            running: queue.nodes.iter().map(|n| u64::from(n.running)).sum(),
            limit: queue.nodes.iter().map(|n| u64::from(n.limit)).sum(),
            paused: !queue.nodes.is_empty() && queue.nodes.iter().all(|n| n.paused),
        }
    }
}

/// How many jobs of `queues` are in `state`, and whether any of the counts is an estimate.
pub(crate) fn state_total<'a>(
    queues: impl IntoIterator<Item = &'a QueueOverview>,
    state: JobState,
) -> (u64, bool) {
    queues
        .into_iter()
        .flat_map(|q| &q.states)
        .filter(|tally| tally.state == state)
        .fold((0, false), |(count, estimated), tally| {
            (count + tally.count, estimated || !tally.exact)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_one_segment_and_queries_are_encoded() {
        assert_eq!(segment("mailers"), "mailers");
        assert_eq!(segment("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(
            with_query("/jobs", &[("queue", "a&b"), ("state", "")]),
            "/jobs?queue=a%26b"
        );
        assert_eq!(with_query("/jobs", &[("state", "")]), "/jobs");
    }
}
