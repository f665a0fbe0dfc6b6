//! `tickq server`'s effective settings: flags over the config file over defaults.

use super::cron::{CronSpec, cron_spec};
use super::file::{FileConfig, QueueFile};
use super::redis::Redis;
use super::{DEFAULT_QUEUE, MAX_NAME_LEN, usage};
use crate::cli::ServerOpts;
use crate::kinds::exec::Secret;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tickq::units as parse;

pub(super) const DEFAULT_CONCURRENCY: usize = 16;
pub(super) const DEFAULT_DATA_DIR: &str = ".tickq";

/// A `tickq server`'s settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub redis: Redis,
    pub file: Option<PathBuf>,
    pub node: String,
    /// No name was configured: `node` is hostname-pid of this process.
    pub node_is_default: bool,
    /// Queue and weight, sorted by name.
    pub queues: Vec<(String, u32)>,
    /// Shard counts of the sharded queues among `queues` (`hot = { shards = 3 }`, `hot=1:3`).
    pub shards: BTreeMap<String, u32>,
    pub concurrency: usize,
    /// `[worker] lease`; None: the library's default (30 s).
    pub lease: Option<Duration>,
    pub listen: Option<SocketAddr>,
    pub token: Option<String>,
    /// `[http] read_token`: reads the API and dashboard, cannot act.
    pub read_token: Option<String>,
    /// Programs `exec` jobs may run, matched exactly as written; empty = exec off.
    pub exec_allow: Vec<String>,
    /// `TICKQ_EXEC_SECRET` or `[exec] secret`: exec jobs must be signed with it.
    pub exec_secret: Option<crate::kinds::exec::Secret>,
    pub cron: Vec<CronSpec>,
    /// `[limits.QUEUE]`, sorted by queue: set in Redis when the server starts.
    pub limits: Vec<(String, tickq::QueueLimits)>,
    pub data_dir: PathBuf,
}

pub(super) fn server_config(
    redis: Redis,
    path: Option<PathBuf>,
    file: FileConfig,
    flags: ServerOpts,
    exec_secret: Option<Secret>,
) -> anyhow::Result<ServerConfig> {
    // Errors about values that came from the file name the file.
    let in_file = |what: &str, e: String| match &path {
        Some(p) => usage(format!("config file {}: {what}: {e}", p.display())),
        None => usage(format!("{what}: {e}")),
    };

    let node_is_default = flags.node.is_none() && file.node.is_none();
    let node = match (flags.node, file.node) {
        (Some(n), _) => {
            node_name(&n).map_err(|e| usage(format!("--node: {e}")))?;
            n
        }
        (None, Some(n)) => {
            node_name(&n).map_err(|e| in_file("node", e))?;
            n
        }
        (None, None) => tickq::default_node_name(),
    };

    let (queues, shards) = match (flags.queues, file.worker.queues) {
        (Some(text), _) => parse_queues(&text).map_err(|e| usage(format!("--queues: {e}")))?,
        (None, Some(map)) => {
            let mut queues = Vec::new();
            let mut shards = BTreeMap::new();
            for (name, entry) in map {
                let (weight, count) = match entry {
                    QueueFile::Weight(w) => (w, 1),
                    QueueFile::Table(t) => (t.weight.unwrap_or(1), t.shards.unwrap_or(1)),
                };
                check_shards(&name, count).map_err(|e| in_file("[worker] queues", e))?;
                if count > 1 {
                    shards.insert(name.clone(), count);
                }
                queues.push((name, weight));
            }
            check_queues(&queues).map_err(|e| in_file("[worker] queues", e))?;
            (queues, shards)
        }
        (None, None) => (vec![(DEFAULT_QUEUE.to_owned(), 1)], BTreeMap::new()),
    };

    let concurrency = match (flags.concurrency, file.worker.concurrency) {
        (Some(0), _) => return Err(usage("--concurrency must be at least 1")),
        (Some(n), _) => n,
        (None, Some(0)) => {
            return Err(in_file("[worker] concurrency", "must be at least 1".into()));
        }
        (None, Some(n)) => n,
        (None, None) => DEFAULT_CONCURRENCY,
    };

    let token = match file.http.token {
        Some(t) if t.trim().is_empty() => {
            return Err(in_file("[http] token", "must not be empty".into()));
        }
        t => t,
    };
    let read_token = match file.http.read_token {
        Some(t) if t.trim().is_empty() => {
            return Err(in_file("[http] read_token", "must not be empty".into()));
        }
        Some(t) if token.as_deref() == Some(t.as_str()) => {
            return Err(in_file(
                "[http] read_token",
                "must differ from [http] token (the operator's)".into(),
            ));
        }
        t => t,
    };
    let lease = match &file.worker.lease {
        None => None,
        Some(text) => {
            let lease =
                parse::duration(text).map_err(|e| in_file("[worker] lease", e.to_string()))?;
            if lease < tickq::MIN_LEASE {
                return Err(in_file(
                    "[worker] lease",
                    format!("{text:?} is too short: use at least 300ms"),
                ));
            }
            Some(lease)
        }
    };
    let (listen, listen_from_flag) = match (flags.listen, file.http.listen) {
        (Some(a), _) => (
            Some(listen_addr(&a).map_err(|e| usage(format!("--listen: {e}")))?),
            true,
        ),
        (None, Some(a)) => (
            Some(listen_addr(&a).map_err(|e| in_file("[http] listen", e))?),
            false,
        ),
        (None, None) => (None, false),
    };
    if let Some(addr) = listen
        && !addr.ip().is_loopback()
        && token.is_none()
    {
        let e = format!(
            "refusing to listen on {addr}: a non-loopback address needs `token = \"...\"` under \
             [http] in the config file (or listen on 127.0.0.1)"
        );
        return Err(if listen_from_flag {
            usage(format!("--listen: {e}"))
        } else {
            in_file("[http] listen", e)
        });
    }

    for program in &file.exec.allow {
        if program.is_empty() || program.contains('\0') {
            return Err(in_file(
                "[exec] allow",
                format!("{program:?} is not a program name or path"),
            ));
        }
    }

    let mut cron = Vec::new();
    let mut names = BTreeSet::new();
    for c in file.cron {
        let what = format!("[[cron]] {:?}", c.name);
        let dir = path.as_deref().and_then(|p| p.parent());
        let spec = cron_spec(c, dir).map_err(|e| in_file(&what, e))?;
        if !names.insert(spec.name.clone()) {
            return Err(in_file(&what, "the name is used twice".into()));
        }
        cron.push(spec);
    }

    let mut limits = Vec::new();
    for (queue, l) in file.limits {
        let what = format!("[limits.{queue}]");
        tickq::validate_queue_name(&queue).map_err(|e| in_file(&what, e.to_string()))?;
        let rate = l
            .rate
            .as_deref()
            .map(parse::rate)
            .transpose()
            .map_err(|e| in_file(&what, format!("rate: {e}")))?;
        if l.concurrency.is_none() && rate.is_none() {
            return Err(in_file(
                &what,
                "set concurrency = N, rate = \"JOBS/DUR\" or both".into(),
            ));
        }
        let queue_limits = tickq::QueueLimits {
            concurrency: l.concurrency,
            rate,
        };
        queue_limits
            .validate()
            .map_err(|e| in_file(&what, e.message().to_owned()))?;
        limits.push((queue, queue_limits));
    }

    Ok(ServerConfig {
        redis,
        file: path,
        node,
        node_is_default,
        queues,
        shards,
        concurrency,
        lease,
        listen,
        token,
        read_token,
        exec_allow: file.exec.allow,
        exec_secret,
        cron,
        limits,
        data_dir: flags
            .data
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
    })
}

