//! Raw arguments, environment and config file in; one typed, validated [`Invocation`] out.
//!
//! Everything a user can get wrong is checked here, before any connection is made or process
//! started, and reported as a [`UsageError`] (exit status 2).

use crate::cli::{
    CatchupArg, Cli, Command, ConfigCommand, CronAddArgs, CronCommand, CronNextArgs, JobOpts,
    LockCommand, LogFormat, OverlapArg, QueueArgs, QueueCommand, ServerOpts,
};
use crate::exec_kind::{ExecPayload, Secret};
use crate::parse;
use anyhow::Context as _;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tickq::schedule::{Catchup, CronSchedule, Overlap, ScheduleSpec, Task};
use tickq::{JobState, NewJob};

/// The environment variable holding the Redis URL (see INTERFACE.md, "Finding Redis").
pub const REDIS_URL_ENV: &str = "TICKQ_REDIS_URL";

/// TEST ONLY, not part of the interface: the port of the default Redis address.
///
/// The embedded-Redis behaviour only happens when no address is given, so a test of it needs
/// the *default* address itself to move: otherwise the test would start (or find, or fight
/// over) a real Redis on 127.0.0.1:6379 of the machine it runs on.
pub const DEFAULT_PORT_ENV: &str = "TICKQ_DEFAULT_REDIS_PORT";

const DEFAULT_PORT: u16 = 6379;
const DEFAULT_QUEUE: &str = "default";
const DEFAULT_CONCURRENCY: usize = 16;
const DEFAULT_DATA_DIR: &str = ".tickq";
const MAX_NAME_LEN: usize = 128;
/// The most fire times `cron next` lists.
const MAX_NEXT_COUNT: usize = 1000;
/// The library refuses shorter leases.
const MIN_LEASE: Duration = Duration::from_millis(300);

/// Bad input from the user: a flag, an argument, the config file. Exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// What to run, fully checked.
#[derive(Debug)]
pub struct Invocation {
    pub log: LogConfig,
    pub action: Action,
}

#[derive(Debug, Clone, Copy)]
pub struct LogConfig {
    pub format: LogFormat,
    pub verbose: u8,
    /// The level when neither RUST_LOG nor -v says otherwise.
    pub default_level: &'static str,
}

#[derive(Debug)]
pub enum Action {
    Server(Box<ServerConfig>),
    ConfigShow {
        config: Box<ServerConfig>,
        json: bool,
    },
    Enqueue {
        redis: Redis,
        job: Box<NewJob>,
        json: bool,
    },
    Job {
        redis: Redis,
        id: String,
        json: bool,
    },
    Jobs {
        redis: Redis,
        queue: String,
        state: Option<JobState>,
        limit: usize,
        json: bool,
    },
    Stats {
        redis: Redis,
        json: bool,
    },
    Retry {
        redis: Redis,
        id: String,
        json: bool,
    },
    Kill {
        redis: Redis,
        id: String,
        json: bool,
    },
    Delete {
        redis: Redis,
        id: String,
        json: bool,
    },
    Cancel {
        redis: Redis,
        id: String,
        json: bool,
    },
    QueueLs {
        redis: Redis,
        json: bool,
    },
    /// `queue pause` (paused: true) and `queue resume`.
    QueuePause {
        redis: Redis,
        queue: String,
        paused: bool,
        json: bool,
    },
    /// `queue limit`: `change: None` shows the limits.
    QueueLimit {
        redis: Redis,
        queue: String,
        change: Option<LimitChange>,
        json: bool,
    },
    /// Never `JobState::Active`: refused here as a usage error.
    QueuePurge {
        redis: Redis,
        queue: String,
        state: JobState,
        json: bool,
    },
    CronLs {
        redis: Redis,
        json: bool,
    },
    CronAdd {
        redis: Redis,
        spec: Box<CronSpec>,
        json: bool,
    },
    Cron {
        redis: Redis,
        verb: CronVerb,
        name: String,
        json: bool,
    },
    /// Needs no Redis: it has no address, so nothing can try to connect.
    CronNext {
        cron: Box<CronSchedule>,
        after: Option<jiff::Timestamp>,
        count: usize,
        json: bool,
    },
    LockRun {
        redis: Redis,
        run: Box<LockRun>,
    },
    LockSet {
        redis: Redis,
        name: String,
        key: String,
        value: String,
        fence: u64,
        json: bool,
    },
    LockGet {
        redis: Redis,
        name: String,
        key: String,
        json: bool,
    },
}

/// `tickq lock run`, checked.
#[derive(Debug, Clone)]
pub struct LockRun {
    pub name: String,
    pub ttl: Duration,
    pub wait: Duration,
    /// SIGTERM to SIGKILL, after the lock is lost.
    pub grace: Duration,
    /// PROGRAM and ARGS; never empty.
    pub cmd: Vec<String>,
}

/// The `cron` verbs that act on one stored schedule by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronVerb {
    Rm,
    Trigger,
    Pause,
    Resume,
}

