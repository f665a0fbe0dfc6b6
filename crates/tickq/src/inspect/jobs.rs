//! Jobs: pages of one state with filters and a cursor, one job by id, actions by id, and bulk
//! actions by filter.

use super::{Inspector, shards};
use crate::broker::{CancelOutcome, PageQuery, job_not_found};
use crate::job::{JobInfo, JobState, validate_queue_name};
use crate::{Error, ErrorKind, Result};
use futures::future::join_all;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The most jobs one page holds.
pub const MAX_PAGE: usize = 1000;
/// Entries one script call examines when filtering: a bounded, short time inside Redis.
const BUDGET_PER_CALL: usize = 2000;
/// Entries one filtered page request examines at most, over several calls; past it the page
/// ends early with a cursor, so a search of a million jobs never holds the caller for long.
const BUDGET_PER_PAGE: usize = 20_000;
/// Jobs acted on per round of a bulk action (the actions of a round run concurrently).
const BULK_ROUND: usize = 200;

/// Which jobs of a state to show or act on. Every filter that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobFilter {
    /// The job kind, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A substring of the payload (as stored JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// A substring of the last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The state's time (due for scheduled, pending and retry; start for active; end for the
    /// others) at or after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    /// The state's time before this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
}

impl JobFilter {
    fn is_empty(&self) -> bool {
        *self == JobFilter::default()
    }
}

/// A page of one queue's jobs: `tickq jobs --json`, `GET /api/queues/{queue}/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobPage {
    /// The queue.
    pub queue: String,
    /// The state listed (`None`: every state, as `tickq jobs` without `--state` shows).
    pub state: Option<JobState>,
    /// The jobs, in the state's order: waiting ones next to run first, active ones oldest
    /// start first, finished ones newest first.
    pub jobs: Vec<JobInfo>,
    /// Where the next page starts; `None` at the end.
    pub next_cursor: Option<String>,
    /// How many index entries were examined for this page.
    pub scanned: u64,
}

/// An action on a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum JobAction {
    /// Run a dead, cancelled, retry or scheduled job now.
    Retry,
    /// Send a waiting job to dead.
    Kill,
    /// Delete a job that is not running.
    Delete,
    /// Cancel a waiting job, or ask a running one to stop.
    Cancel,
}

impl JobAction {
    /// Its name, as in the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobAction::Retry => "retry",
            JobAction::Kill => "kill",
            JobAction::Delete => "delete",
            JobAction::Cancel => "cancel",
        }
    }
}

impl std::str::FromStr for JobAction {
    type Err = Error;

    fn from_str(s: &str) -> Result<JobAction> {
        match s {
            "retry" => Ok(JobAction::Retry),
            "kill" => Ok(JobAction::Kill),
            "delete" => Ok(JobAction::Delete),
            "cancel" => Ok(JobAction::Cancel),
            _ => Err(Error::invalid(format!(
                "unknown action {s:?}; expected one of: retry kill delete cancel"
            ))),
        }
    }
}

/// What an action on one job did: `tickq retry|kill|delete|cancel ID --json`, and the API's
/// answer to the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobActed {
    /// The job id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// What was done.
    pub action: JobAction,
    /// The state it had.
    pub previous_state: JobState,
    /// The state it has now (`None`: deleted).
    pub state: Option<JobState>,
    /// For a cancel: cancelled now, or (a running job) its worker was asked to stop it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<CancelOutcome>,
    /// For a delete: true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// What a bulk action did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkOutcome {
    /// Jobs that matched the filter.
    pub matched: u64,
    /// Jobs acted on (a job that moved out of the state meanwhile is matched, not acted on).
    pub acted: u64,
}

/// `(score, id)` of a page's last entry, as text: `score:id` (a score has no colon).
fn encode_cursor(score: &str, id: &str) -> String {
    format!("{score}:{id}")
}

