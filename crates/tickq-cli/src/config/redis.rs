//! Which Redis a run uses, and where that address came from.

use super::file::RedisTlsFile;
use super::usage;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable holding the Redis URL (see INTERFACE.md, "Finding Redis").
pub const REDIS_URL_ENV: &str = "TICKQ_REDIS_URL";

/// The environment variables naming the TLS files: CA, client certificate, client key (see
/// INTERFACE.md, "Redis over TLS"). Each wins over its `[redis_tls]` key.
pub const TLS_ENV: [&str; 3] = ["TICKQ_REDIS_CA", "TICKQ_REDIS_CERT", "TICKQ_REDIS_KEY"];

/// How the TLS settings are named to the user, for each of [`TLS_ENV`].
const TLS_SETTINGS: [&str; 3] = [
    "TICKQ_REDIS_CA / [redis_tls] ca_file",
    "TICKQ_REDIS_CERT / [redis_tls] cert_file",
    "TICKQ_REDIS_KEY / [redis_tls] key_file",
];

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
    /// Certificates for `rediss://`: `TICKQ_REDIS_CA|CERT|KEY` > `[redis_tls]`.
    pub tls: tickq::TlsFiles,
}

impl Redis {
    /// The options the library connects with.
    pub fn connect_options(&self) -> tickq::ConnectOptions {
        tickq::ConnectOptions::new().tls(self.tls.clone())
    }

    /// The TLS settings as environment variables, for a program that runs `tickq` itself.
    pub fn tls_env(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        let files = [
            self.tls.ca_file.as_deref(),
            self.tls.cert_file.as_deref(),
            self.tls.key_file.as_deref(),
        ];
        TLS_ENV
            .into_iter()
            .zip(files)
            .filter_map(|(name, path)| Some((name, path?)))
    }
}

/// The library names TLS settings by their `TlsFiles` field; the CLI user knows them as an
/// environment variable or a `[redis_tls]` key, so a message gets both names.
pub fn tls_setting_names(message: &str) -> String {
    let mut out = message.to_owned();
    for (field, names) in ["ca_file", "cert_file", "key_file"]
        .into_iter()
        .zip(TLS_SETTINGS)
    {
        out = out.replace(&format!("({field})"), &format!("({names})"));
        out = out.replace(&format!("set {field}"), &format!("set {names}"));
        out = out.replace(&format!("and {field}"), &format!("and {names}"));
    }
    out
}

/// The TLS files: each environment variable (when set and not empty) wins over its key in
/// `[redis_tls]`, whose relative paths are relative to the config file's directory.
pub(super) fn resolve_tls(
    env: &[Option<OsString>; 3],
    file: Option<(&RedisTlsFile, &Path)>,
) -> tickq::TlsFiles {
    let from_file = |pick: fn(&RedisTlsFile) -> Option<&PathBuf>| {
        let (tls, path) = file?;
        let value = pick(tls)?;
        Some(match path.parent() {
            Some(dir) if value.is_relative() => dir.join(value),
            _ => value.clone(),
        })
    };
    let pick = |i: usize, from: fn(&RedisTlsFile) -> Option<&PathBuf>| {
        env[i]
            .as_ref()
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| from_file(from))
    };
    let mut tls = tickq::TlsFiles::new();
    tls.ca_file = pick(0, |t| t.ca_file.as_ref());
    tls.cert_file = pick(1, |t| t.cert_file.as_ref());
    tls.key_file = pick(2, |t| t.key_file.as_ref());
    tls
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
        tls: tickq::TlsFiles::new(),
    })
}

/// A first look at the URL, so that a typo is a usage error before any connection attempt.
/// The library parses it fully when connecting.
pub(super) fn check_redis_url(url: &str) -> Result<(), String> {
    const SCHEMES: [&str; 6] = ["redis", "rediss", "redis+unix", "unix", "valkey", "valkeys"];
    let help = "expected redis://[user:pass@]host:port[/db], rediss://..., \
                redis+unix:///path/redis.sock, for a Cluster \
                redis-cluster://host:port,host:port,... (rediss-cluster:// for TLS), or for \
                Sentinel redis-sentinel://host:port[,host:port...]/MASTER_NAME[/db] \
                (rediss-sentinel:// for TLS)";
    let shown = tickq::redact_url(url);
    // The library's own reading decides Cluster and Sentinel URLs.
    if url.contains("-cluster://") || url.contains("-sentinel://") || url.contains(',') {
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