/// The Redis address and where it came from.
#[derive(Debug, Clone)]
pub struct Redis {
    pub url: String,
    pub origin: RedisOrigin,
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
    pub concurrency: usize,
    /// `[worker] lease`; None: the library's default (30 s).
    pub lease: Option<Duration>,
    pub listen: Option<SocketAddr>,
    pub token: Option<String>,
    /// Programs `exec` jobs may run, matched exactly as written; empty = exec off.
    pub exec_allow: Vec<String>,
    /// `TICKQ_EXEC_SECRET` or `[exec] secret`: exec jobs must be signed with it.
    pub exec_secret: Option<crate::exec_kind::Secret>,
    pub cron: Vec<CronSpec>,
    /// `[limits.QUEUE]`, sorted by queue: set in Redis when the server starts.
    pub limits: Vec<(String, tickq::QueueLimits)>,
    pub data_dir: PathBuf,
}

/// One schedule as the user wrote it: a `[[cron]]` table (with defaults filled in) or the
/// arguments of `tickq cron add`. Checked with the library's [`ScheduleSpec::validate`];
/// [`CronSpec::to_schedule`] is the one mapping to the library's form.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CronSpec {
    pub name: String,
    pub schedule: String,
    pub timezone: String,
    pub queue: String,
    pub overlap: Overlap,
    pub catchup: Catchup,
    pub tasks: Vec<CronTask>,
}

/// One job of a cron tick, shown the way it is written in the file.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum CronTask {
    Exec {
        kind: &'static str,
        #[serde(flatten)]
        exec: ExecPayload,
    },
    Other {
        kind: String,
        #[serde(skip_serializing_if = "serde_json::Value::is_null")]
        payload: serde_json::Value,
    },
}

