//! A limited queue's limits in its producers' heartbeats, in the keys Elixir Oban Pro's producers
//! use (`global_limit`, `rate_limit`), so that `check_queue`, the dashboard and Oban Web show them.

use serde_json::{json, Value};

use super::Limits;

/// Adds `limits` to a heartbeat's `meta`.
pub(crate) fn describe(meta: &mut Value, limits: &Limits) {
    let Value::Object(map) = meta else {
        return;
    };
    if let Some(global) = &limits.global {
        map.insert(
            "global_limit".into(),
            json!({ "allowed": global.allowed, "partition": partition(&global.partition) }),
        );
    }
    if let Some(rate) = &limits.rate {
        map.insert(
            "rate_limit".into(),
            json!({
                "allowed": rate.allowed,
                "period": rate.period.as_secs(),
                "partition": partition(&rate.partition),
            }),
        );
    }
}

/// Reads the limits back from a heartbeat's `meta` (ours or Pro's); `None` without any.
pub(crate) fn read(meta: &Value) -> Option<Limits> {
    let global = meta.get("global_limit").and_then(|global| {
        let allowed = u32::try_from(global.get("allowed")?.as_u64()?).ok()?;
        Some(super::GlobalLimit::new(allowed).partitioned(read_partition(global.get("partition"))))
    });
    let rate = meta.get("rate_limit").and_then(|rate| {
        let allowed = u32::try_from(rate.get("allowed")?.as_u64()?).ok()?;
        let period = std::time::Duration::from_secs(rate.get("period")?.as_u64()?);
        Some(
            super::RateLimit::new(allowed, period)
                .partitioned(read_partition(rate.get("partition"))),
        )
    });
    let limits = Limits { global, rate };
    (!limits.is_empty()).then_some(limits)
}

/// Pro writes `null` for no partition.
fn partition(partition: &super::Partition) -> Value {
    if partition.is_partitioned() {
        serde_json::to_value(partition).unwrap_or(Value::Null)
    } else {
        Value::Null
    }
}

fn read_partition(value: Option<&Value>) -> super::Partition {
    value
        .filter(|value| !value.is_null())
        .and_then(|value| serde_json::from_value(value.clone()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::limits::{GlobalLimit, Partition, RateLimit};

    #[test]
    fn limits_in_a_heartbeat_read_back() {
        let limits = Limits::new()
            .global(GlobalLimit::new(3).partitioned(Partition::Worker))
            .rate(RateLimit::new(10, Duration::from_secs(60)));
        let mut meta = json!({"limit": 5});
        describe(&mut meta, &limits);
        assert_eq!(meta["rate_limit"]["partition"], Value::Null);
        assert_eq!(read(&meta), Some(limits));
        assert_eq!(read(&json!({"limit": 5})), None);
    }
}
