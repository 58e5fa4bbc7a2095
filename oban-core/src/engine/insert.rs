//! Inserting jobs, unique ones included: the algorithm every engine shares.
//!
//! An engine supplies only its statements ([`InsertStatements`]); the steps live here once, so
//! every engine gives the guarantees [`crate::unique`] describes:
//!
//! 1. **Prepare**: validate each job, record its unique states in `meta.uniq_states`, compute
//!    its key, then write the caller's trace context into its meta (with the `opentelemetry`
//!    feature, see [`crate::trace_context`]).
//! 2. Without keys, **one insert statement** and done. [`InsertStatements::insert_rows`] is
//!    then given no key at all, and an engine's statement for it names no key column: such
//!    inserts work on a schema another Oban implementation installed and this runtime never
//!    migrated (PostgreSQL: `uniq_key` is this runtime's column).
//! 3. With keys, in one transaction (a savepoint inside the caller's), up to five rounds of:
//!    **release** keys held by jobs whose period is over; **insert** with `ON CONFLICT DO
//!    NOTHING` on the key; map the stored rows back to the inputs (unkeyed in order, keyed by
//!    key: the first input with a key wins, later equal inputs of the batch conflict with it);
//!    **clear** the key of a job stored outside its own unique states; look up the **holders**
//!    of the conflicting keys and apply the **replace** rules to each. A holder that left its
//!    unique states between the insert and the lookup sends its input to the next round.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::job::{Job, JobState};
use crate::new_job::NewJob;
use crate::trace_context;
use crate::unique::{unique_key, ReplaceField, UniqueTimestamp};

/// How many times a unique insert tries again when key holders change state under it.
const ROUNDS: usize = 5;

/// What the database decided for one inserted row; the rest of the job is what was sent.
#[derive(Debug, Clone)]
pub(crate) struct StoredRow {
    /// The new id.
    pub(crate) id: i64,
    /// `available`, `scheduled`, or `suspended` for a workflow step that waits for others
    /// ([`crate::workflow`]).
    pub(crate) state: JobState,
    /// The insert time (database clock).
    pub(crate) inserted_at: DateTime<Utc>,
    /// When the job runs.
    pub(crate) scheduled_at: DateTime<Utc>,
    /// The unique key the row holds, if any.
    pub(crate) uniq_key: Option<String>,
}

impl StoredRow {
    /// The stored job: `job` as sent, with the id, state and times the database gave it.
    fn into_job(self, job: NewJob) -> Job {
        Job {
            id: self.id,
            state: self.state,
            queue: job.queue,
            worker: job.worker,
            args: job.args,
            meta: job.meta,
            tags: job.tags,
            errors: Vec::new(),
            attempt: 0,
            max_attempts: job.max_attempts,
            priority: job.priority,
            attempted_by: Vec::new(),
            inserted_at: self.inserted_at,
            scheduled_at: self.scheduled_at,
            attempted_at: None,
            completed_at: None,
            discarded_at: None,
            cancelled_at: None,
            conflict: false,
        }
    }
}

/// A job to insert, with the unique key it is to hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyed<'a> {
    pub(crate) job: &'a NewJob,
    pub(crate) key: Option<&'a str>,
}

/// A key to release when its holder's timestamp is older than `period`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expiring<'a> {
    /// The key.
    pub(crate) key: &'a str,
    /// The unique period.
    pub(crate) period: Duration,
    /// Measure from `scheduled_at` rather than `inserted_at`.
    pub(crate) by_scheduled_at: bool,
}

