//! Property test of the job lifecycle against a real Redis.
//!
//! Random sequences of operations (enqueue, claim by two workers, ack, fail, renew, requeue,
//! leases running out, recover, cancel, delete, retry) go both to the scripts and to a small
//! model of the lifecycle. Batches too: claims of up to 24 jobs, leases of a random subset of
//! the active jobs running out at once (mid-batch), and one ack call for every fence a worker
//! was ever handed. After every step:
//!
//! - every job ever created and not deleted still has its hash, sits in exactly one state index,
//!   the one its `state` field names and the model expects, with the attempt, fence and cancel
//!   request the model expects; a deleted job has left no trace;
//! - the queue's running facts are exactly those of the active jobs, and its acked facts are
//!   only of completed ones (record.rs: where a record lives);
//! - no index holds anything else, and pending is in the model's priority-then-FIFO order;
//! - an ack, fail, renew or requeue that holds no current fence left Redis exactly as it was.
//!
//! Time is not left to chance: a lease that should run out is either moved into the past by
//! hand or is a 1 ms lease waited out on Redis' clock; a due time that should arrive is moved
//! into the past by hand; every other time is an hour away. Retention is generous, so nothing
//! is evicted. Ids are never reused after a delete (see `Op::EnqueueAgain`).

use super::{KEEP, snapshot};
use crate::broker::conn::Conn;
use crate::broker::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::BTreeSet;
use tickq_testkit::TestRedis;

const Q: &str = "life";
const WORKERS: [&str; 2] = ["w1", "w2"];
/// Leases and delays that do not run out during a case.
const HOUR: Duration = Duration::from_secs(3600);
/// How many of a worker's latest fences one renew sends.
const RENEW_BATCH: usize = 6;

#[derive(Debug, Clone, Copy)]
enum FailKind {
    /// Retry in an hour.
    Retry,
    /// Retry with no delay: due at once.
    RetryNow,
    Kill,
    Cancel,
}

/// One step. Numbers that pick a job or a held fence are taken modulo what exists when the step
/// runs, so every generated sequence is meaningful and shrinks well.
#[derive(Debug, Clone)]
enum Op {
    /// Enqueue `n` new jobs, due now or in an hour.
    Enqueue {
        n: usize,
        later: bool,
        priority: i32,
        max_attempts: u32,
    },
    /// Enqueue a live job's id again (a deleted id used again is covered by a table test:
    /// fences come from the queue's counter, so none repeats).
    EnqueueAgain {
        job: usize,
    },
    /// Claim up to `max` jobs; a short lease (1 ms) is waited out before the next step.
    Claim {
        worker: usize,
        max: usize,
        short: bool,
    },
    /// Ack `n` fences ever handed out, current or long lost, each by the worker it went to.
    Ack {
        fence: usize,
        n: usize,
    },
    Fail {
        fence: usize,
        kind: FailKind,
    },
    /// Renew the worker's latest fences.
    Renew {
        worker: usize,
    },
    Requeue {
        fence: usize,
        n: usize,
    },
    /// Move an active job's lease into the past, as if its worker had stopped renewing.
    ExpireLease {
        job: usize,
    },
    /// Move the leases of a random subset of the active jobs (bit i of `mask` picks the i-th
    /// in id order) into the past at once: expiries in the middle of claimed batches.
    ExpireSome {
        mask: u64,
    },
    /// One ack call for every fence the worker was ever handed, but those `skip` drops (bit
    /// i for the i-th): a batch that mixes current fences, leases that expired (recovered or
    /// not), fences a newer claim replaced, and jobs completed already.
    AckHeld {
        worker: usize,
        skip: u64,
    },
    /// Move a scheduled or retry job's due time into the past.
    MakeDue {
        job: usize,
    },
    Recover {
        limit: usize,
    },
    /// Cancel, delete or retry a job ever created, or an id that never existed.
    Cancel {
        job: usize,
    },
    Delete {
        job: usize,
    },
    Retry {
        job: usize,
    },
}

