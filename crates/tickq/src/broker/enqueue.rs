//! Enqueue: the enqueue script for jobs that need checks, and a script-free transaction for
//! many plain jobs.
//!
//! A *plain* job has an id tickq generated (a fresh UUID v7, so no job with it can exist) and no
//! unique key: creating it needs no read, only writes. Bulk enqueues of plain jobs therefore
//! skip Lua, whose per-job cost (argument tables, one converted reply per `redis.call`) is
//! most of a scripted enqueue: one round trip reserves sequence numbers and reads Redis' clock,
//! a second writes the jobs in `MULTI`/`EXEC` transactions. Both paths write the same hash
//! fields and index entries; the script table tests run both.

use super::keys::QueueKeys;
use super::message::Envelope;
use super::record;
use super::scripts::SCRIPTS;
use super::{Broker, ceil_ms, ceil_ms_at, due_args};
use crate::job::{Due, Enqueued, JobState, NewJob, PartialEnqueue};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most jobs one enqueue script call or transaction creates; bigger batches are split so that
/// Redis is never held for long.
pub(crate) const ENQUEUE_CHUNK: usize = 1000;

/// Plain jobs of one queue in one call from which the transaction path is used: below it, its
/// extra round trip costs more than the script's per-job work saves.
pub(crate) const PLAIN_MIN: usize = 32;

/// Most chunks of one enqueue in flight at once. A chunk costs Redis a few ms, so the last
/// reply of a full window arrives within tens of ms on an idle Redis: far inside the response
/// timeout even on a slow machine, and enough calls queued that Redis never waits for the
/// client to encode the next chunk.
pub(crate) const ENQUEUE_WINDOW: usize = 16;

/// A call in flight that answers some jobs of a bulk enqueue, by their index in it.
type Answering<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<Vec<(usize, Enqueued)>>> + Send + 'a>>;

/// One chunk of an enqueue, not sent yet: jobs by their index in the call.
enum Call {
    /// Plain jobs in a transaction, created at Redis time `now`.
    Plain {
        keys: Arc<QueueKeys>,
        chunk: Vec<usize>,
        now: i64,
    },
    /// Jobs through the enqueue script.
    Scripted {
        keys: Arc<QueueKeys>,
        chunk: Vec<usize>,
    },
}

/// The id of a job of an enqueue: every job has one once [`Broker::enqueue`] has begun.
fn job_id(job: &NewJob) -> &str {
    job.id.as_deref().expect("ids are assigned before sending")
}

