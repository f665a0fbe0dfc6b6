//! `config show`: the effective server configuration, secrets redacted.

use crate::config::{CronSpec, ServerConfig};
use crate::output;
use serde::Serialize;
use std::collections::BTreeMap;

/// The config file's shape, filled with effective values: the text output is itself a valid
/// config file (minus the secrets).
#[derive(Serialize)]
struct Effective<'a> {
    redis: String,
    /// None: the library's default (0.9).
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_high_water: Option<f64>,
    /// None: not configured; each node names itself hostname-pid.
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    worker: Worker<'a>,
    http: Http,
    exec: Exec<'a>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    cron: &'a [CronSpec],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    limits: BTreeMap<&'a str, Limits>,
    /// Paths of the TLS files (not secrets: the key's contents are never read here).
    #[serde(skip_serializing_if = "RedisTls::is_empty")]
    redis_tls: RedisTls,
}

/// `[redis_tls]`, as absolute or relative-to-cwd paths.
#[derive(Serialize)]
struct RedisTls {
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_file: Option<String>,
}

impl RedisTls {
    fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none()
    }
}

/// `[limits.QUEUE]` as written in the file.
#[derive(Serialize)]
struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<String>,
}

#[derive(Serialize)]
struct Worker<'a> {
    queues: BTreeMap<&'a str, QueueShow>,
    concurrency: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease: Option<String>,
}

/// A queue as the config file writes it: `q = 2`, or `hot = { weight = 2, shards = 4 }`.
#[derive(Serialize)]
#[serde(untagged)]
enum QueueShow {
    Weight(u32),
    Sharded { weight: u32, shards: u32 },
}

#[derive(Serialize)]
struct Http {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_token: Option<&'static str>,
}

#[derive(Serialize)]
struct Exec<'a> {
    allow: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'static str>,
}

pub fn show(config: &ServerConfig, json: bool) -> anyhow::Result<()> {
    let effective = Effective {
        redis: tickq::redact_url(&config.redis.url),
        memory_high_water: config.redis.high_water,
        node: (!config.node_is_default).then_some(config.node.as_str()),
        worker: Worker {
            queues: config
                .queues
                .iter()
                .map(|(q, w)| {
                    let show = match config.shards.get(q) {
                        Some(&shards) => QueueShow::Sharded { weight: *w, shards },
                        None => QueueShow::Weight(*w),
                    };
                    (q.as_str(), show)
                })
                .collect(),
            concurrency: config.concurrency,
            lease: config.lease.map(tickq::units::format_duration),
        },
        http: Http {
            listen: config.listen.map(|a| a.to_string()),
            token: config.token.as_ref().map(|_| "***"),
            read_token: config.read_token.as_ref().map(|_| "***"),
        },
        exec: Exec {
            allow: &config.exec_allow,
            secret: config.exec_secret.as_ref().map(|_| "***"),
        },
        cron: &config.cron,
        limits: config
            .limits
            .iter()
            .map(|(q, l)| {
                let limits = Limits {
                    concurrency: l.concurrency,
                    rate: l.rate.map(|r| r.to_string()),
                };
                (q.as_str(), limits)
            })
            .collect(),
        redis_tls: {
            let tls = &config.redis.tls;
            let shown =
                |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
            RedisTls {
                ca_file: shown(&tls.ca_file),
                cert_file: shown(&tls.cert_file),
                key_file: shown(&tls.key_file),
            }
        },
    };
    let file = config.file.as_ref().map(|p| p.display().to_string());
    let data = config.data_dir.display().to_string();
    if json {
        let mut value = serde_json::to_value(&effective)?;
        let object = value
            .as_object_mut()
            .expect("a struct serialises to an object");
        object.insert("redis_from".into(), config.redis.origin.to_string().into());
        object.insert("config_file".into(), file.into());
        object.insert("data".into(), data.into());
        object.entry("node").or_insert(serde_json::Value::Null);
        output::json(&value)?;
        return Ok(());
    }
    let body = toml::to_string(&effective)?;
    output::text(&format!(
        "# effective configuration; config file: {}\n# redis from: {}\n# data directory: {data}\n{}{body}",
        file.as_deref().unwrap_or("none"),
        config.redis.origin,
        if config.node_is_default {
            "# node: not set; each node names itself hostname-pid\n"
        } else {
            ""
        },
    ))?;
    Ok(())
}
