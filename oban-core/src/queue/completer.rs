//! Records attempt outcomes in batches: one statement for the acks that arrive within a short
//! window (or while the previous statement was in flight).
//!
//! A batch the database refuses for its values is split so the acks it takes are recorded and a
//! refused one is recorded as a fallback or dropped ([`ack_split`](super::ack_split)); a batch
//! that cannot reach the database is retried with backoff until it does (or until shutdown gives
//! up). The backlog is bounded: while [`MAX_BACKLOG`] acks wait, producers claim no new jobs
//! ([`Completer::is_backlogged`]), so only the jobs already claimed can add to it. Pushing never
//! waits, so a producer handing its jobs back at shutdown never blocks on the completer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

use super::ack_split::{self, Interrupted, Written};
use crate::engine::{Ack, Channel, Engine};

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
    tx: mpsc::UnboundedSender<(Ack, Option<Arc<str>>)>,
    unrecorded: Unrecorded,
}

/// The jobs whose acks are queued or being written: still `executing` in the database, and
/// still held by the producer that pushed them (its heartbeat reports them, so the lifeline
/// leaves them alone; see `queue/held.rs`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Unrecorded(Arc<Mutex<HashMap<i64, u32>>>);

impl Unrecorded {
    fn add(&self, id: i64) {
        *self.lock().entry(id).or_insert(0) += 1;
    }

    fn remove(&self, ids: impl Iterator<Item = i64>) {
        let mut map = self.lock();
        for id in ids {
            if let Some(count) = map.get_mut(&id) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&id);
                }
            }
        }
    }

    /// How many jobs have acks still to be written.
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether an ack of job `id` is still to be written.
    pub(crate) fn contains(&self, id: i64) -> bool {
        self.lock().contains_key(&id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, u32>> {
        // The map holds counts only: a panic elsewhere cannot leave it half-updated.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Completer {
    /// Starts the completer task; it ends once every sender is dropped and all acks are written
    /// (or, when the database stays unreachable, once `give_up` fires).
    pub(crate) fn start(
        engine: Arc<dyn Engine>,
        give_up: tokio::sync::watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let unrecorded = Unrecorded::default();
        let handle = tokio::spawn(run(engine, rx, give_up, unrecorded.clone()));
        (Self { tx, unrecorded }, handle)
    }

    /// The acks still to be written.
    pub(crate) fn unrecorded(&self) -> &Unrecorded {
        &self.unrecorded
    }

    /// Queues an ack for writing; never waits.
    pub(crate) fn push(&self, ack: Ack) {
        self.send(ack, None);
    }

    /// Like [`push`](Self::push), for an ack that frees a slot of a queue limited across the
    /// fleet: once it is written, every node's producer of `queue` is woken (through the insert
    /// notification, which every node hears), since it may now claim what did not fit.
    pub(crate) fn push_freeing(&self, ack: Ack, queue: &str) {
        self.send(ack, Some(Arc::from(queue)));
    }

    fn send(&self, ack: Ack, freeing: Option<Arc<str>>) {
        self.unrecorded.add(ack.id);
        if let Err(mpsc::error::SendError((ack, _))) = self.tx.send((ack, freeing)) {
            self.unrecorded.remove(std::iter::once(ack.id));
            tracing::error!(
                job.id = ack.id,
                "completer already stopped; the lifeline will rescue this job"
            );
        }
    }

    /// Whether the acks of [`MAX_BACKLOG`] jobs wait to be recorded: producers then claim no new
    /// jobs.
    pub(crate) fn is_backlogged(&self) -> bool {
        self.unrecorded.len() >= MAX_BACKLOG
    }
}

async fn run(
    engine: Arc<dyn Engine>,
    mut rx: mpsc::UnboundedReceiver<(Ack, Option<Arc<str>>)>,
    mut give_up: tokio::sync::watch::Receiver<bool>,
    unrecorded: Unrecorded,
) {
    let mut batch: Vec<Ack> = Vec::new();
    // Limited queues with an ack in the batch: told once it is written.
    let mut freeing: Vec<Arc<str>> = Vec::new();
    let take = |(ack, queue): (Ack, Option<Arc<str>>),
                batch: &mut Vec<Ack>,
                freeing: &mut Vec<Arc<str>>| {
        batch.push(ack);
        if let Some(queue) = queue {
            if !freeing.contains(&queue) {
                freeing.push(queue);
            }
        }
    };
    let mut delay = Duration::from_millis(50);
    let mut closed = false;
    loop {
        if batch.is_empty() {
            if closed {
                return;
            }
            match rx.recv().await {
                Some(ack) => take(ack, &mut batch, &mut freeing),
                None => return,
            }
        }
        // Gather for a moment: one statement per window rather than one per ack. An ack that
        // frees a slot of a limited queue is written at once with what is already queued: until
        // it is, the slot stays taken on every node.
        let until = tokio::time::Instant::now() + WINDOW;
        while batch.len() < MAX_BATCH && !closed {
            if !freeing.is_empty() {
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(ack) => take(ack, &mut batch, &mut freeing),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                break;
            }
            tokio::select! {
                biased;
                ack = rx.recv() => match ack {
                    Some(ack) => take(ack, &mut batch, &mut freeing),
                    None => closed = true,
                },
                () = tokio::time::sleep_until(until) => break,
            }
        }
        let ids: Vec<i64> = batch.iter().map(|ack| ack.id).collect();
        match ack_split::write(&*engine, std::mem::take(&mut batch)).await {
            Ok(written) => {
                unrecorded.remove(ids.into_iter());
                report(&written);
                delay = Duration::from_millis(50);
                for queue in freeing.drain(..) {
                    let notice = serde_json::json!({ "queue": &*queue });
                    if let Err(error) = engine.notify(Channel::Insert, notice).await {
                        tracing::debug!(%queue, %error, "could not announce freed slots; nodes find them at their next poll");
                    }
                }
            }
            Err(Interrupted {
                error,
                unwritten,
                written,
            }) => {
                unrecorded.remove(written_ids(ids, &unwritten));
                report(&written);
                batch = unwritten;
                tracing::warn!(%error, pending = batch.len(), retry_in = ?delay, "could not record job outcomes; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = give_up.wait_for(|stop| *stop) => {
                        let ids: Vec<i64> = batch.iter().map(|a| a.id).collect();
                        unrecorded.remove(ids.iter().copied());
                        tracing::error!(?ids, "gave up recording job outcomes at shutdown; the lifeline will rescue these jobs");
                        return;
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The ids of `batch` (as pushed) whose acks are not among `unwritten`: those were recorded,
/// replaced by a fallback, or dropped.
fn written_ids(batch: Vec<i64>, unwritten: &[Ack]) -> impl Iterator<Item = i64> {
    let mut pending: HashMap<i64, usize> = HashMap::new();
    for ack in unwritten {
        *pending.entry(ack.id).or_insert(0) += 1;
    }
    batch
        .into_iter()
        .filter(move |id| match pending.get_mut(id) {
            Some(count) if *count > 0 => {
                *count -= 1;
                false
            }
            _ => true,
        })
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
