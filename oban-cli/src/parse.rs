//! Values as a person types them: durations (`15m`, `2h`, `7d`, `1h30m`), states, JSON objects,
//! queue limits (`--rate 100/60s`, `--global-by args:tenant_id`).
//!
//! Durations use this small parser rather than `humantime`: the units are only those an
//! operator means without thinking (s, m, h, d, w; no months or years of approximate length,
//! no `m` against `M` ambiguity), the error says exactly that, and it costs no dependency.

use std::time::Duration;

use oban_core::limits::{Partition, RateLimit};
use oban_core::JobState;
use serde_json::Value;

/// A duration: one or more `<number><unit>` parts, unit one of `s`, `m`, `h`, `d`, `w`
/// (`90s`, `15m`, `2h`, `7d`, `1h30m`). A bare `0` is zero.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!("invalid duration `{text}`: {why}; write a number and a unit (s, m, h, d or w), like 15m, 2h or 7d")
    };
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    if trimmed.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total: u64 = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("a number is missing"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        rest = &rest[digits..];
        let unit = rest
            .chars()
            .next()
            .ok_or_else(|| bad("the unit is missing"))?;
        let seconds = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad(&format!("`{unit}` is not a unit"))),
        };
        rest = &rest[unit.len_utf8()..];
        total = number
            .checked_mul(seconds)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| bad("it is too large"))?;
    }
    // Past about a thousand years the database's timestamps cannot follow.
    if total > 1_000 * 365 * 86_400 {
        return Err(bad("it is too large"));
    }
    Ok(Duration::from_secs(total))
}

/// A job state by its stored name.
pub(crate) fn state(text: &str) -> Result<JobState, String> {
    text.trim()
        .to_ascii_lowercase()
        .parse::<JobState>()
        .map_err(|err| err.to_string())
}

/// A schema prefix: a plain identifier, as `oban_core::Prefix` accepts it.
pub(crate) fn prefix(text: &str) -> Result<String, String> {
    oban_core::Prefix::new(text)
        .map(|_| text.to_owned())
        .map_err(|err| err.to_string())
}

/// A JSON object (what `--args` and `--meta` must contain).
pub(crate) fn json_object(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|err| format!("`{text}` is not JSON ({err}); quote keys: '{{\"user_id\": 7}}'"))?;
    if !value.is_object() {
        return Err(format!(
            "`{text}` must be a JSON object (the keys and values the job's must contain), like '{{\"user_id\": 7}}'"
        ));
    }
    Ok(value)
}

/// How a queue limit is split (`--global-by`, `--rate-by`): `worker`, `args` (all of the args),
/// `args:KEY,KEY` or `worker+args:KEY`, each part with the whole limit.
pub(crate) fn partition(text: &str) -> Result<Partition, String> {
    match text.parse::<Partition>().map_err(|err| err.to_string())? {
        Partition::None => Err(format!(
            "invalid partition `{text}`: name worker, args, args:KEY,KEY or worker+args:KEY (leave the flag out for the whole queue)"
        )),
        partition => Ok(partition),
    }
}

/// A rate limit, `ALLOWED/PERIOD`: at least 1 start per a whole number of seconds from 1 s to a
/// day, the period written as a duration (`100/60s`, `1000/1h`, `5/1s`).
pub(crate) fn rate(text: &str) -> Result<RateLimit, String> {
    let bad = |why: &str| {
        format!("invalid rate `{text}`: {why}; write starts per period, like 100/60s or 1000/1h")
    };
    let (allowed, period) = text
        .split_once('/')
        .ok_or_else(|| bad("the `/` is missing"))?;
    let allowed: u32 = allowed
        .trim()
        .parse()
        .map_err(|_| bad("the number of starts is not a whole number"))?;
    if allowed == 0 {
        return Err(bad("0 starts would run nothing (pause the queue instead)"));
    }
    let period = duration(period).map_err(|err| bad(&err))?;
    if period < RateLimit::MIN_PERIOD || period > RateLimit::MAX_PERIOD {
        return Err(bad("the period must be 1s to 1d"));
    }
    Ok(RateLimit::new(allowed, period))
}

