//! Messages between nodes: what travels over PostgreSQL's LISTEN/NOTIFY.
//!
//! Channel names and payloads are Elixir Oban's (`public.oban_insert` with `{"queue": ..}`,
//! `public.oban_signal` with `{"action": "pause" | "resume" | "scale" | "start" | "stop" |
//! "pkill", ..}`, `public.oban_leader` with `{"down": name}`), so a pause sent from Oban Web or
//! an Elixir node reaches Rust nodes too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A notification channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Jobs were inserted or staged into a queue.
    Insert,
    /// Queue and job control.
    Signal,
    /// Leadership changes.
    Leader,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 3] = [Channel::Insert, Channel::Signal, Channel::Leader];

    /// The PostgreSQL channel name.
    pub const fn name(self) -> &'static str {
        match self {
            Channel::Insert => "public.oban_insert",
            Channel::Signal => "public.oban_signal",
            Channel::Leader => "public.oban_leader",
        }
    }

    /// The channel with this PostgreSQL name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// A control message for queues and running jobs (Oban's signal payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// `pause`, `resume`, `scale`, `start`, `stop` or `pkill`.
    pub action: String,
    /// The queue it concerns (all but `pkill`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The node it is for: `"Oban.<node>"`, or absent / `"any"` for every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ident: Option<String>,
    /// The new limit (`scale`, `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The job to stop (`pkill`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
}

impl Signal {
    /// Whether a node named `node` should act on this signal.
    pub fn is_for(&self, node: &str) -> bool {
        match self.ident.as_deref() {
            None | Some("any") => true,
            Some(ident) => ident.strip_prefix("Oban.").unwrap_or(ident) == node,
        }
    }
}

/// A notification as received, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Runnable jobs arrived in `queue`.
    Insert {
        /// The queue.
        queue: String,
    },
    /// A control message.
    Signal(Signal),
    /// The leader stopped; elect a new one now.
    LeaderDown,
    /// The listening connection was lost and re-established: notices may have been missed.
    Reconnected,
}

impl Notice {
    /// Decodes a payload received on `channel`; `None` for payloads this node does not use.
    pub fn decode(channel: Channel, payload: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(payload).ok()?;
        match channel {
            Channel::Insert => Some(Notice::Insert {
                queue: value.get("queue")?.as_str()?.to_owned(),
            }),
            Channel::Signal => serde_json::from_value(value).ok().map(Notice::Signal),
            Channel::Leader => value.get("down").map(|_| Notice::LeaderDown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_obans_payloads() {
        assert_eq!(
            Notice::decode(Channel::Insert, r#"{"queue":"mailers"}"#),
            Some(Notice::Insert {
                queue: "mailers".into()
            })
        );
        let Some(Notice::Signal(signal)) = Notice::decode(
            Channel::Signal,
            r#"{"action":"scale","queue":"default","limit":5,"ident":"Oban.web-1"}"#,
        ) else {
            panic!("a signal")
        };
        assert_eq!(signal.limit, Some(5));
        assert!(signal.is_for("web-1"));
        assert!(!signal.is_for("web-2"));
        assert_eq!(
            Notice::decode(Channel::Leader, r#"{"down":"Oban"}"#),
            Some(Notice::LeaderDown)
        );
        assert_eq!(Notice::decode(Channel::Insert, "not json"), None);
    }
}
