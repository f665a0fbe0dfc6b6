//! Which Redis a run uses, and where that address came from.

use super::usage;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable holding the Redis URL (see INTERFACE.md, "Finding Redis").
/// The environment variable holding the Redis URL (see INTERFACE.md, "Finding Redis").
pub const REDIS_URL_ENV: &str = "TICKQ_REDIS_URL";

/// TEST ONLY, not part of the interface: the port of the default Redis address.
///
/// The embedded-Redis behaviour only happens when no address is given, so a test of it needs
/// the *default* address itself to move: otherwise the test would start (or find, or fight
/// over) a real Redis on 127.0.0.1:6379 of the machine it runs on.
pub const DEFAULT_PORT_ENV: &str = "TICKQ_DEFAULT_REDIS_PORT";

pub(super) const DEFAULT_PORT: u16 = 6379;

/// The Redis address and where it came from.
#[derive(Debug, Clone)]
pub struct Redis {
    pub url: String,
    pub origin: RedisOrigin,
    /// `memory_high_water` in the config file: enqueues are refused above this fraction of
    /// Redis' maxmemory. None: the library's default.
    pub high_water: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisOrigin {
    Flag,
    Env,
    File(PathBuf),
    /// Nobody gave an address: the only case in which the server may start its own Redis.
    Default {
        port: u16,
    },
}

impl fmt::Display for RedisOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisOrigin::Flag => f.write_str("--redis"),
            RedisOrigin::Env => f.write_str(REDIS_URL_ENV),
            RedisOrigin::File(path) => write!(f, "config file {}", path.display()),
            RedisOrigin::Default { .. } => f.write_str("default"),
        }
    }
}

/// `--redis` > `TICKQ_REDIS_URL` > `redis` in the config file > the default.
pub(super) fn resolve_redis(
    flag: Option<&str>,
    env: Option<&str>,
    file: Option<(&str, &Path)>,
    default_port: Option<&str>,
) -> anyhow::Result<Redis> {
    let (url, origin) = if let Some(url) = flag {
        (url.to_owned(), RedisOrigin::Flag)
    } else if let Some(url) = env.filter(|u| !u.trim().is_empty()) {
        (url.to_owned(), RedisOrigin::Env)
    } else if let Some((url, path)) = file {
        (url.to_owned(), RedisOrigin::File(path.to_owned()))
    } else {
        let port = match default_port {
            Some(p) => p
                .parse()
                .map_err(|_| usage(format!("{DEFAULT_PORT_ENV}={p:?} is not a port")))?,
            None => DEFAULT_PORT,
        };
        (
            format!("redis://127.0.0.1:{port}"),
            RedisOrigin::Default { port },
        )
    };
    check_redis_url(&url).map_err(|e| usage(format!("{e} (from {origin})")))?;
    Ok(Redis {
        url,
        origin,
        high_water: None,
    })
}

/// A first look at the URL, so that a typo is a usage error before any connection attempt.
/// The library parses it fully when connecting.
pub(super) fn check_redis_url(url: &str) -> Result<(), String> {
    const SCHEMES: [&str; 5] = ["redis", "rediss", "redis+unix", "unix", "valkey"];
    let help = "expected redis://[user:pass@]host:port[/db], rediss://..., \
                redis+unix:///path/redis.sock, for a Cluster \
                redis-cluster://host:port,host:port,..., or for Sentinel \
                redis-sentinel://host:port[,host:port...]/MASTER_NAME[/db]";
    let shown = tickq::redact_url(url);
    // The library's own reading decides Cluster and Sentinel URLs.
    if url.starts_with("redis-cluster://") || url.contains("-sentinel://") || url.contains(',') {
        return tickq::validate_redis_url(url).map_err(|e| e.message().to_owned());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("invalid Redis URL {shown:?}: {help}"));
    };
    if !SCHEMES.contains(&scheme) {
        return Err(format!(
            "invalid Redis URL {shown:?}: unsupported scheme {scheme:?}; {help}"
        ));
    }
    if rest.is_empty() {
        return Err(format!("invalid Redis URL {shown:?}: no address; {help}"));
    }
    Ok(())
}
