//! Writes a batch of acks so that one the database refuses never holds back the others.
//!
//! An error the acks' values cause ([`Engine::is_data_error`]) splits the batch in halves until
//! the refused acks stand alone; the rest are written. A refused ack is written again as its
//! [`Ack::fallback`] (the same outcome, its error replaced by a note saying why the original
//! could not be stored); if even that is refused, it is logged with the job id and dropped: the
//! producer's next heartbeat no longer lists the job as held, so the lifeline's next pass makes
//! it available again (see `queue/held.rs`), and the attempt it ran counts. Any other error (a
//! lost connection, a pool timeout) stops the write and returns what is still unwritten, to be
//! retried as it is.

use async_trait::async_trait;

use crate::engine::{Ack, Engine};
use crate::error::{Error, Result};

/// Where acks are written: an engine, or a fake in tests.
#[async_trait]
pub(crate) trait AckSink: Send + Sync {
    /// See [`Engine::job_ack_many`].
    async fn write(&self, acks: &[Ack]) -> Result<Vec<i64>>;
    /// See [`Engine::is_data_error`].
    fn is_data_error(&self, error: &Error) -> bool;
}

#[async_trait]
impl<E: Engine + ?Sized> AckSink for E {
    async fn write(&self, acks: &[Ack]) -> Result<Vec<i64>> {
        self.job_ack_many(acks).await
    }

    fn is_data_error(&self, error: &Error) -> bool {
        Engine::is_data_error(self, error)
    }
}

/// What became of a batch that was written to the end.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Written {
    /// Acks recorded as they were.
    pub(crate) acked: usize,
    /// Acks whose job no longer ran that attempt (rescued or cancelled meanwhile).
    pub(crate) skipped: usize,
    /// Acks the database refused, recorded as their fallback.
    pub(crate) fallbacks: usize,
    /// Acks refused even as a fallback: logged and dropped.
    pub(crate) dropped: usize,
}

/// A write that stopped on an error retrying may fix.
#[derive(Debug)]
pub(crate) struct Interrupted {
    /// The error.
    pub(crate) error: Error,
    /// The acks not written yet, in their order (refused acks already replaced by fallbacks).
    pub(crate) unwritten: Vec<Ack>,
    /// What was written before the error.
    pub(crate) written: Written,
}

/// Writes `batch`, splitting it around the acks the database refuses.
pub(crate) async fn write<S: AckSink + ?Sized>(
    sink: &S,
    batch: Vec<Ack>,
) -> std::result::Result<Written, Interrupted> {
    let mut written = Written::default();
    // Chunks still to write; the last is next (halves are pushed second half first).
    let mut pending: Vec<Vec<Ack>> = vec![batch];
    while let Some(mut chunk) = pending.pop() {
        if chunk.is_empty() {
            continue;
        }
        let error = match sink.write(&chunk).await {
            Ok(ids) => {
                written.acked += ids.len();
                written.skipped += chunk.len().saturating_sub(ids.len());
                continue;
            }
            Err(error) => error,
        };
        if !sink.is_data_error(&error) {
            return Err(interrupted(error, chunk, pending, written));
        }
        if chunk.len() > 1 {
            let second = chunk.split_off(chunk.len() / 2);
            pending.push(second);
            pending.push(chunk);
            continue;
        }
        // One ack, refused on its own: record its fallback instead.
        let ack = chunk.remove(0);
        tracing::warn!(
            job.id = ack.id,
            %error,
            "the database refused this job's outcome; recording it without its error and meta"
        );
        let fallback = ack.fallback(&error.to_string());
        match sink.write(std::slice::from_ref(&fallback)).await {
            Ok(ids) => {
                written.fallbacks += ids.len();
                written.skipped += 1 - ids.len().min(1);
            }
            Err(again) if !sink.is_data_error(&again) => {
                return Err(interrupted(again, vec![fallback], pending, written));
            }
            Err(again) => {
                tracing::error!(
                    job.id = ack.id,
                    error = %again,
                    first_error = %error,
                    state = ack.state.as_str(),
                    "the database refused this job's outcome even without its error and meta; \
                     dropping it: the lifeline makes the job available again within seconds"
                );
                written.dropped += 1;
            }
        }
    }
    Ok(written)
}

