//! The inline engine, for tests: no database at all. Each job runs as it is inserted, in the
//! inserting task, and is kept in memory with its outcome.
//!
//! Chosen by `Oban::builder().testing(Testing::Inline)`. Jobs run at once whatever their
//! `scheduled_at`, exactly one attempt each (a failure leaves the job `retryable`, a snooze
//! leaves it `scheduled`); uniqueness is not checked. Only inserts through the `Oban` handle run
//! inline: a pool or transaction is a real database.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::engine::{
    Ack, CronSeen, Engine, FailureCount, FetchCursor, LimitsUsage, Notifier, Peer, ProducerInfo,
    QueueDepths, SchemaVersions, StateCount, StopSignal, WorkflowTally,
};
use crate::error::Result;
use crate::events::Events;
use crate::filter::{json_contains, JobFilter};
use crate::job::{AttemptError, Job, JobState};
use crate::limits::Limits;
use crate::new_job::NewJob;
use crate::notifier::{Channel, Notice};
use crate::queue::executor;
use crate::registry::Registry;
use crate::state::StateMap;
use crate::trace_context;
use crate::workflow::layout;

/// Runs jobs at insert and keeps them in memory.
pub struct InlineEngine {
    registry: Arc<Registry>,
    state: Arc<StateMap>,
    node: Arc<str>,
    events: Events,
    jobs: Mutex<BTreeMap<i64, Job>>,
    /// Queue limits as stored (inline mode runs jobs at insert, so they limit nothing).
    limits: Mutex<BTreeMap<String, Limits>>,
    next_id: AtomicI64,
}

impl InlineEngine {
    /// An engine running the workers of `registry` with `state`.
    pub fn new(registry: Arc<Registry>, state: Arc<StateMap>, node: Arc<str>) -> Self {
        Self {
            registry,
            state,
            node,
            events: Events::default(),
            jobs: Mutex::new(BTreeMap::new()),
            limits: Mutex::new(BTreeMap::new()),
            next_id: AtomicI64::new(1),
        }
    }

    /// Sends the events of the jobs it runs to the node's subscribers.
    pub(crate) fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, Job>> {
        self.jobs.lock().expect("inline jobs lock")
    }

    /// The steps of a workflow, by name and state, in id order.
    fn steps_of(&self, workflow_id: &str) -> Vec<(String, JobState)> {
        self.jobs()
            .values()
            .filter(|job| layout::workflow_id(&job.meta) == Some(workflow_id))
            .filter_map(|job| Some((layout::step_name(&job.meta)?.to_owned(), job.state)))
            .collect()
    }
}

impl std::fmt::Debug for InlineEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineEngine")
            .field("jobs", &self.jobs().len())
            .finish_non_exhaustive()
    }
}

/// Applies an ack to a job held in memory, as the database engines do.
fn apply(job: &mut Job, ack: &Ack) {
    let now = Utc::now();
    job.state = ack.state;
    match ack.state {
        JobState::Completed => job.completed_at = Some(now),
        JobState::Discarded => job.discarded_at = Some(now),
        JobState::Cancelled => job.cancelled_at = Some(now),
        _ => {}
    }
    if let Some(delay) = ack.schedule_in {
        // Saturating: a delay past what a timestamp holds lands on the last one.
        job.scheduled_at = chrono::Duration::from_std(delay.min(Ack::MAX_DELAY))
            .ok()
            .and_then(|delay| now.checked_add_signed(delay))
            .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
    }
    if ack.give_back_attempt {
        job.attempt = (job.attempt - 1).max(0);
    }
    if let Some(error) = &ack.error {
        job.errors.push(AttemptError::from_json(error.clone()));
    }
    if let (Some(Value::Object(changes)), Value::Object(meta)) = (&ack.meta, &mut job.meta) {
        meta.extend(changes.clone());
    }
}