/// What a duplicate's replace rules set on it: the fields that are `Some`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Replacement<'a> {
    pub(crate) args: Option<&'a Value>,
    /// Set as `max(max_attempts, attempt + attempts_left)`, with the row's `attempt` as the
    /// statement finds it (see [`Replacement::attempts_left`]).
    pub(crate) max_attempts: Option<i32>,
    /// The attempts a replaced `max_attempts` keeps above those the job already made: 1 for a
    /// job that will run again (available, scheduled, suspended, retryable), so that it is
    /// never left with all of its attempts spent, which its next claim would have to discard
    /// unrun; 0 for a running or finished job, whose attempts are all made and counted.
    ///
    /// It is a margin over the row's `attempt` rather than a value computed from the job looked
    /// up: the statement is guarded by the state only, and a job can run and come back to the
    /// same state, one attempt further, between the lookup and the replace.
    pub(crate) attempts_left: i32,
    pub(crate) meta: Option<&'a Value>,
    pub(crate) priority: Option<i32>,
    pub(crate) queue: Option<&'a str>,
    /// `Some(None)`: now.
    pub(crate) scheduled_at: Option<Option<DateTime<Utc>>>,
    pub(crate) tags: Option<&'a [String]>,
}

impl<'a> Replacement<'a> {
    /// What `job`'s replace rules set on a duplicate in `state`; `None` when they set nothing.
    fn of(job: &'a NewJob, state: JobState) -> Option<Self> {
        let runs_again = !state.is_final() && state != JobState::Executing;
        let fields: Vec<ReplaceField> = job
            .replace
            .iter()
            .filter(|(s, _)| *s == state)
            .flat_map(|(_, fields)| fields.iter().copied())
            .collect();
        if fields.is_empty() {
            return None;
        }
        let has = |field: ReplaceField| fields.contains(&field);
        Some(Self {
            args: has(ReplaceField::Args).then_some(&job.args),
            max_attempts: has(ReplaceField::MaxAttempts).then_some(job.max_attempts),
            attempts_left: i32::from(runs_again),
            meta: has(ReplaceField::Meta).then_some(&job.meta),
            priority: has(ReplaceField::Priority).then_some(job.priority),
            queue: has(ReplaceField::Queue).then_some(job.queue.as_str()),
            scheduled_at: has(ReplaceField::ScheduledAt).then_some(job.scheduled_at),
            tags: has(ReplaceField::Tags).then_some(job.tags.as_slice()),
        })
    }
}

/// The rounds of a unique insert, run inside [`InsertStatements::transaction`].
pub(crate) type Rounds =
    Box<dyn for<'t> FnOnce(&'t mut dyn InsertStatements) -> BoxFuture<'t, Result<Vec<Job>>> + Send>;

