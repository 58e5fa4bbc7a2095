//! One producer per queue per node: keeps up to `limit` jobs of its queue running, obeys control
//! messages (pause, resume, scale, stop, kill a job) and records a heartbeat the lifeline trusts.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::engine::{Ack, Engine, FetchCursor, StopSignal};
use crate::events::Events;
use crate::job::Job;
use crate::limits::Limits;
use crate::queue::ahead::ClaimAhead;
use crate::queue::completer::Completer;
use crate::queue::executor;
use crate::queue::held;
use crate::queue::load::QueueLoad;
use crate::registry::Registry;
use crate::state::StateMap;

/// A control message for one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Pause,
    Resume,
    Scale(u32),
    /// The queue's fleet-wide limits changed: read them again.
    Limits,
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
    /// The queue's fleet-wide limits, read from the database when the producer starts and when
    /// told they changed; with any, fetches go through the limited claim and claim nothing ahead.
    pub(crate) limits: Option<Limits>,
    pub(crate) node: Arc<str>,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) state: Arc<StateMap>,
    pub(crate) events: Events,
    /// Where the node's gauges read the running jobs and the limit.
    pub(crate) load: Arc<QueueLoad>,
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
    max_attempts: i32,
    attempted_at: chrono::NaiveDateTime,
    started: Instant,
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
    /// How long the answer took.
    took: Duration,
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

/// The jobs a producer holds: running ones, and ones claimed ahead that wait for a slot.
struct Slots {
    tasks: JoinSet<Ack>,
    running: HashMap<tokio::task::Id, Running>,
    /// Claimed (executing in the database), not started yet, in the order they were fetched.
    claimed: VecDeque<Job>,
    ahead: ClaimAhead,
    /// Jobs whose ack was handed to the completer, possibly not written yet.
    handed: Vec<i64>,
}

impl Slots {
    fn new() -> Self {
        Self {
            tasks: JoinSet::new(),
            running: HashMap::new(),
            claimed: VecDeque::new(),
            ahead: ClaimAhead::default(),
            handed: Vec::new(),
        }
    }

    /// Hands an ack to the completer; the job stays held until it is written. The ack of a
    /// limited queue frees a slot of every node's: once written, the completer tells them.
    fn ack(&mut self, ack: Ack, config: &ProducerConfig) {
        self.handed.push(ack.id);
        if config.limits.is_some() {
            config.completer.push_freeing(ack, &config.queue);
        } else {
            config.completer.push(ack);
        }
    }

    /// The ids of every job this producer holds: running, claimed and waiting, or acked but not
    /// on record yet (see `queue/held.rs`).
    fn held(&mut self, config: &ProducerConfig) -> Vec<i64> {
        let unrecorded = config.completer.unrecorded();
        self.handed.retain(|id| unrecorded.contains(*id));
        let mut held: Vec<i64> = self.running.values().map(|job| job.job_id).collect();
        held.extend(self.claimed.iter().map(|job| job.id));
        held.extend(self.handed.iter().copied());
        held.sort_unstable();
        held.dedup();
        held
    }

    /// How many more jobs to claim: free slots plus what to hold ahead of them (none while
    /// paused), and none while the completer's backlog is full (the database is not taking
    /// outcomes: claiming more would only grow it).
    fn demand(&self, config: &ProducerConfig) -> u32 {
        if config.completer.is_backlogged() {
            return 0;
        }
        // A job claimed ahead would hold a slot of a global limit without running.
        let ahead = if config.paused || config.limits.is_some() {
            0
        } else {
            self.ahead.target(config.limit)
        };
        let held = u32::try_from(self.tasks.len() + self.claimed.len()).unwrap_or(u32::MAX);
        config.limit.saturating_add(ahead).saturating_sub(held)
    }

    /// Takes fetched jobs: started while slots are free, held for the next free slots otherwise.
    /// Jobs fetched while the queue was paused go straight back.
    fn take(&mut self, jobs: Vec<Job>, config: &ProducerConfig) {
        self.claimed.extend(jobs);
        if config.paused {
            self.release_claimed(config);
        } else {
            self.start_claimed(config);
        }
    }

    /// Starts held jobs while slots are free.
    fn start_claimed(&mut self, config: &ProducerConfig) {
        if config.paused {
            return;
        }
        while (self.tasks.len() as u32) < config.limit {
            let Some(job) = self.claimed.pop_front() else {
                break;
            };
            self.spawn(job, config);
        }
    }

    /// Hands every held job back to the queue, attempt restored.
    fn release_claimed(&mut self, config: &ProducerConfig) {
        for job in std::mem::take(&mut self.claimed) {
            self.ack(executor::released(&job), config);
        }
    }

