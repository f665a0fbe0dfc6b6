//! Job records: the one place Rust reads or writes a job's stored record (the Lua side is the
//! `job_*` functions of `lua/prelude.lua`). Everything else sees a record as [`Fields`], its
//! named fields, whatever the storage layout (docs/redis-keys.md).
//!
//! Where a record lives (layout 5; `lua/prelude.lua`, "Job records", is the other side and
//! says why): a plain job is one field of the queue's `jobs` hash, its PAYLOAD record
//! `<created> <due> <max> <priority>\n<data>`, written once; its presence is the job's
//! existence. Rare facts the claim needs are entries of sparse per-queue hashes (`attempts`,
//! `groups`, `dues`: a changed due time, `ends`: `<unique>\n<flow>\n<step>`); every other
//! fact (a state other than pending, error, result, ...) is in the job's NOTES hash, which
//! exists only while it has one. An active job's `fence started attempt owner` are one field
//! of the queue's `running` hash (state `active`; the lease is its score in `active`), a job
//! completed by ack.lua has its `finished fence started attempt owner` in the `acked` hash
//! (state `completed`). Otherwise the notes' `state`, or pending when there is none.

use super::keys::QueueKeys;
use crate::{Error, Result};
use redis::aio::ConnectionLike;
use redis::{Pipeline, Value};
use std::collections::HashMap;

/// A job's record: field name -> raw value.
pub(crate) type Fields = HashMap<String, Vec<u8>>;

/// The fields of the payload record, in the order of its header.
const PAYLOAD_HEADER: [&str; 4] = ["created", "due", "max", "priority"];

/// The fields of an `ends` entry (and a `running` value's tail), in order.
const ENDS: [&str; 3] = ["unique", "flow", "step"];

/// The facts of a `running` value's head and of an `acked` value, in order (`RUN_FACTS` and
/// `ACKED_FACTS` in lua/prelude.lua).
const RUN_FACTS: [&str; 4] = ["fence", "started", "attempt", "owner"];
const ACKED_FACTS: [&str; 5] = ["finished", "fence", "started", "attempt", "owner"];

/// Where a field lives: the payload, a sparse per-queue hash, the `ends` entry (position), or
/// the notes (`lua/prelude.lua`, `HOMES`).
#[cfg(test)]
enum Home<'k> {
    Payload,
    Sparse(&'k str),
    Ends(usize),
    Notes,
}

#[cfg(test)]
fn home<'k>(keys: &'k QueueKeys, name: &str) -> Home<'k> {
    match name {
        "data" | "created" | "max" | "priority" => Home::Payload,
        "due" => Home::Sparse(&keys.dues),
        "attempt" => Home::Sparse(&keys.attempts),
        "group" => Home::Sparse(&keys.groups),
        _ => match ENDS.iter().position(|n| *n == name) {
            Some(at) => Home::Ends(at),
            None => Home::Notes,
        },
    }
}

/// The payload record of a new job.
pub(crate) fn payload(created: &str, due: &str, max: &str, priority: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("{created} {due} {max} {priority}\n").into_bytes();
    out.extend_from_slice(data);
    out
}

/// A payload record split into its header fields (created, due, max, priority) and its data;
/// `None` when it has no header.
pub(crate) fn split_payload(record: &[u8]) -> Option<([&str; 4], &[u8])> {
    let nl = record.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&record[..nl]).ok()?;
    let mut parts = header.split(' ');
    let mut out = [""; 4];
    for slot in &mut out {
        *slot = parts.next()?;
    }
    Some((out, &record[nl + 1..]))
}

/// Queue the read of job `id`'s whole record on `pipe`: its payload, notes, sparse entries and
/// facts; [`decode`] reads the replies.
fn read(pipe: &mut Pipeline, keys: &QueueKeys, id: &str) {
    pipe.hget(&keys.jobs, id)
        .hgetall(keys.record(id))
        .hget(&keys.attempts, id)
        .hget(&keys.groups, id)
        .hget(&keys.dues, id)
        .hget(&keys.ends, id)
        .hget(&keys.running, id)
        .hget(&keys.acked, id)
        .zscore(&keys.active, id);
}

/// How many replies one [`read`] queues.
const READ_REPLIES: usize = 9;

