//! The config file as written: its TOML schema (unknown keys are errors) and reading it.

use super::usage;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tickq::{Catchup, Overlap};

// ---- the config file as written ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) redis: Option<String>,
    pub(super) memory_high_water: Option<f64>,
    pub(super) node: Option<String>,
    #[serde(default)]
    pub(super) worker: WorkerFile,
    #[serde(default)]
    pub(super) http: HttpFile,
    #[serde(default)]
    pub(super) exec: ExecFile,
    #[serde(default)]
    pub(super) cron: Vec<CronFile>,
    #[serde(default)]
    pub(super) limits: BTreeMap<String, LimitsFile>,
    #[serde(default)]
    pub(super) redis_tls: RedisTlsFile,
}

/// `[redis_tls]`: PEM files for `rediss://`; relative paths are relative to the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RedisTlsFile {
    pub(super) ca_file: Option<PathBuf>,
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    pub(super) concurrency: Option<u32>,
    pub(super) rate: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkerFile {
    pub(super) queues: Option<BTreeMap<String, QueueFile>>,
    pub(super) concurrency: Option<usize>,
    pub(super) lease: Option<String>,
}

/// A `[worker] queues` entry: a weight (`default = 1`), or a table
/// (`hot = { weight = 2, shards = 3 }`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum QueueFile {
    Weight(u32),
    Table(QueueTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueTable {
    pub(super) weight: Option<u32>,
    pub(super) shards: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpFile {
    pub(super) listen: Option<String>,
    pub(super) token: Option<String>,
    pub(super) read_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecFile {
    #[serde(default)]
    pub(super) allow: Vec<String>,
    pub(super) secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CronFile {
    pub(super) name: String,
    pub(super) schedule: String,
    pub(super) timezone: Option<String>,
    pub(super) queue: Option<String>,
    pub(super) overlap: Option<Overlap>,
    pub(super) catchup: Option<Catchup>,
    #[serde(default)]
    pub(super) tasks: Vec<CronTaskFile>,
    /// A workflow fired once per tick instead of independent tasks (`[[cron.step]]`).
    #[serde(default)]
    pub(super) step: Vec<super::flow::StepFile>,
    /// Its batches with named callbacks (`[[cron.batch]]`).
    #[serde(default)]
    pub(super) batch: Vec<tickq::Batch>,
    /// Or a workflow file (as `tickq flow run FILE` takes), read once when the config is
    /// loaded; relative to the config file's directory.
    pub(super) flow: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CronTaskFile {
    pub(super) kind: String,
    pub(super) cmd: Option<Vec<String>>,
    pub(super) env: Option<BTreeMap<String, String>>,
    pub(super) cwd: Option<String>,
    pub(super) stdin: Option<String>,
    pub(super) payload: Option<toml::Value>,
}

pub(super) fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read config file {}: {e}; check the path given to --config",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| usage(format!("invalid config file {}: {e}", path.display())))
}

pub(super) fn toml_to_json(value: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => J::from(f),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            J::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}
