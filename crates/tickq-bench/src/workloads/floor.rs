//! How low can Redis' cost per processed job go on this server? (issue 15: the hot path)
//!
//! The claim and ack scripts alone, with no worker and no handler: N jobs are claimed in
//! batches of B and each batch is acked at once, one script call in flight, so every figure
//! is Redis-side (the `EVALSHA` time per job, Redis CPU per job, the commands inside). Two
//! layouts on the same N jobs (the same ids and payloads), in one run:
//!
//! - `tickq`: the shipped scripts (`crates/tickq/src/broker/lua/{claim,ack}.lua` with the
//!   prelude) on jobs enqueued by `Client::enqueue_bulk`: today's layout (5), the payload
//!   record a field of a per-queue hash, read by one call per claimed batch.
//! - `lean`: a lab layout with no per-job record on the hot path (`floor/lean_*.lua`): pending
//!   ids in a list, the payload record written once and returned as stored, a running job's
//!   fence/start/attempt/owner as one field of a per-queue hash, state = the index a job is in;
//!   a constant number of calls per batch. It keeps the fenced ack, leases, retention of
//!   completed jobs and the history counts; what it leaves out is named in its scripts.
//!
//! - `lean-list`: `lean` with the completed index as a list (in finishing order) instead of a
//!   sorted set by finish time: what the last sorted-set write of the hot path costs.
//!
//! The ratio shows what a layout change can still win on this Redis, and the lean figure is a
//! floor for any Lua design: the commands it keeps are the ones the guarantees need.

use super::enqueue::noop_job;
use super::{Measured, QUEUE, Sample, Target, connect};
use anyhow::{Context, Result, bail, ensure};
use redis::Value;
use redis::aio::MultiplexedConnection;

/// Batch sizes: what one claim takes at concurrency 64 and at 8.
const BATCHES: [usize; 2] = [64, 8];
/// The retention the library uses by default: completed jobs kept a day, at most 10,000.
const KEEP_MS: u64 = 86_400_000;
const KEEP_MAX: u64 = 10_000;
/// The lean layout's queue (its own hash tag, so its keys never meet the bench queue's).
const LAB: &str = "lab";

pub async fn floor(target: &Target, n: u64) -> Result<Measured> {
    let mut m = Measured::default();
    for batch in BATCHES {
        let label = |layout: &str| format!("{layout} @{batch}");
        target.flushall().await?;
        let client = connect(target).await?;
        let mut conn = redis::Client::open(target.url.as_str())?
            .get_multiplexed_async_connection()
            .await?;

        // tickq: its own enqueue, then its own scripts.
        let empty = Sample::take(target).await?;
        client.enqueue_bulk((0..n).map(noop_job).collect()).await?;
        let enqueued = Sample::take(target).await?;
        let jobs = waiting_jobs(&mut conn, n).await?;
        let tickq = Layout::tickq();
        m.metric(
            format!("{}: memory", label("tickq")),
            "bytes/job",
            enqueued.used_memory_growth(&empty) as f64 / n as f64,
        );
        tickq
            .drain(&mut conn, target, n, batch, &label("tickq"), &mut m)
            .await?;

        // lean: the same ids and payloads.
        target.flushall().await?;
        let empty = Sample::take(target).await?;
        let lean = Layout::lean();
        lean.enqueue(&mut conn, &jobs).await?;
        let enqueued = Sample::take(target).await?;
        m.metric(
            format!("{}: memory", label("lean")),
            "bytes/job",
            enqueued.used_memory_growth(&empty) as f64 / n as f64,
        );
        lean.drain(&mut conn, target, n, batch, &label("lean"), &mut m)
            .await?;

        // lean-list: the same, with a list for the completed index.
        target.flushall().await?;
        let lean_list = Layout::lean_list();
        lean_list.enqueue(&mut conn, &jobs).await?;
        lean_list
            .drain(&mut conn, target, n, batch, &label("lean-list"), &mut m)
            .await?;
    }
    Ok(m)
}

/// A waiting job as tickq stored it: id and the fields a worker needs.
struct Waiting {
    id: String,
    /// created, due, max attempts, priority, data: what the lean layout packs into one value.
    record: String,
}

