//! One producer per queue per node: keeps up to `limit` jobs of its queue running, obeys control
//! messages (pause, resume, scale, stop, kill a job) and records a heartbeat the lifeline trusts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::engine::{Ack, Engine, FetchCursor, StopSignal};
use crate::job::Job;
use crate::queue::completer::Completer;
use crate::queue::executor;
use crate::registry::Registry;
use crate::state::StateMap;

/// A control message for one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Pause,
    Resume,
    Scale(u32),
    /// Stop fetching; running jobs get until the deadline.
    Stop(Instant),
    /// Abort this job if it runs here, and record it as cancelled.
    Kill(i64),
}

/// What a producer needs, shared with its node.
pub(crate) struct ProducerConfig {
    pub(crate) queue: String,
    pub(crate) limit: u32,
    pub(crate) paused: bool,
    pub(crate) node: Arc<str>,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) state: Arc<StateMap>,
    pub(crate) completer: Completer,
    pub(crate) poll_interval: Duration,
    /// While jobs run, how long demand may accumulate before a fetch (Oban's dispatch cooldown):
    /// one fetch then serves many freed slots.
    pub(crate) dispatch_cooldown: Duration,
    pub(crate) heartbeat_interval: Duration,
    /// Wakes the producer: jobs were inserted or staged for its queue.
    pub(crate) wake: Arc<Notify>,
    pub(crate) control: mpsc::UnboundedReceiver<Control>,
    /// The node's stop: `Some(deadline)` once it stops.
    pub(crate) stop: StopSignal,
}

/// A job running here.
struct Running {
    job_id: i64,
    attempt: i32,
    attempted_at: chrono::NaiveDateTime,
    abort: AbortHandle,
    killed: bool,
}

/// What a fetch in flight brings back.
struct Fetched {
    /// How many jobs it asked for.
    asked: u32,
    /// The wake-up generation it started in.
    generation: u64,
    /// Whether it started after a cursor rather than at the head of the queue.
    from_cursor: bool,
    jobs: crate::error::Result<Vec<Job>>,
}

/// What a producer knows of its queue between fetches.
struct Lookout {
    /// The queue may have available jobs.
    more: bool,
    /// Wake-ups so far: a fetch that comes back short means an empty queue only if none came
    /// while it was in flight.
    generation: u64,
    /// Where the last full batch ended, while nothing suggests that jobs sorting before it
    /// appeared: any wake-up (an insert, staging, a control message, the poll tick) clears it,
    /// so such a job waits at most until the next one.
    cursor: Option<FetchCursor>,
}

impl Lookout {
    /// Something may have made jobs available, anywhere in the queue's order.
    fn woken(&mut self) {
        self.more = true;
        self.generation += 1;
        self.cursor = None;
    }

    /// A fetch asked for `asked` jobs and got `jobs`.
    fn fetched(&mut self, asked: u32, started_in: u64, from_cursor: bool, jobs: &[Job]) {
        let woken = started_in != self.generation;
        if (jobs.len() as u32) < asked {
            if from_cursor {
                // Nothing left after the cursor: look from the head next.
                self.cursor = None;
            } else if !woken {
                // The queue is empty, and nothing woke it meanwhile.
                self.more = false;
            }
        } else if !woken {
            // Full: continue after it next time, unless a wake-up since may have brought jobs
            // that sort earlier.
            self.cursor = self.cursor.max(jobs.iter().map(FetchCursor::of).max());
        }
    }
}