/// The replies queued by [`read`]: the record, or `None` when the job has none.
fn decode(replies: [Value; READ_REPLIES], queue: &str, id: &str) -> Result<Option<Fields>> {
    let [
        payload,
        notes,
        attempt,
        group,
        due,
        ends,
        running,
        acked,
        lease,
    ] = replies;
    let corrupt = |e: String| {
        Error::corrupt(format!(
            "job {id} of queue {queue} has an unreadable record: {e}"
        ))
    };
    let text = |v: Value| -> Result<Option<String>> {
        redis::from_redis_value(v).map_err(|e| corrupt(e.to_string()))
    };
    let payload: Option<Vec<u8>> =
        redis::from_redis_value(payload).map_err(|e| corrupt(e.to_string()))?;
    let Some(payload) = payload else {
        return Ok(None);
    };
    let (header, data) =
        split_payload(&payload).ok_or_else(|| corrupt("a payload without its header".into()))?;
    let mut fields: Fields = PAYLOAD_HEADER
        .into_iter()
        .zip(header)
        .map(|(name, value)| (name.to_owned(), value.as_bytes().to_vec()))
        .collect();
    fields.insert("data".into(), data.to_vec());
    let notes: Fields = redis::from_redis_value(notes).map_err(|e| corrupt(e.to_string()))?;
    fields.extend(notes);
    fields
        .entry("state".into())
        .or_insert_with(|| b"pending".to_vec());
    for (name, value) in [("attempt", attempt), ("group", group), ("due", due)] {
        if let Some(value) = text(value)? {
            fields.insert(name.into(), value.into_bytes());
        }
    }
    if let Some(ends) = text(ends)? {
        for (name, value) in ENDS.into_iter().zip(ends.split('\n')) {
            if !value.is_empty() {
                fields.insert(name.into(), value.as_bytes().to_vec());
            }
        }
    }
    // Not stored while they hold their default.
    for name in ["attempt", "fence", "priority"] {
        fields.entry(name.into()).or_insert_with(|| b"0".to_vec());
    }
    if let Some(run) = text(running)? {
        let head = run.split('\n').next().unwrap_or_default();
        let facts = head.splitn(RUN_FACTS.len(), ' ');
        overlay(&mut fields, "active", RUN_FACTS.into_iter().zip(facts));
        fields.remove("lease");
        if let Some(lease) = text(lease)? {
            fields.insert("lease".into(), lease.into_bytes());
        }
    } else if let Some(done) = text(acked)? {
        let facts = done.splitn(ACKED_FACTS.len(), ' ');
        overlay(&mut fields, "completed", ACKED_FACTS.into_iter().zip(facts));
    }
    Ok(Some(fields))
}

/// Put a job's `state` and facts over its stored fields.
fn overlay<'a>(fields: &mut Fields, state: &str, facts: impl Iterator<Item = (&'a str, &'a str)>) {
    fields.insert("state".into(), state.as_bytes().to_vec());
    for (name, value) in facts {
        fields.insert(name.into(), value.as_bytes().to_vec());
    }
}

/// Job `id`'s record, or `None` when there is none.
pub(crate) async fn get(
    conn: &mut impl ConnectionLike,
    keys: &QueueKeys,
    id: &str,
) -> Result<Option<Fields>> {
    Ok(get_many(conn, keys, &[id]).await?.pop().flatten())
}

/// Many records of one queue in one round trip, in the order of `ids` (`None`: no record).
pub(crate) async fn get_many<S: AsRef<str>>(
    conn: &mut impl ConnectionLike,
    keys: &QueueKeys,
    ids: &[S],
) -> Result<Vec<Option<Fields>>> {
    if ids.is_empty() {
        return Ok(Vec::new()); // an empty pipeline is an error in redis-rs
    }
    let mut pipe = redis::pipe();
    for id in ids {
        read(&mut pipe, keys, id.as_ref());
    }
    let replies: Vec<Value> = pipe.query_async(conn).await?;
    let mut replies = replies.into_iter();
    ids.iter()
        .map(|id| {
            let mut next = || replies.next().unwrap_or(Value::Nil);
            decode(std::array::from_fn(|_| next()), &keys.name, id.as_ref())
        })
        .collect()
}

