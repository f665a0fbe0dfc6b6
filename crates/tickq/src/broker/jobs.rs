//! The worker's transitions, the hot path: claim a batch, then ack, fail, renew, hand back, and
//! recover what a dead worker left. One script call each (claim.lua, ack.lua, fail.lua,
//! renew.lua, requeue.lua, recover.lua), with the fence checked inside the script.

use super::conn::Conn;
use super::keys::QueueKeys;
use super::record;
use super::scripts::SCRIPTS;
use super::value::{self, int, text};
use super::{Broker, Retention};
use crate::{Error, Result};
use redis::Value;
use std::time::Duration;

/// A leased job as the claim script returns it.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) id: String,
    pub(crate) data: Vec<u8>,
    pub(crate) attempt: u32,
    pub(crate) fence: u64,
    /// When the job was due (Redis ms; 0 if unknown).
    pub(crate) due_ms: i64,
}

/// The answer of one claim call.
#[derive(Debug, Clone)]
pub(crate) struct ClaimBatch {
    /// Redis time of the call, ms.
    pub(crate) now_ms: i64,
    /// When to look again (Redis ms): `now_ms` if work is left, -1 if nothing waits.
    pub(crate) next_due_ms: i64,
    #[allow(dead_code, reason = "read by the script tests")]
    pub(crate) lease_until_ms: i64,
    pub(crate) jobs: Vec<Claimed>,
}

/// How a failed attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailMode {
    /// Retry after the delay, or dead when attempts are used up.
    Retry(Duration),
    /// Dead now.
    Kill,
    /// Cancelled (a cancel was asked while it ran).
    Cancel,
}

/// The state a failed attempt left the job in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailOutcome {
    Retry,
    Dead,
    Cancelled,
    /// Not applied: the caller no longer holds the job.
    Stale,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct AckOutcome {
    pub(crate) acked: u64,
    /// Already completed with the same fence by an earlier ack (see ack.lua).
    pub(crate) again: u64,
    pub(crate) stale: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Renewed {
    #[allow(dead_code, reason = "read by the script tests")]
    pub(crate) lease_until_ms: i64,
    pub(crate) lost: Vec<String>,
    pub(crate) cancel_requested: Vec<String>,
}

/// What one recover call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub(crate) to_pending: u64,
    pub(crate) to_dead: u64,
    pub(crate) to_cancelled: u64,
}