impl Broker {
    /// Enqueue jobs (any mix of queues). Answers in the order given.
    ///
    /// Every job without an id gets one before anything is sent, so the outcome of each job
    /// can be told apart: on failure the error carries a [`PartialEnqueue`] listing the jobs
    /// Redis confirmed and every other job with its id, which a retry enqueues at most once
    /// (a job that went in after all is answered `created: false`).
    ///
    /// Calls go out as a window of at most [`ENQUEUE_WINDOW`] chunks in flight: enough to keep
    /// Redis busy while the next chunk is encoded, and few enough that the last reply of the
    /// window comes long before the response timeout, whatever the size of the whole call.
    /// (With every chunk of a million jobs in flight at once, the replies at the back of the
    /// queue waited more than the timeout while Redis worked through the front.)
    pub(crate) async fn enqueue(&self, mut jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        for job in &jobs {
            job.validate()?;
        }
        self.check_room().await?;
        let mut by_queue: BTreeMap<String, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        for (i, job) in jobs.iter().enumerate() {
            let (plain, checked) = by_queue.entry(job.queue.clone()).or_default();
            if job.id.is_none() && job.unique.is_none() {
                plain.push(i);
            } else {
                checked.push(i);
            }
        }
        for job in &mut jobs {
            if job.id.is_none() {
                job.id = Some(uuid::Uuid::now_v7().to_string());
            }
        }
        let mut calls = Vec::new();
        let mut failure = None;
        for (queue, (plain, checked)) in by_queue {
            if let Err(e) = self.register_queue(&queue).await {
                failure = Some(e);
                break;
            }
            let keys = self.keys(&queue);
            if let Err(e) = self.upgrade_to_write(&keys).await {
                failure = Some(e);
                break;
            }
            let mut scripted = checked;
            if plain.len() >= PLAIN_MIN {
                match self.redis_now().await {
                    Ok(now) => {
                        for chunk in plain.chunks(ENQUEUE_CHUNK) {
                            calls.push(Call::Plain {
                                keys: keys.clone(),
                                chunk: chunk.to_vec(),
                                now,
                            });
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            } else {
                scripted.extend(plain);
            }
            scripted.sort_unstable();
            for chunk in scripted.chunks(ENQUEUE_CHUNK) {
                calls.push(Call::Scripted {
                    keys: keys.clone(),
                    chunk: chunk.to_vec(),
                });
            }
        }
        let mut out: Vec<Option<Enqueued>> = vec![None; jobs.len()];
        if failure.is_none() {
            failure = self.send_window(&jobs, calls, &mut out).await;
        }
        match failure {
            None => Ok(out
                .into_iter()
                .map(|e| e.expect("every job answered"))
                .collect()),
            Some(error) => {
                let mut partial = PartialEnqueue::default();
                for ((i, job), answer) in jobs.into_iter().enumerate().zip(out) {
                    match answer {
                        Some(answer) => partial.enqueued.push((i, answer)),
                        None => partial.unconfirmed.push((i, job)),
                    }
                }
                Err(error.with_partial(partial))
            }
        }
    }

    /// Send `calls` with at most [`ENQUEUE_WINDOW`] in flight, writing each confirmed answer
    /// into `out`. After the first failure nothing more is sent, the calls in flight are
    /// awaited (each that answers is confirmed), and that failure is returned.
    async fn send_window(
        &self,
        jobs: &[NewJob],
        calls: Vec<Call>,
        out: &mut [Option<Enqueued>],
    ) -> Option<Error> {
        use futures::StreamExt;
        let mut calls = calls.into_iter();
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut failure = None;
        loop {
            while failure.is_none() && in_flight.len() < ENQUEUE_WINDOW {
                match calls.next() {
                    Some(call) => in_flight.push(self.send(jobs, call)),
                    None => break,
                }
            }
            match in_flight.next().await {
                Some(Ok(answers)) => {
                    for (i, answer) in answers {
                        out[i] = Some(answer);
                    }
                }
                Some(Err(e)) => {
                    failure.get_or_insert(e);
                }
                None => return failure,
            }
        }
    }

    /// One chunk's call.
    fn send<'a>(&self, jobs: &'a [NewJob], call: Call) -> Answering<'a> {
        match call {
            Call::Plain { keys, chunk, now } => {
                let mut conn = self.conn();
                Box::pin(async move {
                    let (pipe, answers) = plain_transaction(&keys, jobs, &chunk, now);
                    let () = pipe.query_async(&mut conn).await?;
                    Ok(answers)
                })
            }
            Call::Scripted { keys, chunk } => Box::pin(self.enqueue_scripted(&keys, jobs, chunk)),
        }
    }

    /// Redis' clock in ms: the creation time of the plain jobs of one enqueue.
    async fn redis_now(&self) -> Result<i64> {
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut self.conn()).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// One enqueue script call for the jobs at `chunk` (all of `keys`' queue).
    fn enqueue_scripted<'a>(
        &self,
        keys: &QueueKeys,
        jobs: &'a [NewJob],
        chunk: Vec<usize>,
    ) -> impl Future<Output = Result<Vec<(usize, Enqueued)>>> + 'a {
        let mut inv = SCRIPTS.enqueue.prepare_invoke();
        inv.key(&keys.pending).key(&keys.scheduled).key(&keys.wake);
        inv.arg(&keys.job_prefix);
        for &i in &chunk {
            let job = &jobs[i];
            let (at_ms, delay_ms) = due_args(&job.due);
            let id = job_id(job);
            inv.arg(id).arg(Envelope::encode_new(job));
            inv.arg(job.priority)
                .arg(job.max_attempts)
                .arg(at_ms)
                .arg(delay_ms);
            match &job.unique {
                Some(unique) => inv
                    .arg(keys.unique(&unique.key(job)))
                    .arg(unique.ttl.as_millis() as u64),
                None => inv.arg("").arg(0),
            };
        }
        let mut conn = self.conn();
        async move {
            let states: Vec<String> = inv.invoke_async(&mut conn).await?;
            chunk
                .into_iter()
                .zip(states)
                .map(|(i, answer)| {
                    let answer = enqueue_answer(&answer, job_id(&jobs[i]), &jobs[i].queue)?;
                    Ok((i, answer))
                })
                .collect()
        }
    }
}

