//! Records attempt outcomes in batches: one statement for the acks that arrive within a short
//! window (or while the previous statement was in flight).
//!
//! A batch the database refuses for its values is split so the acks it takes are recorded and a
//! refused one is recorded as a fallback or dropped ([`ack_split`](super::ack_split)); a batch
//! that cannot reach the database is retried with backoff until it does (or until shutdown gives
//! up). The backlog is bounded: while [`MAX_BACKLOG`] acks wait, producers claim no new jobs
//! ([`Completer::is_backlogged`]), so only the jobs already claimed can add to it. Pushing never
//! waits, so a producer handing its jobs back at shutdown never blocks on the completer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::ack_split::{self, Interrupted, Written};
use crate::engine::{Ack, Engine};

/// Largest number of acks written in one statement: a batch this size is written at once.
const MAX_BATCH: usize = 5_000;

/// Acks waiting to be recorded beyond which producers stop claiming jobs. The backlog can exceed
/// it only by the jobs already claimed (each queue's limit plus its claim-ahead), so memory stays
/// bounded however long the database is away.
pub(crate) const MAX_BACKLOG: usize = 2 * MAX_BATCH;

/// How long acks gather after the first one before they are written. Each statement costs a
/// round trip and a durable commit whatever its size; with 5 ms a busy node writes hundreds of
/// acks per statement (measured: 360 at 33,000 jobs/s, against 50 without a window), and a job's
/// completion is on record at most this much later (its slot is free at once).
const WINDOW: Duration = Duration::from_millis(5);

/// Sends acks to the completer task.
#[derive(Debug, Clone)]
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<Ack>,
    /// Acks pushed and not yet recorded or dropped.
    backlog: Arc<AtomicUsize>,
}

impl Completer {
    /// Starts the completer task; it ends once every sender is dropped and all acks are written
    /// (or, when the database stays unreachable, once `give_up` fires).
    pub(crate) fn start(
        engine: Arc<dyn Engine>,
        give_up: tokio::sync::watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let handle = tokio::spawn(run(engine, rx, give_up, Arc::clone(&backlog)));
        (Self { tx, backlog }, handle)
    }

    /// Queues an ack for writing; never waits.
    pub(crate) fn push(&self, ack: Ack) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(ack)) = self.tx.send(ack) {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(
                job.id = ack.id,
                "completer already stopped; the lifeline will rescue this job"
            );
        }
    }

    /// Whether [`MAX_BACKLOG`] acks wait to be recorded: producers then claim no new jobs.
    pub(crate) fn is_backlogged(&self) -> bool {
        self.backlog.load(Ordering::Relaxed) >= MAX_BACKLOG
    }
}

async fn run(
    engine: Arc<dyn Engine>,
    mut rx: mpsc::UnboundedReceiver<Ack>,
    mut give_up: tokio::sync::watch::Receiver<bool>,
    backlog: Arc<AtomicUsize>,
) {
    let mut batch: Vec<Ack> = Vec::new();
    let mut delay = Duration::from_millis(50);
    let mut closed = false;
    loop {
        if batch.is_empty() {
            if closed {
                return;
            }
            match rx.recv().await {
                Some(ack) => batch.push(ack),
                None => return,
            }
        }
        // Gather for a moment: one statement per window rather than one per ack.
        let until = tokio::time::Instant::now() + WINDOW;
        while batch.len() < MAX_BATCH && !closed {
            tokio::select! {
                biased;
                ack = rx.recv() => match ack {
                    Some(ack) => batch.push(ack),
                    None => closed = true,
                },
                () = tokio::time::sleep_until(until) => break,
            }
        }
        let size = batch.len();
        match ack_split::write(&*engine, std::mem::take(&mut batch)).await {
            Ok(written) => {
                backlog.fetch_sub(size, Ordering::Relaxed);
                report(&written);
                delay = Duration::from_millis(50);
            }
            Err(Interrupted {
                error,
                unwritten,
                written,
            }) => {
                backlog.fetch_sub(size - unwritten.len(), Ordering::Relaxed);
                report(&written);
                batch = unwritten;
                tracing::warn!(%error, pending = batch.len(), retry_in = ?delay, "could not record job outcomes; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = give_up.wait_for(|stop| *stop) => {
                        let ids: Vec<i64> = batch.iter().map(|a| a.id).collect();
                        backlog.fetch_sub(batch.len(), Ordering::Relaxed);
                        tracing::error!(?ids, "gave up recording job outcomes at shutdown; the lifeline will rescue these jobs");
                        return;
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn report(written: &Written) {
    if written.skipped > 0 {
        tracing::debug!(
            skipped = written.skipped,
            "some acks found their job no longer executing that attempt (rescued or cancelled meanwhile)"
        );
    }
    if written.fallbacks > 0 || written.dropped > 0 {
        tracing::warn!(
            fallbacks = written.fallbacks,
            dropped = written.dropped,
            recorded = written.acked,
            "the database refused some job outcomes; the others were recorded"
        );
    }
}
