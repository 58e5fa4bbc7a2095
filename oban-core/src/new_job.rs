//! Building jobs to insert: the typed [`JobBuilder`] and the untyped [`NewJob`].

use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::insert::JobInserter;
use crate::job::{Job, JobState};
use crate::sequence::OnFailure;
use crate::unique::{ReplaceField, UniqueOptions};
use crate::worker::Worker;

/// A job ready to insert, with its arguments already encoded.
///
/// Usually made by [`JobBuilder::build`]; build one by hand to enqueue a job for a worker that
/// lives in another codebase (an Elixir or Python Oban node) by its stored name.
///
/// ```
/// use oban_core::NewJob;
/// use serde_json::json;
///
/// let job = NewJob::new("MyApp.Workers.Business", json!({"id": 1}))
///     .queue("events")
///     .priority(2)
///     .tag("imported");
/// assert_eq!(job.worker, "MyApp.Workers.Business");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewJob {
    /// Stored worker name.
    pub worker: String,
    /// Queue name.
    pub queue: String,
    /// Arguments, a JSON object.
    pub args: Value,
    /// Metadata, a JSON object.
    pub meta: Value,
    /// Tags.
    pub tags: Vec<String>,
    /// 0 (highest) to 9.
    pub priority: i32,
    /// At least 1.
    pub max_attempts: i32,
    /// When the job may run; `None` is now (state `available`), a future time is `scheduled`.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Which existing jobs count as duplicates of this one (`None`: not unique).
    pub unique: Option<UniqueOptions>,
    /// On a conflict, the fields of the existing job to overwrite, by its state.
    pub replace: Vec<(JobState, Vec<ReplaceField>)>,
}

impl NewJob {
    /// A job for the worker stored as `worker`, with Oban's defaults (queue `default`, 20
    /// attempts, priority 0).
    pub fn new(worker: impl Into<String>, args: Value) -> Self {
        Self {
            worker: worker.into(),
            queue: "default".to_owned(),
            args,
            meta: Value::Object(Map::new()),
            tags: Vec::new(),
            priority: 0,
            max_attempts: 20,
            scheduled_at: None,
            unique: None,
            replace: Vec::new(),
        }
    }

    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Makes the job unique (see [`crate::unique`]).
    pub fn unique(mut self, unique: UniqueOptions) -> Self {
        self.unique = Some(unique);
        self
    }

    /// On a conflict with an existing job in `state`, overwrite its `fields` with this job's.
    pub fn replace(mut self, state: JobState, fields: &[ReplaceField]) -> Self {
        self.replace.push((state, fields.to_vec()));
        self
    }

