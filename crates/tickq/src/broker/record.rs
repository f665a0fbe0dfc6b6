//! Job records: the one place Rust reads or writes a job's stored record (the Lua side is the
//! `job_*` functions of `lua/prelude.lua`). Everything else sees a record as [`Fields`], its
//! named fields, whatever the storage layout (docs/redis-keys.md).

use super::keys::QueueKeys;
use crate::{Error, Result};
use redis::aio::ConnectionLike;
use redis::{Pipeline, Value};
use std::collections::HashMap;

/// A job's record: field name -> raw value.
pub(crate) type Fields = HashMap<String, Vec<u8>>;

fn key(keys: &QueueKeys, id: &str) -> String {
    keys.record(id)
}

/// Queue the read of job `id`'s whole record on `pipe`: its hash, and the facts the queue
/// keeps apart from it (below); [`decode`] reads the four replies.
///
/// Where a record lives (layout 4; `lua/prelude.lua`, "Job records", is the other side and
/// says why): a hash per job, except for the facts of the hot path. An active job's `fence
/// started attempt owner` are one field of the queue's `running` hash (its presence means
/// state `active`; the lease is its score in `active`), a job completed by ack.lua has its
/// `finished fence started attempt owner` in the `acked` hash (state `completed`). They
/// override the hash's own fields, which are the truth for a job in neither.
fn read(pipe: &mut Pipeline, keys: &QueueKeys, id: &str) {
    pipe.hgetall(key(keys, id))
        .hget(&keys.running, id)
        .hget(&keys.acked, id)
        .zscore(&keys.active, id);
}

/// How many replies one [`read`] queues.
const READ_REPLIES: usize = 4;

/// The replies queued by [`read`]: the record, or `None` when the job has none.
fn decode(replies: [Value; READ_REPLIES], queue: &str, id: &str) -> Result<Option<Fields>> {
    let [hash, running, acked, lease] = replies;
    let corrupt = |e: String| {
        Error::corrupt(format!(
            "job {id} of queue {queue} has an unreadable record: {e}"
        ))
    };
    let mut fields: Fields = redis::from_redis_value(hash).map_err(|e| corrupt(e.to_string()))?;
    if fields.is_empty() {
        return Ok(None);
    }
    // Not stored while they hold their default (`job_create` in lua/prelude.lua).
    for name in ["attempt", "fence", "priority"] {
        fields.entry(name.into()).or_insert_with(|| b"0".to_vec());
    }
    let text = |v: Value| -> Result<Option<String>> {
        redis::from_redis_value(v).map_err(|e| corrupt(e.to_string()))
    };
    if let Some(run) = text(running)? {
        let head = run.split('\n').next().unwrap_or_default();
        let facts = head.splitn(4, ' ');
        overlay(
            &mut fields,
            "active",
            ["fence", "started", "attempt", "owner"]
                .into_iter()
                .zip(facts),
        );
        fields.remove("lease");
        if let Some(lease) = text(lease)? {
            fields.insert("lease".into(), lease.into_bytes());
        }
    } else if let Some(done) = text(acked)? {
        let facts = done.splitn(5, ' ');
        overlay(
            &mut fields,
            "completed",
            ["finished", "fence", "started", "attempt", "owner"]
                .into_iter()
                .zip(facts),
        );
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
            decode([next(), next(), next(), next()], &keys.name, id.as_ref())
        })
        .collect()
}

/// One field of a record as text.
pub(crate) fn text(fields: &Fields, name: &str) -> Option<String> {
    fields
        .get(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Queue the creation of job `id`'s record with `fields` on `pipe` (inside a transaction: the
/// caller knows no job with this id exists, e.g. a fresh UUID v7).
pub(crate) fn create(pipe: &mut Pipeline, keys: &QueueKeys, id: &str, fields: &[(&str, &[u8])]) {
    let cmd = pipe.cmd("HSET").arg(key(keys, id));
    for (name, value) in fields {
        cmd.arg(*name).arg(*value);
    }
    cmd.ignore();
}

/// Set fields of job `id`'s record (creating it); tests use it to stage states no script
/// produces (an expired lease, a job without data).
#[cfg(test)]
pub(crate) async fn set(
    conn: &mut impl ConnectionLike,
    keys: &QueueKeys,
    id: &str,
    fields: &[(&str, &str)],
) -> Result<()> {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key(keys, id));
    for (name, value) in fields {
        cmd.arg(*name).arg(*value);
    }
    let _: i64 = cmd.query_async(conn).await?;
    Ok(())
}

/// How many job records the queue holds (tests: nothing is left behind).
#[cfg(test)]
pub(crate) async fn count(conn: &mut impl ConnectionLike, keys: &QueueKeys) -> Result<usize> {
    let found: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", keys.job_prefix))
        .query_async(conn)
        .await?;
    Ok(found.len())
}

/// Milliseconds until job `id`'s record expires (-1: kept until the janitor or a cap removes
/// it, -2: no record).
#[cfg(test)]
pub(crate) async fn ttl_ms(
    conn: &mut impl ConnectionLike,
    keys: &QueueKeys,
    id: &str,
) -> Result<i64> {
    Ok(redis::cmd("PTTL")
        .arg(key(keys, id))
        .query_async(conn)
        .await?)
}
