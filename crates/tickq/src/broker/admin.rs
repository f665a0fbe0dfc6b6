//! The operator's transitions: cancel, delete, retry, reschedule, kill, pause, purge, and the
//! janitor's retention. One script call each; a job in the wrong state is refused with what it
//! is, and nothing changes.

use super::keys::QueueKeys;
use super::scripts::SCRIPTS;
use super::{Broker, Retention, due_args, job_not_found};
use crate::job::{Due, JobState};
use crate::{Error, Result};

/// The answer to a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job was waiting and is now cancelled (or was cancelled already).
    Cancelled,
    /// The job is running; its worker was asked to stop it.
    Cancelling,
}

impl Broker {
    pub(crate) async fn cancel(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        id: &str,
    ) -> Result<CancelOutcome> {
        self.upgrade(keys).await?;
        let answer: String = SCRIPTS
            .cancel
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.cancelled)
            .arg(&keys.job_prefix)
            .arg(id)
            .arg(retention.keep_ms().max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        match answer.as_str() {
            "cancelled" => Ok(CancelOutcome::Cancelled),
            "cancelling" => Ok(CancelOutcome::Cancelling),
            "notfound" => Err(job_not_found(&keys.name, id)),
            state => Err(Error::conflict(format!(
                "job {id} is {state}; only scheduled, pending, retry or active jobs can be \
                 cancelled"
            ))),
        }
    }

    /// Delete a job that is not active; answers the state it had.
    pub(crate) async fn delete(&self, keys: &QueueKeys, id: &str) -> Result<JobState> {
        self.upgrade(keys).await?;
        let answer: String = SCRIPTS
            .delete
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.completed)
            .key(&keys.dead)
            .key(&keys.cancelled)
            .arg(&keys.job_prefix)
            .arg(id)
            .invoke_async(&mut self.conn.clone())
            .await?;
        match answer.as_str() {
            "notfound" => Err(job_not_found(&keys.name, id)),
            "active" => Err(Error::conflict(format!(
                "job {id} is active; cancel it first, then delete it"
            ))),
            state => state.parse(),
        }
    }

    /// Run a dead, cancelled, retry or scheduled job now; answers the state it had.
    pub(crate) async fn retry(&self, keys: &QueueKeys, id: &str) -> Result<JobState> {
        self.upgrade(keys).await?;
        let answer: String = SCRIPTS
            .retry
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.dead)
            .key(&keys.cancelled)
            .key(&keys.wake)
            .arg(&keys.job_prefix)
            .arg(id)
            .invoke_async(&mut self.conn.clone())
            .await?;
        use JobState::*;
        previous_state(
            &answer,
            keys,
            id,
            &[Dead, Cancelled, Retry, Scheduled],
            "retried",
        )
    }

    /// Move a waiting job to a new due time; answers the state it had.
    pub(crate) async fn reschedule(
        &self,
        keys: &QueueKeys,
        id: &str,
        due: &Due,
    ) -> Result<JobState> {
        self.upgrade(keys).await?;
        let (at_ms, delay_ms) = due_args(due);
        let answer: String = SCRIPTS
            .reschedule
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.wake)
            .arg(&keys.job_prefix)
            .arg(id)
            .arg(at_ms)
            .arg(delay_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        use JobState::*;
        previous_state(
            &answer,
            keys,
            id,
            &[Scheduled, Pending, Retry],
            "rescheduled",
        )
    }

    /// Send a waiting job to dead by hand; answers the state it had.
    pub(crate) async fn kill(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        id: &str,
    ) -> Result<JobState> {
        self.upgrade(keys).await?;
        let answer: String = SCRIPTS
            .kill
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.dead)
            .arg(&keys.job_prefix)
            .arg(id)
            .arg(retention.dead_max)
            .invoke_async(&mut self.conn.clone())
            .await?;
        use JobState::*;
        previous_state(
            &answer,
            keys,
            id,
            &[Waiting, Scheduled, Pending, Retry],
            "killed",
        )
    }

    /// Pause (`true`) or resume (`false`) a queue; resuming wakes an idle worker. Answers
    /// whether the queue was paused before.
    pub(crate) async fn set_paused(&self, keys: &QueueKeys, paused: bool) -> Result<bool> {
        let before: i64 = SCRIPTS
            .queue_pause
            .key(&keys.paused)
            .key(&keys.wake)
            .arg(u8::from(paused))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(before == 1)
    }

    /// Delete up to `limit` jobs in `state` (not active); answers how many index entries went
    /// (0 when the index is empty).
    pub(crate) async fn purge_batch(
        &self,
        keys: &QueueKeys,
        state: JobState,
        limit: usize,
    ) -> Result<u64> {
        self.upgrade(keys).await?;
        if state == JobState::Active {
            return Err(purge_active(&keys.name));
        }
        Ok(SCRIPTS
            .queue_purge
            .key(keys.index(state))
            .arg(&keys.job_prefix)
            .arg(state.as_str())
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await?)
    }

    /// Drop finished jobs past their retention; answers how many index entries went.
    /// `trim` (memory is tight): drop completed and cancelled jobs whatever their age, oldest
    /// first; dead jobs still go by their own retention, since they wait for a person.
    pub(crate) async fn janitor(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        limit: usize,
        trim: bool,
    ) -> Result<u64> {
        self.upgrade(keys).await?;
        Ok(SCRIPTS
            .janitor
            .key(&keys.completed)
            .key(&keys.cancelled)
            .key(&keys.dead)
            .arg(&keys.job_prefix)
            .arg(if trim { 0 } else { retention.keep_ms() })
            .arg(retention.dead_for.as_millis() as u64)
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await?)
    }
}

fn purge_active(queue: &str) -> Error {
    Error::invalid(format!(
        "active jobs of queue {queue} cannot be purged; cancel them, or pause the queue and let \
         them finish"
    ))
}

/// Read the answer of a script that moves one job out of some states: the state the job had
/// (it moved), 'notfound', or a state outside `allowed` (refused; nothing changed).
fn previous_state(
    answer: &str,
    keys: &QueueKeys,
    id: &str,
    allowed: &[JobState],
    done: &str,
) -> Result<JobState> {
    if answer == "notfound" {
        return Err(job_not_found(&keys.name, id));
    }
    let state: JobState = answer.parse()?;
    if allowed.contains(&state) {
        return Ok(state);
    }
    let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
    let (last, rest) = names.split_last().expect("at least one allowed state");
    let mut message = format!(
        "job {id} is {state}; only {} or {last} jobs can be {done}",
        rest.join(", ")
    );
    if state == JobState::Active {
        message.push_str("; to stop a running job, cancel it");
    }
    Err(Error::conflict(message))
}