    /// Sets the priority, 0 (highest) to 9.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = i32::from(priority);
        self
    }

    /// Sets the maximum number of attempts.
    pub fn max_attempts(mut self, max_attempts: u16) -> Self {
        self.max_attempts = i32::from(max_attempts);
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets one metadata key.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self.meta {
            map.insert(key.into(), value.into());
        }
        self
    }

    /// Runs the job no earlier than `at`.
    pub fn scheduled_at(mut self, at: DateTime<Utc>) -> Self {
        self.scheduled_at = Some(at);
        self
    }

    /// Puts the job in the sequence `key`: jobs with the same key run one at a time, in
    /// insertion order, and a discarded or cancelled one holds the next as `on_failure` says
    /// (see [`crate::sequence`]).
    ///
    /// ```
    /// use oban_core::{sequence::OnFailure, NewJob};
    /// use serde_json::json;
    ///
    /// let job = NewJob::new("Ledger.Post", json!({"account_id": 7}))
    ///     .sequence("account:7", OnFailure::Hold);
    /// assert_eq!(job.meta["sequence"], "account:7");
    /// ```
    pub fn sequence(mut self, key: impl Into<String>, on_failure: OnFailure) -> Self {
        if !self.meta.is_object() {
            self.meta = Value::Object(Map::new());
        }
        if let Value::Object(meta) = &mut self.meta {
            crate::sequence::write_into(meta, key.into(), on_failure);
        }
        self
    }

    /// Runs the job no earlier than `delay` from now.
    pub fn schedule_in(self, delay: Duration) -> Self {
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        let at = Utc::now()
            .checked_add_signed(delay)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.scheduled_at(at)
    }

    /// Checks every field against what the schema and other Oban nodes accept.
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: String| Err(Error::InvalidJob(msg));
        if self.worker.is_empty() {
            return invalid("the worker name is empty".into());
        }
        if self.queue.is_empty() || self.queue.chars().count() >= 128 {
            return invalid(format!(
                "queue `{}` must be 1 to 127 characters long",
                self.queue
            ));
        }
        if !(0..=9).contains(&self.priority) {
            return invalid(format!(
                "priority {} is out of range: use 0 (highest) to 9 (lowest)",
                self.priority
            ));
        }
        if self.max_attempts < 1 {
            return invalid(format!(
                "max_attempts is {}; it must be at least 1",
                self.max_attempts
            ));
        }
        if !self.args.is_object() {
            return invalid(format!(
                "the args of a `{}` job must be a JSON object (Oban nodes in any language expect a map), got {}",
                self.worker, self.args
            ));
        }
        if !self.meta.is_object() {
            return invalid(format!(
                "the meta of a `{}` job must be a JSON object",
                self.worker
            ));
        }
        crate::sequence::validate(&self.worker, &self.meta)?;
        self.refuse_nul()
    }

    /// Refuses a NUL character anywhere in the job's text, naming the field by its JSON path
    /// (`args.customer.name`, `tags[1]`): PostgreSQL cannot store one in `jsonb` or `text`, and
    /// a job must be accepted or refused the same way on every engine.
    fn refuse_nul(&self) -> Result<()> {
        let worker = self.worker.escape_debug();
        let refuse = |field: &str| {
            Err(Error::InvalidJob(format!(
                "{field} of a `{worker}` job contains a NUL character (\\u0000), which PostgreSQL cannot store: remove it, or encode binary data (base64, hex)"
            )))
        };
        if self.worker.contains('\0') {
            return refuse("the worker name");
        }
        if self.queue.contains('\0') {
            return refuse("the queue name");
        }
        for (name, value) in [("args", &self.args), ("meta", &self.meta)] {
            let mut path = name.to_owned();
            if let Some(path) = nul_path(value, &mut path) {
                return refuse(&format!("`{path}`"));
            }
        }
        if let Some(i) = self.tags.iter().position(|tag| tag.contains('\0')) {
            return refuse(&format!("`tags[{i}]`"));
        }
        Ok(())
    }

    /// Inserts the job: on an [`Oban`](crate::Oban), a pool, or inside your own transaction.
    pub async fn insert<'a, I: JobInserter<'a>>(self, target: I) -> Result<Job> {
        let mut jobs = target.insert_jobs(vec![self]).await?;
        jobs.pop()
            .ok_or_else(|| Error::InvalidJob("the insert returned no row".into()))
    }
}

