//! What a handler sees ([`Job`]) and what it answers ([`JobError`]).

use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A job handed to a handler: its data, its attempt and fencing token, and a signal that
/// fires when the worker must stop it (lease lost, job cancelled, forced shutdown).
#[derive(Debug, Clone)]
pub struct Job {
    pub(crate) contents: std::sync::Arc<Contents>,
    pub(crate) attempt: u32,
    pub(crate) fence: u64,
    pub(crate) due_at: Option<jiff::Timestamp>,
    pub(crate) stop: CancellationToken,
    /// Where [`Job::progress`] reports to; `None` for a job not run by a worker.
    pub(crate) reporter: Option<Reporter>,
}

/// What a job carries from its producer, as its handler reads it (the worker fills it from
/// the stored record; the handler never sees the storage format).
#[derive(Debug)]
pub(crate) struct Contents {
    pub(crate) id: String,
    /// The queue the job is stored in: a sharded queue's shard (`hot#3`).
    pub(crate) queue: String,
    pub(crate) kind: String,
    pub(crate) payload: serde_json::Value,
    pub(crate) meta: BTreeMap<String, String>,
}

/// A running job's line to Redis for progress reports.
#[derive(Clone)]
pub(crate) struct Reporter {
    pub(crate) broker: crate::broker::Broker,
    pub(crate) keys: std::sync::Arc<crate::broker::keys::QueueKeys>,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("queue", &self.keys.name)
            .finish()
    }
}

impl Job {
    /// The job id: stable across attempts, so side effects can be made idempotent with it.
    pub fn id(&self) -> &str {
        &self.contents.id
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        // A job of a sharded queue names its shard in its record (`hot#3`): show the queue.
        crate::shard::logical(&self.contents.queue)
    }

    /// The job kind.
    pub fn kind(&self) -> &str {
        &self.contents.kind
    }

    /// The raw JSON payload.
    pub fn payload(&self) -> &serde_json::Value {
        &self.contents.payload
    }

    /// The payload decoded into `T`. A payload that does not fit is not worth retrying, so the
    /// error kills the job.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        T::deserialize(&self.contents.payload)
            .map_err(|e| JobError::kill(format!("payload does not decode: {e}")))
    }

    /// 1 for the first run, 2 for the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The fencing token of this claim: strictly greater than that of any earlier claim of
    /// this job. Pass it to systems that must reject writes from a holder whose lease expired.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// When the job was due to run: its enqueue time, the end of its delay, or (for a retry)
    /// the end of its backoff. Cron jobs also carry their tick's nominal time in
    /// `meta("scheduled_at")` (Unix ms).
    pub fn due_at(&self) -> Option<jiff::Timestamp> {
        self.due_at
    }

    /// A string tag carried with the job.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.contents.meta.get(key).map(String::as_str)
    }

    /// Resolves when the worker must stop this job: its time limit passed, the lease was lost,
    /// the job was cancelled, or the worker is shutting down past its grace period. The handler keeps being polled for
    /// the worker's stop grace (1 s by default) to clean up, then its future is dropped; what
    /// it returns after the stop is ignored.
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// Report how far the job has got: `value` from 0.0 to 1.0 (clamped) and a short message,
    /// e.g. `job.progress(0.4, "copied 4 of 10 files")`. It is kept with the job
    /// ([`crate::JobInfo::progress`]) and sent to watchers (the dashboard's job page updates
    /// live). Answers `false` when this worker no longer holds the job (nothing recorded).
    /// One round trip: report at human pace, not per item of a tight loop.
    pub async fn progress(&self, value: f64, message: impl Into<String>) -> crate::Result<bool> {
        let Some(reporter) = &self.reporter else {
            return Ok(false);
        };
        let progress = crate::Progress {
            value: if value.is_nan() {
                0.0
            } else {
                value.clamp(0.0, 1.0)
            },
            message: message.into(),
        };
        reporter
            .broker
            .progress(&reporter.keys, self.id(), self.fence, &progress)
            .await
    }

    /// The workflow this job is a step of, if any (docs/workflows.md).
    pub fn flow_id(&self) -> Option<&str> {
        self.meta("flow")
    }

    /// This job's step id in its workflow, if it is a step.
    pub fn step(&self) -> Option<&str> {
        self.meta("step")
    }

    /// The steps this step ran after (empty for a job that is not a step, or a first step).
    pub fn parents(&self) -> Vec<&str> {
        self.meta("after")
            .map(|a| a.split(' ').filter(|p| !p.is_empty()).collect())
            .unwrap_or_default()
    }

    /// The results of this step's parents, by step id: the text each parent's handler
    /// returned, `None` for a parent that ended without one (failed, skipped, or no result).
    /// Kept with the workflow until its retention after its last step ended. One round trip;
    /// empty for a job that is not a step, and for a job not run by a worker.
    pub async fn parent_results(&self) -> crate::Result<BTreeMap<String, Option<String>>> {
        let parents = self.parents();
        let (Some(reporter), Some(flow), false) =
            (&self.reporter, self.flow_id(), parents.is_empty())
        else {
            return Ok(BTreeMap::new());
        };
        let results = reporter
            .broker
            .step_results(&reporter.keys, flow, &parents)
            .await?;
        Ok(parents
            .into_iter()
            .map(str::to_owned)
            .zip(results)
            .collect())
    }

    /// Whether [`Job::stopped`] has fired.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailAction {
    /// Retry after the worker's retry policy delay (or go dead when attempts are used up).
    Retry,
    /// Retry after exactly this delay.
    RetryAfter(Duration),
    /// Do not retry: dead now.
    Kill,
}