    /// Starts `job` in its own task.
    fn spawn(&mut self, job: Job, config: &ProducerConfig) {
        let job_id = job.id;
        let attempt = job.attempt;
        let max_attempts = job.max_attempts;
        let attempted_at = executor::attempt_stamp(&job);
        let abort = self.tasks.spawn(executor::execute(
            job,
            Arc::clone(&config.registry),
            Arc::clone(&config.state),
            Arc::clone(&config.node),
            config.events.clone(),
        ));
        self.running.insert(
            abort.id(),
            Running {
                job_id,
                attempt,
                max_attempts,
                attempted_at,
                started: Instant::now(),
                abort,
                killed: false,
            },
        );
    }

    /// Records how a job task ended.
    fn finish(
        &mut self,
        done: Result<(tokio::task::Id, Ack), tokio::task::JoinError>,
        config: &ProducerConfig,
    ) {
        match done {
            Ok((id, ack)) => {
                if let Some(job) = self.running.remove(&id) {
                    self.ahead.job_finished(job.started.elapsed());
                }
                self.ack(ack, config);
            }
            Err(error) => {
                // Killed on request: recorded as cancelled. Aborted at the shutdown deadline:
                // left in `running` and handed back by the caller. A panic the executor did not
                // catch (it catches every one on the attempt's path): a failed attempt all the
                // same, never a job left executing.
                let killed = self.running.get(&error.id()).is_some_and(|job| job.killed);
                if killed {
                    if let Some(job) = self.running.remove(&error.id()) {
                        let ack = executor::killed(job.job_id, job.attempt, job.attempted_at);
                        self.ack(ack, config);
                    }
                } else if !error.is_cancelled() {
                    tracing::error!(%error, "job task failed outside the worker");
                    if let Some(job) = self.running.remove(&error.id()) {
                        let ack = executor::panicked(
                            job.job_id,
                            job.attempt,
                            job.max_attempts,
                            job.attempted_at,
                            &error.to_string(),
                        );
                        self.ack(ack, config);
                    }
                }
            }
        }
    }

    /// Stops `job_id` if it runs or waits here.
    fn kill(&mut self, job_id: i64, config: &ProducerConfig) {
        if let Some(job) = self.running.values_mut().find(|job| job.job_id == job_id) {
            tracing::info!(job.id = job_id, "stopping a running job on request");
            job.killed = true;
            job.abort.abort();
        } else if let Some(at) = self.claimed.iter().position(|job| job.id == job_id) {
            if let Some(job) = self.claimed.remove(at) {
                tracing::info!(
                    job.id = job_id,
                    "cancelling a claimed job before it started"
                );
                let ack = executor::killed(job.id, job.attempt, executor::attempt_stamp(&job));
                self.ack(ack, config);
            }
        }
    }
}