fn enqueue() -> impl Strategy<Value = Op> {
    (1..=2usize, prop::bool::weighted(0.2), -1..=1i32, 1..=4u32).prop_map(
        |(n, later, priority, max_attempts)| Op::Enqueue {
            n,
            later,
            priority,
            max_attempts,
        },
    )
}

/// A case: up to 40 steps, the first one an enqueue so that the others have jobs to work on.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    (enqueue(), prop::collection::vec(op(), 0..40)).prop_map(|(first, mut rest)| {
        rest.insert(0, first);
        rest
    })
}

fn op() -> impl Strategy<Value = Op> {
    let worker = || 0..WORKERS.len();
    let max = prop_oneof![1 => Just(0), 6 => 1..=4usize];
    let kind = prop_oneof![
        1 => Just(FailKind::Retry),
        2 => Just(FailKind::RetryNow),
        1 => Just(FailKind::Kill),
        1 => Just(FailKind::Cancel),
    ];
    prop_oneof![
        4 => enqueue(),
        1 => any::<usize>().prop_map(|job| Op::EnqueueAgain { job }),
        7 => (worker(), max, prop::bool::weighted(0.25))
            .prop_map(|(worker, max, short)| Op::Claim { worker, max, short }),
        4 => (any::<usize>(), 1..=3usize).prop_map(|(fence, n)| Op::Ack { fence, n }),
        // Batches: many jobs, big claims, leases running out across them, one ack call for
        // everything a worker was handed.
        1 => (5..=20usize, -1..=1i32, 1..=4u32).prop_map(|(n, priority, max_attempts)| {
            Op::Enqueue {
                n,
                later: false,
                priority,
                max_attempts,
            }
        }),
        2 => (worker(), 5..=24usize).prop_map(|(worker, max)| Op::Claim {
            worker,
            max,
            short: false
        }),
        2 => any::<u64>().prop_map(|mask| Op::ExpireSome { mask }),
        2 => (worker(), any::<u64>()).prop_map(|(worker, skip)| Op::AckHeld { worker, skip }),
        6 => (any::<usize>(), kind).prop_map(|(fence, kind)| Op::Fail { fence, kind }),
        2 => worker().prop_map(|worker| Op::Renew { worker }),
        2 => (any::<usize>(), 1..=2usize).prop_map(|(fence, n)| Op::Requeue { fence, n }),
        3 => any::<usize>().prop_map(|job| Op::ExpireLease { job }),
        2 => any::<usize>().prop_map(|job| Op::MakeDue { job }),
        3 => (1..=4usize).prop_map(|limit| Op::Recover { limit }),
        2 => any::<usize>().prop_map(|job| Op::Cancel { job }),
        1 => any::<usize>().prop_map(|job| Op::Delete { job }),
        3 => any::<usize>().prop_map(|job| Op::Retry { job }),
    ]
}

/// What the model knows of one live job.
#[derive(Debug, Clone)]
struct Job {
    state: JobState,
    attempt: u32,
    max: u32,
    fence: u64,
    priority: i32,
    cancel: bool,
    /// The worker that claimed it last, until recover or requeue takes it back.
    owner: Option<usize>,
    /// Place in line while pending: only the order matters, not Redis' numbers.
    seq: u64,
    /// Scheduled or retry: the index score once moved into the past (None: an hour away).
    due: Option<i64>,
    /// Active: the lease deadline (Redis ms), and whether it has passed.
    lease: i64,
    expired: bool,
}

#[derive(Debug, Default)]
struct Model {
    /// Live jobs; an id in `created` but not here was deleted.
    jobs: BTreeMap<String, Job>,
    created: Vec<String>,
    /// The greatest fence handed out so far.
    last_fence: u64,
    /// Every (id, fence) ever handed out and the worker it went to, lost ones included:
    /// zombies keep them.
    held: Vec<(String, u64, usize)>,
    seq: u64,
    /// The last time made up for a lease or due time in the past: 1, 2, 3... ms after the
    /// epoch, long past and unique, so their order is known.
    past: i64,
    processed: u64,
    failed: u64,
}

impl Model {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn next_past(&mut self) -> i64 {
        self.past += 1;
        self.past
    }