/// A failed attempt: a message plus what to do next. `?` on any displayable error gives
/// [`FailAction::Retry`].
pub struct JobError {
    pub(crate) action: FailAction,
    pub(crate) message: String,
}

impl JobError {
    /// Fail this attempt and retry by policy.
    pub fn retry(message: impl fmt::Display) -> JobError {
        JobError {
            action: FailAction::Retry,
            message: message.to_string(),
        }
    }

    /// Fail this attempt and retry after `delay`.
    pub fn retry_after(delay: Duration, message: impl fmt::Display) -> JobError {
        JobError {
            action: FailAction::RetryAfter(delay),
            message: message.to_string(),
        }
    }

    /// Fail the job for good: it goes to dead without further attempts.
    pub fn kill(message: impl fmt::Display) -> JobError {
        JobError {
            action: FailAction::Kill,
            message: message.to_string(),
        }
    }

    /// What happens next.
    pub fn action(&self) -> FailAction {
        self.action
    }

    /// The error text stored with the job.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobError({:?}: {})", self.action, self.message)
    }
}

/// `JobError` deliberately does not implement `Display`, so that this blanket conversion does
/// not collide with `From<T> for T`.
impl<E: fmt::Display> From<E> for JobError {
    fn from(e: E) -> JobError {
        JobError::retry(e)
    }
}

/// What a successful handler returns: nothing, or a result kept with the completed job.
pub trait IntoJobResult {
    /// The result text, if any.
    fn into_job_result(self) -> Option<String>;
}

impl IntoJobResult for () {
    fn into_job_result(self) -> Option<String> {
        None
    }
}

impl IntoJobResult for String {
    fn into_job_result(self) -> Option<String> {
        Some(self)
    }
}

impl IntoJobResult for serde_json::Value {
    fn into_job_result(self) -> Option<String> {
        Some(self.to_string())
    }
}

impl<T: IntoJobResult> IntoJobResult for Option<T> {
    fn into_job_result(self) -> Option<String> {
        self.and_then(IntoJobResult::into_job_result)
    }
}

pub(crate) type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<Option<String>, JobError>> + Send>>;

/// An async function that runs jobs of one kind. Implemented for every
/// `Fn(Job) -> impl Future<Output = Result<impl IntoJobResult, JobError>>`.
pub trait Handler: Send + Sync + 'static {
    /// Run one attempt.
    fn call(&self, job: Job) -> HandlerFuture;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    R: IntoJobResult,
{
    fn call(&self, job: Job) -> HandlerFuture {
        let fut = self(job);
        Box::pin(async move { fut.await.map(IntoJobResult::into_job_result) })
    }
}