/// Runs the producer until the node or the queue stops.
///
/// One fetch at a time runs beside the jobs (so completions, heartbeats and control messages are
/// handled while it is in flight), for `limit` minus the running jobs. It starts when the queue
/// may have jobs and either nothing runs (an idle queue answers at once) or demand has waited
/// `dispatch_cooldown` (so finishing jobs are fetched for in batches). Measured on no-op jobs
/// with two fetches in flight, each for half the slots: more statements, more contention on the
/// head of the queue, and 7 % fewer jobs per second than one fetch for all the free slots.
pub(crate) async fn run(mut config: ProducerConfig) {
    let uuid = uuid::Uuid::new_v4();
    let attempted_by: Arc<[String]> = Arc::from(vec![config.node.to_string(), uuid.to_string()]);
    let mut stop = config.stop.clone();
    let mut tasks: JoinSet<Ack> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, Running> = HashMap::new();
    // The fetch in flight, if any.
    let mut fetching: JoinSet<Fetched> = JoinSet::new();
    let mut heartbeat = tokio::time::interval(config.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset(); // the first beat is sent below, before the first fetch
    let mut poll = tokio::time::interval(config.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.reset();
    let mut lookout = Lookout {
        more: true,
        generation: 0,
        cursor: None,
    };
    // When free slots first waited for a fetch (for the cooldown).
    let mut demand_since: Option<Instant> = None;
    // After a failed fetch, no new one before this.
    let mut retry_at: Option<Instant> = None;
    let mut error_delay = Duration::from_millis(100);
    let mut deadline: Option<Instant> = None;

    tracing::debug!(queue = %config.queue, limit = config.limit, %uuid, "producer started");
    // The heartbeat precedes the first fetch so the lifeline never mistakes our jobs for orphans.
    beat(&config, uuid, tasks.len()).await;

    while deadline.is_none() {
        // Start a fetch when demand and the rules allow.
        let mut cooldown_until: Option<Instant> = None;
        let free = config.limit.saturating_sub(tasks.len() as u32);
        let now = Instant::now();
        if free == 0 {
            demand_since = None;
        } else if lookout.more
            && !config.paused
            && fetching.is_empty()
            && retry_at.is_none_or(|at| now >= at)
        {
            let since = *demand_since.get_or_insert(now);
            if !tasks.is_empty() && now < since + config.dispatch_cooldown {
                cooldown_until = Some(since + config.dispatch_cooldown);
            } else {
                demand_since = None;
                let engine = Arc::clone(&config.engine);
                let queue = config.queue.clone();
                let by = Arc::clone(&attempted_by);
                let started_in = lookout.generation;
                let after = lookout.cursor;
                fetching.spawn(async move {
                    let jobs = engine.job_fetch_available(&queue, free, &by, after).await;
                    Fetched {
                        asked: free,
                        generation: started_in,
                        from_cursor: after.is_some(),
                        jobs,
                    }
                });
            }
        }

        tokio::select! {
            () = config.wake.notified() => lookout.woken(),
            _ = poll.tick() => lookout.woken(),
            () = tokio::time::sleep_until(cooldown_until.unwrap_or_else(Instant::now)), if cooldown_until.is_some() => {}
            () = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                retry_at = None;
            }
            Some(done) = fetching.join_next(), if !fetching.is_empty() => {
                let Fetched { asked, generation: started_in, from_cursor, jobs: result } = match done {
                    Ok(fetched) => fetched,
                    Err(error) => {
                        // Not reachable short of a panic in the engine: the jobs it may have
                        // claimed are the lifeline's.
                        tracing::error!(queue = %config.queue, %error, "a fetch task failed");
                        retry_at = Some(Instant::now() + error_delay);
                        continue;
                    }
                };
                match result {
                    Ok(jobs) => {
                        error_delay = Duration::from_millis(100);
                        lookout.fetched(asked, started_in, from_cursor, &jobs);
                        for job in jobs {
                            spawn_job(job, &config, &mut tasks, &mut running);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(queue = %config.queue, %error, retry_in = ?error_delay, "fetching jobs failed; backing off");
                        retry_at = Some(Instant::now() + error_delay);
                        error_delay = (error_delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                finish(done, &mut running, &config);
                // Reap whatever else finished meanwhile, so demand is current.
                while let Some(done) = tasks.try_join_next_with_id() {
                    finish(done, &mut running, &config);
                }
            }
            _ = heartbeat.tick() => {
                beat(&config, uuid, tasks.len()).await;
            }
            control = config.control.recv() => match control {
                Some(Control::Kill(job_id)) => kill(job_id, &mut running),
                Some(Control::Stop(at)) => deadline = Some(at),
                Some(other) => {
                    apply(&mut config, other);
                    lookout.woken();
                    beat(&config, uuid, tasks.len()).await;
                }
                // The node handle is gone without `shutdown`: stop at once.
                None => deadline = Some(Instant::now()),
            },
            changed = stop.changed() => {
                deadline = match changed {
                    Ok(()) => *stop.borrow(),
                    Err(_) => Some(Instant::now()),
                };
            }
        }
    }

    // Stopping: a fetch in flight hands its jobs straight back (none has started), running
    // jobs get until the deadline, then the rest are handed back.
    let deadline = deadline.unwrap_or_else(Instant::now);
    tracing::debug!(queue = %config.queue, running = tasks.len(), "producer stopping");
    while let Some(done) = fetching.join_next().await {
        if let Ok(Fetched { jobs: Ok(jobs), .. }) = done {
            for job in jobs {
                config.completer.push(executor::released(&job));
            }
        }
    }
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next_with_id() => match done {
                Some(done) => finish(done, &mut running, &config),
                None => break,
            },
            Some(Control::Kill(job_id)) = config.control.recv() => kill(job_id, &mut running),
            () = tokio::time::sleep_until(deadline) => {
                tasks.abort_all();
                while let Some(done) = tasks.join_next_with_id().await {
                    finish(done, &mut running, &config);
                }
            }
        }
    }
    for (_, job) in running.drain() {
        config.completer.push(executor::interrupted(
            job.job_id,
            job.attempt,
            job.attempted_at,
            &config.node,
        ));
    }
    if let Err(error) = config.engine.producer_delete(uuid).await {
        tracing::warn!(queue = %config.queue, %error, "could not remove the producer's heartbeat row");
    }
    tracing::debug!(queue = %config.queue, "producer stopped");
}

/// Starts `job` in its own task.
fn spawn_job(
    job: Job,
    config: &ProducerConfig,
    tasks: &mut JoinSet<Ack>,
    running: &mut HashMap<tokio::task::Id, Running>,
) {
    let job_id = job.id;
    let attempt = job.attempt;
    let attempted_at = job
        .attempted_at
        .map(|at| at.naive_utc())
        .unwrap_or_default();
    let abort = tasks.spawn(executor::execute(
        job,
        Arc::clone(&config.registry),
        Arc::clone(&config.state),
        Arc::clone(&config.node),
    ));
    running.insert(
        abort.id(),
        Running {
            job_id,
            attempt,
            attempted_at,
            abort,
            killed: false,
        },
    );
}

fn apply(config: &mut ProducerConfig, control: Control) {
    match control {
        Control::Pause => config.paused = true,
        Control::Resume => config.paused = false,
        Control::Scale(limit) => config.limit = limit.max(1),
        Control::Stop(_) | Control::Kill(_) => {}
    }
    tracing::info!(queue = %config.queue, limit = config.limit, paused = config.paused, "queue changed");
    config.wake.notify_one();
}

fn kill(job_id: i64, running: &mut HashMap<tokio::task::Id, Running>) {
    if let Some(job) = running.values_mut().find(|job| job.job_id == job_id) {
        tracing::info!(job.id = job_id, "stopping a running job on request");
        job.killed = true;
        job.abort.abort();
    }
}

async fn beat(config: &ProducerConfig, uuid: uuid::Uuid, running: usize) {
    let meta = json!({ "limit": config.limit, "paused": config.paused, "running": running });
    if let Err(error) = config
        .engine
        .producer_heartbeat(uuid, &config.node, &config.queue, meta)
        .await
    {
        tracing::warn!(queue = %config.queue, %error, "producer heartbeat failed");
    }
}

fn finish(
    done: Result<(tokio::task::Id, Ack), tokio::task::JoinError>,
    running: &mut HashMap<tokio::task::Id, Running>,
    config: &ProducerConfig,
) {
    match done {
        Ok((id, ack)) => {
            running.remove(&id);
            config.completer.push(ack);
        }
        Err(error) => {
            // Killed on request: recorded as cancelled. Aborted at the shutdown deadline: left
            // in `running` and handed back by the caller. (Panics are caught inside the task.)
            let killed = running.get(&error.id()).is_some_and(|job| job.killed);
            if killed {
                if let Some(job) = running.remove(&error.id()) {
                    config.completer.push(executor::killed(
                        job.job_id,
                        job.attempt,
                        job.attempted_at,
                    ));
                }
            } else if !error.is_cancelled() {
                tracing::error!(%error, "job task failed outside the worker");
            }
        }
    }
}