    fn move_to_pending(&mut self, id: &str) {
        let seq = self.next_seq();
        let job = self.jobs.get_mut(id).expect("a live job");
        job.state = JobState::Pending;
        job.seq = seq;
        job.due = None;
    }

    /// Whether `fence` is the current claim of an active job.
    fn holds(&self, id: &str, fence: u64) -> bool {
        self.jobs
            .get(id)
            .is_some_and(|j| j.state == JobState::Active && j.fence == fence)
    }

    /// Pending ids in claim order: higher priority first, then first in line.
    fn pending_order(&self) -> Vec<String> {
        let mut pending: Vec<(i32, u64, &String)> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.state == JobState::Pending)
            .map(|(id, j)| (-j.priority, j.seq, id))
            .collect();
        pending.sort();
        pending.into_iter().map(|(_, _, id)| id.clone()).collect()
    }

    /// Live ids in `states`, in id order.
    fn ids_in(&self, states: &[JobState]) -> Vec<String> {
        let ids = self.jobs.iter().filter(|(_, j)| states.contains(&j.state));
        ids.map(|(id, _)| id.clone()).collect()
    }

    /// A created id (deleted or not), or once in a while one that never existed.
    fn any_id(&self, pick: usize) -> String {
        let i = pick % (self.created.len() + 1);
        self.created
            .get(i)
            .cloned()
            .unwrap_or_else(|| "never-created".into())
    }

    /// A live id in one of `states` for an even `pick` (if there is one), else any id: where
    /// the interesting cases are, most of the time.
    fn id_preferring(&self, pick: usize, states: &[JobState]) -> String {
        let preferred = self.ids_in(states);
        if pick.is_multiple_of(2) && !preferred.is_empty() {
            return preferred[pick / 2 % preferred.len()].clone();
        }
        self.any_id(pick / 2)
    }

    /// Up to `n` distinct fences ever handed out, starting at `pick`. Mostly only fences of
    /// jobs that are active now: the current one, or an old one that a newer claim replaced,
    /// where a missing fence check would do harm; once in four picks any fence.
    fn fences(&self, pick: usize, n: usize) -> Vec<(String, u64)> {
        let all = self.held.iter().map(|(id, fence, _)| (id, *fence));
        let is_active = |id: &String| self.jobs.get(id).map(|j| j.state) == Some(JobState::Active);
        let mut pool: Vec<(&String, u64)> = all.clone().filter(|(id, _)| is_active(id)).collect();
        if pick.is_multiple_of(4) || pool.is_empty() {
            pool = all.collect();
        }
        if pool.is_empty() {
            return Vec::new();
        }
        let start = pick / 4 % pool.len();
        let n = n.min(pool.len());
        let picked = pool.into_iter().cycle().skip(start).take(n);
        picked.map(|(id, fence)| (id.clone(), fence)).collect()
    }
}

#[test]
fn every_job_is_in_exactly_one_state_and_none_is_lost() {
    // proptest's runner is synchronous, so this test owns its runtime. One redis-server serves
    // every case (FLUSHALL in between): starting one per case would cost more than the case.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = TestRedis::builder().appendonly(false).start();
    let broker = rt
        .block_on(Broker::connect(&redis.url(), &Default::default()))
        .unwrap();
    let config = Config {
        cases: 32,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let result = TestRunner::new(config).run(&ops(), |ops| rt.block_on(run_case(&broker, ops)));

    if let Err(err) = result {
        panic!("{err}");
    }
}

async fn run_case(broker: &Broker, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let keys = broker.keys(Q);
    let mut conn = broker.conn();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let at = |e: TestCaseError| TestCaseError::fail(format!("step {step}, {op:?}: {e}"));
        apply(broker, &keys, &mut conn, &mut model, op)
            .await
            .map_err(at)?;
        check(&keys, &mut conn, &model).await.map_err(at)?;
    }
    Ok(())
}