/// A duration as a person reads it: the two largest units (`3d 4h`, `15m 2s`, `850ms`).
pub(crate) fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let units = [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
        ("s", 1),
    ];
    // The largest unit present and the one below it only: `1w 1s` reads as `1w`.
    let first = units
        .iter()
        .position(|&(_, size)| secs >= size)
        .unwrap_or(units.len() - 1);
    let (name, size) = units[first];
    let mut text = format!("{}{name}", secs / size);
    if let Some(&(next, next_size)) = units.get(first + 1) {
        let rest = secs % size / next_size;
        if rest > 0 {
            text.push_str(&format!(" {rest}{next}"));
        }
    }
    text
}

/// A dashboard token: long enough not to be guessed (`--token`).
pub(crate) fn token(text: &str) -> Result<String, String> {
    let token = text.trim();
    if token.chars().count() < 16 {
        return Err(
            "a token must be at least 16 characters: generate one, e.g. `openssl rand -hex 24`"
                .into(),
        );
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        let cases = [
            ("90s", 90),
            ("15m", 900),
            ("2h", 7_200),
            ("7d", 604_800),
            ("1w", 604_800),
            ("1h30m", 5_400),
            (" 2h ", 7_200),
            ("0", 0),
            ("0s", 0),
        ];
        for (text, secs) in cases {
            assert_eq!(duration(text), Ok(Duration::from_secs(secs)), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        let cases = [
            ("", "empty"),
            ("15", "unit is missing"),
            ("m", "number is missing"),
            ("15x", "`x` is not a unit"),
            ("2 h", "` ` is not a unit"),
            ("1M", "`M` is not a unit"),
            ("99999999999999999999s", "too large"),
            ("999999w", "too large"),
        ];
        for (text, why) in cases {
            let err = duration(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("like 15m, 2h or 7d"), "{text}: {err}");
        }
    }

    #[test]
    fn states_by_name_any_case() {
        assert_eq!(state("Discarded"), Ok(JobState::Discarded));
        let err = state("dead").expect_err("unknown");
        assert!(err.contains("expected one of available"), "{err}");
    }

    #[test]
    fn args_must_be_a_json_object() {
        assert_eq!(
            json_object(r#"{"user_id": 7}"#),
            Ok(serde_json::json!({"user_id": 7}))
        );
        assert!(json_object("{user_id: 7}")
            .expect_err("bad")
            .contains("is not JSON"));
        assert!(json_object("7")
            .expect_err("scalar")
            .contains("JSON object"));
    }

    #[test]
    fn rates_and_partitions_as_people_write_them() {
        let rate_of = |text| rate(text).map(|r| (r.allowed, r.period.as_secs()));
        assert_eq!(rate_of("100/60s"), Ok((100, 60)));
        assert_eq!(rate_of(" 5 /1m"), Ok((5, 60)));
        assert_eq!(rate_of("1000/1d"), Ok((1000, 86_400)));
        for (text, why) in [
            ("100", "`/` is missing"),
            ("x/60s", "not a whole number"),
            ("0/60s", "pause the queue"),
            ("10/0", "1s to 1d"),
            ("10/2d", "1s to 1d"),
            ("10/60", "unit is missing"),
        ] {
            let err = rate(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
        assert_eq!(partition("worker"), Ok(Partition::Worker));
        assert_eq!(
            partition("args:tenant_id,region"),
            Ok(Partition::args(["tenant_id", "region"]))
        );
        assert_eq!(
            partition("worker+args:k"),
            Ok(Partition::WorkerArgs(vec!["k".into()]))
        );
        assert!(partition("none").is_err());
        assert!(partition("tenant").expect_err("bad").contains("neither"));
    }

    #[test]
    fn durations_read_back() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(human_duration(Duration::from_secs(902)), "15m 2s");
        assert_eq!(
            human_duration(Duration::from_secs(3 * 86_400 + 4 * 3_600 + 5)),
            "3d 4h"
        );
        assert_eq!(human_duration(Duration::from_secs(604_801)), "1w");
    }
}