/// A sharded queue's cursor: which physical queue (`n` of them), and the cursor within it
/// (`None`: its start).
fn decode_shard_cursor(cursor: &str, n: usize) -> Result<(usize, Option<String>)> {
    let bad = || {
        Error::invalid(format!(
            "invalid cursor {cursor:?}: pass the next_cursor of the previous page as it is"
        ))
    };
    let (at, inner) = cursor.split_once('/').ok_or_else(bad)?;
    let at: usize = at.parse().map_err(|_| bad())?;
    if at >= n {
        return Err(bad());
    }
    if inner.is_empty() {
        return Ok((at, None));
    }
    decode_cursor(inner)?;
    Ok((at, Some(inner.to_owned())))
}

fn decode_cursor(cursor: &str) -> Result<(&str, &str)> {
    cursor
        .split_once(':')
        .filter(|(score, id)| score.parse::<f64>().is_ok() && !id.is_empty())
        .ok_or_else(|| {
            Error::invalid(format!(
                "invalid cursor {cursor:?}: pass the next_cursor of the previous page as it is"
            ))
        })
}

/// The job field that holds a state's time, and whether its page is newest first.
fn state_order(state: JobState) -> (&'static str, bool) {
    match state {
        JobState::Waiting => ("created", false),
        JobState::Scheduled | JobState::Pending | JobState::Retry => ("due", false),
        JobState::Active => ("started", false),
        JobState::Dead | JobState::Completed | JobState::Cancelled => ("finished", true),
    }
}