fn interrupted(
    error: Error,
    chunk: Vec<Ack>,
    pending: Vec<Vec<Ack>>,
    written: Written,
) -> Interrupted {
    let mut unwritten = chunk;
    unwritten.extend(pending.into_iter().rev().flatten());
    Interrupted {
        error,
        unwritten,
        written,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::job::JobState;

    /// Refuses (as a data error) any batch holding an error containing `bad`, or, while
    /// `offline`, every batch (as a connection error); records what it took.
    #[derive(Default)]
    struct Fake {
        refuse_fallbacks: bool,
        offline_after: Mutex<Option<usize>>,
        statements: Mutex<usize>,
        stored: Mutex<Vec<Ack>>,
    }

    #[async_trait]
    impl AckSink for Fake {
        async fn write(&self, acks: &[Ack]) -> Result<Vec<i64>> {
            *self.statements.lock().unwrap() += 1;
            if let Some(left) = self.offline_after.lock().unwrap().as_mut() {
                if *left == 0 {
                    return Err(Error::Database(sqlx::Error::PoolTimedOut));
                }
                *left -= 1;
            }
            let refused = |ack: &Ack| {
                let text = ack
                    .error
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                text.contains("bad") || (self.refuse_fallbacks && text.contains("not be stored"))
            };
            if acks.iter().any(refused) {
                return Err(Error::InvalidJob("refused".into()));
            }
            self.stored.lock().unwrap().extend(acks.iter().cloned());
            Ok(acks.iter().map(|a| a.id).collect())
        }

        fn is_data_error(&self, error: &Error) -> bool {
            crate::engine::is_data_error(error)
        }
    }

    fn ack(id: i64, error: &str) -> Ack {
        Ack {
            id,
            attempted_at: chrono::NaiveDateTime::default(),
            state: JobState::Retryable,
            schedule_in: Some(Duration::from_secs(1)),
            give_back_attempt: false,
            error: Some(json!({ "attempt": 1, "error": error })),
            meta: None,
        }
    }

    fn batch(n: i64, bad: &[i64]) -> Vec<Ack> {
        (1..=n)
            .map(|id| ack(id, if bad.contains(&id) { "bad" } else { "fine" }))
            .collect()
    }

    fn stored(fake: &Fake) -> Vec<(i64, String)> {
        let mut stored: Vec<(i64, String)> = fake
            .stored
            .lock()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a.id,
                    a.error.as_ref().unwrap()["error"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect();
        stored.sort();
        stored
    }

    #[tokio::test]
    async fn one_refused_ack_does_not_hold_back_the_others() {
        let fake = Fake::default();
        let written = write(&fake, batch(100, &[37])).await.unwrap();
        assert_eq!(written.acked, 99);
        assert_eq!(written.fallbacks, 1);
        assert_eq!(written.dropped, 0);
        let stored = stored(&fake);
        assert_eq!(stored.len(), 100);
        assert!(
            stored[36].1.contains("could not be stored"),
            "{:?}",
            stored[36]
        );
        assert!(stored
            .iter()
            .filter(|(id, _)| *id != 37)
            .all(|(_, e)| e == "fine"));
        // Bisection, not one statement per ack: about 2 log2(100) statements.
        let statements = *fake.statements.lock().unwrap();
        assert!(statements <= 16, "{statements} statements");
    }

    #[tokio::test]
    async fn several_refused_acks_each_get_their_fallback() {
        let fake = Fake::default();
        let written = write(&fake, batch(64, &[1, 2, 40, 64])).await.unwrap();
        assert_eq!((written.acked, written.fallbacks), (60, 4));
        assert_eq!(stored(&fake).len(), 64);
    }

    #[tokio::test]
    async fn an_ack_refused_even_as_a_fallback_is_dropped() {
        let fake = Fake {
            refuse_fallbacks: true,
            ..Fake::default()
        };
        let written = write(&fake, batch(10, &[5])).await.unwrap();
        assert_eq!(
            (written.acked, written.fallbacks, written.dropped),
            (9, 0, 1)
        );
        assert!(stored(&fake).iter().all(|(id, _)| *id != 5));
    }

    #[tokio::test]
    async fn a_connection_error_returns_what_is_unwritten_in_order() {
        // The whole batch is refused for its data, its first half written, then the connection
        // drops.
        let fake = Fake {
            offline_after: Mutex::new(Some(2)),
            ..Fake::default()
        };
        let interrupted = write(&fake, batch(8, &[7])).await.unwrap_err();
        assert!(!crate::engine::is_data_error(&interrupted.error));
        assert_eq!(interrupted.written.acked, 4);
        let ids: Vec<i64> = interrupted.unwritten.iter().map(|a| a.id).collect();
        assert_eq!(ids, vec![5, 6, 7, 8]);
    }
}