/// One ack call for `fences` (each by the worker it went to), checked against the model: what
/// it acks, answers as again and as stale, and that a call that acks nothing changes nothing.
async fn ack_checked(
    broker: &Broker,
    keys: &QueueKeys,
    conn: &mut Conn,
    model: &mut Model,
    fences: Vec<(String, u64)>,
) -> Result<(), TestCaseError> {
    if fences.is_empty() {
        return Ok(());
    }
    let mut acked = 0;
    let mut again = 0;
    let mut stale = Vec::new();
    for (id, fence) in &fences {
        let completed_with = |j: &Job| j.state == JobState::Completed && j.fence == *fence;
        if model.holds(id, *fence) {
            model.jobs.get_mut(id).unwrap().state = JobState::Completed;
            acked += 1;
        } else if model.jobs.get(id).is_some_and(completed_with) {
            again += 1;
        } else {
            stale.push(id.clone());
        }
    }
    model.processed += acked;
    let before = snapshot(conn).await;
    let acks: Vec<(String, u64, String)> = fences
        .into_iter()
        .map(|(id, fence)| (id, fence, "ok".into()))
        .collect();

    let out = broker.ack(keys, &KEEP, &acks).await.unwrap();

    prop_assert_eq!((out.acked, out.again, out.stale), (acked, again, stale));
    if acked == 0 {
        prop_assert_eq!(snapshot(conn).await, before, "a stale ack changed Redis");
    }
    Ok(())
}

