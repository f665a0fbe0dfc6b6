//! The Redis under test: a private `redis-server` started through tickq-testkit, or the one
//! at `--redis`; plus the few admin commands the bench needs (FLUSHALL, INFO).

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;
use std::collections::BTreeMap;
use tickq_testkit::TestRedis;

/// bench-peers starts its Redis with `--save '' --appendonly no` (and `--bind 127.0.0.1`);
/// the testkit adds the same on a free port of 127.0.0.1, so the two are configured alike.
pub struct Target {
    pub url: String,
    /// Keeps the private server alive; dropping it kills the server.
    private: Option<TestRedis>,
    admin: MultiplexedConnection,
}

/// What the report header says about the server.
pub struct ServerInfo {
    pub url: String,
    pub private: bool,
    /// `Redis` or `Valkey` (the suite and the bench run on either: TICKQ_REDIS_SERVER).
    pub name: &'static str,
    /// The server's own version (Valkey's, not the Redis version it claims compatibility with).
    pub version: String,
    pub appendonly: String,
    pub save: String,
}

impl Target {
    pub async fn open(url: Option<&str>) -> Result<Target> {
        let (url, private) = match url {
            Some(url) => (url.to_owned(), None),
            None => {
                // `start` blocks while redis-server boots; it is a one-off before any timing.
                let redis = tokio::task::spawn_blocking(|| {
                    TestRedis::builder().tcp().appendonly(false).start()
                })
                .await
                .context("starting a private redis-server")?;
                (redis.url(), Some(redis))
            }
        };
        let client = redis::Client::open(url.as_str())
            .with_context(|| format!("invalid Redis URL {}", tickq::redact_url(&url)))?;
        ensure_loopback(client.get_connection_info().addr())?;
        // Admin replies (INFO, FLUSHALL, SLOWLOG GET) can take longer than redis-rs' default
        // 500 ms on a Redis that holds millions of keys or is still busy with a run's tail.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
            .set_response_timeout(Some(ADMIN_TIMEOUT));
        let admin = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| format!("connecting to {}", tickq::redact_url(&url)))?;
        Ok(Target {
            url,
            private,
            admin,
        })
    }

    pub async fn describe(&self) -> Result<ServerInfo> {
        let server = self.info("server").await?;
        let config = |name: &'static str| async move {
            let pair: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut self.admin.clone())
                .await?;
            anyhow::Ok(pair.get(1).cloned().unwrap_or_default())
        };
        Ok(ServerInfo {
            url: tickq::redact_url(&self.url),
            private: self.private.is_some(),
            name: if server.contains_key("valkey_version") {
                "Valkey"
            } else {
                "Redis"
            },
            version: server
                .get("valkey_version")
                .or_else(|| server.get("redis_version"))
                .cloned()
                .unwrap_or_default(),
            appendonly: config("appendonly").await?,
            save: config("save").await?,
        })
    }

    /// Empty Redis. `FLUSHALL ASYNC`, then wait until the background free is done: a
    /// synchronous FLUSHALL of millions of keys takes longer than a reply may (it timed out
    /// after a 1,000,000-job run), and the next run's memory figures must start from empty.
    pub async fn flushall(&self) -> Result<()> {
        redis::cmd("FLUSHALL")
            .arg("ASYNC")
            .exec_async(&mut self.admin.clone())
            .await
            .context("FLUSHALL")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let memory = self.info("memory").await?;
            let pending: u64 = memory
                .get("lazyfree_pending_objects")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if pending == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "FLUSHALL ASYNC: {pending} objects still to free after 120 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// One `INFO` section as field → value.
    pub async fn info(&self, section: &str) -> Result<BTreeMap<String, String>> {
        let text: String = redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.admin.clone())
            .await
            .with_context(|| format!("INFO {section}"))?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect())
    }

    /// Redis `used_memory`, bytes.
    pub async fn used_memory(&self) -> Result<u64> {
        self.info("memory")
            .await?
            .get("used_memory")
            .and_then(|v| v.parse().ok())
            .context("INFO memory has no used_memory")
    }

    /// CPU seconds Redis' main thread has used (user + system).
    pub async fn cpu_secs(&self) -> Result<f64> {
        let cpu = self.info("cpu").await?;
        let get = |k: &str| cpu.get(k).and_then(|v| v.parse::<f64>().ok());
        match (
            get("used_cpu_user_main_thread"),
            get("used_cpu_sys_main_thread"),
        ) {
            (Some(user), Some(sys)) => Ok(user + sys),
            // Before Redis 6.2 only the process totals exist.
            _ => Ok(get("used_cpu_user").unwrap_or(0.0) + get("used_cpu_sys").unwrap_or(0.0)),
        }
    }

    /// Calls and time so far per command (`INFO commandstats`), e.g. `evalsha` →
    /// 12 calls, 480 µs. Commands run by scripts are counted under their own names too.
    pub async fn command_stats(&self) -> Result<BTreeMap<String, CommandStat>> {
        Ok(self
            .info("commandstats")
            .await?
            .into_iter()
            .filter_map(|(k, v)| {
                let cmd = k.strip_prefix("cmdstat_")?.to_owned();
                let field = |name: &str| -> Option<u64> {
                    v.split(',')
                        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))?
                        .parse()
                        .ok()
                };
                let stat = CommandStat {
                    calls: field("calls")?,
                    usec: field("usec")?,
                };
                Some((cmd, stat))
            })
            .collect())
    }
}

