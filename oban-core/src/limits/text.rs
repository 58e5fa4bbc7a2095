//! The text form of limits, as an operator reads and writes them (the `oban limits` flags, the
//! dashboard's form): a [`Partition`] is `worker`, `args`, `args:tenant_id,region` or
//! `worker+args:tenant_id` (`none` for the whole queue); a global limit reads `10` or
//! `10 by args:tenant_id`; a rate limit `100/60s` or `100/60s by worker`; [`Limits`]
//! `global 10 by worker, rate 100/60s` (`none` without any).

use std::fmt;
use std::str::FromStr;

use super::{GlobalLimit, Limits, Partition, RateLimit};
use crate::error::Error;

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (fields, keys) = match self {
            Partition::None => return f.write_str("none"),
            Partition::Worker => return f.write_str("worker"),
            Partition::Args(keys) => ("args", keys),
            Partition::WorkerArgs(keys) => ("worker+args", keys),
        };
        f.write_str(fields)?;
        if !keys.is_empty() {
            write!(f, ":{}", keys.join(","))?;
        }
        Ok(())
    }
}

/// Reads `worker`, `args`, `args:k1,k2`, `worker+args`, `worker+args:k1,k2` (or `args+worker`),
/// and `none` or nothing for the whole queue; spaces around names are ignored.
///
/// ```
/// use oban_core::limits::Partition;
/// let by = "worker+args:tenant_id, region".parse::<Partition>().unwrap();
/// assert_eq!(by, Partition::WorkerArgs(vec!["tenant_id".into(), "region".into()]));
/// assert_eq!(by.to_string(), "worker+args:tenant_id,region");
/// assert!("tenant".parse::<Partition>().is_err());
/// ```
impl FromStr for Partition {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::Config(format!(
                "invalid partition `{text}`: {why}; write worker, args, args:KEY,KEY or worker+args:KEY"
            ))
        };
        let trimmed = text.trim();
        let (fields, keys) = match trimmed.split_once(':') {
            Some((fields, keys)) => (fields.trim(), Some(keys)),
            None => (trimmed, None),
        };
        let keys: Vec<String> = match keys {
            None => Vec::new(),
            Some(keys) => {
                let keys: Vec<String> = keys.split(',').map(|key| key.trim().to_owned()).collect();
                if keys.iter().any(String::is_empty) {
                    return Err(bad("an args key is empty"));
                }
                keys
            }
        };
        let mut worker = false;
        let mut args = false;
        if !(fields.is_empty() || fields.eq_ignore_ascii_case("none")) {
            for field in fields.split('+').map(str::trim) {
                match field.to_ascii_lowercase().as_str() {
                    "worker" if !worker => worker = true,
                    "args" if !args => args = true,
                    "worker" | "args" => return Err(bad(&format!("`{field}` is named twice"))),
                    _ => return Err(bad(&format!("`{field}` is neither worker nor args"))),
                }
            }
        }
        if !args && !keys.is_empty() {
            return Err(bad("keys follow `args`"));
        }
        Ok(match (worker, args) {
            (false, false) => Partition::None,
            (true, false) => Partition::Worker,
            (false, true) => Partition::Args(keys),
            (true, true) => Partition::WorkerArgs(keys),
        })
    }
}

/// ` by <partition>` when partitioned.
struct By<'a>(&'a Partition);

impl fmt::Display for By<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_partitioned() {
            write!(f, " by {}", self.0)?;
        }
        Ok(())
    }
}

impl fmt::Display for GlobalLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.allowed, By(&self.partition))
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}s{}",
            self.allowed,
            self.period.as_secs(),
            By(&self.partition)
        )
    }
}

/// ```
/// use std::time::Duration;
/// use oban_core::limits::{GlobalLimit, Limits, Partition, RateLimit};
/// let limits = Limits::new()
///     .global(GlobalLimit::new(10).partitioned(Partition::Worker))
///     .rate(RateLimit::new(100, Duration::from_secs(60)));
/// assert_eq!(limits.to_string(), "global 10 by worker, rate 100/60s");
/// assert_eq!(Limits::new().to_string(), "none");
/// ```
impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.global, &self.rate) {
            (None, None) => f.write_str("none"),
            (Some(global), None) => write!(f, "global {global}"),
            (None, Some(rate)) => write!(f, "rate {rate}"),
            (Some(global), Some(rate)) => write!(f, "global {global}, rate {rate}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_read_back_what_they_print() {
        for partition in [
            Partition::None,
            Partition::Worker,
            Partition::Args(Vec::new()),
            Partition::args(["tenant_id", "region"]),
            Partition::WorkerArgs(Vec::new()),
            Partition::WorkerArgs(vec!["k".into()]),
        ] {
            assert_eq!(
                partition.to_string().parse::<Partition>().unwrap(),
                partition
            );
        }
        assert_eq!("".parse::<Partition>().unwrap(), Partition::None);
        assert_eq!(
            " Args + WORKER : a ".parse::<Partition>().unwrap(),
            Partition::WorkerArgs(vec!["a".into()])
        );
    }

    #[test]
    fn bad_partitions_say_why() {
        for (text, why) in [
            ("tenant", "neither worker nor args"),
            ("args:a,,b", "empty"),
            ("args:", "empty"),
            ("worker:a", "keys follow `args`"),
            ("worker+worker", "named twice"),
        ] {
            let error = text.parse::<Partition>().unwrap_err().to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