/// One field of a record as text.
pub(crate) fn text(fields: &Fields, name: &str) -> Option<String> {
    fields
        .get(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Queue the creation of new jobs on `pipe` (inside a transaction: the caller knows no job
/// with these ids exists, e.g. fresh UUID v7s): their payloads (id, [`payload`]) in ONE
/// variadic `HSET`, and notes with state `scheduled` for the ids in `scheduled`.
pub(crate) fn create(
    pipe: &mut Pipeline,
    keys: &QueueKeys,
    payloads: &[(&str, Vec<u8>)],
    scheduled: &[&str],
) {
    if !payloads.is_empty() {
        let cmd = pipe.cmd("HSET").arg(&keys.jobs);
        for (id, payload) in payloads {
            cmd.arg(*id).arg(payload);
        }
        cmd.ignore();
    }
    for id in scheduled {
        pipe.hset(keys.record(id), "state", "scheduled").ignore();
    }
}

/// Set fields of job `id`'s record (creating it), each in its home as the scripts' `job_set`
/// puts it (state `pending` as no state); tests use it to stage states no script produces (an
/// expired lease, a job without data).
#[cfg(test)]
pub(crate) async fn set(
    conn: &mut impl ConnectionLike,
    keys: &QueueKeys,
    id: &str,
    fields: &[(&str, &str)],
) -> Result<()> {
    let stored: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(&keys.jobs)
        .arg(id)
        .query_async(conn)
        .await?;
    let mut head: [String; 4] = ["0".into(), "0".into(), "1".into(), "0".into()];
    let mut data = Vec::new();
    if let Some((h, d)) = stored.as_deref().and_then(split_payload) {
        head = h.map(str::to_owned);
        data = d.to_vec();
    }
    let ends: Option<String> = redis::cmd("HGET")
        .arg(&keys.ends)
        .arg(id)
        .query_async(conn)
        .await?;
    let mut ends: Vec<String> = match ends {
        Some(e) => e.split('\n').map(str::to_owned).collect(),
        None => vec![String::new(); 3],
    };
    ends.resize(3, String::new());
    let mut pipe = redis::pipe();
    for (name, value) in fields {
        match home(keys, name) {
            Home::Payload if *name == "data" => data = value.as_bytes().to_vec(),
            Home::Payload => {
                let at = PAYLOAD_HEADER.iter().position(|n| n == name).unwrap_or(0);
                head[at] = (*value).to_owned();
            }
            Home::Sparse(hash) => {
                pipe.hset(hash, id, *value).ignore();
            }
            Home::Ends(at) => ends[at] = (*value).to_owned(),
            Home::Notes if *name == "state" && *value == "pending" => {
                pipe.hdel(keys.record(id), "state").ignore();
            }
            Home::Notes => {
                pipe.hset(keys.record(id), *name, *value).ignore();
            }
        }
    }
    if ends.iter().any(|e| !e.is_empty()) {
        pipe.hset(&keys.ends, id, ends.join("\n")).ignore();
    }
    let [created, due, max, priority] = &head;
    pipe.hset(&keys.jobs, id, payload(created, due, max, priority, &data))
        .ignore();
    let () = pipe.query_async(conn).await?;
    Ok(())
}

/// How many jobs the queue holds (tests: nothing is left behind): its payloads, and it
/// checks that no job's notes or sparse entries outlived its payload.
#[cfg(test)]
pub(crate) async fn count(conn: &mut impl ConnectionLike, keys: &QueueKeys) -> Result<usize> {
    let jobs: Vec<String> = redis::cmd("HKEYS")
        .arg(&keys.jobs)
        .query_async(conn)
        .await?;
    let notes: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", keys.job_prefix))
        .query_async(conn)
        .await?;
    for key in &notes {
        let id = &key[keys.job_prefix.len()..];
        if !jobs.iter().any(|j| j == id) {
            return Err(Error::corrupt(format!("job {id} has notes but no payload")));
        }
    }
    for hash in [
        &keys.attempts,
        &keys.groups,
        &keys.dues,
        &keys.ends,
        &keys.running,
        &keys.acked,
    ] {
        let ids: Vec<String> = redis::cmd("HKEYS").arg(hash).query_async(conn).await?;
        if let Some(id) = ids.iter().find(|id| !jobs.contains(id)) {
            return Err(Error::corrupt(format!(
                "job {id} is in {hash} but has no payload"
            )));
        }
    }
    Ok(jobs.len())
}

/// Milliseconds until job `id`'s record expires: its notes' TTL (the payload is a field of the
/// queue's `jobs` hash, which never expires); -1: kept until the janitor or a cap removes it,
/// -2: no record.
#[cfg(test)]
pub(crate) async fn ttl_ms(
    conn: &mut impl ConnectionLike,
    keys: &QueueKeys,
    id: &str,
) -> Result<i64> {
    let exists: bool = redis::cmd("HEXISTS")
        .arg(&keys.jobs)
        .arg(id)
        .query_async(conn)
        .await?;
    if !exists {
        return Ok(-2);
    }
    let notes: i64 = redis::cmd("PTTL")
        .arg(keys.record(id))
        .query_async(conn)
        .await?;
    Ok(if notes == -2 { -1 } else { notes })
}