/// Run one step against Redis and the model, and compare what Redis answered.
async fn apply(
    broker: &Broker,
    keys: &QueueKeys,
    conn: &mut Conn,
    model: &mut Model,
    op: &Op,
) -> Result<(), TestCaseError> {
    match *op {
        Op::Enqueue {
            n,
            later,
            priority,
            max_attempts,
        } => {
            let ids: Vec<String> = (0..n)
                .map(|i| format!("j{}", model.created.len() + i))
                .collect();
            let jobs = ids.iter().map(|id| {
                let job = NewJob::new(Q, "work")
                    .id(id)
                    .priority(priority)
                    .max_attempts(max_attempts);
                if later { job.delay(HOUR) } else { job }
            });
            let answers = broker.enqueue(jobs.collect()).await.unwrap();
            let state = if later {
                JobState::Scheduled
            } else {
                JobState::Pending
            };
            for (id, answer) in ids.into_iter().zip(answers) {
                prop_assert_eq!((answer.state, answer.created), (state, true));
                let seq = if later { 0 } else { model.next_seq() };
                model.created.push(id.clone());
                let job = Job {
                    state,
                    attempt: 0,
                    max: max_attempts,
                    fence: 0,
                    priority,
                    cancel: false,
                    owner: None,
                    seq,
                    due: None,
                    lease: 0,
                    expired: false,
                };
                model.jobs.insert(id, job);
            }
        }

        Op::EnqueueAgain { job } => {
            let live: Vec<String> = model.jobs.keys().cloned().collect();
            let Some(id) = live.get(job % live.len().max(1)) else {
                return Ok(());
            };
            let before = super::record_text(record::get(conn, keys, id).await.unwrap());
            let job = NewJob::new(Q, "other").id(id).priority(1);
            let answer = broker.enqueue(vec![job]).await.unwrap().remove(0);
            prop_assert_eq!(
                (answer.state, answer.created),
                (model.jobs[id].state, false)
            );
            let after = super::record_text(record::get(conn, keys, id).await.unwrap());
            prop_assert_eq!(after, before);
        }

        Op::Claim { worker, max, short } => {
            // Due scheduled jobs are promoted first, then due retry jobs, each by due time.
            for state in [JobState::Scheduled, JobState::Retry] {
                let mut due: Vec<(i64, String)> = model
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.state == state)
                    .filter_map(|(id, j)| j.due.map(|d| (d, id.clone())))
                    .collect();
                due.sort();
                for (_, id) in due {
                    model.move_to_pending(&id);
                }
            }
            let expected: Vec<String> = model.pending_order().into_iter().take(max).collect();
            let lease = if short {
                Duration::from_millis(1)
            } else {
                HOUR
            };

            let batch = broker
                .claim(keys, WORKERS[worker], lease, max, Duration::ZERO)
                .await
                .unwrap();

            let got: Vec<(&str, u32)> = batch
                .jobs
                .iter()
                .map(|c| (c.id.as_str(), c.attempt))
                .collect();
            let want: Vec<(&str, u32)> = expected
                .iter()
                .map(|id| (id.as_str(), model.jobs[id].attempt + 1))
                .collect();
            prop_assert_eq!(got, want);
            // Fences come from the queue's counter: each is greater than every fence handed
            // out before, in this queue, for any job.
            for claimed in &batch.jobs {
                prop_assert!(
                    claimed.fence > model.last_fence,
                    "fence {} after {}",
                    claimed.fence,
                    model.last_fence
                );
                model.last_fence = claimed.fence;
            }
            for (id, claimed) in expected.iter().zip(&batch.jobs) {
                let job = model.jobs.get_mut(id).unwrap();
                job.state = JobState::Active;
                job.attempt += 1;
                job.fence = claimed.fence;
                job.lease = batch.lease_until_ms;
                job.expired = short;
                job.owner = Some(worker);
                model.held.push((id.clone(), job.fence, worker));
            }
            if !model.pending_order().is_empty() {
                prop_assert_eq!(batch.next_due_ms, batch.now_ms);
            } else if model
                .ids_in(&[JobState::Scheduled, JobState::Retry])
                .is_empty()
            {
                prop_assert_eq!(batch.next_due_ms, -1);
            } else {
                // Everything still waiting is an hour away.
                prop_assert!(batch.next_due_ms > batch.now_ms);
            }
            if short && !expected.is_empty() {
                wait_past(conn, batch.lease_until_ms).await;
            }
        }

        Op::Ack { fence, n } => {
            let fences = model.fences(fence, n);
            ack_checked(broker, keys, conn, model, fences).await?;
        }

        Op::AckHeld { worker, skip } => {
            let fences: Vec<(String, u64)> = model
                .held
                .iter()
                .filter(|(_, _, w)| *w == worker)
                .enumerate()
                .filter(|(i, _)| *i >= 64 || skip & (1 << i) == 0)
                .map(|(_, (id, fence, _))| (id.clone(), *fence))
                .collect();
            ack_checked(broker, keys, conn, model, fences).await?;
        }

        Op::Fail { fence, kind } => {
            let Some((id, fence)) = model.fences(fence, 1).pop() else {
                return Ok(());
            };
            let expected = if !model.holds(&id, fence) {
                FailOutcome::Stale
            } else {
                let job = model.jobs.get_mut(&id).unwrap();
                let outcome = match kind {
                    FailKind::Cancel => FailOutcome::Cancelled,
                    FailKind::Kill => FailOutcome::Dead,
                    _ if job.attempt >= job.max => FailOutcome::Dead,
                    FailKind::Retry | FailKind::RetryNow => FailOutcome::Retry,
                };
                (job.state, job.due) = match outcome {
                    FailOutcome::Cancelled => (JobState::Cancelled, None),
                    FailOutcome::Dead => (JobState::Dead, None),
                    _ => (JobState::Retry, None),
                };
                if outcome == FailOutcome::Cancelled {
                    job.cancel = false;
                } else {
                    model.failed += 1;
                }
                outcome
            };
            let mode = match kind {
                FailKind::Retry => FailMode::Retry(HOUR),
                FailKind::RetryNow => FailMode::Retry(Duration::ZERO),
                FailKind::Kill => FailMode::Kill,
                FailKind::Cancel => FailMode::Cancel,
            };
            let before = snapshot(conn).await;

            let out = broker.fail(keys, &KEEP, &id, fence, "boom", mode).await;

            prop_assert_eq!(out.unwrap(), expected);
            if expected == FailOutcome::Stale {
                prop_assert_eq!(snapshot(conn).await, before, "a stale fail changed Redis");
            }
            if expected == FailOutcome::Retry && matches!(kind, FailKind::RetryNow) {
                // Due at the script's "now": the model learns it to know the promotion order.
                let due: f64 = conn.zscore(&keys.retry, &id).await.unwrap();
                model.jobs.get_mut(&id).unwrap().due = Some(due as i64);
            }
        }

        Op::Renew { worker } => {
            let mut fences: Vec<(String, u64)> = (model.held.iter().rev())
                .filter(|(_, _, w)| *w == worker)
                .take(RENEW_BATCH)
                .map(|(id, fence, _)| (id.clone(), *fence))
                .collect();
            fences.reverse();
            if fences.is_empty() {
                return Ok(());
            }
            let mut renewed = Vec::new();
            let mut lost = Vec::new();
            let mut cancel = Vec::new();
            for (id, fence) in &fences {
                if model.holds(id, *fence) && !model.jobs[id].expired {
                    renewed.push(id.clone());
                    if model.jobs[id].cancel {
                        cancel.push(id.clone());
                    }
                } else {
                    lost.push(id.clone());
                }
            }
            let before = snapshot(conn).await;

            let out = broker.renew(keys, HOUR, &fences).await.unwrap();

            prop_assert_eq!((out.lost, out.cancel_requested), (lost, cancel));
            for id in &renewed {
                model.jobs.get_mut(id).unwrap().lease = out.lease_until_ms;
            }
            if renewed.is_empty() {
                prop_assert_eq!(snapshot(conn).await, before, "a lost renew changed Redis");
            }
        }

        Op::Requeue { fence, n } => {
            let fences = model.fences(fence, n);
            if fences.is_empty() {
                return Ok(());
            }
            let mut moved = 0;
            for (id, fence) in &fences {
                if model.holds(id, *fence) {
                    model.move_to_pending(id);
                    let job = model.jobs.get_mut(id).unwrap();
                    job.attempt = job.attempt.saturating_sub(1);
                    job.owner = None;
                    moved += 1;
                }
            }
            let before = snapshot(conn).await;

            let out = broker.requeue(keys, &fences).await.unwrap();

            prop_assert_eq!(out, moved);
            if moved == 0 {
                prop_assert_eq!(
                    snapshot(conn).await,
                    before,
                    "a stale requeue changed Redis"
                );
            }
        }

        Op::ExpireLease { job } => {
            let active = model.ids_in(&[JobState::Active]);
            let Some(id) = active.get(job % active.len().max(1)) else {
                return Ok(());
            };
            let past = model.next_past();
            let past_s = past.to_string();
            record::set(conn, keys, id, &[("lease", &past_s)])
                .await
                .unwrap();
            let _: () = redis::pipe()
                .cmd("ZADD")
                .arg(&keys.active)
                .arg("XX")
                .arg(past)
                .arg(id)
                .query_async(conn)
                .await
                .unwrap();
            let job = model.jobs.get_mut(id).unwrap();
            job.lease = past;
            job.expired = true;
        }

        Op::ExpireSome { mask } => {
            let active = model.ids_in(&[JobState::Active]);
            let picked = active
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 64 && mask & (1 << i) != 0);
            let mut pipe = redis::pipe();
            let mut any = false;
            for (_, id) in picked {
                let past = model.next_past();
                record::set(conn, keys, id, &[("lease", &past.to_string())])
                    .await
                    .unwrap();
                pipe.cmd("ZADD")
                    .arg(&keys.active)
                    .arg("XX")
                    .arg(past)
                    .arg(id)
                    .ignore();
                let job = model.jobs.get_mut(id).unwrap();
                job.lease = past;
                job.expired = true;
                any = true;
            }
            if any {
                let () = pipe.query_async(conn).await.unwrap();
            }
        }

        Op::MakeDue { job } => {
            let waiting = model.ids_in(&[JobState::Scheduled, JobState::Retry]);
            let Some(id) = waiting.get(job % waiting.len().max(1)) else {
                return Ok(());
            };
            let past = model.next_past();
            let index = keys.index(model.jobs[id].state);
            let _: () = redis::cmd("ZADD")
                .arg(index)
                .arg("XX")
                .arg(past)
                .arg(id)
                .query_async(conn)
                .await
                .unwrap();
            model.jobs.get_mut(id).unwrap().due = Some(past);
        }

        Op::Recover { limit } => {
            // Expired leases go in deadline order (ties by id, as in a sorted set).
            let mut expired: Vec<(i64, String)> = model
                .jobs
                .iter()
                .filter(|(_, j)| j.state == JobState::Active && j.expired)
                .map(|(id, j)| (j.lease, id.clone()))
                .collect();
            expired.sort();
            let mut expected = Recovered::default();
            for (_, id) in expired.into_iter().take(limit) {
                let job = model.jobs.get_mut(&id).unwrap();
                job.owner = None;
                if job.cancel {
                    job.state = JobState::Cancelled;
                    job.cancel = false;
                    expected.to_cancelled += 1;
                } else if job.attempt >= job.max {
                    job.state = JobState::Dead;
                    model.failed += 1;
                    expected.to_dead += 1;
                } else {
                    model.move_to_pending(&id);
                    expected.to_pending += 1;
                }
            }

            let out = broker.recover(keys, &KEEP, limit).await.unwrap();

            prop_assert_eq!(out, expected);
        }

        Op::Cancel { job } => {
            let id = model.id_preferring(job, &[JobState::Active]);
            let expected = match model.jobs.get_mut(&id) {
                None => Err(ErrorKind::NotFound),
                Some(job) => match job.state {
                    JobState::Pending | JobState::Scheduled | JobState::Retry => {
                        job.state = JobState::Cancelled;
                        job.due = None;
                        Ok(CancelOutcome::Cancelled)
                    }
                    JobState::Active => {
                        job.cancel = true;
                        Ok(CancelOutcome::Cancelling)
                    }
                    JobState::Cancelled => Ok(CancelOutcome::Cancelled),
                    JobState::Completed | JobState::Dead => Err(ErrorKind::Conflict),
                    JobState::Waiting => unreachable!("the model makes no workflows"),
                },
            };

            let out = broker.cancel(keys, &KEEP, &id).await;

            prop_assert_eq!(out.map_err(|e| e.kind()), expected);
        }

        Op::Delete { job } => {
            let id = model.any_id(job);
            let expected = match model.jobs.get(&id).map(|j| j.state) {
                None => Err(ErrorKind::NotFound),
                Some(JobState::Active) => Err(ErrorKind::Conflict),
                Some(state) => {
                    model.jobs.remove(&id);
                    Ok(state)
                }
            };

            let out = broker.delete(keys, &id).await;

            prop_assert_eq!(out.map_err(|e| e.kind()), expected);
        }

        Op::Retry { job } => {
            let waiting = [JobState::Dead, JobState::Cancelled, JobState::Retry];
            let id = model.id_preferring(job, &waiting);
            let expected = match model.jobs.get(&id).map(|j| j.state) {
                None => Err(ErrorKind::NotFound),
                Some(JobState::Pending | JobState::Active | JobState::Completed) => {
                    Err(ErrorKind::Conflict)
                }
                Some(state) => {
                    model.move_to_pending(&id);
                    if matches!(state, JobState::Dead | JobState::Cancelled) {
                        let job = model.jobs.get_mut(&id).unwrap();
                        job.attempt = 0;
                        job.cancel = false;
                    }
                    Ok(state)
                }
            };

            let out = broker.retry(keys, &id).await;

            prop_assert_eq!(out.map_err(|e| e.kind()), expected);
        }
    }
    Ok(())
}