impl Inspector {
    /// A page of a queue's jobs in one state that match `filter`, after `cursor` (the previous
    /// page's `next_cursor`; `None` for the first page), at most `limit` (1 to [`MAX_PAGE`]).
    ///
    /// A page never repeats or skips a job that stayed in the state while the caller paged.
    /// With a filter, one call examines a bounded number of jobs, so a page may hold fewer
    /// than `limit` (even none) and still have a `next_cursor`.
    pub async fn jobs(
        &self,
        queue: &str,
        state: JobState,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<JobPage> {
        validate_queue_name(queue)?;
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        let layout = self.broker.layout(queue).await?;
        if !layout.is_sharded() {
            let (ids, next, scanned) = self.page_ids(queue, state, filter, cursor, limit).await?;
            let keys = self.broker.keys(queue);
            return Ok(JobPage {
                queue: queue.to_owned(),
                state: Some(state),
                jobs: self.broker.jobs(&keys, &ids).await?,
                next_cursor: next,
                scanned,
            });
        }
        // A sharded queue is paged one physical queue after the other (base queue first), in
        // each one's order; the cursor is `shard/` followed by that queue's own cursor.
        let physical: Vec<&str> = layout.physical().collect();
        let (mut at, mut inner) = match cursor {
            None => (0, None),
            Some(c) => decode_shard_cursor(c, physical.len())?,
        };
        let mut page = JobPage {
            queue: queue.to_owned(),
            state: Some(state),
            jobs: Vec::new(),
            next_cursor: None,
            scanned: 0,
        };
        while at < physical.len() && page.jobs.len() < limit {
            let want = limit - page.jobs.len();
            let (ids, next, scanned) = self
                .page_ids(physical[at], state, filter, inner.as_deref(), want)
                .await?;
            let keys = self.broker.keys(physical[at]);
            page.jobs.extend(
                self.broker
                    .jobs(&keys, &ids)
                    .await?
                    .into_iter()
                    .map(shards::as_logical),
            );
            page.scanned += scanned;
            match next {
                Some(next) => inner = Some(next),
                None => {
                    at += 1;
                    inner = None;
                }
            }
            if page.scanned >= BUDGET_PER_PAGE as u64 {
                break;
            }
        }
        if at < physical.len() {
            page.next_cursor = Some(format!("{at}/{}", inner.unwrap_or_default()));
        }
        Ok(page)
    }

    /// Up to `limit` matching ids after `cursor`, the next cursor, and how many entries were
    /// examined.
    async fn page_ids(
        &self,
        queue: &str,
        state: JobState,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>, u64)> {
        let keys = self.broker.keys(queue);
        let (time_field, newest_first) = state_order(state);
        let mut after = cursor
            .map(decode_cursor)
            .transpose()?
            .map(|(s, i)| (s.to_owned(), i.to_owned()));
        let filtered = !filter.is_empty();
        let mut ids = Vec::new();
        let mut scanned = 0u64;
        loop {
            let budget = if filtered {
                BUDGET_PER_CALL
            } else {
                limit - ids.len()
            };
            let page = self
                .broker
                .page(
                    &keys,
                    state,
                    &PageQuery {
                        newest_first,
                        after: after.as_ref().map(|(s, i)| (s.as_str(), i.as_str())),
                        want: limit - ids.len(),
                        budget,
                        kind: filter.kind.as_deref().unwrap_or(""),
                        payload: filter.payload.as_deref().unwrap_or(""),
                        error: filter.error.as_deref().unwrap_or(""),
                        from_ms: filter.from.map(|t| t.as_millisecond()),
                        to_ms: filter.to.map(|t| t.as_millisecond()),
                        time_field,
                    },
                )
                .await?;
            scanned += page.examined;
            ids.extend(page.ids);
            after = page.next;
            if after.is_none() || ids.len() >= limit || scanned >= BUDGET_PER_PAGE as u64 {
                break;
            }
        }
        let next = after.map(|(score, id)| encode_cursor(&score, &id));
        Ok((ids, next, scanned))
    }

    /// Find a job by id alone, in any queue (in any shard of a sharded queue).
    pub async fn job(&self, id: &str) -> Result<JobInfo> {
        Ok(shards::as_logical(self.find(id).await?))
    }

    /// [`Inspector::job`], with the physical queue that holds the job as its `queue`.
    async fn find(&self, id: &str) -> Result<JobInfo> {
        crate::job::validate_job_id(id)?;
        for queue in self.queues().await? {
            let layout = self.broker.layout(&queue).await?;
            if let Some(job) = self.find_in(&layout, id).await? {
                return Ok(job);
            }
        }
        Err(Error::not_found(format!("no job {id} in any queue")))
    }

    /// One job of a known queue (in any of its shards).
    pub async fn job_in(&self, queue: &str, id: &str) -> Result<JobInfo> {
        validate_queue_name(queue)?;
        let layout = self.broker.layout(queue).await?;
        self.find_in(&layout, id)
            .await?
            .map(shards::as_logical)
            .ok_or_else(|| job_not_found(queue, id))
    }

    /// Run a dead, cancelled, retry or scheduled job now.
    pub async fn retry(&self, id: &str) -> Result<JobActed> {
        self.act(JobAction::Retry, id).await
    }

    /// Send a waiting (scheduled, pending or retry) job to dead by hand, where it is kept and
    /// can be retried. A running job is refused ([`ErrorKind::Conflict`]): cancel it.
    pub async fn kill(&self, id: &str) -> Result<JobActed> {
        self.act(JobAction::Kill, id).await
    }

    /// Delete a job that is not running.
    pub async fn delete(&self, id: &str) -> Result<JobActed> {
        self.act(JobAction::Delete, id).await
    }

    /// Cancel a job: a waiting job is cancelled at once; a running one is stopped by its
    /// worker at its next lease renewal.
    pub async fn cancel(&self, id: &str) -> Result<JobActed> {
        self.act(JobAction::Cancel, id).await
    }

    /// Find the job, then act on it where it is.
    pub async fn act(&self, action: JobAction, id: &str) -> Result<JobActed> {
        let job = self.find(id).await?;
        let mut acted = self.act_in(action, &job.queue, id, job.state).await?;
        self.relay_if_steps(&job.queue, [id]).await;
        acted.queue = crate::shard::logical(&acted.queue).to_owned();
        Ok(acted)
    }

    /// A workflow step ended or restarted by hand may have written its queue's outbox for
    /// steps in other queues (docs/workflows.md): hand it on now, not at the workers' next
    /// relay (seconds later, or never when no worker works the queue).
    async fn relay_if_steps<'a>(&self, queue: &str, ids: impl IntoIterator<Item = &'a str>) {
        if !ids
            .into_iter()
            .any(|id| id.starts_with(crate::flow::FLOW_JOB_PREFIX))
        {
            return;
        }
        if let Err(e) = self.broker.relay_flows(&self.broker.keys(queue)).await {
            tracing::debug!(queue, error = %e, "relaying a step's end failed; the workers' relays will");
        }
    }

