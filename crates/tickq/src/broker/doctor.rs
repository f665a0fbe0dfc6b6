//! What the deployment checks ask Redis: INFO, TIME, a setting, and whether this connection's
//! user may run every command tickq sends. The judging is `crate::doctor`'s.

use super::Broker;
use super::keys;
use redis::{RedisError, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every command tickq sends, as a harmless call on throwaway keys (`{s}`, `{h}`, ... stand for
/// a string, hash, set, sorted set, list, stream and counter key, and `{c}` for a channel, under
/// `tickq:{#doctor}:`). Scripts' `redis.call`s are checked against the caller's ACL too, so theirs are here as well; a test
/// checks every command of every script is.
///
/// The last probe deletes the keys; each also gets a TTL of a minute right after the first
/// probe that names it (`permissions`), so none outlives a run that stops half way.
pub(crate) const PROBES: &[(&str, &[&str])] = &[
    ("ping", &["PING"]),
    ("time", &["TIME"]),
    ("info", &["INFO", "server"]),
    ("wait", &["WAIT", "0", "0"]),
    ("set", &["SET", "{s}", "1", "PX", "60000"]),
    ("get", &["GET", "{s}"]),
    ("exists", &["EXISTS", "{s}"]),
    ("pttl", &["PTTL", "{s}"]),
    ("incr", &["INCR", "{n}"]),
    ("incrby", &["INCRBY", "{n}", "1"]),
    ("persist", &["PERSIST", "{n}"]),
    ("pexpire", &["PEXPIRE", "{n}", "60000"]),
    ("hset", &["HSET", "{h}", "f", "1"]),
    ("hsetnx", &["HSETNX", "{h}", "g", "1"]),
    ("hget", &["HGET", "{h}", "f"]),
    ("hmget", &["HMGET", "{h}", "f"]),
    ("hgetall", &["HGETALL", "{h}"]),
    ("hexists", &["HEXISTS", "{h}", "f"]),
    ("hincrby", &["HINCRBY", "{h}", "n", "1"]),
    ("hdel", &["HDEL", "{h}", "n"]),
    ("sadd", &["SADD", "{t}", "a"]),
    ("smembers", &["SMEMBERS", "{t}"]),
    ("sismember", &["SISMEMBER", "{t}", "a"]),
    ("zadd", &["ZADD", "{z}", "1", "a"]),
    ("zrange", &["ZRANGE", "{z}", "0", "-1"]),
    ("zscore", &["ZSCORE", "{z}", "a"]),
    ("zmscore", &["ZMSCORE", "{z}", "a", "b"]),
    ("hrandfield", &["HRANDFIELD", "{h}", "2"]),
    ("zcard", &["ZCARD", "{z}"]),
    ("zcount", &["ZCOUNT", "{z}", "0", "1"]),
    ("zrank", &["ZRANK", "{z}", "a"]),
    ("zrevrank", &["ZREVRANK", "{z}", "a"]),
    ("zrevrange", &["ZREVRANGE", "{z}", "0", "-1"]),
    ("zrem", &["ZREM", "{z}", "b"]),
    ("zremrangebyscore", &["ZREMRANGEBYSCORE", "{z}", "5", "6"]),
    ("zpopmin", &["ZPOPMIN", "{z}"]),
    ("rpush", &["RPUSH", "{l}", "a", "b"]),
    ("lpush", &["LPUSH", "{l}", "c"]),
    ("lrange", &["LRANGE", "{l}", "0", "-1"]),
    ("lpos", &["LPOS", "{l}", "a"]),
    ("llen", &["LLEN", "{l}"]),
    ("lrem", &["LREM", "{l}", "1", "a"]),
    ("lpop", &["LPOP", "{l}", "1"]),
    ("xadd", &["XADD", "{x}", "MAXLEN", "~", "10", "*", "f", "1"]),
    ("xread", &["XREAD", "COUNT", "1", "STREAMS", "{x}", "0"]),
    // A channel of its own: watchers of the queues' events channels must not see the probe.
    ("publish", &["PUBLISH", "{c}", "probe"]),
    ("psubscribe", &["PSUBSCRIBE", "tickq:*"]),
    ("multi", &["MULTI"]),
    ("exec", &["EXEC"]),
    ("script|load", &["SCRIPT", "LOAD", "return 1"]),
    (
        "evalsha",
        &["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
    ),
    ("eval", &["EVAL", "return 1", "0"]),
    (
        "del",
        &["DEL", "{s}", "{n}", "{h}", "{t}", "{z}", "{l}", "{x}"],
    ),
];

/// The key a probe placeholder stands for.
fn probe_key(placeholder: &str) -> Option<String> {
    let kind = placeholder.strip_prefix('{')?.strip_suffix('}')?;
    Some(format!("{}:probe:{kind}", keys::DOCTOR_PREFIX))
}

/// What asking for one command's permission found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Permission {
    Allowed,
    /// NOPERM, with Redis' reason.
    Denied(String),
}

/// How the permissions were found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AclMethod {
    /// `ACL DRYRUN` as this user: nothing was run.
    DryRun,
    /// Each command run on throwaway keys (this user may not use `ACL DRYRUN`).
    Tried,
}

impl Broker {
    /// `INFO` of the given sections, per node: one text for one server, one per primary of a
    /// Cluster.
    pub(crate) async fn info(&self, sections: &[&str]) -> Result<Vec<String>, RedisError> {
        let reply: Value = redis::cmd("INFO")
            .arg(sections)
            .query_async(&mut self.conn())
            .await?;
        Ok(match reply {
            Value::Map(nodes) => nodes
                .into_iter()
                .map(|(_, v)| redis::from_redis_value(v).unwrap_or_default())
                .collect(),
            other => vec![redis::from_redis_value(other).unwrap_or_default()],
        })
    }

    /// `CONFIG GET name`; `None` if Redis does not know it.
    pub(crate) async fn config_get(&self, name: &str) -> Result<Option<String>, RedisError> {
        let reply: Value = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(&mut self.conn())
            .await?;
        let pairs: Vec<(String, String)> = match reply {
            Value::Map(map) => map
                .into_iter()
                .filter_map(|(k, v)| {
                    Some((
                        redis::from_redis_value(k).ok()?,
                        redis::from_redis_value(v).ok()?,
                    ))
                })
                .collect(),
            other => redis::from_redis_value::<Vec<String>>(other)
                .unwrap_or_default()
                .chunks(2)
                .filter_map(|c| Some((c.first()?.clone(), c.get(1)?.clone())))
                .collect(),
        };
        Ok(pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
    }

    /// Redis' clock minus this machine's, in ms, measured against the middle of the round
    /// trip, and the round trip itself.
    pub(crate) async fn clock_offset(&self) -> Result<(i64, Duration), RedisError> {
        let mut conn = self.conn();
        // A first call, so that the measured one does not include connecting.
        let _: (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        let sent = SystemTime::now();
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        let rtt = sent.elapsed().unwrap_or_default();
        let local = sent
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(rtt / 2);
        let redis_ms = secs * 1000 + micros / 1000;
        Ok((redis_ms - local.as_millis() as i64, rtt))
    }

    /// Whether this connection's user may run each of [`PROBES`]: with `ACL DRYRUN` when the
    /// user may use it, else by running each on throwaway keys (deleted at the end; they
    /// expire within a minute if that fails).
    pub(crate) async fn permissions(
        &self,
    ) -> Result<(AclMethod, Vec<(&'static str, Permission)>), RedisError> {
        let mut conn = self.conn();
        let args = |probe: &[&'static str]| -> Vec<String> {
            probe
                .iter()
                .map(|a| probe_key(a).unwrap_or_else(|| (*a).to_owned()))
                .collect()
        };
        let user: Result<String, RedisError> =
            redis::cmd("ACL").arg("WHOAMI").query_async(&mut conn).await;
        if let Ok(user) = user {
            let mut found = Vec::new();
            let mut dry_run = true;
            for (name, probe) in PROBES {
                let answer: Result<Value, RedisError> = redis::cmd("ACL")
                    .arg("DRYRUN")
                    .arg(&user)
                    .arg(args(probe))
                    .query_async(&mut conn)
                    .await;
                match answer {
                    Ok(Value::Okay) => found.push((*name, Permission::Allowed)),
                    Ok(Value::SimpleString(s)) if s == "OK" => {
                        found.push((*name, Permission::Allowed))
                    }
                    // DRYRUN answers the denial as a bulk string.
                    Ok(Value::BulkString(reason)) => found.push((
                        *name,
                        Permission::Denied(String::from_utf8_lossy(&reason).into_owned()),
                    )),
                    Ok(other) => found.push((*name, Permission::Denied(format!("{other:?}")))),
                    Err(e) if is_noperm(&e) => {
                        // Not allowed to ask: try the commands instead.
                        dry_run = false;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if dry_run {
                return Ok((AclMethod::DryRun, found));
            }
        }
        let mut found = Vec::new();
        let mut expiring = std::collections::HashSet::new();
        for (name, probe) in PROBES {
            // MULTI and EXEC are tried as one transaction, in their own pipeline.
            if *name == "exec" {
                continue;
            }
            let answer: Result<Value, RedisError> = if *name == "psubscribe" {
                // On a connection of its own: a subscribed connection takes no other command.
                match self.target.pubsub().await {
                    Ok(mut pubsub) => pubsub
                        .psubscribe(super::keys::EVENTS_PATTERN)
                        .await
                        .map(|()| Value::Okay),
                    Err(e) => Err(e),
                }
            } else if *name == "multi" {
                redis::pipe()
                    .atomic()
                    .cmd("PING")
                    .query_async(&mut conn)
                    .await
            } else {
                redis::cmd(probe[0])
                    .arg(&args(probe)[1..])
                    .query_async(&mut conn)
                    .await
            };
            let permission = match answer {
                Err(e) if is_noperm(&e) => Permission::Denied(e.to_string()),
                // Any other answer means the command was let through.
                _ => Permission::Allowed,
            };
            if *name == "multi" {
                found.push(("exec", permission.clone()));
            }
            found.push((*name, permission));
            if *name != "del" {
                for key in probe.iter().filter_map(|a| probe_key(a)) {
                    if expiring.insert(key.clone()) {
                        // Best effort: a user denied PEXPIRE is reported by its own probe.
                        let _: Result<Value, RedisError> = redis::cmd("PEXPIRE")
                            .arg(&key)
                            .arg(60_000)
                            .query_async(&mut conn)
                            .await;
                    }
                }
            }
        }
        Ok((AclMethod::Tried, found))
    }
}

pub(crate) fn is_noperm(e: &RedisError) -> bool {
    e.code() == Some("NOPERM") || e.to_string().contains("NOPERM")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command a script calls but the probes (and so the documented ACL) lack would pass
    /// every test as the default user and fail for a least-privilege one.
    #[test]
    fn every_command_of_every_script_is_probed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/broker/lua");
        let mut scripts = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            scripts += 1;
            for call in text.split("redis.call(").skip(1) {
                let name = call
                    .trim_start_matches(['\'', '"'])
                    .split(['\'', '"'])
                    .next()
                    .unwrap()
                    .to_ascii_lowercase();
                assert!(
                    PROBES.iter().any(|(probe, _)| *probe == name),
                    "{} calls {name}, which PROBES (and the ACL in docs/operations.md) lack",
                    path.display()
                );
            }
        }
        assert!(scripts > 10, "found only {scripts} scripts");
    }

    /// The documented ACL grants every command the doctor checks (and so tickq sends).
    #[test]
    fn the_documented_acl_grants_every_probed_command() {
        let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
        let doc = std::fs::read_to_string(doc).unwrap();
        let acl = doc
            .lines()
            .find(|l| l.starts_with("ACL SETUSER tickq "))
            .expect("docs/operations.md has the ACL line");
        let granted: Vec<&str> = acl
            .split_whitespace()
            .filter_map(|w| w.strip_prefix('+'))
            .collect();
        for (name, _) in PROBES {
            assert!(granted.contains(name), "the documented ACL lacks +{name}");
        }
    }

    #[test]
    fn probe_keys_share_one_slot_under_the_doctor_prefix() {
        assert_eq!(probe_key("{h}").unwrap(), "tickq:{#doctor}:probe:h");
        assert_eq!(probe_key("GET"), None);
    }
}