/// Runs the producer until the node or the queue stops.
///
/// One fetch at a time runs beside the jobs (so completions, heartbeats and control messages are
/// handled while it is in flight), for the free slots plus the jobs to claim ahead of them
/// ([`ClaimAhead`]: about what the queue finishes during one fetch, none for jobs slower than a
/// fetch). It starts when the queue may have jobs and either nothing runs (an idle queue answers
/// at once) or demand has waited `dispatch_cooldown` (so finishing jobs are fetched for in
/// batches). Measured on no-op jobs with two fetches in flight, each for half the slots: more
/// statements, more contention on the head of the queue, and 7 % fewer jobs per second than one
/// fetch for all the free slots.
pub(crate) async fn run(mut config: ProducerConfig) {
    let uuid = uuid::Uuid::new_v4();
    let attempted_by: Arc<[String]> = Arc::from(vec![config.node.to_string(), uuid.to_string()]);
    let mut stop = config.stop.clone();
    let mut slots = Slots::new();
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
    // A limited queue whose last claim came back short: when its rate window moves on.
    let mut limited_until: Option<Instant> = None;
    // When demand first waited for a fetch (for the cooldown).
    let mut demand_since: Option<Instant> = None;
    // After a failed fetch, no new one before this.
    let mut retry_at: Option<Instant> = None;
    let mut error_delay = Duration::from_millis(100);
    let mut deadline: Option<Instant> = None;

    tracing::debug!(queue = %config.queue, limit = config.limit, %uuid, "producer started");
    // A heartbeat came due while a fetch was in flight: it is taken once the fetch returns, so
    // that it can list what the producer holds (see `queue/held.rs`).
    let mut beat_due = false;

    read_limits(&mut config).await;
    // The heartbeat precedes the first fetch so the lifeline never mistakes our jobs for orphans.
    beat(&config, uuid, &mut slots, true).await;

    while deadline.is_none() {
        config.load.set(slots.tasks.len(), config.limit);
        // Start a fetch when demand and the rules allow.
        let mut cooldown_until: Option<Instant> = None;
        let demand = slots.demand(&config);
        let now = Instant::now();
        if demand == 0 {
            demand_since = None;
        } else if lookout.more
            && !config.paused
            && fetching.is_empty()
            && retry_at.is_none_or(|at| now >= at)
        {
            let since = *demand_since.get_or_insert(now);
            if !slots.tasks.is_empty() && now < since + config.dispatch_cooldown {
                cooldown_until = Some(since + config.dispatch_cooldown);
            } else {
                demand_since = None;
                let engine = Arc::clone(&config.engine);
                let queue = config.queue.clone();
                let by = Arc::clone(&attempted_by);
                let started_in = lookout.generation;
                let after = lookout.cursor;
                let limited = config.limits.is_some();
                fetching.spawn(async move {
                    let started = Instant::now();
                    let jobs = if limited {
                        engine.job_fetch_limited(&queue, demand, &by).await
                    } else {
                        engine.job_fetch_available(&queue, demand, &by, after).await
                    };
                    Fetched {
                        asked: demand,
                        generation: started_in,
                        from_cursor: after.is_some(),
                        took: started.elapsed(),
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
            () = tokio::time::sleep_until(limited_until.unwrap_or_else(Instant::now)), if limited_until.is_some() => {
                limited_until = None;
                lookout.woken();
            }
            Some(done) = fetching.join_next(), if !fetching.is_empty() => {
                let Fetched { asked, generation: started_in, from_cursor, took, jobs: result } = match done {
                    Ok(fetched) => fetched,
                    Err(error) => {
                        // Not reachable short of a panic in the engine: the jobs it may have
                        // claimed are the lifeline's, once a snapshot says we do not hold them.
                        tracing::error!(queue = %config.queue, %error, "a fetch task failed");
                        retry_at = Some(Instant::now() + error_delay);
                        beat_due = false;
                        beat(&config, uuid, &mut slots, true).await;
                        continue;
                    }
                };
                match result {
                    Ok(jobs) => {
                        error_delay = Duration::from_millis(100);
                        slots.ahead.fetch_returned(took);
                        // Short under a rate limit: the window may have room again after one
                        // bucket, which no notification announces. (Under a global limit, the
                        // completer of whichever node frees a slot wakes every node.)
                        if (jobs.len() as u32) < asked {
                            if let Some(rate) = config.limits.as_ref().and_then(|l| l.rate.as_ref()) {
                                limited_until = Some(Instant::now() + rate.bucket().max(LIMITED_RETRY_MIN));
                            }
                        }
                        lookout.fetched(asked, started_in, from_cursor, &jobs);
                        slots.take(jobs, &config);
                    }
                    Err(error) => {
                        tracing::warn!(queue = %config.queue, %error, retry_in = ?error_delay, "fetching jobs failed; backing off");
                        retry_at = Some(Instant::now() + error_delay);
                        error_delay = (error_delay * 2).min(Duration::from_secs(5));
                        // The claim may have committed without its rows reaching us: a snapshot
                        // now lets the lifeline rescue those jobs at its next pass.
                        beat_due = true;
                    }
                }
                if std::mem::take(&mut beat_due) {
                    beat(&config, uuid, &mut slots, true).await;
                }
            }
            Some(done) = slots.tasks.join_next_with_id(), if !slots.tasks.is_empty() => {
                slots.finish(done, &config);
                // Reap whatever else finished meanwhile, so demand is current.
                while let Some(done) = slots.tasks.try_join_next_with_id() {
                    slots.finish(done, &config);
                }
                slots.start_claimed(&config);
            }
            _ = heartbeat.tick() => {
                // A change of limits whose signal did not arrive (notifications off) is seen
                // within a heartbeat.
                read_limits(&mut config).await;
                if fetching.is_empty() {
                    beat(&config, uuid, &mut slots, true).await;
                } else if beat_due {
                    // A fetch outlasted a heartbeat interval: stay alive, keep the last snapshot.
                    beat(&config, uuid, &mut slots, false).await;
                } else {
                    beat_due = true;
                }
            }
            control = config.control.recv() => match control {
                Some(Control::Kill(job_id)) => slots.kill(job_id, &config),
                Some(Control::Limits) => {
                    read_limits(&mut config).await;
                    lookout.woken();
                    let snapshot = fetching.is_empty();
                    beat(&config, uuid, &mut slots, snapshot).await;
                }
                Some(Control::Stop(at)) => deadline = Some(at),
                Some(other) => {
                    apply(&mut config, other);
                    if config.paused {
                        slots.release_claimed(&config);
                    } else {
                        slots.start_claimed(&config);
                    }
                    lookout.woken();
                    let snapshot = fetching.is_empty();
                    beat(&config, uuid, &mut slots, snapshot).await;
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

    // Stopping: claimed jobs and a fetch in flight go straight back (none has started), running
    // jobs get until the deadline, then the rest are handed back.
    let deadline = deadline.unwrap_or_else(Instant::now);
    tracing::debug!(queue = %config.queue, running = slots.tasks.len(), "producer stopping");
    // A fetch gets until the deadline too. One still running then is abandoned: should its claim
    // commit later, those jobs are the lifeline's, which rescues them once this producer's
    // heartbeat row is older than the rescue age; so the row stays.
    let mut abandoned_fetch = false;
    while !fetching.is_empty() {
        tokio::select! {
            Some(done) = fetching.join_next() => {
                if let Ok(Fetched { jobs: Ok(jobs), .. }) = done {
                    slots.claimed.extend(jobs);
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(queue = %config.queue, "a fetch outlived the shutdown deadline; abandoning it (the lifeline rescues what it may claim)");
                fetching.abort_all();
                abandoned_fetch = true;
                break;
            }
        }
    }
    slots.release_claimed(&config);
    while !slots.tasks.is_empty() {
        tokio::select! {
            done = slots.tasks.join_next_with_id() => match done {
                Some(done) => slots.finish(done, &config),
                None => break,
            },
            Some(Control::Kill(job_id)) = config.control.recv() => slots.kill(job_id, &config),
            () = tokio::time::sleep_until(deadline) => {
                slots.tasks.abort_all();
                while let Some(done) = slots.tasks.join_next_with_id().await {
                    slots.finish(done, &config);
                }
            }
        }
    }
    for (_, job) in std::mem::take(&mut slots.running) {
        slots.ack(
            executor::interrupted(job.job_id, job.attempt, job.attempted_at, &config.node),
            &config,
        );
    }
    config.load.set(0, config.limit);
    if abandoned_fetch {
        tracing::debug!(queue = %config.queue, "producer stopped; its heartbeat row stays for the lifeline");
        return;
    }
    if let Err(error) = config.engine.producer_delete(uuid).await {
        tracing::warn!(queue = %config.queue, %error, "could not remove the producer's heartbeat row");
    }
    tracing::debug!(queue = %config.queue, "producer stopped");
}

/// The shortest wait before a rate-limited queue whose claim came back short tries again.
const LIMITED_RETRY_MIN: Duration = Duration::from_millis(20);

/// Reads the queue's fleet-wide limits; on failure keeps what it had (the claim itself reads the
/// stored limits, so a stale view here only changes whether jobs are claimed ahead).
async fn read_limits(config: &mut ProducerConfig) {
    match config.engine.queue_limits_get(Some(&config.queue)).await {
        Ok(mut found) => {
            let limits = found
                .pop()
                .map(|(_, limits)| limits)
                .filter(|l| !l.is_empty());
            if limits != config.limits {
                tracing::info!(queue = %config.queue, ?limits, "queue limits across the fleet");
            }
            config.limits = limits;
        }
        Err(error) => {
            tracing::warn!(queue = %config.queue, %error, "could not read the queue's limits; keeping the last known");
        }
    }
}

fn apply(config: &mut ProducerConfig, control: Control) {
    match control {
        Control::Pause => config.paused = true,
        Control::Resume => config.paused = false,
        Control::Scale(limit) => config.limit = limit.max(1),
        Control::Stop(_) | Control::Kill(_) | Control::Limits => {}
    }
    tracing::info!(queue = %config.queue, limit = config.limit, paused = config.paused, "queue changed");
    config.wake.notify_one();
}

/// Records the heartbeat; with `snapshot` (only while no fetch is in flight), it lists the jobs
/// this producer holds, and the producer must start no fetch before it returns.
async fn beat(config: &ProducerConfig, uuid: uuid::Uuid, slots: &mut Slots, snapshot: bool) {
    let held = snapshot.then(|| slots.held(config));
    let mut meta = held::heartbeat_meta(config.limit, config.paused, slots.tasks.len(), held);
    if let Some(limits) = &config.limits {
        crate::limits::heartbeat::describe(&mut meta, limits);
    }
    if let Err(error) = config
        .engine
        .producer_heartbeat(uuid, &config.node, &config.queue, meta)
        .await
    {
        tracing::warn!(queue = %config.queue, %error, "producer heartbeat failed");
    }
}
