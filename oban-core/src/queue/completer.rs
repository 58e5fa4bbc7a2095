//! Records attempt outcomes in batches: one statement for every ack that arrived while the
//! previous statement was in flight, retried until the database takes it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::engine::{Ack, Engine};

/// Largest number of acks written in one statement.
const MAX_BATCH: usize = 5_000;

/// Sends acks to the completer task.
#[derive(Debug, Clone)]
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<Ack>,
}

impl Completer {
    /// Starts the completer task; it ends once every sender is dropped and all acks are written
    /// (or, when the database stays unreachable, once `give_up` fires).
    pub(crate) fn start(
        engine: Arc<dyn Engine>,
        give_up: tokio::sync::watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(run(engine, rx, give_up));
        (Self { tx }, handle)
    }

    /// Queues an ack for writing.
    pub(crate) fn push(&self, ack: Ack) {
        if let Err(mpsc::error::SendError(ack)) = self.tx.send(ack) {
            tracing::error!(
                job.id = ack.id,
                "completer already stopped; the lifeline will rescue this job"
            );
        }
    }
}

async fn run(
    engine: Arc<dyn Engine>,
    mut rx: mpsc::UnboundedReceiver<Ack>,
    mut give_up: tokio::sync::watch::Receiver<bool>,
) {
    let mut batch: Vec<Ack> = Vec::new();
    let mut delay = Duration::from_millis(50);
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(ack) => batch.push(ack),
                None => return,
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(ack) => batch.push(ack),
                Err(_) => break,
            }
        }
        match engine.job_ack_many(&batch).await {
            Ok(acked) => {
                if acked.len() < batch.len() {
                    tracing::debug!(
                        skipped = batch.len() - acked.len(),
                        "some acks found their job no longer executing that attempt (rescued or cancelled meanwhile)"
                    );
                }
                batch.clear();
                delay = Duration::from_millis(50);
            }
            Err(error) => {
                tracing::warn!(%error, pending = batch.len(), retry_in = ?delay, "could not record job outcomes; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = give_up.wait_for(|stop| *stop) => {
                        let ids: Vec<i64> = batch.iter().map(|a| a.id).collect();
                        tracing::error!(?ids, "gave up recording job outcomes at shutdown; the lifeline will rescue these jobs");
                        return;
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