// ---- the config file as written ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    redis: Option<String>,
    node: Option<String>,
    #[serde(default)]
    worker: WorkerFile,
    #[serde(default)]
    http: HttpFile,
    #[serde(default)]
    exec: ExecFile,
    #[serde(default)]
    cron: Vec<CronFile>,
    #[serde(default)]
    limits: BTreeMap<String, LimitsFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    concurrency: Option<u32>,
    rate: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerFile {
    queues: Option<BTreeMap<String, u32>>,
    concurrency: Option<usize>,
    lease: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    listen: Option<String>,
    token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecFile {
    #[serde(default)]
    allow: Vec<String>,
    secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CronFile {
    name: String,
    schedule: String,
    timezone: Option<String>,
    queue: Option<String>,
    overlap: Option<Overlap>,
    catchup: Option<Catchup>,
    tasks: Vec<CronTaskFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CronTaskFile {
    kind: String,
    cmd: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<String>,
    stdin: Option<String>,
    payload: Option<toml::Value>,
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read config file {}: {e}; check the path given to --config",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| usage(format!("invalid config file {}: {e}", path.display())))
}

// ---- validation ----

/// Check everything and build the invocation.
pub fn validate(cli: Cli) -> anyhow::Result<Invocation> {
    let global = cli.global;
    let mut log = LogConfig {
        format: global.log_format,
        verbose: global.verbose,
        default_level: "warn",
    };
    // Before the Redis address is even resolved: `cron next` must work with no Redis and no
    // usable address anywhere.
    let command = match cli.command {
        Command::Cron(CronCommand::Next(args)) => {
            return Ok(Invocation {
                log,
                action: cron_next(args)?,
            });
        }
        command => command,
    };
    let file = match &global.config {
        Some(path) => Some(load_file(path)?),
        None => None,
    };
    let redis = resolve_redis(
        global.redis.as_deref(),
        std::env::var(REDIS_URL_ENV).ok().as_deref(),
        file.as_ref()
            .and_then(|f| f.redis.as_deref())
            .zip(global.config.as_deref()),
    )?;
    let exec_secret = exec_secret(file.as_ref(), global.config.as_deref())?;
    let action = match command {
        Command::Server(args) => {
            log.default_level = "info";
            let file = file.unwrap_or_default();
            Action::Server(Box::new(server_config(
                redis,
                global.config,
                file,
                args.opts,
            )?))
        }
        Command::Config(ConfigCommand::Show(args)) => Action::ConfigShow {
            config: Box::new(server_config(
                redis,
                global.config,
                file.unwrap_or_default(),
                args.opts,
            )?),
            json: args.output.json,
        },
        Command::Enqueue(args) => {
            let mut payload = match args.payload.as_deref() {
                None => serde_json::Value::Null,
                Some(text) => payload(text)?,
            };
            if args.kind == crate::exec_kind::KIND {
                let exec: ExecPayload = serde_json::from_value(payload.clone()).map_err(|e| {
                    usage(format!(
                        "an exec job's payload must be {{\"cmd\": [PROGRAM, ARGS...], \"env\": \
                         {{...}}, \"cwd\": \"...\", \"stdin\": \"...\"}}: {e}"
                    ))
                })?;
                exec.validate().map_err(usage)?;
                if let Some(secret) = &exec_secret {
                    payload = signed_value(exec, secret)?;
                }
            }
            let json = args.job.output.json;
            Action::Enqueue {
                redis,
                job: Box::new(new_job(&args.queue, &args.kind, payload, args.job)?),
                json,
            }
        }
        Command::Exec(args) => {
            let exec = ExecPayload {
                cmd: args.cmd,
                env: env_pairs(&args.env)?,
                cwd: args.cwd,
                stdin: None,
                sig: None,
            };
            exec.validate().map_err(usage)?;
            let payload = match &exec_secret {
                Some(secret) => signed_value(exec, secret)?,
                None => serde_json::to_value(&exec).context("encoding the exec payload")?,
            };
            let json = args.job.output.json;
            Action::Enqueue {
                redis,
                job: Box::new(new_job(
                    &args.queue,
                    crate::exec_kind::KIND,
                    payload,
                    args.job,
                )?),
                json,
            }
        }
        Command::Job(args) => Action::Job {
            redis,
            id: job_id(&args.id)?,
            json: args.output.json,
        },
        Command::Jobs(args) => {
            queue_name(&args.queue)?;
            let state = args
                .state
                .as_deref()
                .map(|s| s.parse::<JobState>().map_err(|e| usage(e.to_string())))
                .transpose()?;
            if args.limit == 0 {
                return Err(usage("--limit must be at least 1"));
            }
            Action::Jobs {
                redis,
                queue: args.queue,
                state,
                limit: args.limit,
                json: args.output.json,
            }
        }
        Command::Stats(output) => Action::Stats {
            redis,
            json: output.json,
        },
        Command::Retry(args) => Action::Retry {
            redis,
            id: job_id(&args.id)?,
            json: args.output.json,
        },
        Command::Kill(args) => Action::Kill {
            redis,
            id: job_id(&args.id)?,
            json: args.output.json,
        },
        Command::Delete(args) => Action::Delete {
            redis,
            id: job_id(&args.id)?,
            json: args.output.json,
        },
        Command::Cancel(args) => Action::Cancel {
            redis,
            id: job_id(&args.id)?,
            json: args.output.json,
        },
        Command::Queue(QueueCommand::Ls(output)) => Action::QueueLs {
            redis,
            json: output.json,
        },
        Command::Queue(QueueCommand::Pause(args)) => queue_pause(redis, args, true)?,
        Command::Queue(QueueCommand::Resume(args)) => queue_pause(redis, args, false)?,
        Command::Queue(QueueCommand::Purge(args)) => {
            queue_name(&args.queue)?;
            let state: JobState = args
                .state
                .parse()
                .map_err(|e| usage(format!("--state: {e}")))?;
            if state == JobState::Active {
                return Err(usage(
                    "active jobs cannot be purged: they are running; cancel them \
                     (`tickq cancel ID`), or pause the queue and let them finish",
                ));
            }
            Action::QueuePurge {
                redis,
                queue: args.queue,
                state,
                json: args.output.json,
            }
        }
        Command::Queue(QueueCommand::Limit(args)) => {
            queue_name(&args.queue)?;
            Action::QueueLimit {
                redis,
                queue: args.queue,
                change: limit_change(args.clear, args.concurrency, args.rate)?,
                json: args.output.json,
            }
        }
        Command::Cron(command) => cron_action(command, redis, exec_secret.as_ref())?,
        Command::Lock(command) => lock_action(command, redis)?,
    };
    Ok(Invocation { log, action })
}

/// A change to a queue's limits: each `Some` replaces that limit (`Some(None)` removes it);
/// `None` leaves it as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitChange {
    pub concurrency: Option<Option<u32>>,
    pub rate: Option<Option<tickq::Rate>>,
}

impl LimitChange {
    pub fn apply(&self, mut limits: tickq::QueueLimits) -> tickq::QueueLimits {
        if let Some(c) = self.concurrency {
            limits.concurrency = c;
        }
        if let Some(r) = self.rate {
            limits.rate = r;
        }
        limits
    }
}

fn limit_change(
    clear: bool,
    concurrency: Option<String>,
    rate: Option<String>,
) -> anyhow::Result<Option<LimitChange>> {
    if clear {
        return Ok(Some(LimitChange {
            concurrency: Some(None),
            rate: Some(None),
        }));
    }
    if concurrency.is_none() && rate.is_none() {
        return Ok(None);
    }
    let concurrency = concurrency
        .map(|text| match text.as_str() {
            "none" => Ok(None),
            n => n.parse::<u32>().map(Some).map_err(|_| {
                usage(format!(
                    "--concurrency {n:?}: use a whole number of at least 1, or none"
                ))
            }),
        })
        .transpose()?;
    let rate = rate
        .map(|text| match text.as_str() {
            "none" => Ok(None),
            r => parse::rate(r)
                .map(Some)
                .map_err(|e| usage(format!("--rate: {e}"))),
        })
        .transpose()?;
    let change = LimitChange { concurrency, rate };
    // The limits' own check, on what this change sets (the others are already valid).
    change
        .apply(tickq::QueueLimits::default())
        .validate()
        .map_err(|e| usage(e.message().to_owned()))?;
    Ok(Some(change))
}

fn queue_pause(redis: Redis, args: QueueArgs, paused: bool) -> anyhow::Result<Action> {
    queue_name(&args.queue)?;
    Ok(Action::QueuePause {
        redis,
        queue: args.queue,
        paused,
        json: args.output.json,
    })
}

fn cron_action(
    command: CronCommand,
    redis: Redis,
    exec_secret: Option<&Secret>,
) -> anyhow::Result<Action> {
    let (verb, args) = match command {
        CronCommand::Ls(output) => {
            return Ok(Action::CronLs {
                redis,
                json: output.json,
            });
        }
        CronCommand::Add(args) => {
            let json = args.output.json;
            let mut spec = cron_add(args)?;
            if let Some(secret) = exec_secret {
                spec.sign_exec(secret);
            }
            return Ok(Action::CronAdd {
                redis,
                spec: Box::new(spec),
                json,
            });
        }
        CronCommand::Next(args) => return cron_next(args),
        CronCommand::Rm(args) => (CronVerb::Rm, args),
        CronCommand::Trigger(args) => (CronVerb::Trigger, args),
        CronCommand::Pause(args) => (CronVerb::Pause, args),
        CronCommand::Resume(args) => (CronVerb::Resume, args),
    };
    Ok(Action::Cron {
        redis,
        verb,
        name: args.name,
        json: args.output.json,
    })
}

/// `cron add`: the same [`CronSpec`] a `[[cron]]` table gives, checked the same way.
fn cron_add(args: CronAddArgs) -> anyhow::Result<CronSpec> {
    let task = if args.exec {
        exec_task(ExecPayload {
            cmd: args.cmd,
            env: env_pairs(&args.env)?,
            cwd: args.cwd,
            stdin: None,
            sig: None,
        })
    } else {
        let kind = args.kind.expect("clap requires --exec or --kind");
        let payload = match args.payload.as_deref() {
            None => serde_json::Value::Null,
            Some(text) => payload(text)?,
        };
        kind_task(kind, payload)
    }
    .map_err(usage)?;
    let spec = CronSpec {
        name: args.name,
        schedule: args.schedule.trim().to_owned(),
        timezone: args.tz.unwrap_or_else(|| "UTC".to_owned()),
        queue: args.queue,
        overlap: match args.overlap {
            None => Overlap::default(),
            Some(OverlapArg::Allow) => Overlap::Allow,
            Some(OverlapArg::Forbid) => Overlap::Forbid,
            Some(OverlapArg::Replace) => Overlap::Replace,
        },
        catchup: match args.catchup {
            None => Catchup::default(),
            Some(CatchupArg::Skip) => Catchup::Skip,
            Some(CatchupArg::Latest) => Catchup::Latest,
            Some(CatchupArg::All) => Catchup::All,
        },
        tasks: vec![task],
    };
    spec.check().map_err(usage)?;
    Ok(spec)
}

/// `tickq lock run`'s defaults (see `tickq lock run --help` and docs/locks.md).
const LOCK_TTL: Duration = tickq::DEFAULT_LOCK_TTL;
const LOCK_GRACE: Duration = Duration::from_secs(10);

fn lock_action(command: LockCommand, redis: Redis) -> anyhow::Result<Action> {
    let name = |name: String| -> anyhow::Result<String> {
        tickq::validate_lock_name(&name).map_err(|e| usage(e.to_string()))?;
        Ok(name)
    };
    let dur = |flag: &str, text: Option<String>, default: Duration| -> anyhow::Result<Duration> {
        text.map_or(Ok(default), |text| {
            parse::duration(&text).map_err(|e| usage(format!("{flag}: {e}")))
        })
    };
    Ok(match command {
        LockCommand::Run(args) => {
            let ttl = dur("--ttl", args.ttl, LOCK_TTL)?;
            if ttl < tickq::MIN_LOCK_TTL {
                return Err(usage(format!(
                    "--ttl must be at least {}",
                    parse::format_duration(tickq::MIN_LOCK_TTL)
                )));
            }
            if args.cmd.first().is_none_or(|program| program.is_empty()) {
                return Err(usage(
                    "no program to run: give it after `--`, e.g. `tickq lock run NAME -- PROGRAM ARGS`",
                ));
            }
            Action::LockRun {
                redis,
                run: Box::new(LockRun {
                    name: name(args.name)?,
                    ttl,
                    wait: dur("--wait", args.wait, Duration::ZERO)?,
                    grace: dur("--grace", args.grace, LOCK_GRACE)?,
                    cmd: args.cmd,
                }),
            }
        }
        LockCommand::Set(args) => Action::LockSet {
            redis,
            name: name(args.name)?,
            key: args.key,
            value: args.value,
            fence: args.fence.ok_or_else(|| {
                usage("no fence: pass --fence N, or run inside `tickq lock run`, which sets TICKQ_FENCE")
            })?,
            json: args.output.json,
        },
        LockCommand::Get(args) => Action::LockGet {
            redis,
            name: name(args.name)?,
            key: args.key,
            json: args.output.json,
        },
    })
}

fn cron_next(args: CronNextArgs) -> anyhow::Result<Action> {
    let zone = args.tz.as_deref().unwrap_or("UTC");
    let cron = CronSchedule::parse(args.schedule.trim(), zone).map_err(|e| usage(e.to_string()))?;
    let after = args
        .after
        .as_deref()
        .map(|text| parse::time(text).map_err(|e| usage(format!("--after: {e}"))))
        .transpose()?;
    if !(1..=MAX_NEXT_COUNT).contains(&args.count) {
        return Err(usage(format!(
            "--count must be between 1 and {MAX_NEXT_COUNT}"
        )));
    }
    Ok(Action::CronNext {
        cron: Box::new(cron),
        after,
        count: args.count,
        json: args.output.json,
    })
}

/// `--env NAME=VALUE` flags.
fn env_pairs(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| usage(format!("--env {pair:?}: use NAME=VALUE")))?;
        env.insert(name.to_owned(), value.to_owned());
    }
    Ok(env)
}

