//! Watching jobs change state, live: [`Client::events`] and [`Client::wait`].
//!
//! Every script that changes jobs sends one message on a Redis pub/sub channel at its end (the
//! queue and each job's new state), so watching costs Redis one `PUBLISH` per script call,
//! whoever watches. Pub/sub can lose messages (a watcher that reconnects misses what was sent
//! meanwhile): the stream says so with [`Event::Gap`], and [`Client::wait`] reads the job
//! again now and then, so a lost message costs latency, never a wrong answer.

use crate::broker::Broker;
use crate::broker::events::Subscription;
use crate::job::{JobInfo, JobState};
use crate::{Client, Error, ErrorKind, Result};
use serde::Serialize;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often [`Client::wait`] reads the job even without a message.
const WAIT_RECHECK: Duration = Duration::from_secs(1);
/// First pause before a dropped subscription is made again; it doubles up to a second.
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(50);

/// One job's change of state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobChange {
    /// The job's queue.
    pub queue: String,
    /// The job id.
    pub id: String,
    /// Its new state (`waiting scheduled pending active retry dead completed cancelled`), or
    /// `deleted`, or `progress` (a running job reported progress).
    pub state: String,
}

/// What a watcher receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Changes one script made to jobs of one queue (at most 100 named; `left_out` counts
    /// the rest).
    Changes {
        /// The changes, in the order they were made.
        changes: Vec<JobChange>,
        /// Changes made by the same call and not named.
        left_out: u64,
    },
    /// The subscription dropped and was made again: changes in between were missed, so
    /// re-read whatever is shown.
    Gap,
}

/// A live stream of [`Event`]s; it reconnects by itself. Dropping it unsubscribes.
pub struct Events {
    rx: mpsc::Receiver<Event>,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Events {
    /// The next event; `None` only if the watcher task ended (it does not while the stream
    /// lives).
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Client {
    /// Watch every job state change on this Redis. Returns once subscribed: every change
    /// made after this returns is seen (unless the connection drops, which the stream reports
    /// as [`Event::Gap`]).
    pub async fn events(&self) -> Result<Events> {
        let first = self.broker.subscribe_events().await?;
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(forward(self.broker.clone(), first, tx)).abort_handle();
        Ok(Events { rx, task })
    }

    /// Wait until the job ends (completed, dead or cancelled) and answer it as it ended; a
    /// job that is deleted meanwhile is [`ErrorKind::NotFound`], and one still not ended after
    /// `timeout` is [`ErrorKind::Timeout`].
    pub async fn wait(&self, queue: &str, id: &str, timeout: Duration) -> Result<JobInfo> {
        crate::job::validate_queue_name(queue)?;
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before the first read: an end between the two is not missed.
        let mut events = self.events().await?;
        loop {
            let job = self.job(queue, id).await?;
            if job.state.is_finished() {
                return Ok(job);
            }
            let recheck = tokio::time::Instant::now() + WAIT_RECHECK;
            loop {
                let until = recheck.min(deadline);
                let event = tokio::time::timeout_at(until, events.next()).await;
                match event {
                    Ok(Some(Event::Changes { changes, left_out })) => {
                        let ended = changes
                            .iter()
                            .any(|c| c.queue == queue && c.id == id && ends(&c.state));
                        if ended || left_out > 0 {
                            break;
                        }
                    }
                    Ok(Some(Event::Gap)) | Ok(None) => break,
                    Err(_) if tokio::time::Instant::now() >= deadline => {
                        // One last look: it may have ended as the time ran out.
                        let job = self.job(queue, id).await?;
                        if job.state.is_finished() {
                            return Ok(job);
                        }
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "job {id} did not end within {timeout:?}; it is {}",
                                job.state
                            ),
                        ));
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

/// Whether a change ends a job (or removes it).
fn ends(state: &str) -> bool {
    state == "deleted" || state.parse::<JobState>().is_ok_and(JobState::is_finished)
}

/// Forward messages to the stream; when the subscription drops, make it again (with backoff)
/// and report the gap.
async fn forward(broker: Broker, mut sub: Subscription, tx: mpsc::Sender<Event>) {
    loop {
        while let Some(message) = sub.next().await {
            let event = Event::Changes {
                changes: message
                    .changes
                    .into_iter()
                    .map(|c| JobChange {
                        queue: message.queue.clone(),
                        id: c.id,
                        state: c.state,
                    })
                    .collect(),
                left_out: message.left_out,
            };
            if tx.send(event).await.is_err() {
                return; // nobody watches any more
            }
        }
        let mut pause = RESUBSCRIBE_FIRST;
        sub = loop {
            tokio::time::sleep(pause).await;
            match broker.subscribe_events().await {
                Ok(sub) => break sub,
                Err(e) => {
                    tracing::debug!(error = %e, "events: subscribing again failed; retrying");
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
            if tx.is_closed() {
                return;
            }
        };
        if tx.send(Event::Gap).await.is_err() {
            return;
        }
    }
}
