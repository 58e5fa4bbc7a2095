//! Notifications within the process: an in-process broadcast per database file stands in for
//! LISTEN/NOTIFY (see the hub).

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::hub::Hub;
use super::SqliteEngine;
use crate::engine::{Notifier, StopSignal};
use crate::error::Result;
use crate::job::{Job, JobState};
use crate::notifier::{Channel, Notice};

/// One insert notification per queue that received runnable jobs.
pub(super) fn notify_inserted(hub: &Hub, jobs: &[Job]) {
    let mut queues: Vec<&str> = Vec::new();
    for job in jobs {
        if job.state == JobState::Available
            && !job.conflict
            && !queues.contains(&job.queue.as_str())
        {
            queues.push(&job.queue);
        }
    }
    for queue in queues {
        hub.notify(Channel::Insert, json!({ "queue": queue }).to_string());
    }
}

#[async_trait]
impl Notifier for SqliteEngine {
    async fn notify(&self, channel: Channel, payload: Value) -> Result<()> {
        self.hub.notify(channel, payload.to_string());
        Ok(())
    }

    async fn listen(
        &self,
        sink: mpsc::UnboundedSender<Notice>,
        mut stop: StopSignal,
    ) -> Result<bool> {
        let mut notices = self.hub.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    received = notices.recv() => match received {
                        Ok((channel, payload)) => {
                            if let Some(notice) = Notice::decode(channel, &payload) {
                                if sink.send(notice).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::debug!(missed, "fell behind on notifications; waking every queue");
                            if sink.send(Notice::Reconnected).is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        Ok(true)
    }
}