/// The statements an engine supplies for [`insert_jobs`], over one connection.
#[async_trait]
pub(crate) trait InsertStatements: Send {
    /// Inserts `jobs`, skipping rows whose key is already held; returns the stored rows in
    /// input order (rows that lost a conflict are absent).
    async fn insert_rows(&mut self, jobs: &[Keyed<'_>]) -> Result<Vec<StoredRow>>;

    /// Releases each key whose holder's timestamp is older than its period.
    async fn release_expired(&mut self, expiring: &[Expiring<'_>]) -> Result<()>;

    /// Clears the keys of these jobs.
    async fn clear_keys(&mut self, ids: &[i64]) -> Result<()>;

    /// The jobs holding these keys, with their keys.
    async fn key_holders(&mut self, keys: &[&str]) -> Result<Vec<(String, Job)>>;

    /// Applies `with` to `existing` if it is still in its state; returns the job as it now is,
    /// or `None` when it changed state meanwhile.
    async fn replace(&mut self, existing: &Job, with: &Replacement<'_>) -> Result<Option<Job>>;

    /// Takes the locks of these sequences (sorted, without repeats) until the transaction ends
    /// (see [`crate::sequence`]).
    async fn lock_sequences(&mut self, keys: &[String]) -> Result<()>;

    /// With their locks held: starts the first waiting job of each of these sequences where no
    /// job holds without waiting; returns the jobs started, with their new state.
    async fn release_sequences(&mut self, keys: &[String]) -> Result<Vec<(i64, JobState)>>;

    /// Runs `rounds` over statements inside a transaction (a savepoint when the connection is
    /// already in one) and commits it.
    async fn transaction(&mut self, rounds: Rounds) -> Result<Vec<Job>>;
}

/// Inserts `jobs` through `statements` (see the module docs); returns the stored jobs in input
/// order, a unique job that lost to an existing one as that job with `conflict` set.
pub(crate) async fn insert_jobs(
    statements: &mut dyn InsertStatements,
    jobs: Vec<NewJob>,
) -> Result<Vec<Job>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let prepared = Prepared::new(jobs)?;
    let sequences = crate::sequence::sequences(prepared.jobs.iter().map(|job| &job.meta));
    if prepared.keys.iter().all(Option::is_none) && sequences.is_empty() {
        return prepared.insert_plain(statements).await;
    }
    statements
        .transaction(Box::new(move |tx| {
            Box::pin(async move {
                // Sequenced jobs are stored `suspended` under their sequences' locks; the
                // release then starts the first waiting job of each sequence nothing holds.
                tx.lock_sequences(&sequences).await?;
                let plain = prepared.keys.iter().all(Option::is_none);
                let mut jobs = if plain {
                    prepared.insert_plain(tx).await?
                } else {
                    prepared.insert_unique(tx).await?
                };
                if !sequences.is_empty() {
                    let released = tx.release_sequences(&sequences).await?;
                    for job in &mut jobs {
                        if let Some((_, state)) = released.iter().find(|(id, _)| *id == job.id) {
                            job.state = *state;
                        }
                    }
                }
                Ok(jobs)
            })
        }))
        .await
}

fn fewer_rows() -> Error {
    Error::InvalidJob("the insert returned fewer rows than jobs".into())
}

/// Jobs validated and keyed for insertion.
struct Prepared {
    jobs: Vec<NewJob>,
    keys: Vec<Option<String>>,
}

impl Prepared {
    fn new(mut jobs: Vec<NewJob>) -> Result<Self> {
        for job in &mut jobs {
            job.validate()?;
            if let (Some(unique), Value::Object(meta)) = (&job.unique, &mut job.meta) {
                let states: Vec<&str> = unique.states.states().iter().map(|s| s.as_str()).collect();
                meta.insert("uniq_states".to_owned(), Value::from(states));
            }
        }
        let keys = jobs
            .iter()
            .map(|job| job.unique.as_ref().map(|u| unique_key(job, u)))
            .collect();
        // After the keys: a unique check on all of `meta` must not see the trace context.
        for job in &mut jobs {
            trace_context::inject(&mut job.meta);
        }
        Ok(Self { jobs, keys })
    }

    /// One insert statement for jobs without unique keys.
    async fn insert_plain(self, statements: &mut dyn InsertStatements) -> Result<Vec<Job>> {
        let all = self.keyed(0..self.jobs.len());
        let rows = statements.insert_rows(&all).await?;
        if rows.len() != self.jobs.len() {
            return Err(fewer_rows());
        }
        Ok(rows
            .into_iter()
            .zip(self.jobs)
            .map(|(row, job)| row.into_job(job))
            .collect())
    }

    /// The rounds of a unique insert, inside the transaction.
    async fn insert_unique(&self, tx: &mut dyn InsertStatements) -> Result<Vec<Job>> {
        let mut results: Vec<Option<Job>> = vec![None; self.jobs.len()];
        let mut pending: Vec<usize> = (0..self.jobs.len()).collect();
        for _round in 0..ROUNDS {
            tx.release_expired(&self.expiring(&pending)).await?;
            let rows = tx.insert_rows(&self.keyed(pending.iter().copied())).await?;
            let conflicted = self.map_rows(&pending, rows, &mut results);
            let outside = self.outside_unique_states(&pending, &results);
            if !outside.is_empty() {
                tx.clear_keys(&outside).await?;
            }
            pending = self.resolve_conflicts(tx, conflicted, &mut results).await?;
            if pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            return Err(Error::InvalidJob(format!(
                "{} unique job(s) kept conflicting with jobs that changed state under them; try again",
                pending.len()
            )));
        }
        results
            .into_iter()
            .map(|job| job.ok_or_else(fewer_rows))
            .collect()
    }

    /// The jobs at `indexes` with their keys.
    fn keyed(&self, indexes: impl Iterator<Item = usize>) -> Vec<Keyed<'_>> {
        indexes
            .map(|i| Keyed {
                job: &self.jobs[i],
                key: self.keys[i].as_deref(),
            })
            .collect()
    }

    /// The keys of `pending` jobs with a period, to release where their holders expired.
    fn expiring(&self, pending: &[usize]) -> Vec<Expiring<'_>> {
        pending
            .iter()
            .filter_map(|&i| {
                let key = self.keys[i].as_deref()?;
                let unique = self.jobs[i].unique.as_ref()?;
                Some(Expiring {
                    key,
                    period: unique.period_duration()?,
                    by_scheduled_at: unique.timestamp == UniqueTimestamp::ScheduledAt,
                })
            })
            .collect()
    }

    /// Maps the stored rows back to `pending` inputs: unkeyed in order, keyed by key (the first
    /// input with a key wins; later equal inputs of the batch conflict with it). Returns the
    /// inputs that conflicted.
    fn map_rows(
        &self,
        pending: &[usize],
        rows: Vec<StoredRow>,
        results: &mut [Option<Job>],
    ) -> Vec<usize> {
        let mut unkeyed = Vec::new();
        let mut by_key: HashMap<String, StoredRow> = HashMap::new();
        for row in rows {
            match row.uniq_key.clone() {
                Some(key) => {
                    by_key.insert(key, row);
                }
                None => unkeyed.push(row),
            }
        }
        let mut unkeyed = unkeyed.into_iter();
        let mut conflicted = Vec::new();
        for &i in pending {
            let row = match self.keys[i].as_deref() {
                None => unkeyed.next(),
                Some(key) => by_key.remove(key),
            };
            match row {
                Some(row) => results[i] = Some(row.into_job(self.jobs[i].clone())),
                None if self.keys[i].is_some() => conflicted.push(i),
                None => {}
            }
        }
        conflicted
    }

    /// Ids of keyed jobs just stored in a state outside their own unique states: they must not
    /// hold their key.
    fn outside_unique_states(&self, pending: &[usize], results: &[Option<Job>]) -> Vec<i64> {
        pending
            .iter()
            .filter(|&&i| self.keys[i].is_some())
            .filter_map(|&i| {
                let job = results[i].as_ref()?;
                let unique = self.jobs[i].unique.as_ref()?;
                (!unique.states.states().contains(&job.state)).then_some(job.id)
            })
            .collect()
    }

    /// Reports each conflicted input as the job holding its key (committed, or inserted earlier
    /// in this batch), after its replace rules; returns the inputs whose holder left its unique
    /// states meanwhile, to try again.
    async fn resolve_conflicts(
        &self,
        tx: &mut dyn InsertStatements,
        conflicted: Vec<usize>,
        results: &mut [Option<Job>],
    ) -> Result<Vec<usize>> {
        if conflicted.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<&str> = conflicted
            .iter()
            .filter_map(|&i| self.keys[i].as_deref())
            .collect();
        let holders: HashMap<String, Job> = tx.key_holders(&wanted).await?.into_iter().collect();
        let mut again = Vec::new();
        for i in conflicted {
            let key = self.keys[i].as_deref().unwrap_or_default();
            let Some(existing) = holders.get(key) else {
                again.push(i);
                continue;
            };
            let mut job = match Replacement::of(&self.jobs[i], existing.state) {
                None => existing.clone(),
                // A holder that changed state since the lookup is reported as found.
                Some(with) => tx
                    .replace(existing, &with)
                    .await?
                    .unwrap_or_else(|| existing.clone()),
            };
            job.conflict = true;
            results[i] = Some(job);
        }
        Ok(again)
    }
}