impl Broker {
    pub(crate) async fn claim(
        &self,
        keys: &QueueKeys,
        owner: &str,
        lease: Duration,
        max: usize,
        spread_grace: Duration,
    ) -> Result<ClaimBatch> {
        self.upgrade(keys).await?;
        let reply: Vec<Value> = SCRIPTS
            .claim
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.active)
            .key(&keys.wake)
            .key(&keys.fence)
            .key(&keys.paused)
            .key(&keys.limits)
            .key(&keys.rate_log)
            .arg(&keys.job_prefix)
            .arg(owner)
            .arg(lease.as_millis() as u64)
            .arg(max)
            .arg(&keys.group_prefix)
            .arg(spread_grace.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        if reply.len() < 3 || !(reply.len() - 3).is_multiple_of(5) {
            return Err(Error::corrupt("claim script returned an unexpected reply"));
        }
        let jobs = reply[3..]
            .chunks(5)
            .map(|c| {
                let id = text(&c[0])?;
                // The payload as stored (record.rs): its header's due, unless changed since.
                let payload = value::bytes(&c[1]);
                let (header, data) = record::split_payload(&payload).ok_or_else(|| {
                    Error::corrupt(format!("job {id} has a payload without its header"))
                })?;
                let changed = text(&c[4])?;
                let due = if changed.is_empty() {
                    header[1]
                } else {
                    &changed
                };
                Ok(Claimed {
                    data: data.to_vec(),
                    attempt: int(&c[2])? as u32,
                    fence: int(&c[3])? as u64,
                    due_ms: due.parse().unwrap_or(0),
                    id,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ClaimBatch {
            now_ms: int(&reply[0])?,
            next_due_ms: int(&reply[1])?,
            lease_until_ms: int(&reply[2])?,
            jobs,
        })
    }

    /// Complete jobs held with these fences; `result` is kept with the job when not empty.
    pub(crate) async fn ack(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        jobs: &[(String, u64, String)],
    ) -> Result<AckOutcome> {
        let mut inv = SCRIPTS.ack.prepare_invoke();
        inv.key(&keys.active)
            .key(&keys.completed)
            .key(&keys.stats)
            .key(&keys.limits)
            .key(&keys.pending)
            .key(&keys.wake);
        inv.arg(&keys.job_prefix)
            .arg(retention.keep_ms())
            .arg(retention.completed_max);
        for (id, fence, result) in jobs {
            inv.arg(id).arg(fence).arg(result);
        }
        let reply: Vec<Value> = inv.invoke_async(&mut self.conn.clone()).await?;
        ack_outcome(&reply)
    }

    /// [`ack`](Self::ack), then `WAIT` for `replicas` replicas, both in one pipeline on `conn`
    /// (so that the WAIT counts this very ack, even if the connection moves to another primary
    /// in between). Fewer replicas in time: an `Unavailable` error, and the caller acks again.
    pub(crate) async fn ack_replicated(
        &self,
        conn: &mut Conn,
        keys: &QueueKeys,
        retention: &Retention,
        jobs: &[(String, u64, String)],
        replicas: u32,
        timeout: Duration,
    ) -> Result<AckOutcome> {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg(SCRIPTS.ack.get_hash())
            .arg(6)
            .arg(&keys.active)
            .arg(&keys.completed)
            .arg(&keys.stats)
            .arg(&keys.limits)
            .arg(&keys.pending)
            .arg(&keys.wake)
            .arg(&keys.job_prefix)
            .arg(retention.keep_ms())
            .arg(retention.completed_max);
        for (id, fence, result) in jobs {
            evalsha.arg(id).arg(fence).arg(result);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(evalsha)
            .cmd("WAIT")
            .arg(replicas)
            .arg(timeout.as_millis() as u64);
        let answer: redis::RedisResult<(Vec<Value>, i64)> = pipe.query_async(conn).await;
        let (reply, reached) = match answer {
            Err(e)
                if e.clone()
                    .into_server_errors()
                    .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "NOSCRIPT")) =>
            {
                // A new primary (after a failover or restart) without the script yet.
                SCRIPTS.ack.load_async(conn).await?;
                pipe.query_async(conn).await?
            }
            other => other?,
        };
        if reached < i64::from(replicas) {
            return Err(Error::new(
                crate::ErrorKind::Unavailable,
                format!(
                    "an ack reached {reached} of {replicas} replicas within {timeout:?}; the \
                     primary may be cut off, so it is sent again"
                ),
            ));
        }
        ack_outcome(&reply)
    }

    pub(crate) async fn fail(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        id: &str,
        fence: u64,
        error: &str,
        mode: FailMode,
    ) -> Result<FailOutcome> {
        let (mode_name, delay) = match mode {
            FailMode::Retry(d) => ("retry", d.as_millis() as u64),
            FailMode::Kill => ("kill", 0),
            FailMode::Cancel => ("cancel", 0),
        };
        let answer: String = SCRIPTS
            .fail
            .key(&keys.active)
            .key(&keys.retry)
            .key(&keys.dead)
            .key(&keys.cancelled)
            .key(&keys.stats)
            .key(&keys.wake)
            .key(&keys.limits)
            .key(&keys.pending)
            .arg(&keys.job_prefix)
            .arg(id)
            .arg(fence)
            .arg(error)
            .arg(mode_name)
            .arg(delay)
            .arg(retention.dead_max)
            .arg(retention.keep_ms().max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match answer.as_str() {
            "retry" => FailOutcome::Retry,
            "dead" => FailOutcome::Dead,
            "cancelled" => FailOutcome::Cancelled,
            _ => FailOutcome::Stale,
        })
    }

    pub(crate) async fn renew(
        &self,
        keys: &QueueKeys,
        lease: Duration,
        jobs: &[(String, u64)],
    ) -> Result<Renewed> {
        let mut inv = SCRIPTS.renew.prepare_invoke();
        inv.key(&keys.active)
            .arg(&keys.job_prefix)
            .arg(lease.as_millis() as u64);
        for (id, fence) in jobs {
            inv.arg(id).arg(fence);
        }
        let (lease_until_ms, lost, cancel_requested): (i64, Vec<String>, Vec<String>) =
            inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(Renewed {
            lease_until_ms,
            lost,
            cancel_requested,
        })
    }

    pub(crate) async fn recover(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        limit: usize,
    ) -> Result<Recovered> {
        self.upgrade(keys).await?;
        let (to_pending, to_dead, to_cancelled): (u64, u64, u64) = SCRIPTS
            .recover
            .key(&keys.active)
            .key(&keys.pending)
            .key(&keys.dead)
            .key(&keys.cancelled)
            .key(&keys.wake)
            .key(&keys.stats)
            .key(&keys.limits)
            .arg(&keys.job_prefix)
            .arg(limit)
            .arg(retention.dead_max)
            .arg(retention.keep_ms().max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(Recovered {
            to_pending,
            to_dead,
            to_cancelled,
        })
    }

    /// Hand jobs back to pending without charging the attempt.
    pub(crate) async fn requeue(&self, keys: &QueueKeys, jobs: &[(String, u64)]) -> Result<u64> {
        let mut inv = SCRIPTS.requeue.prepare_invoke();
        inv.key(&keys.active).key(&keys.pending).key(&keys.wake);
        inv.arg(&keys.job_prefix);
        for (id, fence) in jobs {
            inv.arg(id).arg(fence);
        }
        Ok(inv.invoke_async(&mut self.conn.clone()).await?)
    }
}

fn ack_outcome(reply: &[Value]) -> Result<AckOutcome> {
    if reply.len() < 2 {
        return Err(Error::corrupt("ack script returned an unexpected reply"));
    }
    Ok(AckOutcome {
        acked: int(&reply[0])? as u64,
        again: int(&reply[1])? as u64,
        stale: reply[2..].iter().map(text).collect::<Result<_>>()?,
    })
}