/// `--redis` > `TICKQ_REDIS_URL` > `redis` in the config file > the default.
fn resolve_redis(
    flag: Option<&str>,
    env: Option<&str>,
    file: Option<(&str, &Path)>,
) -> anyhow::Result<Redis> {
    let (url, origin) = if let Some(url) = flag {
        (url.to_owned(), RedisOrigin::Flag)
    } else if let Some(url) = env.filter(|u| !u.trim().is_empty()) {
        (url.to_owned(), RedisOrigin::Env)
    } else if let Some((url, path)) = file {
        (url.to_owned(), RedisOrigin::File(path.to_owned()))
    } else {
        let port = match std::env::var(DEFAULT_PORT_ENV) {
            Ok(p) => p
                .parse()
                .map_err(|_| usage(format!("{DEFAULT_PORT_ENV}={p:?} is not a port")))?,
            Err(_) => DEFAULT_PORT,
        };
        (
            format!("redis://127.0.0.1:{port}"),
            RedisOrigin::Default { port },
        )
    };
    check_redis_url(&url).map_err(|e| usage(format!("{e} (from {origin})")))?;
    Ok(Redis { url, origin })
}

/// A first look at the URL, so that a typo is a usage error before any connection attempt.
/// The library parses it fully when connecting.
fn check_redis_url(url: &str) -> Result<(), String> {
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

fn server_config(
    redis: Redis,
    path: Option<PathBuf>,
    file: FileConfig,
    flags: ServerOpts,
) -> anyhow::Result<ServerConfig> {
    // Errors about values that came from the file name the file.
    let in_file = |what: &str, e: String| match &path {
        Some(p) => usage(format!("config file {}: {what}: {e}", p.display())),
        None => usage(format!("{what}: {e}")),
    };

    let exec_secret = exec_secret(Some(&file), path.as_deref())?;
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

    let queues = match (flags.queues, file.worker.queues) {
        (Some(text), _) => parse_queues(&text).map_err(|e| usage(format!("--queues: {e}")))?,
        (None, Some(map)) => {
            let queues: Vec<(String, u32)> = map.into_iter().collect();
            check_queues(&queues).map_err(|e| in_file("[worker] queues", e))?;
            queues
        }
        (None, None) => vec![(DEFAULT_QUEUE.to_owned(), 1)],
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
    let lease = match &file.worker.lease {
        None => None,
        Some(text) => {
            let lease = parse::duration(text).map_err(|e| in_file("[worker] lease", e))?;
            if lease < MIN_LEASE {
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
        let spec = cron_spec(c).map_err(|e| in_file(&what, e))?;
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
        concurrency,
        lease,
        listen,
        token,
        exec_allow: file.exec.allow,
        exec_secret,
        cron,
        limits,
        data_dir: flags
            .data
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
    })
}

fn node_name(name: &str) -> Result<(), String> {
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

/// `critical=3,default=1`; a queue without `=W` has weight 1.
fn parse_queues(text: &str) -> Result<Vec<(String, u32)>, String> {
    let mut queues = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (name, weight) = match part.split_once('=') {
            Some((name, weight)) => {
                let weight = weight.trim().parse::<u32>().map_err(|_| {
                    format!("weight {weight:?} of queue {name:?} is not a whole number")
                })?;
                (name.trim(), weight)
            }
            None => (part, 1),
        };
        queues.push((name.to_owned(), weight));
    }
    queues.sort();
    check_queues(&queues)?;
    Ok(queues)
}

fn check_queues(queues: &[(String, u32)]) -> Result<(), String> {
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

fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("invalid address {text:?}: use IP:PORT, e.g. 127.0.0.1:7700"))
}

fn cron_spec(c: CronFile) -> Result<CronSpec, String> {
    let tasks = c
        .tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| cron_task(t).map_err(|e| format!("task {}: {e}", i + 1)))
        .collect::<Result<_, _>>()?;
    let spec = CronSpec {
        name: c.name,
        schedule: c.schedule.trim().to_owned(),
        timezone: c.timezone.unwrap_or_else(|| "UTC".to_owned()),
        queue: c.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned()),
        overlap: c.overlap.unwrap_or_default(),
        catchup: c.catchup.unwrap_or_default(),
        tasks,
    };
    spec.check()?;
    Ok(spec)
}