/// The JSON path (from `path`, which it extends) of the first string or object key in `value`
/// holding a NUL character; a key is named by the path of its object plus the key itself.
fn nul_path<'p>(value: &Value, path: &'p mut String) -> Option<&'p str> {
    fn find(value: &Value, path: &mut String) -> bool {
        match value {
            Value::String(text) => text.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = find(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(key, item)| {
                let len = path.len();
                path.push('.');
                path.push_str(&key.escape_debug().to_string());
                let found = key.contains('\0') || find(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    find(value, path).then_some(path.as_str())
}

/// A job of worker `W` being built: its arguments plus per-job overrides of the worker's options.
///
/// `#[worker]` gives every worker a `new(..)` that returns one:
///
/// ```ignore
/// SendReceipt::new(42)
///     .priority(1)
///     .schedule_in(Duration::from_secs(60))
///     .insert(&oban)
///     .await?;
/// ```
#[must_use = "a job builder does nothing until `.insert(..)` is called"]
#[derive(Debug, Clone)]
pub struct JobBuilder<W> {
    args: W,
    queue: Option<String>,
    priority: Option<u8>,
    max_attempts: Option<u16>,
    tags: Option<Vec<String>>,
    meta: Map<String, Value>,
    scheduled_at: Option<DateTime<Utc>>,
    unique: Option<Option<UniqueOptions>>,
    replace: Vec<(JobState, Vec<ReplaceField>)>,
    /// `None`: the worker's sequence; `Some(None)`: none; `Some(Some(key))`: this key.
    sequence: Option<Option<String>>,
    sequence_on_failure: Option<OnFailure>,
    _worker: PhantomData<fn() -> W>,
}

impl<W: Worker> JobBuilder<W> {
    /// A job with these arguments and the worker's defaults.
    pub fn new(args: W) -> Self {
        Self {
            args,
            queue: None,
            priority: None,
            max_attempts: None,
            tags: None,
            meta: Map::new(),
            scheduled_at: None,
            unique: None,
            replace: Vec::new(),
            sequence: None,
            sequence_on_failure: None,
            _worker: PhantomData,
        }
    }

    /// Overrides the worker's unique options for this job.
    pub fn unique(mut self, unique: UniqueOptions) -> Self {
        self.unique = Some(Some(unique));
        self
    }

    /// Inserts this job even if the worker's jobs are unique.
    pub fn not_unique(mut self) -> Self {
        self.unique = Some(None);
        self
    }

    /// On a conflict with an existing job in `state`, overwrite its `fields` with this job's
    /// (e.g. `(JobState::Scheduled, &[ReplaceField::ScheduledAt])` to move a pending job).
    pub fn replace(mut self, state: JobState, fields: &[ReplaceField]) -> Self {
        self.replace.push((state, fields.to_vec()));
        self
    }

    /// Puts this job in the sequence `key` instead of the worker's: jobs with the same key, of
    /// any worker, run one at a time in insertion order (see [`crate::sequence`]). The failure
    /// rule is the worker's, else [`OnFailure::Release`], unless
    /// [`sequence_on_failure`](Self::sequence_on_failure) sets it.
    ///
    /// ```ignore
    /// PostEntry::new(7, 100).sequence("account:7").insert(&oban).await?;
    /// ```
    pub fn sequence(mut self, key: impl Into<String>) -> Self {
        self.sequence = Some(Some(key.into()));
        self
    }

    /// What a discarded or cancelled job does to the jobs of its sequence behind it
    /// ([`OnFailure::Hold`]: they wait until it is retried or deleted).
    pub fn sequence_on_failure(mut self, on_failure: OnFailure) -> Self {
        self.sequence_on_failure = Some(on_failure);
        self
    }

    /// Inserts this job outside any sequence, even if the worker's jobs are sequenced.
    pub fn not_in_sequence(mut self) -> Self {
        self.sequence = Some(None);
        self
    }

    /// The job's arguments.
    pub fn args(&self) -> &W {
        &self.args
    }

    /// Sends the job to another queue than the worker's.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Sets the priority, 0 (highest) to 9.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Sets the maximum number of attempts.
    pub fn max_attempts(mut self, max_attempts: u16) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Replaces the worker's tags.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    /// Sets one metadata key.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.meta.insert(key.into(), value.into());
        self
    }

    /// Runs the job no earlier than `at`.
    pub fn scheduled_at(mut self, at: DateTime<Utc>) -> Self {
        self.scheduled_at = Some(at);
        self
    }

    /// Runs the job no earlier than `delay` from now.
    pub fn schedule_in(mut self, delay: Duration) -> Self {
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        self.scheduled_at = Some(
            Utc::now()
                .checked_add_signed(delay)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        );
        self
    }

    /// Encodes the arguments and applies the worker's defaults.
    pub fn build(self) -> Result<NewJob> {
        let options = W::options();
        let args = serde_json::to_value(&self.args).map_err(|source| Error::EncodeArgs {
            worker: W::NAME.to_owned(),
            source,
        })?;
        let sequence_key = match self.sequence {
            None => options.sequence.map(|s| s.key(W::NAME, &args)),
            Some(key) => key,
        };
        let job = NewJob {
            worker: W::NAME.to_owned(),
            queue: self.queue.unwrap_or_else(|| options.queue.to_owned()),
            args,
            meta: Value::Object({
                let mut meta = self.meta;
                if options.recorded {
                    meta.entry(crate::recorded::RECORDED_KEY)
                        .or_insert(Value::Bool(true));
                }
                if let Some(key) = sequence_key {
                    let on_failure = self
                        .sequence_on_failure
                        .or(options.sequence.map(|s| s.on_failure))
                        .unwrap_or_default();
                    crate::sequence::write_into(&mut meta, key, on_failure);
                }
                meta
            }),
            tags: self
                .tags
                .unwrap_or_else(|| options.tags.iter().map(|t| (*t).to_owned()).collect()),
            priority: i32::from(self.priority.unwrap_or(options.priority)),
            max_attempts: i32::from(self.max_attempts.unwrap_or(options.max_attempts)),
            scheduled_at: self.scheduled_at,
            unique: self.unique.unwrap_or(options.unique),
            replace: self.replace,
        };
        job.validate()?;
        Ok(job)
    }

    /// Inserts the job: on an [`Oban`](crate::Oban), a `PgPool`, or a connection inside your own
    /// transaction (`&mut *tx`), where it commits or rolls back with your data.
    pub async fn insert<'a, I: JobInserter<'a>>(self, target: I) -> Result<Job> {
        self.build()?.insert(target).await
    }
}

impl<W: Worker> From<W> for JobBuilder<W> {
    fn from(args: W) -> Self {
        Self::new(args)
    }
}

/// Anything that can become a [`NewJob`]: a `NewJob`, or a typed [`JobBuilder`] (for cron
/// entries and other places that take a job template).
pub trait IntoNewJob {
    /// The job, validated.
    fn into_new_job(self) -> Result<NewJob>;
}

impl IntoNewJob for NewJob {
    fn into_new_job(self) -> Result<NewJob> {
        self.validate()?;
        Ok(self)
    }
}

impl<W: Worker> IntoNewJob for JobBuilder<W> {
    fn into_new_job(self) -> Result<NewJob> {
        self.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(job: &NewJob) -> String {
        job.validate().unwrap_err().to_string()
    }

    #[test]
    fn a_nul_is_refused_with_the_path_of_its_field() {
        let job = NewJob::new(
            "Billing.Invoice",
            json!({"customer": {"name": "Ann\u{0}", "id": 1}}),
        );
        let message = refusal(&job);
        assert!(message.contains("`args.customer.name`"), "{message}");
        assert!(message.contains("`Billing.Invoice`"), "{message}");
        let listed = NewJob::new("W", json!({"lines": [{"sku": "a"}, {"sku": "b\u{0}"}]}));
        assert!(refusal(&listed).contains("`args.lines[1].sku`"));
        let key = NewJob::new("W", json!({"odd\u{0}key": 1}));
        assert!(
            refusal(&key).contains("`args.odd\\0key`"),
            "{}",
            refusal(&key)
        );
        let meta = NewJob::new("W", json!({})).meta("note", "x\u{0}");
        assert!(refusal(&meta).contains("`meta.note`"));
        let tag = NewJob::new("W", json!({})).tag("ok").tag("b\u{0}d");
        assert!(refusal(&tag).contains("`tags[1]`"));
        assert!(NewJob::new("W", json!({"fine": "\u{1}é"}))
            .validate()
            .is_ok());
    }
}
