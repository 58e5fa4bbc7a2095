//! What a producer's heartbeat says it holds, so the lifeline can rescue a job whose claim
//! committed but whose row never reached the producer, while the node lives on.
//!
//! A claim commits before its rows reach the producer. A connection lost while they stream, a
//! row that fails to decode, or a fetch task that dies leaves jobs `executing` under a producer
//! that keeps heartbeating, and no rule based on liveness alone would ever rescue them. So, like
//! Oban Pro's DynamicLifeline, every heartbeat taken between fetches carries the ids the
//! producer holds (`held` in its `meta`), and the engine stamps it with the database's clock
//! (`held_at`). The lifeline rescues an `executing` job of a live producer when
//!
//! > the job was claimed before the producer's last snapshot (`attempted_at < held_at`), and the
//! > snapshot does not hold it.
//!
//! **Why a job in flight is never rescued.** The ids held are the jobs running, the jobs claimed
//! ahead and waiting for a slot, and the jobs whose ack the completer has not written yet (still
//! `executing` in the table). A snapshot is taken only while no fetch is in flight, and the
//! producer starts no fetch until the heartbeat statement has returned. Take a job claimed by
//! this producer at `attempted_at` (the claim transaction's start, database clock) and a snapshot
//! taken at instant S and written at `held_at` (the heartbeat transaction's start, same clock):
//!
//! - if the claim's fetch started after S, it started after the heartbeat statement returned, so
//!   `attempted_at > held_at`: the rule does not look at the job;
//! - otherwise the fetch had returned by S. Either its rows reached the producer, and from then on
//!   the job is running, waiting, or its ack is unwritten (held) until its ack leaves
//!   `executing` (then nothing is left to rescue), or the fetch failed, and the rows will never
//!   reach the producer: the job is lost, and rescuing it is right.
//!
//! This assumes one clock for claims and heartbeats that does not step backwards: the database
//! server's on PostgreSQL, the process clock on SQLite (a producer's claims and heartbeats come
//! from one process).
//!
//! A heartbeat due while a fetch is in flight is deferred until the fetch returns; if a fetch
//! outlasts a whole heartbeat interval, a heartbeat without `held` keeps the producer alive and
//! its previous snapshot in force. After a failed fetch the producer takes a snapshot at once, so
//! the jobs that fetch may have claimed are rescued at the lifeline's next pass.
//!
//! The extra keys leave the `oban_producers` table as Elixir Oban has it (no migration); other
//! Oban implementations ignore them, and their jobs keep the `unknown_after` rule. A snapshot is
//! a JSON array of at most `limit` running plus `limit` claimed-ahead ids, plus the acks
//! gathering for a few milliseconds.

use serde_json::{json, Value};

/// The `meta` key of the ids a producer holds.
pub(crate) const HELD: &str = "held";

/// A producer's heartbeat `meta`: its limit, whether it is paused, how many jobs run, and, when
/// the heartbeat is a snapshot (no fetch in flight), the ids it holds.
pub(crate) fn heartbeat_meta(
    limit: u32,
    paused: bool,
    running: usize,
    held: Option<Vec<i64>>,
) -> Value {
    let mut meta = json!({ "limit": limit, "paused": paused, "running": running });
    if let Some(held) = held {
        meta[HELD] = json!(held);
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_lists_the_held_ids_and_a_liveness_beat_does_not() {
        let snapshot = heartbeat_meta(5, false, 2, Some(vec![3, 1]));
        assert_eq!(snapshot[HELD], json!([3, 1]));
        let alive = heartbeat_meta(5, false, 2, None);
        assert!(alive.get(HELD).is_none());
        assert_eq!(alive["limit"], json!(5));
    }
}