/// The `MULTI`/`EXEC` that writes the plain jobs at `chunk` as the enqueue script would at
/// Redis time `now`, and the answers it gives. Pending jobs go to the back of their
/// priority's list (lua/prelude.lua, "Pending"), one RPUSH per priority, and the priority
/// into the set of priorities (a ZADD of a member already there changes nothing): a
/// transaction cannot ask whether the list was empty first. FIFO across chunks is the order
/// Redis runs them in: the chunks of one queue are sent in order on one connection.
fn plain_transaction(
    keys: &QueueKeys,
    jobs: &[NewJob],
    chunk: &[usize],
    now: i64,
) -> (redis::Pipeline, Vec<(usize, Enqueued)>) {
    let now_s = now.to_string();
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut answers = Vec::with_capacity(chunk.len());
    // Pending ids by priority, in the order of `chunk`.
    let mut pending: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    let mut scheduled: Vec<(i64, &str)> = Vec::new();
    let mut payloads: Vec<(&str, Vec<u8>)> = Vec::with_capacity(chunk.len());
    for &i in chunk {
        let job = &jobs[i];
        let id = job_id(job);
        let due = match &job.due {
            Due::Now => now,
            // Rounded up, plus the millisecond that `now` was truncated by: never early
            // (as `due_args` does for the script path).
            Due::In(d) => now
                .saturating_add(i64::try_from(ceil_ms(*d)).unwrap_or(i64::MAX))
                .saturating_add(1),
            Due::At(t) => ceil_ms_at(*t).max(now),
        };
        let state = if due > now {
            scheduled.push((due, id));
            JobState::Scheduled
        } else {
            pending.entry(job.priority).or_default().push(id);
            JobState::Pending
        };
        // The payload `job_create` (lua/prelude.lua) writes; notes only for a delayed job.
        payloads.push((
            id,
            record::payload(
                &now_s,
                &due.to_string(),
                &job.max_attempts.to_string(),
                &job.priority.to_string(),
                Envelope::encode_new(job).as_bytes(),
            ),
        ));
        answers.push((
            i,
            Enqueued {
                id: id.to_owned(),
                queue: job.queue.clone(),
                state,
                created: true,
                duplicate: false,
            },
        ));
    }
    let delayed: Vec<&str> = scheduled.iter().map(|(_, id)| *id).collect();
    record::create(&mut pipe, keys, &payloads, &delayed);
    for (priority, ids) in &pending {
        pipe.rpush(keys.pending_band(*priority), ids).ignore();
        pipe.zadd(&keys.pending, priority, -priority).ignore();
    }
    if !scheduled.is_empty() {
        pipe.zadd_multiple(&keys.scheduled, &scheduled).ignore();
    }
    // Idle workers wake and look; one that sleeps until a due time recomputes it.
    pipe.add_command(super::wake_command(keys)).ignore();
    // What the enqueue script does at its end: count the jobs in the minute's history (the
    // expiry is set again, which is harmless) and send them as one event message.
    let history = keys.history(now);
    pipe.hincr(&history, "e", chunk.len())
        .ignore()
        .pexpire(&history, super::keys::HISTORY_KEEP.as_millis() as i64)
        .ignore();
    let events = answers
        .iter()
        .map(|(_, e)| (e.state.as_str(), e.id.as_str()));
    pipe.publish(&keys.events, super::events::message(&keys.name, events))
        .ignore();
    (pipe, answers)
}

/// Read one answer of the enqueue script for the job `id` asked for.
fn enqueue_answer(answer: &str, id: &str, queue: &str) -> Result<Enqueued> {
    let (state, id, created, duplicate) = if let Some(state) = answer.strip_prefix("exists:") {
        (state, id, false, false)
    } else if let Some(rest) = answer.strip_prefix("dup:") {
        let (state, holder) = rest
            .split_once(':')
            .ok_or_else(|| Error::corrupt(format!("enqueue script answered {answer:?}")))?;
        (state, holder, false, true)
    } else {
        (answer, id, true, false)
    };
    Ok(Enqueued {
        id: id.to_owned(),
        queue: queue.to_owned(),
        state: state.parse()?,
        created,
        duplicate,
    })
}
