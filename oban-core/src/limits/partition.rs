//! [`Partition`]: how a limited queue's jobs are split, each part with the whole limit.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// How a limit splits a queue's jobs into partitions, each with the whole limit.
///
/// Stored as Elixir Oban Pro writes a partition (`{"fields": ["worker", "args"], "keys": [..]}`),
/// so that Oban Web reads it in a producer's heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Spec", into = "Spec")]
pub enum Partition {
    /// The whole queue is one partition.
    #[default]
    None,
    /// One partition per worker.
    Worker,
    /// One partition per value of these args keys (all of the args when the list is empty); a
    /// job without a key is in the partition of its missing value (`null`).
    Args(Vec<String>),
    /// One partition per worker and value of these args keys.
    WorkerArgs(Vec<String>),
}

impl Partition {
    /// The most args keys a partition may name (the claim's key is one expression the database
    /// computes for every job it passes over).
    pub const MAX_KEYS: usize = 4;

    /// One partition per value of these args keys.
    ///
    /// ```
    /// use oban_core::limits::Partition;
    /// let by_tenant = Partition::args(["tenant_id"]);
    /// assert_eq!(by_tenant, Partition::Args(vec!["tenant_id".into()]));
    /// ```
    pub fn args<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Partition::Args(keys.into_iter().map(Into::into).collect())
    }

    /// Whether the queue is split at all.
    pub fn is_partitioned(&self) -> bool {
        !matches!(self, Partition::None)
    }

    /// The partition of a job: what both engines compare. PostgreSQL computes its own form in
    /// SQL (`oban_rust_partition`); this one serves SQLite, and keys are never compared across
    /// engines.
    pub fn key(&self, worker: &str, args: &Value) -> String {
        let keys = |keys: &[String]| -> String {
            if keys.is_empty() {
                return args.to_string();
            }
            let values: Vec<&Value> = keys
                .iter()
                .map(|key| args.get(key).unwrap_or(&Value::Null))
                .collect();
            serde_json::to_string(&values).unwrap_or_default()
        };
        match self {
            Partition::None => String::new(),
            Partition::Worker => worker.to_owned(),
            Partition::Args(list) => format!("\u{1f}{}", keys(list)),
            Partition::WorkerArgs(list) => format!("{worker}\u{1f}{}", keys(list)),
        }
    }

    /// Checks the keys of `queue`'s partition: no empty names.
    pub(super) fn check(&self, queue: &str) -> Result<()> {
        match self {
            Partition::Args(keys) | Partition::WorkerArgs(keys)
                if keys.iter().any(|key| key.trim().is_empty()) =>
            {
                Err(Error::Config(format!(
                    "queue `{queue}`: a partition names an empty args key; name the keys, or none for all of the args"
                )))
            }
            Partition::Args(keys) | Partition::WorkerArgs(keys) if keys.len() > Self::MAX_KEYS => {
                Err(Error::Config(format!(
                    "queue `{queue}`: a partition names {} args keys; name at most {}, or none for all of the args",
                    keys.len(),
                    Self::MAX_KEYS
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The stored form.
#[derive(Serialize, Deserialize, Default)]
struct Spec {
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    keys: Vec<String>,
}

impl From<Spec> for Partition {
    fn from(spec: Spec) -> Self {
        let worker = spec.fields.iter().any(|field| field == "worker");
        let args = spec.fields.iter().any(|field| field == "args");
        match (worker, args) {
            (false, false) => Partition::None,
            (true, false) => Partition::Worker,
            (false, true) => Partition::Args(spec.keys),
            (true, true) => Partition::WorkerArgs(spec.keys),
        }
    }
}

impl From<Partition> for Spec {
    fn from(partition: Partition) -> Self {
        let (fields, keys): (&[&str], Vec<String>) = match partition {
            Partition::None => (&[], Vec::new()),
            Partition::Worker => (&["worker"], Vec::new()),
            Partition::Args(keys) => (&["args"], keys),
            Partition::WorkerArgs(keys) => (&["worker", "args"], keys),
        };
        Spec {
            fields: fields.iter().map(|field| (*field).to_owned()).collect(),
            keys,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_split_by_worker_and_args_values() {
        let args = json!({"tenant_id": 7, "other": 1});
        assert_eq!(Partition::None.key("W", &args), "");
        assert_eq!(Partition::Worker.key("W", &args), "W");
        let by_tenant = Partition::args(["tenant_id"]);
        assert_eq!(
            by_tenant.key("W", &args),
            by_tenant.key("V", &json!({"tenant_id": 7}))
        );
        assert_ne!(
            by_tenant.key("W", &args),
            by_tenant.key("W", &json!({"tenant_id": 8}))
        );
        assert_eq!(by_tenant.key("W", &json!({})), "\u{1f}[null]");
        let both = Partition::WorkerArgs(vec!["tenant_id".into()]);
        assert_ne!(both.key("W", &args), both.key("V", &args));
    }

    #[test]
    fn the_stored_form_is_pro_s() {
        let stored = serde_json::to_value(Partition::WorkerArgs(vec!["id".into()])).unwrap();
        assert_eq!(
            stored,
            json!({"fields": ["worker", "args"], "keys": ["id"]})
        );
        assert_eq!(
            serde_json::from_value::<Partition>(json!({})).unwrap(),
            Partition::None
        );
    }
}