pub(super) fn node_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "invalid node name {name:?}: use 1 to {MAX_NAME_LEN} characters without spaces"
        ));
    }
    Ok(())
}

/// Queues with their weights, and the shard counts of the sharded ones.
pub(super) type QueueSpecs = (Vec<(String, u32)>, BTreeMap<String, u32>);

/// `critical=3,default=1,hot=2:4`; a queue without `=W` has weight 1, and `:K` makes it a
/// sharded queue of K shards.
pub(super) fn parse_queues(text: &str) -> Result<QueueSpecs, String> {
    let mut queues = Vec::new();
    let mut shards = BTreeMap::new();
    for part in text.split(',').map(str::trim) {
        let (name, weight) = match part.split_once('=') {
            Some((name, spec)) => {
                let (weight, count) = match spec.split_once(':') {
                    Some((w, k)) => {
                        let k = k.trim().parse::<u32>().map_err(|_| {
                            format!("shard count {k:?} of queue {name:?} is not a whole number")
                        })?;
                        (w, k)
                    }
                    None => (spec, 1),
                };
                let weight = weight.trim().parse::<u32>().map_err(|_| {
                    format!("weight {weight:?} of queue {name:?} is not a whole number")
                })?;
                check_shards(name.trim(), count)?;
                if count > 1 {
                    shards.insert(name.trim().to_owned(), count);
                }
                (name.trim(), weight)
            }
            None => (part, 1),
        };
        queues.push((name.to_owned(), weight));
    }
    queues.sort();
    check_queues(&queues)?;
    Ok((queues, shards))
}

fn check_shards(name: &str, count: u32) -> Result<(), String> {
    if !(1..=tickq::MAX_SHARDS).contains(&count) {
        return Err(format!(
            "queue {name}: shards must be between 1 and {}, not {count}",
            tickq::MAX_SHARDS
        ));
    }
    Ok(())
}

pub(super) fn check_queues(queues: &[(String, u32)]) -> Result<(), String> {
    if queues.is_empty() {
        return Err("name at least one queue, e.g. default=1".into());
    }
    let mut seen = BTreeSet::new();
    for (name, weight) in queues {
        tickq::validate_queue_name(name).map_err(|e| e.to_string())?;
        if *weight == 0 {
            return Err(format!("queue {name}: weight must be at least 1"));
        }
        if !seen.insert(name) {
            return Err(format!("queue {name} is named twice"));
        }
    }
    Ok(())
}

pub(super) fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("invalid address {text:?}: use IP:PORT, e.g. 127.0.0.1:7700"))
}