impl CronSpec {
    /// The scheduler's own rules: name, queue, tasks, cron syntax and time zone.
    fn check(&self) -> Result<(), String> {
        self.to_schedule()
            .validate()
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Sign every exec task with `secret` (replacing any signature it had).
    pub fn sign_exec(&mut self, secret: &Secret) {
        for task in &mut self.tasks {
            if let CronTask::Exec { exec, .. } = task {
                exec.sign(secret);
            }
        }
    }

    /// The library's form of this schedule.
    pub fn to_schedule(&self) -> ScheduleSpec {
        let mut spec = ScheduleSpec::new(&self.name, &self.queue, &self.schedule)
            .timezone(&self.timezone)
            .overlap(self.overlap)
            .catchup(self.catchup);
        for task in &self.tasks {
            spec = spec.task(match task {
                CronTask::Exec { exec, .. } => Task::new(
                    crate::exec_kind::KIND,
                    serde_json::to_value(exec).expect("an exec payload serialises"),
                ),
                CronTask::Other { kind, payload } => Task::new(kind, payload.clone()),
            });
        }
        spec
    }
}

fn cron_task(t: CronTaskFile) -> Result<CronTask, String> {
    kind_name(&t.kind)?;
    if t.kind == crate::exec_kind::KIND {
        if t.payload.is_some() {
            return Err("an exec task takes cmd (and env, cwd, stdin), not payload".into());
        }
        return exec_task(ExecPayload {
            cmd: t.cmd.ok_or("an exec task needs cmd = [PROGRAM, ARGS...]")?,
            env: t.env.unwrap_or_default(),
            cwd: t.cwd,
            stdin: t.stdin,
            sig: None,
        });
    }
    if t.cmd.is_some() || t.env.is_some() || t.cwd.is_some() || t.stdin.is_some() {
        return Err(format!(
            "cmd, env, cwd and stdin are for exec tasks; a {:?} task takes payload",
            t.kind
        ));
    }
    kind_task(t.kind, t.payload.map(toml_to_json).unwrap_or_default())
}

/// The exec signing secret: `TICKQ_EXEC_SECRET` if set, else `[exec] secret` of the file.
fn exec_secret(file: Option<&FileConfig>, path: Option<&Path>) -> anyhow::Result<Option<Secret>> {
    if let Some(text) = std::env::var_os(crate::exec_kind::SECRET_ENV) {
        let text = text
            .to_str()
            .ok_or_else(|| usage(format!("{}: not valid UTF-8", crate::exec_kind::SECRET_ENV)))?;
        return Secret::new(text)
            .map(Some)
            .map_err(|e| usage(format!("{}: {e}", crate::exec_kind::SECRET_ENV)));
    }
    let Some(text) = file.and_then(|f| f.exec.secret.as_deref()) else {
        return Ok(None);
    };
    Secret::new(text).map(Some).map_err(|e| {
        let file = path.map_or_else(String::new, |p| format!("config file {}: ", p.display()));
        usage(format!("{file}[exec] secret: {e}"))
    })
}

/// An exec payload signed with `secret`, as JSON.
fn signed_value(mut exec: ExecPayload, secret: &Secret) -> anyhow::Result<serde_json::Value> {
    exec.sign(secret);
    serde_json::to_value(&exec).context("encoding the exec payload")
}

fn exec_task(exec: ExecPayload) -> Result<CronTask, String> {
    exec.validate()?;
    Ok(CronTask::Exec {
        kind: crate::exec_kind::KIND,
        exec,
    })
}

/// A task of `kind` with a JSON payload; an exec payload is checked like any exec task's.
fn kind_task(kind: String, payload: serde_json::Value) -> Result<CronTask, String> {
    kind_name(&kind)?;
    if kind == crate::exec_kind::KIND {
        let exec = serde_json::from_value(payload).map_err(|e| {
            format!(
                "an exec job's payload must be {{\"cmd\": [PROGRAM, ARGS...], \"env\": {{...}}, \
                 \"cwd\": \"...\", \"stdin\": \"...\"}}: {e}"
            )
        })?;
        return exec_task(exec);
    }
    Ok(CronTask::Other { kind, payload })
}

fn toml_to_json(value: toml::Value) -> serde_json::Value {
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

fn kind_name(kind: &str) -> Result<(), String> {
    if kind.is_empty() || kind.len() > MAX_NAME_LEN || kind.chars().any(char::is_control) {
        return Err(format!(
            "invalid job kind {kind:?}: use 1 to {MAX_NAME_LEN} printable characters"
        ));
    }
    Ok(())
}

fn queue_name(queue: &str) -> anyhow::Result<()> {
    tickq::validate_queue_name(queue).map_err(|e| usage(e.to_string()))
}

fn job_id(id: &str) -> anyhow::Result<String> {
    tickq::validate_job_id(id).map_err(|e| usage(e.to_string()))?;
    Ok(id.to_owned())
}

/// `--payload`: JSON text, `@FILE`, or `@-` for stdin.
fn payload(text: &str) -> anyhow::Result<serde_json::Value> {
    let (source, text) = match text.strip_prefix('@') {
        Some("-") => {
            let mut buf = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf)
                .map_err(|e| usage(format!("--payload @-: cannot read stdin: {e}")))?;
            ("stdin".to_owned(), buf)
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("--payload @{path}: cannot read the file: {e}")))?;
            (format!("file {path}"), text)
        }
        None => ("--payload".to_owned(), text.to_owned()),
    };
    serde_json::from_str(&text).map_err(|e| {
        usage(format!(
            "the payload from {source} is not valid JSON ({e}); quote it for the shell, e.g. \
             --payload '{{\"user\": 7}}'"
        ))
    })
}

