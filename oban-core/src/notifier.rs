//! Messages between nodes: what travels over PostgreSQL's LISTEN/NOTIFY.
//!
//! Channel names and payloads are Elixir Oban's (`public.oban_insert` with `{"queue": ..}`,
//! `public.oban_signal` with `{"action": "pause" | "resume" | "scale" | "start" | "stop" |
//! "pkill", ..}`, `public.oban_leader` with `{"down": name}`), so a pause sent from Oban Web or
//! an Elixir node reaches Rust nodes too. A node in another schema prefix uses that prefix in
//! place of `public` (`tenant_a.oban_signal`, as Elixir Oban does; see [`crate::Prefix`]).
//! Payloads travel as plain JSON or compressed, in the forms of [`payload`].

pub mod payload;

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

    /// The channel's name without its prefix (`oban_insert`, `oban_signal`, `oban_leader`);
    /// on PostgreSQL, a node listens on `{prefix}.{suffix}` (see [`crate::Prefix`]).
    pub const fn suffix(self) -> &'static str {
        match self {
            Channel::Insert => "oban_insert",
            Channel::Signal => "oban_signal",
            Channel::Leader => "oban_leader",
        }
    }
}

/// A control message for queues and running jobs (Oban's signal payload).
///
/// On the wire it is Elixir Oban's JSON object, with the fields its action uses:
/// `{"action":"pause","queue":"default","ident":"Oban.web-1"}`,
/// `{"action":"scale","queue":"default","limit":5}`, `{"action":"pkill","job_id":42}`.
/// A payload with an action this node does not act on decodes to [`Command::Ignored`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireSignal", into = "WireSignal")]
pub struct Signal {
    /// What to do: the `action`, with its `limit` or `job_id`.
    pub command: Command,
    /// The queue it concerns (all but `pkill`); absent or `"*"` for every queue.
    pub queue: Option<String>,
    /// The node it is for: `"Oban.<node>"` (Elixir Oban's `"#{inspect(name)}.#{node}"` for
    /// the instance named `Oban`), or absent / `"any"` for every node.
    pub ident: Option<String>,
}

/// What a [`Signal`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `pause`: stop fetching new jobs (running ones finish).
    Pause,
    /// `resume`: fetch again.
    Resume,
    /// `scale`: change the concurrency limit to this.
    Scale(u32),
    /// `start`: run the queue, with this limit, where it is not running yet.
    Start(u32),
    /// `stop`: stop running the queue.
    Stop,
    /// `pkill`: stop the running job with this id.
    Kill(i64),
    /// `rust_limits`: the queue's fleet-wide limits changed in the database; read them again
    /// (this runtime's own action, which Elixir and Python Oban ignore).
    Limits,
    /// An action this node does not act on, by name: an unknown one, or `scale` / `start`
    /// without a `limit`, or `pkill` without a `job_id`.
    Ignored(String),
}

impl Command {
    /// The wire name of this command's action (`"pause"`, ..., `"pkill"`).
    pub fn action(&self) -> &str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Scale(_) => "scale",
            Command::Start(_) => "start",
            Command::Stop => "stop",
            Command::Kill(_) => "pkill",
            Command::Limits => "rust_limits",
            Command::Ignored(action) => action,
        }
    }
}

impl Signal {
    /// Whether a node named `node` should act on this signal: Elixir Oban's `in_scope?`, for
    /// which a signal with no `ident` or `"any"` is for every node, and any other `ident` only
    /// for the node whose `"Oban.<node>"` it equals exactly (an ident of another instance name,
    /// such as `"MyApp.Oban.web-1"`, or a bare node name, is for no node here).
    pub fn is_for(&self, node: &str) -> bool {
        match self.ident.as_deref() {
            None | Some("any") => true,
            Some(ident) => ident
                .strip_prefix("Oban.")
                .is_some_and(|ident_node| ident_node == node),
        }
    }
}

/// A signal as Oban's JSON has it: every field flat, the unused ones left out.
#[derive(Serialize, Deserialize)]
struct WireSignal {
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ident: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job_id: Option<i64>,
}

impl From<WireSignal> for Signal {
    fn from(wire: WireSignal) -> Self {
        let command = match (wire.action.as_str(), wire.limit, wire.job_id) {
            ("pause", _, _) => Command::Pause,
            ("resume", _, _) => Command::Resume,
            ("scale", Some(limit), _) => Command::Scale(limit),
            ("start", Some(limit), _) => Command::Start(limit),
            ("stop", _, _) => Command::Stop,
            ("pkill", _, Some(job_id)) => Command::Kill(job_id),
            ("rust_limits", _, _) => Command::Limits,
            _ => Command::Ignored(wire.action),
        };
        Signal {
            command,
            queue: wire.queue,
            ident: wire.ident,
        }
    }
}