/// The bench queue's waiting jobs, in claim order, with their records.
async fn waiting_jobs(conn: &mut MultiplexedConnection, n: u64) -> Result<Vec<Waiting>> {
    let keys = Keys::new(QUEUE);
    // `pending`: the priorities that have pending jobs, highest first; each has its list.
    let bands: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys.key("pending"))
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    let mut ids: Vec<String> = Vec::new();
    for band in bands {
        let part: Vec<String> = redis::cmd("LRANGE")
            .arg(keys.key(&format!("pending:{band}")))
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await?;
        ids.extend(part);
    }
    ensure!(
        ids.len() as u64 == n,
        "expected {n} pending jobs, found {}",
        ids.len()
    );
    let mut jobs = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        // The payload records, "<created> <due> <max> <priority>\n<data>" (layout 5).
        let payloads: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(keys.key("jobs"))
            .arg(chunk)
            .query_async(conn)
            .await?;
        for (id, payload) in chunk.iter().zip(payloads) {
            let Some((header, data)) = payload.as_deref().and_then(|p| p.split_once('\n')) else {
                bail!("job {id} has no payload record: the job record's layout changed");
            };
            let header: Vec<&str> = header.split(' ').collect();
            ensure!(
                header.len() == 4,
                "job {id}: a payload header of {header:?}"
            );
            jobs.push(Waiting {
                id: id.clone(),
                record: format!("{}\t{data}", header.join("\t")),
            });
        }
    }
    Ok(jobs)
}

/// A queue's key names (docs/redis-keys.md).
struct Keys {
    prefix: String,
}

impl Keys {
    fn new(queue: &str) -> Keys {
        Keys {
            prefix: format!("tickq:{{{queue}}}:"),
        }
    }
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
    fn job_prefix(&self) -> String {
        self.key("job:")
    }
    fn all(&self, names: &[&str]) -> Vec<String> {
        names.iter().map(|name| self.key(name)).collect()
    }
}

/// A pair of claim and ack scripts and how to call them.
struct Layout {
    keys: Keys,
    claim: redis::Script,
    claim_keys: Vec<String>,
    /// ARGV after the job key prefix, owner, lease ms and max.
    claim_extra: Vec<String>,
    /// Values per claimed job in the claim's reply (id first, fence at index 3).
    claimed_width: usize,
    ack: redis::Script,
    ack_keys: Vec<String>,
    /// ARGV after the job key prefix, keep ms and keep max, before the jobs.
    ack_extra: Vec<String>,
    /// Whether the ack takes a result per job after the id and the fence.
    ack_with_result: bool,
}

impl Layout {
    fn tickq() -> Layout {
        let keys = Keys::new(QUEUE);
        Layout {
            claim: script(include_str!("../../../tickq/src/broker/lua/claim.lua")),
            claim_keys: keys.all(&[
                "pending",
                "scheduled",
                "retry",
                "active",
                "wake",
                "fence",
                "paused",
                "limits",
                "rate-log",
            ]),
            claim_extra: vec![keys.key("group:"), "0".into()],
            claimed_width: 5,
            ack: script(include_str!("../../../tickq/src/broker/lua/ack.lua")),
            ack_keys: keys.all(&["active", "completed", "stats", "limits", "pending", "wake"]),
            ack_extra: Vec::new(),
            ack_with_result: true,
            keys,
        }
    }

    fn lean() -> Layout {
        Layout::lean_with_completed("zset")
    }

    fn lean_list() -> Layout {
        Layout::lean_with_completed("list")
    }

    /// The lean layout, with its completed index as a `zset` or a `list`.
    fn lean_with_completed(index: &str) -> Layout {
        let keys = Keys::new(LAB);
        Layout {
            claim: script(include_str!("floor/lean_claim.lua")),
            claim_keys: keys.all(&[
                "pending",
                "scheduled",
                "retry",
                "active",
                "jobs",
                "run",
                "attempts",
                "fence",
                "paused",
                "limits",
                "groups",
                "wake",
            ]),
            claim_extra: Vec::new(),
            claimed_width: 4,
            ack: script(include_str!("floor/lean_ack.lua")),
            ack_keys: keys.all(&[
                "active",
                "completed",
                "stats",
                "run",
                "jobs",
                "ends",
                "limits",
            ]),
            ack_extra: vec![index.to_owned()],
            ack_with_result: false,
            keys,
        }
    }