fn new_job(
    queue: &str,
    kind: &str,
    payload: serde_json::Value,
    opts: JobOpts,
) -> anyhow::Result<NewJob> {
    queue_name(queue)?;
    kind_name(kind).map_err(usage)?;
    let mut job = NewJob::new(queue, kind).payload(payload);
    if let Some(id) = &opts.id {
        job = job.id(job_id(id)?);
    }
    if let Some(text) = &opts.delay {
        let delay = parse::duration(text).map_err(|e| usage(format!("--in: {e}")))?;
        job = job.delay(delay);
    }
    if let Some(text) = &opts.at {
        let at = parse::time(text).map_err(|e| usage(format!("--at: {e}")))?;
        job = job.at(at);
    }
    if let Some(text) = &opts.unique_for {
        let ttl = parse::duration(text).map_err(|e| usage(format!("--unique-for: {e}")))?;
        if ttl.is_zero() {
            return Err(usage("--unique-for must be greater than zero"));
        }
        job = job.unique_for(ttl);
    }
    if let Some(key) = opts.unique_key {
        if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
            return Err(usage(format!(
                "--unique-key {key:?}: use 1 to 256 printable characters"
            )));
        }
        job = job.unique_key(key);
    }
    if let Some(n) = opts.max_attempts {
        if n == 0 {
            return Err(usage("--max-attempts must be at least 1"));
        }
        job = job.max_attempts(n);
    }
    if let Some(text) = &opts.timeout {
        let timeout = parse::duration(text).map_err(|e| usage(format!("--timeout: {e}")))?;
        if timeout.is_zero() {
            return Err(usage("--timeout must be greater than zero"));
        }
        job = job.timeout(timeout);
    }
    if let Some(p) = opts.priority {
        if !(tickq::PRIORITY_MIN..=tickq::PRIORITY_MAX).contains(&p) {
            return Err(usage(format!(
                "--priority {p} is out of range {}..={}",
                tickq::PRIORITY_MIN,
                tickq::PRIORITY_MAX
            )));
        }
        job = job.priority(p);
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn redis_precedence() {
        let path = Path::new("/etc/tickq.toml");
        let r = |flag, env, file| resolve_redis(flag, env, file).unwrap();
        let f = Some(("redis://file:1", path));
        assert_eq!(
            r(Some("redis://flag:1"), Some("redis://env:1"), f).origin,
            RedisOrigin::Flag
        );
        assert_eq!(r(None, Some("redis://env:1"), f).url, "redis://env:1");
        assert_eq!(r(None, Some(""), f).url, "redis://file:1");
        assert!(matches!(
            r(None, None, None).origin,
            RedisOrigin::Default { .. }
        ));
        let err = resolve_redis(Some("http://x"), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported scheme"), "{err}");
        let err = resolve_redis(None, Some("nonsense"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(REDIS_URL_ENV), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = file("[worker]\nconcurency = 3\n").unwrap_err();
        assert!(err.contains("concurency"), "{err}");
        let err = file("[[cron]]\nname='a'\nschedule='@daily'\ntasks=[]\nretries=1\n").unwrap_err();
        assert!(err.contains("retries"), "{err}");
    }

    #[test]
    fn queues_flag() {
        assert_eq!(
            parse_queues("default=1, critical=3").unwrap(),
            vec![("critical".into(), 3), ("default".into(), 1)]
        );
        assert_eq!(parse_queues("solo").unwrap(), vec![("solo".into(), 1)]);
        assert!(parse_queues("a=0").unwrap_err().contains("at least 1"));
        assert!(parse_queues("a=x").unwrap_err().contains("whole number"));
        assert!(parse_queues("a,a").unwrap_err().contains("twice"));
        assert!(parse_queues("a{b}").unwrap_err().contains("queue name"));
    }

    fn opts() -> ServerOpts {
        ServerOpts {
            node: None,
            queues: None,
            concurrency: None,
            listen: None,
            data: None,
        }
    }

    fn redis() -> Redis {
        Redis {
            url: "redis://127.0.0.1:6379".into(),
            origin: RedisOrigin::Flag,
        }
    }

    #[test]
    fn listen_needs_a_token_off_loopback() {
        let mut o = opts();
        o.listen = Some("0.0.0.0:7700".into());
        let err = server_config(redis(), None, FileConfig::default(), o)
            .unwrap_err()
            .to_string();
        assert!(err.contains("token"), "{err}");
        let mut o = opts();
        o.listen = Some("0.0.0.0:7700".into());
        let f = file("[http]\ntoken = \"s3cret\"\n").unwrap();
        assert!(server_config(redis(), None, f, o).is_ok());
        let mut o = opts();
        o.listen = Some("[::1]:7700".into());
        assert!(server_config(redis(), None, FileConfig::default(), o).is_ok());
    }

    #[test]
    fn worker_lease() {
        let lease = |text: &str| {
            let f = file(&format!("[worker]\nlease = {text:?}\n")).unwrap();
            server_config(redis(), None, f, opts()).map(|c| c.lease)
        };
        assert_eq!(lease("2s").unwrap(), Some(Duration::from_secs(2)));
        assert_eq!(lease("1m30s").unwrap(), Some(Duration::from_secs(90)));
        let err = lease("100ms").unwrap_err().to_string();
        assert!(
            err.contains("[worker] lease") && err.contains("300ms"),
            "{err}"
        );
        let err = lease("2 s").unwrap_err().to_string();
        assert!(err.contains("[worker] lease"), "{err}");
        let c = server_config(redis(), None, FileConfig::default(), opts()).unwrap();
        assert_eq!(c.lease, None);
    }

    #[test]
    fn limits_tables_are_checked() {
        let ok =
            "[limits.emails]\nconcurrency = 3\nrate = \"50/1s\"\n[limits.pdf]\nrate = \"10/m\"\n";
        let c = server_config(redis(), None, file(ok).unwrap(), opts()).unwrap();
        let rate = |n, s| Some(tickq::Rate::new(n, Duration::from_secs(s)));
        assert_eq!(
            c.limits,
            [
                (
                    "emails".to_owned(),
                    tickq::QueueLimits {
                        concurrency: Some(3),
                        rate: rate(50, 1),
                    }
                ),
                (
                    "pdf".to_owned(),
                    tickq::QueueLimits {
                        concurrency: None,
                        rate: rate(10, 60),
                    }
                ),
            ]
        );
        for (text, needle) in [
            ("[limits.q]\nconcurrency = 0\n", "at least 1"),
            ("[limits.q]\nrate = \"fast\"\n", "invalid rate"),
            ("[limits.q]\n", "set concurrency"),
            ("[limits.\"a b\"]\nconcurrency = 1\n", "invalid queue name"),
        ] {
            let err = server_config(redis(), None, file(text).unwrap(), opts())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(err.contains("[limits."), "{text}: {err}");
        }
        let err = file("[limits.q]\nburst = 3\n").unwrap_err();
        assert!(err.contains("burst"), "{err}");
    }

    #[test]
    fn cron_tables_are_checked() {
        let ok = r#"
[[cron]]
name = "nightly"
schedule = "0 2 * * *"
timezone = "Asia/Shanghai"
overlap = "forbid"
catchup = "all"
tasks = [ { kind = "exec", cmd = ["report.sh", "--part", "1"] }, { kind = "mail", payload = { to = "ops" } } ]
"#;
        let c = server_config(redis(), None, file(ok).unwrap(), opts()).unwrap();
        assert_eq!(c.cron.len(), 1);
        assert_eq!(c.cron[0].queue, "default");
        let cron = |lines: &str| format!("[[cron]]\nname = \"x\"\n{lines}\n");
        for (text, needle) in [
            (
                cron("schedule = \"* *\"\ntasks = [ { kind = \"mail\" } ]"),
                "schedule",
            ),
            (
                cron(
                    "schedule = \"@daily\"\ntimezone = \"Mars/Olympus\"\ntasks = [ { kind = \"mail\" } ]",
                ),
                "unknown time zone",
            ),
            (
                cron(
                    "schedule = \"@daily\"\noverlap = \"sometimes\"\ntasks = [ { kind = \"mail\" } ]",
                ),
                "sometimes",
            ),
            (
                cron("schedule = \"@daily\"\ntasks = []"),
                "at least one task",
            ),
            (
                cron("schedule = \"@daily\"\ntasks = [ { kind = \"exec\" } ]"),
                "cmd",
            ),
            (
                cron("schedule = \"@daily\"\ntasks = [ { kind = \"mail\", cmd = [\"x\"] } ]"),
                "payload",
            ),
            (
                format!(
                    "{0}{0}",
                    cron("schedule = \"@daily\"\ntasks = [ { kind = \"mail\" } ]")
                ),
                "twice",
            ),
        ] {
            let err = match file(&text) {
                Err(e) => e,
                Ok(f) => server_config(redis(), None, f, opts())
                    .unwrap_err()
                    .to_string(),
            };
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
