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
use super::scripts::SCRIPTS;
use super::{Broker, due_args};
use crate::job::{Due, Enqueued, JobState, NewJob};
use crate::{Error, Result};
use std::collections::BTreeMap;

/// Most jobs one enqueue script call or transaction creates; bigger batches are split so that
/// Redis is never held for long.
pub(crate) const ENQUEUE_CHUNK: usize = 1000;

/// Plain jobs of one queue in one call from which the transaction path is used: below it, its
/// extra round trip costs more than the script's per-job work saves.
pub(crate) const PLAIN_MIN: usize = 32;

/// A call in flight that answers some jobs of a bulk enqueue, by their index in it.
type Answering<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<Vec<(usize, Enqueued)>>> + Send + 'a>>;

/// Same scoring as `pending_score` in prelude.lua.
/// Below 2^53, so Redis' double score holds it exactly.
fn pending_score(priority: i32, seq: i64) -> i64 {
    const PRIORITY_MAX: i64 = 1000;
    const SEQ_SPAN: i64 = 1 << 42;
    (PRIORITY_MAX - i64::from(priority)) * SEQ_SPAN + seq
}

impl Broker {
    /// Enqueue jobs (any mix of queues), all calls in flight at once. Answers in the order
    /// given.
    pub(crate) async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        for job in &jobs {
            job.validate()?;
        }
        self.check_room().await?;
        let mut by_queue: BTreeMap<&str, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        for (i, job) in jobs.iter().enumerate() {
            let (plain, checked) = by_queue.entry(&job.queue).or_default();
            if job.id.is_none() && job.unique.is_none() {
                plain.push(i);
            } else {
                checked.push(i);
            }
        }
        for queue in by_queue.keys() {
            self.register_queue(queue).await?;
        }
        let ids: Vec<String> = jobs
            .iter()
            .map(|j| {
                j.id.clone()
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
            })
            .collect();
        let mut out: Vec<Option<Enqueued>> = vec![None; jobs.len()];
        let mut scripted = Vec::new();
        let mut transactions = Vec::new();
        for (queue, (plain, checked)) in by_queue {
            let keys = self.keys(queue);
            if plain.len() >= PLAIN_MIN {
                transactions.push(self.enqueue_plain(keys.clone(), &jobs, &ids, plain));
            } else {
                scripted.extend(plain);
            }
            scripted.extend(checked);
            scripted.sort_unstable();
            for chunk in scripted.chunks(ENQUEUE_CHUNK) {
                let call = self.enqueue_scripted(&keys, &jobs, &ids, chunk.to_vec());
                transactions.push(Box::pin(call));
            }
            scripted.clear();
        }
        for result in futures::future::join_all(transactions).await {
            for (i, answer) in result? {
                out[i] = Some(answer);
            }
        }
        Ok(out
            .into_iter()
            .map(|e| e.expect("every job answered"))
            .collect())
    }

    /// One enqueue script call for the jobs at `chunk` (all of `keys`' queue).
    fn enqueue_scripted<'a>(
        &self,
        keys: &QueueKeys,
        jobs: &'a [NewJob],
        ids: &'a [String],
        chunk: Vec<usize>,
    ) -> impl Future<Output = Result<Vec<(usize, Enqueued)>>> + 'a {
        let mut inv = SCRIPTS.enqueue.prepare_invoke();
        inv.key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.seq)
            .key(&keys.wake);
        inv.arg(&keys.job_prefix);
        for &i in &chunk {
            let job = &jobs[i];
            let (at_ms, delay_ms) = due_args(&job.due);
            inv.arg(&ids[i]).arg(Envelope::encode_new(&ids[i], job));
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
                .map(|(i, answer)| Ok((i, enqueue_answer(&answer, &ids[i], &jobs[i].queue)?)))
                .collect()
        }
    }

    /// Plain jobs of one queue without a script (see the module docs): reserve their sequence
    /// numbers and read Redis' clock, then write them in one transaction per chunk.
    fn enqueue_plain<'a>(
        &self,
        keys: std::sync::Arc<QueueKeys>,
        jobs: &'a [NewJob],
        ids: &'a [String],
        plain: Vec<usize>,
    ) -> Answering<'a> {
        let mut conn = self.conn();
        Box::pin(async move {
            let n = plain.len() as i64;
            let (seq_end, (secs, micros)): (i64, (i64, i64)) = redis::pipe()
                .incr(&keys.seq, n)
                .cmd("TIME")
                .query_async(&mut conn)
                .await?;
            let now = secs * 1000 + micros / 1000;
            // One transaction per chunk, all in flight together: the next chunk is encoded
            // while Redis applies the one before.
            let chunks = plain.chunks(ENQUEUE_CHUNK).enumerate().map(|(c, chunk)| {
                let first_seq = seq_end - n + (c * ENQUEUE_CHUNK) as i64;
                let (keys, mut conn) = (&keys, conn.clone());
                async move {
                    let (pipe, answers) = plain_transaction(keys, jobs, ids, chunk, now, first_seq);
                    let () = pipe.query_async(&mut conn).await?;
                    Ok::<_, Error>(answers)
                }
            });
            let mut answers = Vec::with_capacity(plain.len());
            for chunk in futures::future::join_all(chunks).await {
                answers.extend(chunk?);
            }
            Ok(answers)
        })
    }
}

/// The `MULTI`/`EXEC` that writes the plain jobs at `chunk`, whose sequence numbers follow
/// `seq_before`, as the enqueue script would at Redis time `now`; and the answers it gives.
fn plain_transaction(
    keys: &QueueKeys,
    jobs: &[NewJob],
    ids: &[String],
    chunk: &[usize],
    now: i64,
    seq_before: i64,
) -> (redis::Pipeline, Vec<(usize, Enqueued)>) {
    let now_s = now.to_string();
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut answers = Vec::with_capacity(chunk.len());
    let mut pending: Vec<(i64, &str)> = Vec::new();
    let mut scheduled: Vec<(i64, &str)> = Vec::new();
    for (k, &i) in chunk.iter().enumerate() {
        let job = &jobs[i];
        let id = ids[i].as_str();
        let due = match &job.due {
            Due::Now => now,
            Due::In(d) => now + (d.as_millis() as i64).max(1),
            Due::At(t) => t.as_millisecond().max(now),
        };
        let state = if due > now {
            scheduled.push((due, id));
            JobState::Scheduled
        } else {
            pending.push((pending_score(job.priority, seq_before + k as i64 + 1), id));
            JobState::Pending
        };
        pipe.cmd("HSET")
            .arg(keys.job(id))
            .arg("data")
            .arg(Envelope::encode_new(id, job))
            .arg("state")
            .arg(state.as_str())
            .arg("attempt")
            .arg(0)
            .arg("max")
            .arg(job.max_attempts)
            .arg("priority")
            .arg(job.priority)
            .arg("fence")
            .arg(0)
            .arg("created")
            .arg(&now_s)
            .arg("due")
            .arg(due)
            .ignore();
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
    if !pending.is_empty() {
        pipe.zadd_multiple(&keys.pending, &pending).ignore();
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