    /// Act on a job of a known queue; `seen` is the state it was last seen in (a cancel
    /// reports it as the previous state).
    async fn act_in(
        &self,
        action: JobAction,
        queue: &str,
        id: &str,
        seen: JobState,
    ) -> Result<JobActed> {
        let keys = self.broker.keys(queue);
        let acted = |previous_state, state| JobActed {
            id: id.to_owned(),
            queue: queue.to_owned(),
            action,
            previous_state,
            state,
            outcome: None,
            deleted: false,
        };
        Ok(match action {
            JobAction::Retry => {
                let was = self.broker.retry(&keys, id).await?;
                acted(was, Some(JobState::Pending))
            }
            JobAction::Kill => {
                let was = self.broker.kill(&keys, &self.retention, id).await?;
                acted(was, Some(JobState::Dead))
            }
            JobAction::Delete => {
                let was = self.broker.delete(&keys, id).await?;
                JobActed {
                    deleted: true,
                    ..acted(was, None)
                }
            }
            JobAction::Cancel => {
                let outcome = self.broker.cancel(&keys, &self.retention, id).await?;
                let state = match outcome {
                    CancelOutcome::Cancelled => JobState::Cancelled,
                    CancelOutcome::Cancelling => JobState::Active,
                };
                JobActed {
                    outcome: Some(outcome),
                    ..acted(seen, Some(state))
                }
            }
        })
    }

    /// Act on every job of a queue in `state` that matches `filter`, in bounded rounds (never
    /// one long script); with `dry_run`, only count them. A job that moved out of the state
    /// meanwhile is counted as matched but not acted on.
    pub async fn bulk(
        &self,
        queue: &str,
        state: JobState,
        filter: &JobFilter,
        action: JobAction,
        dry_run: bool,
    ) -> Result<BulkOutcome> {
        validate_queue_name(queue)?;
        let layout = self.broker.layout(queue).await?;
        if action == JobAction::Kill && !dry_run {
            // Each shard has its own dead set, capped on its own: check them all before
            // killing anything.
            for physical in layout.physical() {
                self.check_room_in_dead(physical, state, filter).await?;
            }
        }
        let mut outcome = BulkOutcome::default();
        for physical in layout.physical() {
            self.bulk_in(physical, state, filter, action, dry_run, &mut outcome)
                .await?;
        }
        Ok(outcome)
    }

    /// [`Inspector::bulk`] on one physical queue, adding to `outcome`.
    async fn bulk_in(
        &self,
        queue: &str,
        state: JobState,
        filter: &JobFilter,
        action: JobAction,
        dry_run: bool,
        outcome: &mut BulkOutcome,
    ) -> Result<()> {
        let mut cursor: Option<String> = None;
        loop {
            let (ids, next, _) = self
                .page_ids(queue, state, filter, cursor.as_deref(), BULK_ROUND)
                .await?;
            outcome.matched += ids.len() as u64;
            if !dry_run {
                let results =
                    join_all(ids.iter().map(|id| self.act_in(action, queue, id, state))).await;
                self.relay_if_steps(queue, ids.iter().map(String::as_str))
                    .await;
                for result in results {
                    match result {
                        Ok(_) => outcome.acted += 1,
                        // Moved on (ran, finished, was deleted) since it was listed.
                        Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => {
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Refuse a bulk kill of more jobs than the dead set keeps: the kills would push their own
    /// first victims out (a kill trims the dead set to `dead_max`, oldest first), so the
    /// answer would count jobs that no longer exist anywhere.
    async fn check_room_in_dead(
        &self,
        queue: &str,
        state: JobState,
        filter: &JobFilter,
    ) -> Result<()> {
        let cap = self.retention.dead_max;
        let mut counted = BulkOutcome::default();
        self.bulk_in(queue, state, filter, JobAction::Kill, true, &mut counted)
            .await?;
        if counted.matched > cap {
            return Err(Error::conflict(format!(
                "refused: killing more than {cap} jobs of queue {} would delete the first ones \
                 again (the dead set keeps at most {cap}, oldest first); narrow the filter, or \
                 delete them instead",
                crate::shard::logical(queue)
            )));
        }
        Ok(())
    }
}