/// Wait until Redis' clock is past `deadline_ms`.
async fn wait_past(conn: &mut Conn, deadline_ms: i64) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (s, us): (i64, i64) = redis::cmd("TIME").query_async(conn).await.unwrap();
        if s * 1000 + us / 1000 > deadline_ms {
            return;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "Redis time stands still"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The invariants, read in three round trips.
async fn check(keys: &QueueKeys, conn: &mut Conn, model: &Model) -> Result<(), TestCaseError> {
    let mut pipe = redis::pipe();
    for state in JobState::ALL {
        pipe.zrange_withscores(keys.index(state), 0, -1);
    }
    let mut indexes: Vec<Vec<(String, f64)>> = pipe.query_async(conn).await.unwrap();
    // Pending is a list per priority (lua/prelude.lua, "Pending"): its ids in claim order,
    // scored by their priority.
    let at = JobState::ALL
        .iter()
        .position(|&s| s == JobState::Pending)
        .unwrap();
    indexes[at] = super::pending_lists(conn, keys)
        .await
        .into_iter()
        .flat_map(|(band, ids)| ids.into_iter().map(move |id| (id, f64::from(band))))
        .collect();
    let stats: (Option<u64>, Option<u64>) = redis::pipe()
        .hget(&keys.stats, "processed")
        .hget(&keys.stats, "failed")
        .query_async(conn)
        .await
        .unwrap();
    let stats = [stats.0, stats.1];
    let hashes = record::get_many(conn, keys, &model.created).await.unwrap();
    // The facts kept apart from the records (record.rs): a running entry for exactly the
    // active jobs, an acked entry only for completed ones.
    let (running, acked): (BTreeSet<String>, BTreeSet<String>) = redis::pipe()
        .hkeys(&keys.running)
        .hkeys(&keys.acked)
        .query_async(conn)
        .await
        .unwrap();
    let active: BTreeSet<String> = model.ids_in(&[JobState::Active]).into_iter().collect();
    prop_assert_eq!(&running, &active, "running facts");
    let completed: BTreeSet<String> = model.ids_in(&[JobState::Completed]).into_iter().collect();
    prop_assert!(
        acked.is_subset(&completed),
        "acked facts {:?} of jobs not completed (completed: {:?})",
        acked,
        completed
    );

    // Where each id is indexed, and nothing is indexed that the model does not have there.
    let mut indexed: BTreeMap<&str, Vec<(JobState, i64)>> = BTreeMap::new();
    for (state, members) in JobState::ALL.into_iter().zip(&indexes) {
        for (id, score) in members {
            let expected = model.jobs.get(id).map(|j| j.state);
            prop_assert_eq!(expected, Some(state), "{} is in the {} index", id, state);
            indexed.entry(id).or_default().push((state, *score as i64));
        }
    }
    for (id, hash) in model.created.iter().zip(hashes) {
        let hash = super::record_text(hash);
        let Some(job) = model.jobs.get(id) else {
            prop_assert!(hash.is_empty(), "deleted job {} still has {:?}", id, hash);
            prop_assert!(
                !indexed.contains_key(id.as_str()),
                "deleted job {} indexed",
                id
            );
            continue;
        };
        prop_assert!(
            !hash.is_empty(),
            "job {} ({:?}) lost its hash",
            id,
            job.state
        );
        let field = |name: &str| hash.get(name).map(String::as_str).unwrap_or("");
        prop_assert_eq!(field("state"), job.state.as_str(), "state field of {}", id);
        let places = indexed.get(id.as_str()).cloned().unwrap_or_default();
        prop_assert_eq!(
            places.len(),
            1,
            "{} ({:?}) is indexed in {:?}",
            id,
            job.state,
            places
        );
        let (state, score) = places[0];
        prop_assert_eq!(state, job.state, "index of {}", id);
        prop_assert_eq!(
            field("attempt"),
            job.attempt.to_string(),
            "attempt of {}",
            id
        );
        prop_assert_eq!(field("fence"), job.fence.to_string(), "fence of {}", id);
        prop_assert_eq!(
            hash.contains_key("cancel"),
            job.cancel,
            "cancel request of {}",
            id
        );
        let owner = job.owner.map(|w| WORKERS[w]);
        prop_assert_eq!(
            hash.get("owner").map(String::as_str),
            owner,
            "owner of {}",
            id
        );
        match job.state {
            JobState::Active => {
                prop_assert_eq!(score, job.lease, "active score of {}", id);
                prop_assert_eq!(field("lease"), job.lease.to_string(), "lease of {}", id);
            }
            JobState::Scheduled | JobState::Retry => {
                if let Some(due) = job.due {
                    prop_assert_eq!(score, due, "due score of {}", id);
                }
            }
            _ => {}
        }
    }
    let pending = JobState::ALL
        .iter()
        .position(|&s| s == JobState::Pending)
        .unwrap();
    let pending = &indexes[pending];
    let pending: Vec<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
    prop_assert_eq!(pending, model.pending_order(), "pending order");
    let processed = stats[0].unwrap_or(0);
    let failed = stats[1].unwrap_or(0);
    prop_assert_eq!(
        (processed, failed),
        (model.processed, model.failed),
        "stats"
    );
    Ok(())
}