/// The longest an admin reply may take.
const ADMIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Target {
    /// Log every command in the slow log from now until [`SlowLog::finish`], which answers
    /// the entries and puts the settings back.
    pub async fn record_every_command(&self) -> Result<SlowLog> {
        let get = |name: &'static str| async move {
            let pair: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut self.admin.clone())
                .await
                .with_context(|| format!("CONFIG GET {name}"))?;
            pair.get(1)
                .cloned()
                .with_context(|| format!("CONFIG GET {name} answered nothing"))
        };
        let restore = vec![
            (
                "slowlog-log-slower-than",
                get("slowlog-log-slower-than").await?,
            ),
            ("slowlog-max-len", get("slowlog-max-len").await?),
        ];
        let () = redis::pipe()
            .cmd("CONFIG")
            .arg("SET")
            .arg("slowlog-max-len")
            .arg(SLOWLOG_LEN)
            .ignore()
            .cmd("SLOWLOG")
            .arg("RESET")
            .ignore()
            .cmd("CONFIG")
            .arg("SET")
            .arg("slowlog-log-slower-than")
            .arg(0)
            .ignore()
            .query_async(&mut self.admin.clone())
            .await
            .context("turning the slow log on for every command")?;
        Ok(SlowLog {
            admin: self.admin.clone(),
            restore,
        })
    }
}

/// Most slow-log entries kept while recording (about 200 bytes each in Redis).
const SLOWLOG_LEN: u64 = 200_000;

/// The slow log recording every command; see [`Target::record_every_command`].
pub struct SlowLog {
    admin: redis::aio::MultiplexedConnection,
    restore: Vec<(&'static str, String)>,
}

/// One slow-log entry: how long the command ran in Redis, and its arguments (Redis keeps at
/// most 32, each cut to 128 bytes).
pub struct SlowEntry {
    pub micros: u64,
    pub args: Vec<String>,
}

impl SlowEntry {
    /// An EVALSHA/EVAL call whose first key ends with `suffix`.
    pub fn is_script_on_key_ending(&self, suffix: &str) -> bool {
        let script = self
            .args
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case("evalsha") || c.eq_ignore_ascii_case("eval"));
        let has_keys = self
            .args
            .get(2)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            > 0;
        script && has_keys && self.args.get(3).is_some_and(|k| k.ends_with(suffix))
    }
}

impl SlowLog {
    /// Stop recording: the entries (oldest first), and the settings as they were.
    pub async fn finish(self) -> Result<Vec<SlowEntry>> {
        let mut conn = self.admin.clone();
        let mut restore = redis::pipe();
        for (name, value) in &self.restore {
            restore
                .cmd("CONFIG")
                .arg("SET")
                .arg(*name)
                .arg(value)
                .ignore();
        }
        // Read first, then restore, then empty the log, so its memory is given back.
        // Each entry: [id, unix time, µs, [args...], client address, client name].
        let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
            .arg("GET")
            .arg(SLOWLOG_LEN)
            .query_async(&mut conn)
            .await
            .context("SLOWLOG GET")?;
        let () = restore
            .cmd("SLOWLOG")
            .arg("RESET")
            .ignore()
            .query_async(&mut conn)
            .await
            .context("putting the slow-log settings back")?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let redis::Value::Array(fields) = entry else {
                anyhow::bail!("SLOWLOG GET: an entry is not an array: {entry:?}");
            };
            let (Some(redis::Value::Int(micros)), Some(redis::Value::Array(args))) =
                (fields.get(2), fields.get(3))
            else {
                anyhow::bail!("SLOWLOG GET: an entry has no duration and arguments: {fields:?}");
            };
            let args = args
                .iter()
                .map(|a| match a {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    redis::Value::SimpleString(t) => t.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            out.push(SlowEntry {
                micros: *micros as u64,
                args,
            });
        }
        out.reverse();
        Ok(out)
    }
}

/// The bench generates load, so it only talks to this machine: a loopback address or a unix
/// socket.
fn ensure_loopback(addr: &redis::ConnectionAddr) -> Result<()> {
    let host = match addr {
        redis::ConnectionAddr::Unix(_) => return Ok(()),
        redis::ConnectionAddr::Tcp(host, _) => host,
        redis::ConnectionAddr::TcpTls { host, .. } => host,
        _ => anyhow::bail!("unsupported Redis address {addr}"),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        loopback,
        "--redis must point at this machine (127.0.0.0/8, ::1, localhost or a unix socket), \
         not {host}"
    );
    Ok(())
}

/// One command's line of `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
}