/// The job's `meta.workflow_id`, when it is a step of a workflow.
fn workflow_of(job: &Job) -> Option<&str> {
    job.meta.get("workflow_id").and_then(Value::as_str)
}

/// The text of a meta key (`None` when absent or not a string).
fn meta_text(job: &Job, key: &str) -> Option<String> {
    job.meta.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn matches(filter: &JobFilter, job: &Job) -> bool {
    filter.ids.as_ref().is_none_or(|ids| ids.contains(&job.id))
        && (filter.queues.is_empty() || filter.queues.contains(&job.queue))
        && (filter.workers.is_empty() || filter.workers.contains(&job.worker))
        && (filter.states.is_empty() || filter.states.contains(&job.state))
        && filter.tags.iter().all(|tag| job.tags.contains(tag))
        && filter
            .args
            .as_ref()
            .is_none_or(|args| json_contains(&job.args, args))
        && filter
            .meta
            .as_ref()
            .is_none_or(|meta| json_contains(&job.meta, meta))
        && filter
            .workflow
            .as_deref()
            .is_none_or(|workflow| workflow_of(job) == Some(workflow))
        && filter.inserted_within.is_none_or(|age| {
            chrono::Duration::from_std(age)
                .ok()
                .and_then(|age| Utc::now().checked_sub_signed(age))
                .is_none_or(|cutoff| job.inserted_at >= cutoff)
        })
        && filter
            .search_terms()
            .is_none_or(|search| search.matches(job))
}

#[async_trait]
impl Engine for InlineEngine {
    async fn schema_migrate(&self) -> Result<()> {
        Ok(())
    }

    async fn job_insert_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        let mut done = Vec::with_capacity(jobs.len());
        for mut new in jobs {
            new.validate()?;
            trace_context::inject(&mut new.meta);
            let now = Utc::now();
            let job = Job {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                state: JobState::Executing,
                queue: new.queue,
                worker: new.worker,
                args: new.args,
                meta: new.meta,
                tags: new.tags,
                errors: Vec::new(),
                attempt: 1,
                max_attempts: new.max_attempts,
                priority: new.priority,
                attempted_by: vec![self.node.to_string(), "inline".to_owned()],
                inserted_at: now,
                scheduled_at: new.scheduled_at.unwrap_or(now),
                attempted_at: Some(now),
                completed_at: None,
                discarded_at: None,
                cancelled_at: None,
                conflict: false,
            };
            if crate::workflow::waits(&job.meta) {
                let verdict = layout::verdict(&job.meta, |wf| self.steps_of(wf));
                if verdict != layout::Verdict::Ready {
                    let mut job = job;
                    job.attempt = 0;
                    job.attempted_at = None;
                    job.attempted_by = Vec::new();
                    if let layout::Verdict::Cancel(error) = verdict {
                        job.state = JobState::Cancelled;
                        job.cancelled_at = Some(now);
                        job.errors.push(AttemptError {
                            attempt: 0,
                            at: now.to_rfc3339(),
                            error,
                        });
                    } else {
                        // Inline mode runs a job only at its insert: a step whose dependency
                        // did not complete there (it will retry) waits for good.
                        job.state = JobState::Suspended;
                    }
                    self.jobs().insert(job.id, job.clone());
                    done.push(job);
                    continue;
                }
            }
            let ack = executor::execute(
                job.clone(),
                Arc::clone(&self.registry),
                Arc::clone(&self.state),
                Arc::clone(&self.node),
                self.events.clone(),
            )
            .await;
            let mut job = job;
            apply(&mut job, &ack);
            self.jobs().insert(job.id, job.clone());
            done.push(job);
        }
        Ok(done)
    }

    async fn job_fetch_available(
        &self,
        _queue: &str,
        _demand: u32,
        _attempted_by: &[String],
        _after: Option<FetchCursor>,
    ) -> Result<Vec<Job>> {
        Ok(Vec::new())
    }

    async fn job_fetch_limited(
        &self,
        _queue: &str,
        _demand: u32,
        _attempted_by: &[String],
    ) -> Result<Vec<Job>> {
        Ok(Vec::new())
    }

    async fn queue_limits_put(&self, queue: &str, limits: Option<&Limits>) -> Result<()> {
        let mut stored = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        match limits.filter(|limits| !limits.is_empty()) {
            Some(limits) => stored.insert(queue.to_owned(), limits.clone()),
            None => stored.remove(queue),
        };
        Ok(())
    }

    async fn queue_limits_get(&self, queue: Option<&str>) -> Result<Vec<(String, Limits)>> {
        let stored = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(stored
            .iter()
            .filter(|(name, _)| queue.is_none_or(|queue| queue == name.as_str()))
            .map(|(name, limits)| (name.clone(), limits.clone()))
            .collect())
    }

    async fn queue_limits_usage(
        &self,
        _queue: &str,
        _limits: &Limits,
        _top: u32,
    ) -> Result<LimitsUsage> {
        // Inline mode runs each job during its insert: nothing is ever left executing.
        Ok(LimitsUsage::default())
    }

    async fn job_ack_many(&self, acks: &[Ack]) -> Result<Vec<i64>> {
        let mut jobs = self.jobs();
        let mut acked = Vec::new();
        for ack in acks {
            if let Some(job) = jobs
                .get_mut(&ack.id)
                .filter(|job| job.state == JobState::Executing)
            {
                apply(job, ack);
                acked.push(ack.id);
            }
        }
        Ok(acked)
    }

    async fn job_stage_due(&self, _limit: u32) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn job_rescue_orphaned(
        &self,
        _stale_after: Duration,
        _unknown_after: Duration,
    ) -> Result<u64> {
        Ok(0)
    }

    async fn job_get(&self, id: i64) -> Result<Option<Job>> {
        Ok(self.jobs().get(&id).cloned())
    }

    async fn job_list(&self, filter: &JobFilter, limit: u32) -> Result<Vec<Job>> {
        Ok(self
            .jobs()
            .values()
            .filter(|job| matches(filter, job))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn job_page(
        &self,
        filter: &JobFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let jobs = self.jobs();
        let below = match before {
            Some(before) => jobs.range(..before),
            None => jobs.range(..),
        };
        Ok(below
            .rev()
            .map(|(_, job)| job)
            .filter(|job| matches(filter, job))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn job_retry_many(&self, filter: &JobFilter) -> Result<u64> {
        let mut changed = 0;
        for job in self.jobs().values_mut().filter(|job| matches(filter, job)) {
            if !matches!(job.state, JobState::Executing | JobState::Available) {
                job.state = JobState::Available;
                job.max_attempts = job.max_attempts.max(job.attempt + 1);
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn job_cancel_many(&self, filter: &JobFilter) -> Result<(u64, Vec<i64>)> {
        let mut changed = 0;
        for job in self.jobs().values_mut().filter(|job| matches(filter, job)) {
            if !job.state.is_final() {
                job.state = JobState::Cancelled;
                job.cancelled_at = Some(Utc::now());
                changed += 1;
            }
        }
        Ok((changed, Vec::new()))
    }

    async fn job_delete_many(&self, filter: &JobFilter) -> Result<u64> {
        let mut jobs = self.jobs();
        let before = jobs.len();
        jobs.retain(|_, job| !(matches(filter, job) && job.state != JobState::Executing));
        Ok((before - jobs.len()) as u64)
    }

    async fn job_prune(&self, _max_age: Duration, _limit: u32) -> Result<u64> {
        Ok(0)
    }

    async fn job_count_depths(&self, _exact_up_to: u64) -> Result<QueueDepths> {
        // Jobs held in memory: counted exactly. Inline jobs run at insert, so none waits.
        let mut depths = QueueDepths::default();
        for job in self.jobs().values() {
            match depths
                .counts
                .iter_mut()
                .find(|c| c.queue == job.queue && c.state == job.state)
            {
                Some(count) => count.count += 1,
                None => depths.counts.push(StateCount {
                    queue: job.queue.clone(),
                    state: job.state,
                    count: 1,
                    exact: true,
                }),
            }
        }
        Ok(depths)
    }

    async fn schema_reindex(&self) -> Result<()> {
        Ok(())
    }

    async fn job_ids(&self, filter: &JobFilter, after: i64, limit: u32) -> Result<Vec<i64>> {
        Ok(self
            .jobs()
            .range(after.saturating_add(1)..)
            .filter(|(_, job)| matches(filter, job))
            .take(limit as usize)
            .map(|(id, _)| *id)
            .collect())
    }

    async fn job_count(&self, filter: &JobFilter) -> Result<u64> {
        Ok(self
            .jobs()
            .values()
            .filter(|job| matches(filter, job))
            .count() as u64)
    }

    async fn job_failures(&self, since: Duration) -> Result<Vec<FailureCount>> {
        let cutoff = chrono::Duration::from_std(since)
            .ok()
            .and_then(|since| Utc::now().checked_sub_signed(since));
        let recent = |at: Option<chrono::DateTime<Utc>>| {
            cutoff.is_none_or(|cutoff| at.is_some_and(|at| at >= cutoff))
        };
        let mut groups: Vec<FailureCount> = Vec::new();
        for job in self.jobs().values() {
            let counted = match job.state {
                JobState::Retryable => recent(job.attempted_at),
                JobState::Discarded => recent(job.discarded_at),
                _ => false,
            };
            if !counted {
                continue;
            }
            let error = job.errors.last().map(|e| e.error.clone());
            match groups.iter_mut().find(|g| {
                g.worker == job.worker
                    && g.queue == job.queue
                    && g.state == job.state
                    && g.error == error
            }) {
                Some(group) => group.count += 1,
                None => groups.push(FailureCount::new(
                    job.worker.clone(),
                    job.queue.clone(),
                    job.state,
                    error,
                    1,
                )),
            }
        }
        Ok(groups)
    }

    async fn job_cron_seen(&self, _since: Duration) -> Result<Vec<CronSeen>> {
        // Inline mode runs no scheduler: no job here came from a cron entry.
        Ok(Vec::new())
    }

    async fn workflow_recent_steps(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, String)>> {
        let jobs = self.jobs();
        let below = match before {
            Some(before) => jobs.range(..before),
            None => jobs.range(..),
        };
        Ok(below
            .rev()
            .filter_map(|(id, job)| Some((*id, workflow_of(job)?.to_owned())))
            .take(limit as usize)
            .collect())
    }

    async fn workflow_tally(&self, workflow_ids: &[String]) -> Result<Vec<WorkflowTally>> {
        let mut tallies: Vec<WorkflowTally> = Vec::new();
        for job in self.jobs().values() {
            let Some(workflow) = workflow_of(job).filter(|w| workflow_ids.iter().any(|i| i == w))
            else {
                continue;
            };
            let finished_at = match job.state {
                JobState::Completed => job.completed_at,
                JobState::Cancelled => job.cancelled_at,
                JobState::Discarded => job.discarded_at,
                _ => None,
            };
            let index = tallies
                .iter()
                .position(|t| t.workflow_id == workflow && t.state == job.state);
            let Some(tally) = index.map(|i| &mut tallies[i]) else {
                let mut tally = WorkflowTally::new(
                    workflow.to_owned(),
                    job.state,
                    1,
                    job.id,
                    job.id,
                    job.inserted_at,
                );
                tally.name = meta_text(job, "workflow_name");
                tally.sup_workflow_id = meta_text(job, "sup_workflow_id");
                tally.attempted_at = job.attempted_at;
                tally.finished_at = finished_at;
                tallies.push(tally);
                continue;
            };
            tally.count += 1;
            tally.last_id = tally.last_id.max(job.id);
            tally.inserted_at = tally.inserted_at.min(job.inserted_at);
            tally.attempted_at = tally.attempted_at.into_iter().chain(job.attempted_at).min();
            tally.finished_at = tally.finished_at.max(finished_at);
            tally.name = tally.name.take().max(meta_text(job, "workflow_name"));
            tally.sup_workflow_id = tally
                .sup_workflow_id
                .take()
                .max(meta_text(job, "sup_workflow_id"));
        }
        Ok(tallies)
    }

    async fn workflow_subs(
        &self,
        workflow_id: &str,
        from_id: i64,
        rows: u32,
    ) -> Result<Vec<String>> {
        let mut subs: Vec<String> = Vec::new();
        for job in self
            .jobs()
            .range(from_id..)
            .take(rows as usize)
            .map(|(_, j)| j)
        {
            if meta_text(job, "sup_workflow_id").as_deref() == Some(workflow_id) {
                if let Some(sub) = workflow_of(job).filter(|s| !subs.iter().any(|k| k == s)) {
                    subs.push(sub.to_owned());
                }
            }
        }
        Ok(subs)
    }

    async fn workflow_suspend_failed(&self, workflow_ids: &[String]) -> Result<u64> {
        let mut changed = 0;
        for job in self.jobs().values_mut() {
            let listed = workflow_of(job).is_some_and(|w| workflow_ids.iter().any(|i| i == w));
            if listed && matches!(job.state, JobState::Cancelled | JobState::Discarded) {
                job.state = JobState::Suspended;
                job.max_attempts = job.max_attempts.max(job.attempt + 1);
                job.completed_at = None;
                job.discarded_at = None;
                job.cancelled_at = None;
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        Ok(SchemaVersions::default())
    }

    async fn producer_list(&self, _queue: Option<&str>) -> Result<Vec<ProducerInfo>> {
        Ok(Vec::new())
    }

    async fn producer_heartbeat(
        &self,
        _uuid: uuid::Uuid,
        _node: &str,
        _queue: &str,
        _meta: Value,
    ) -> Result<()> {
        Ok(())
    }

    async fn producer_delete(&self, _uuid: uuid::Uuid) -> Result<()> {
        Ok(())
    }

    async fn workflow_release(&self, _workflow_ids: &[String]) -> Result<u64> {
        // Steps run at their insert; nothing waits to be released later.
        Ok(0)
    }

    async fn workflow_waiting(&self, _after: Option<&str>, _limit: u32) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn sequence_release(&self, _keys: &[String]) -> Result<u64> {
        // Jobs run at their insert, one at a time: a sequence never has a job waiting.
        Ok(0)
    }

    async fn sequence_waiting(&self, _after: Option<&str>, _limit: u32) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn workflow_steps(&self, workflow_id: &str, names: &[String]) -> Result<Vec<Job>> {
        let jobs = self.jobs();
        let mut found: Vec<Job> = Vec::new();
        for job in jobs.values().rev() {
            let name = layout::step_name(&job.meta);
            if layout::workflow_id(&job.meta) == Some(workflow_id)
                && name.is_some_and(|n| names.iter().any(|m| m == n))
                && !found.iter().any(|f| layout::step_name(&f.meta) == name)
            {
                found.push(job.clone());
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl Notifier for InlineEngine {
    async fn notify(&self, _channel: Channel, _payload: Value) -> Result<()> {
        Ok(())
    }

    async fn listen(
        &self,
        _sink: mpsc::UnboundedSender<Notice>,
        _stop: StopSignal,
    ) -> Result<bool> {
        Ok(false)
    }
}

#[async_trait]
impl Peer for InlineEngine {
    async fn leader_elect(&self, _name: &str, _node: &str, _ttl: Duration) -> Result<bool> {
        Ok(true)
    }

    async fn leader_resign(&self, _name: &str, _node: &str) -> Result<()> {
        Ok(())
    }
}
