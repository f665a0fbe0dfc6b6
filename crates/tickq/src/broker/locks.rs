//! Locks in Redis: acquire, renew, release and fenced data, one script each.
//!
//! Like the rest of the broker this owns no timers: the lock runtime (`crate::lock`) decides
//! when to call. Every call takes the connection to use, because a lock that waits for replicas
//! must send its acquire and the `WAIT` on one connection of its own.

use super::keys::LockKeys;
use super::scripts::SCRIPTS;
use super::value::{bytes, int};
use crate::broker::conn::Conn;
use crate::{Error, Result};
use redis::Value;
use std::time::Duration;

/// The answer of the acquire script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Taken (or already held by this token), with this fence.
    Held { fence: u64 },
    /// Another token holds it; its remaining TTL, if it has one.
    Busy { pttl: Option<Duration> },
}

/// The answer of the fenced-set script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FencedSet {
    Written,
    Stale { latest: u64, stored: u64 },
}

fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

fn fence(v: &Value) -> Result<u64> {
    u64::try_from(int(v)?).map_err(|_| Error::corrupt("a lock fence in Redis is negative"))
}

pub(crate) async fn acquire(
    conn: &mut Conn,
    keys: &LockKeys,
    token: &str,
    ttl: Duration,
) -> Result<Acquired> {
    let reply: Vec<Value> = SCRIPTS
        .lock_acquire
        .key(&keys.owner)
        .key(&keys.fence)
        .arg(token)
        .arg(ms(ttl))
        .invoke_async(conn)
        .await?;
    match reply.as_slice() {
        [taken, n] if int(taken)? == 1 => Ok(Acquired::Held { fence: fence(n)? }),
        [_, pttl] => Ok(Acquired::Busy {
            pttl: u64::try_from(int(pttl)?).ok().map(Duration::from_millis),
        }),
        _ => Err(Error::corrupt(
            "unexpected reply from the lock acquire script",
        )),
    }
}

/// Whether the TTL was extended (false: the token does not hold the lock any more).
pub(crate) async fn renew(
    conn: &mut Conn,
    keys: &LockKeys,
    token: &str,
    ttl: Duration,
) -> Result<bool> {
    let renewed: i64 = SCRIPTS
        .lock_renew
        .key(&keys.owner)
        .arg(token)
        .arg(ms(ttl))
        .invoke_async(conn)
        .await?;
    Ok(renewed == 1)
}

/// Whether the lock was released (false: the token did not hold it; nothing changed).
pub(crate) async fn release(conn: &mut Conn, keys: &LockKeys, token: &str) -> Result<bool> {
    let released: i64 = SCRIPTS
        .lock_release
        .key(&keys.owner)
        .arg(token)
        .invoke_async(conn)
        .await?;
    Ok(released == 1)
}

/// How many replicas acknowledged every write this connection made so far (`WAIT`).
pub(crate) async fn wait_replicas(
    conn: &mut Conn,
    replicas: u32,
    timeout: Duration,
) -> Result<u32> {
    let acked: i64 = redis::cmd("WAIT")
        .arg(replicas)
        .arg(ms(timeout))
        .query_async(conn)
        .await?;
    Ok(u32::try_from(acked).unwrap_or(0))
}

pub(crate) async fn fenced_set(
    conn: &mut Conn,
    keys: &LockKeys,
    key: &str,
    value: &[u8],
    writer: u64,
) -> Result<FencedSet> {
    let reply: Vec<Value> = SCRIPTS
        .lock_fenced_set
        .key(&keys.fence)
        .key(keys.data(key))
        .arg(writer)
        .arg(value)
        .invoke_async(conn)
        .await?;
    match reply.as_slice() {
        [written, _] if int(written)? == 1 => Ok(FencedSet::Written),
        [_, latest, stored] => Ok(FencedSet::Stale {
            latest: fence(latest)?,
            stored: fence(stored)?,
        }),
        _ => Err(Error::corrupt(
            "unexpected reply from the lock fenced-set script",
        )),
    }
}

/// A fenced value and the fence that wrote it.
pub(crate) async fn fenced_get(
    conn: &mut Conn,
    keys: &LockKeys,
    key: &str,
) -> Result<Option<(Vec<u8>, u64)>> {
    let fields: Vec<Value> = redis::cmd("HMGET")
        .arg(keys.data(key))
        .arg("value")
        .arg("fence")
        .query_async(conn)
        .await?;
    match fields.as_slice() {
        [Value::Nil, _] => Ok(None),
        [value, writer] => Ok(Some((bytes(value), fence(writer)?))),
        _ => Err(Error::corrupt("unexpected reply to HMGET")),
    }
}

/// The last fence issued for the lock (0: never acquired).
pub(crate) async fn latest_fence(conn: &mut Conn, keys: &LockKeys) -> Result<u64> {
    let latest: Option<u64> = redis::cmd("GET").arg(&keys.fence).query_async(conn).await?;
    Ok(latest.unwrap_or(0))
}