impl From<Signal> for WireSignal {
    fn from(signal: Signal) -> Self {
        let (limit, job_id) = match signal.command {
            Command::Scale(limit) | Command::Start(limit) => (Some(limit), None),
            Command::Kill(job_id) => (None, Some(job_id)),
            _ => (None, None),
        };
        WireSignal {
            action: signal.command.action().to_owned(),
            queue: signal.queue,
            ident: signal.ident,
            limit,
            job_id,
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
    /// The holder of the leadership row `name` in `oban_peers` resigned; elect now.
    LeaderDown {
        /// The row's name: `"Oban"` (shared with Elixir Oban) or this runtime's own row.
        name: String,
    },
    /// The listening connection was lost and re-established: notices may have been missed.
    Reconnected,
}

impl Notice {
    /// Decodes a payload received on `channel`, in any of the forms of [`payload`]; `None` for
    /// payloads this node does not use. A payload that cannot be read (malformed compression,
    /// not JSON) is logged at `warn` with its channel and its first characters, one that is
    /// JSON of a shape this node does not use at `debug`; either is dropped.
    pub fn decode(channel: Channel, payload: &str) -> Option<Self> {
        let value: Value = match payload::decode(payload)
            .map_err(|error| error.to_string())
            .and_then(|json| serde_json::from_str(&json).map_err(|error| error.to_string()))
        {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!(
                    channel = channel.suffix(),
                    payload = payload::prefix(payload),
                    %error,
                    "dropped a notification that could not be decoded"
                );
                return None;
            }
        };
        let notice = match channel {
            Channel::Insert => {
                value
                    .get("queue")
                    .and_then(Value::as_str)
                    .map(|queue| Notice::Insert {
                        queue: queue.to_owned(),
                    })
            }
            Channel::Signal => serde_json::from_value(value).ok().map(Notice::Signal),
            Channel::Leader => {
                value
                    .get("down")
                    .and_then(Value::as_str)
                    .map(|name| Notice::LeaderDown {
                        name: name.to_owned(),
                    })
            }
        };
        if notice.is_none() {
            tracing::debug!(
                channel = channel.suffix(),
                payload = payload::prefix(payload),
                "ignored a notification of a shape this node does not use"
            );
        }
        notice
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
        assert_eq!(signal.command, Command::Scale(5));
        assert!(signal.is_for("web-1"));
        assert!(!signal.is_for("web-2"));
        assert_eq!(
            Notice::decode(Channel::Leader, r#"{"down":"Oban"}"#),
            Some(Notice::LeaderDown {
                name: "Oban".into()
            })
        );
        assert_eq!(Notice::decode(Channel::Insert, "not json"), None);
        assert_eq!(Notice::decode(Channel::Insert, "Z:%%%"), None);
        assert_eq!(Notice::decode(Channel::Signal, "H4sIAAAA"), None);
    }

    #[test]
    fn idents_scope_signals_as_elixir_does() {
        let to = |ident: Option<&str>| Signal {
            command: Command::Pause,
            queue: None,
            ident: ident.map(str::to_owned),
        };
        assert!(to(None).is_for("web-1"));
        assert!(to(Some("any")).is_for("web-1"));
        assert!(to(Some("Oban.web-1")).is_for("web-1"));
        assert!(!to(Some("Oban.web-2")).is_for("web-1"));
        // Another instance name, and a bare node name, match no node here (Elixir compares the
        // whole `"#{inspect(name)}.#{node}"`).
        assert!(!to(Some("MyApp.Oban.web-1")).is_for("web-1"));
        assert!(!to(Some("web-1")).is_for("web-1"));
        // A node whose own name contains dots.
        assert!(to(Some("Oban.web@host.local")).is_for("web@host.local"));
    }

    #[test]
    fn signals_keep_obans_json() {
        let signal = |command, queue: Option<&str>, ident: Option<&str>| Signal {
            command,
            queue: queue.map(str::to_owned),
            ident: ident.map(str::to_owned),
        };
        for (signal, json) in [
            (
                signal(Command::Pause, Some("q"), Some("Oban.node")),
                r#"{"action":"pause","queue":"q","ident":"Oban.node"}"#,
            ),
            (
                signal(Command::Resume, Some("q"), None),
                r#"{"action":"resume","queue":"q"}"#,
            ),
            (
                signal(Command::Scale(5), Some("q"), None),
                r#"{"action":"scale","queue":"q","limit":5}"#,
            ),
            (
                signal(Command::Start(3), Some("q"), Some("Oban.b")),
                r#"{"action":"start","queue":"q","ident":"Oban.b","limit":3}"#,
            ),
            (
                signal(Command::Stop, Some("q"), None),
                r#"{"action":"stop","queue":"q"}"#,
            ),
            (
                signal(Command::Kill(42), None, None),
                r#"{"action":"pkill","job_id":42}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&signal).unwrap(), json);
            assert_eq!(
                Notice::decode(Channel::Signal, json),
                Some(Notice::Signal(signal))
            );
        }
        // Actions this node does not act on decode, to be ignored.
        for (json, action) in [
            (r#"{"action":"pause_all","queue":"q"}"#, "pause_all"),
            (r#"{"action":"scale","queue":"q"}"#, "scale"),
            (r#"{"action":"pkill","queue":"q"}"#, "pkill"),
        ] {
            let Some(Notice::Signal(signal)) = Notice::decode(Channel::Signal, json) else {
                panic!("a signal")
            };
            assert_eq!(signal.command, Command::Ignored(action.into()));
        }
        // Payloads that are not signals are dropped.
        assert_eq!(Notice::decode(Channel::Signal, r#"{"queue":"q"}"#), None);
        assert_eq!(
            Notice::decode(Channel::Signal, r#"{"action":"scale","limit":-1}"#),
            None
        );
    }
}