    /// The lean layout's enqueue: one hash field and one list entry per job.
    async fn enqueue(&self, conn: &mut MultiplexedConnection, jobs: &[Waiting]) -> Result<()> {
        for chunk in jobs.chunks(1000) {
            let mut pipe = redis::pipe();
            pipe.atomic();
            let hset = pipe.cmd("HSET").arg(self.keys.key("jobs"));
            for job in chunk {
                hset.arg(&job.id).arg(&job.record);
            }
            pipe.ignore();
            pipe.cmd("RPUSH")
                .arg(self.keys.key("pending"))
                .arg(chunk.iter().map(|j| j.id.as_str()).collect::<Vec<_>>())
                .ignore();
            let () = pipe.query_async(conn).await?;
        }
        Ok(())
    }

    /// Claim and ack all `n` jobs in batches of `batch`; report Redis' cost per job.
    async fn drain(
        &self,
        conn: &mut MultiplexedConnection,
        target: &Target,
        n: u64,
        batch: usize,
        label: &str,
        m: &mut Measured,
    ) -> Result<()> {
        let before = Sample::take(target).await?;
        let mut acked = 0u64;
        while acked < n {
            let reply: Vec<Value> = self
                .claim
                .key(&self.claim_keys)
                .arg(self.keys.job_prefix())
                .arg("floor-worker")
                .arg(30_000)
                .arg(batch)
                .arg(&self.claim_extra)
                .invoke_async(conn)
                .await
                .with_context(|| format!("{label}: claim"))?;
            let claimed = &reply[3..];
            ensure!(
                !claimed.is_empty() && claimed.len().is_multiple_of(self.claimed_width),
                "{label}: a claim with {} jobs left answered {} values",
                n - acked,
                claimed.len()
            );
            let mut ack = self.ack.prepare_invoke();
            ack.key(&self.ack_keys)
                .arg(self.keys.job_prefix())
                .arg(KEEP_MS)
                .arg(KEEP_MAX)
                .arg(&self.ack_extra);
            for job in claimed.chunks(self.claimed_width) {
                ack.arg(text(&job[0])?).arg(text(&job[3])?);
                if self.ack_with_result {
                    ack.arg("");
                }
            }
            let answer: Vec<Value> = ack
                .invoke_async(conn)
                .await
                .with_context(|| format!("{label}: ack"))?;
            let done = match answer.first() {
                Some(Value::Int(done)) => *done as usize,
                other => bail!("{label}: an ack answered {other:?}"),
            };
            let sent = claimed.len() / self.claimed_width;
            ensure!(done == sent, "{label}: acked {done} of {sent} claimed jobs");
            acked += done as u64;
        }
        let after = Sample::take(target).await?;
        before.report_script_cost(&after, n, label, m);
        Ok(())
    }
}

/// A script as the library builds it: a shebang line first, then the prelude, then the body.
fn script(body: &str) -> redis::Script {
    let prelude = include_str!("../../../tickq/src/broker/lua/prelude.lua");
    let text = match body.strip_prefix("#!") {
        Some(rest) => {
            let (shebang, rest) = rest.split_once('\n').unwrap_or((rest, ""));
            format!("#!{shebang}\n{prelude}\n{rest}")
        }
        None => format!("{prelude}\n{body}"),
    };
    redis::Script::new(&text)
}

/// A reply value as text (Lua numbers arrive as integers, strings as bulk strings).
fn text(value: &Value) -> Result<String> {
    Ok(match value {
        Value::Int(i) => i.to_string(),
        Value::BulkString(bytes) => String::from_utf8(bytes.clone())?,
        other => bail!("unexpected value in a claim's reply: {other:?}"),
    })
}
