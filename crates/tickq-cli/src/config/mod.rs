//! Raw arguments, environment and config file in; one typed, validated [`Invocation`] out.
//!
//! Everything a user can get wrong is checked here, before any connection is made or process
//! started, and reported as a [`UsageError`] (exit status 2).
//!
//! | module | job |
//! | --- | --- |
//! | `file` | the config file as written (TOML schema) and reading it |
//! | `redis` | which Redis: `--redis` > `TICKQ_REDIS_URL` > the file > the default |
//! | `server` | `tickq server`'s effective settings |
//! | `cron` | a schedule as the user wrote it (`[[cron]]`, `cron add`) and its tasks |
//! | `verbs` | checking every other verb's arguments |

mod cron;
#[cfg(test)]
mod decode_tests;
mod file;
mod flow;
mod redis;
mod server;
mod sources;
#[cfg(test)]
mod tests;
mod verbs;

pub use cron::{CronSpec, CronTask};
pub use redis::{REDIS_URL_ENV, Redis, RedisOrigin, tls_setting_names};
pub use server::ServerConfig;

use crate::cli::{Cli, Command, ConfigCommand, CronCommand, FlowCommand, LogFormat, QueueCommand};
use crate::kinds::exec::ExecPayload;
use anyhow::Context as _;
use cron::{LazySecret, exec_secret, signed_value};
use redis::{resolve_redis, resolve_tls};
use server::server_config;
use sources::Sources;
use std::fmt;
use std::time::Duration;
use tickq::CronSchedule;
use tickq::units as parse;
use tickq::{HistoryQuery, JobAction, JobFilter, JobState, NewJob};
use verbs::{
    cron_action, cron_next, env_pairs, job_filter, limit_change, lock_action, new_job, payload,
    queue_pause,
};
const DEFAULT_QUEUE: &str = "default";
const MAX_NAME_LEN: usize = 128;

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
    FlowRun {
        redis: Redis,
        flow: Box<tickq::Workflow>,
        json: bool,
    },
    Flow {
        redis: Redis,
        verb: FlowVerb,
        id: String,
        json: bool,
    },
    FlowLs {
        redis: Redis,
        queue: Option<String>,
        limit: usize,
        json: bool,
    },
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
        /// `--wait`, with its `--timeout` if any.
        wait: Option<Option<Duration>>,
        json: bool,
    },
    Jobs {
        redis: Redis,
        queue: String,
        /// `None`: every state (no filter, no cursor).
        state: Option<JobState>,
        filter: JobFilter,
        cursor: Option<String>,
        limit: usize,
        json: bool,
    },
    Bulk {
        redis: Redis,
        queue: String,
        action: JobAction,
        state: JobState,
        filter: JobFilter,
        dry_run: bool,
        json: bool,
    },
    Nodes {
        redis: Redis,
        json: bool,
    },
    History {
        redis: Redis,
        query: HistoryQuery,
        json: bool,
    },
    LockLs {
        redis: Redis,
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
        change: Option<tickq::LimitsChange>,
        json: bool,
    },
    QueueShards {
        redis: Redis,
        queue: String,
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
    Doctor {
        redis: Redis,
        /// `[exec] allow` of the config file, when one is given.
        exec_allow: Option<Vec<String>>,
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

// ---- validation ----

/// Read what the command line names, check everything, and build the invocation.
pub fn load(cli: Cli) -> anyhow::Result<Invocation> {
    let sources = Sources::read(&cli)?;
    validate(cli, sources)
}

/// Check the command line against what [`Sources`] read; no I/O.
fn validate(cli: Cli, sources: Sources) -> anyhow::Result<Invocation> {
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
    let Sources {
        file,
        redis_url,
        default_port,
        tls: tls_env,
        exec_secret: secret_env,
        payload: payload_text,
        flow: flow_text,
    } = sources;
    let mut redis = resolve_redis(
        global.redis.as_deref(),
        redis_url.as_deref(),
        file.as_ref()
            .and_then(|f| f.redis.as_deref())
            .zip(global.config.as_deref()),
        default_port.as_deref(),
    )?;
    redis.tls = resolve_tls(
        &tls_env,
        file.as_ref()
            .map(|f| &f.redis_tls)
            .zip(global.config.as_deref()),
    );
    if let Some(mark) = file.as_ref().and_then(|f| f.memory_high_water) {
        tickq::validate_memory_high_water(mark).map_err(|e| {
            usage(format!(
                "memory_high_water in config file {}: {}",
                global
                    .config
                    .as_deref()
                    .map_or_else(String::new, |p| p.display().to_string()),
                e.message()
            ))
        })?;
        redis.high_water = Some(mark);
    }
    let exec_secret = LazySecret::new(exec_secret(
        secret_env.as_deref(),
        file.as_ref(),
        global.config.as_deref(),
    ));
    let action = match command {
        Command::Server(args) => {
            log.default_level = "info";
            let file = file.unwrap_or_default();
            Action::Server(Box::new(server_config(
                redis,
                global.config,
                file,
                args.opts,
                exec_secret.get()?.cloned(),
            )?))
        }
        Command::Config(ConfigCommand::Show(args)) => Action::ConfigShow {
            config: Box::new(server_config(
                redis,
                global.config,
                file.unwrap_or_default(),
                args.opts,
                exec_secret.get()?.cloned(),
            )?),
            json: args.output.json,
        },
        Command::Enqueue(mut args) => {
            let mut payload = match args.payload.as_deref() {
                None => serde_json::Value::Null,
                Some(text) => payload(text, payload_text.as_ref())?,
            };
            if args.kind == crate::kinds::exec::KIND {
                let exec: ExecPayload = serde_json::from_value(payload.clone()).map_err(|e| {
                    usage(format!(
                        "an exec job's payload must be {{\"cmd\": [PROGRAM, ARGS...], \"env\": \
                         {{...}}, \"cwd\": \"...\", \"stdin\": \"...\"}}: {e}"
                    ))
                })?;
                exec.validate().map_err(usage)?;
                if let Some(secret) = exec_secret.get()? {
                    // The signature binds the job id, so the id is chosen here.
                    let id = signing_id(&mut args.job.id)?;
                    payload = signed_value(exec, secret, &args.queue, &id)?;
                }
            }
            let json = args.job.output.json;
            Action::Enqueue {
                redis,
                job: Box::new(new_job(&args.queue, &args.kind, payload, args.job)?),
                json,
            }
        }
        Command::Exec(mut args) => {
            let exec = ExecPayload {
                cmd: args.cmd,
                env: env_pairs(&args.env)?,
                cwd: args.cwd,
                stdin: None,
                sig: None,
            };
            exec.validate().map_err(usage)?;
            let payload = match exec_secret.get()? {
                Some(secret) => {
                    let id = signing_id(&mut args.job.id)?;
                    signed_value(exec, secret, &args.queue, &id)?
                }
                None => serde_json::to_value(&exec).context("encoding the exec payload")?,
            };
            let json = args.job.output.json;
            Action::Enqueue {
                redis,
                job: Box::new(new_job(
                    &args.queue,
                    crate::kinds::exec::KIND,
                    payload,
                    args.job,
                )?),
                json,
            }
        }
        Command::Job(args) => Action::Job {
            redis,
            id: job_id(&args.id)?,
            wait: match (args.wait, args.timeout) {
                (false, _) => None,
                (true, None) => Some(None),
                (true, Some(text)) => Some(Some(
                    parse::duration(&text).map_err(|e| usage(format!("--timeout: {e}")))?,
                )),
            },
            json: args.output.json,
        },
        Command::Jobs(args) => {
            queue_name(&args.queue)?;
            let state = args
                .state
                .as_deref()
                .map(|s| {
                    s.parse::<JobState>()
                        .map_err(|e| usage(format!("--state: {e}")))
                })
                .transpose()?;
            if !(1..=tickq::MAX_PAGE).contains(&args.limit) {
                return Err(usage(format!(
                    "--limit must be between 1 and {}",
                    tickq::MAX_PAGE
                )));
            }
            let filter = job_filter(args.filter)?;
            // A filter or a cursor works on one state's index.
            let state = match state {
                None if filter != JobFilter::default() || args.cursor.is_some() => {
                    Some(JobState::Pending)
                }
                state => state,
            };
            Action::Jobs {
                redis,
                queue: args.queue,
                state,
                filter,
                cursor: args.cursor,
                limit: args.limit,
                json: args.output.json,
            }
        }
        Command::Bulk(args) => {
            queue_name(&args.queue)?;
            Action::Bulk {
                redis,
                queue: args.queue,
                action: args
                    .action
                    .parse()
                    .map_err(|e: tickq::Error| usage(e.to_string()))?,
                state: args
                    .state
                    .parse()
                    .map_err(|e: tickq::Error| usage(format!("--state: {e}")))?,
                filter: job_filter(args.filter)?,
                dry_run: args.dry_run,
                json: args.output.json,
            }
        }
        Command::Nodes(output) => Action::Nodes {
            redis,
            json: output.json,
        },
        Command::History(args) => {
            if let Some(queue) = &args.queue {
                queue_name(queue)?;
            }
            let time = |flag: &str, text: Option<String>| {
                text.map(|t| parse::time(&t).map_err(|e| usage(format!("{flag}: {e}"))))
                    .transpose()
            };
            let step = args
                .step
                .map(|t| parse::duration(&t).map_err(|e| usage(format!("--step: {e}"))))
                .transpose()?;
            Action::History {
                redis,
                query: HistoryQuery {
                    queue: args.queue,
                    from: time("--from", args.from)?,
                    to: time("--to", args.to)?,
                    step,
                },
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
        Command::Queue(QueueCommand::Shards(args)) => {
            queue_name(&args.queue)?;
            Action::QueueShards {
                redis,
                queue: args.queue,
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
        Command::Cron(command) => cron_action(command, redis, &exec_secret, payload_text.as_ref())?,
        Command::Lock(command) => lock_action(command, redis)?,
        Command::Flow(FlowCommand::Run(args)) => {
            let text = flow_text.expect("Sources read the workflow file");
            Action::FlowRun {
                redis,
                flow: Box::new(flow::parse_flow(
                    &text.text,
                    &text.source,
                    exec_secret.get()?,
                    args.id,
                )?),
                json: args.output.json,
            }
        }
        Command::Flow(FlowCommand::Ls(args)) => {
            if let Some(q) = &args.queue {
                tickq::validate_queue_name(q).map_err(|e| usage(e.message().to_owned()))?;
            }
            // Checked here too, so that a bad value is a usage error (exit 2) before Redis.
            if args.limit == 0 || args.limit > tickq::MAX_FLOW_LIST {
                return Err(usage(format!(
                    "--limit {}: list 1 to {} workflows at a time",
                    args.limit,
                    tickq::MAX_FLOW_LIST
                )));
            }
            Action::FlowLs {
                redis,
                queue: args.queue,
                limit: args.limit,
                json: args.output.json,
            }
        }
        Command::Flow(command) => {
            let (verb, args) = match command {
                FlowCommand::Show(a) => (FlowVerb::Show, a),
                FlowCommand::Cancel(a) => (FlowVerb::Cancel, a),
                FlowCommand::Retry(a) => (FlowVerb::Retry, a),
                FlowCommand::Run(_) | FlowCommand::Ls(_) => unreachable!("matched above"),
            };
            tickq::validate_flow_id(&args.id).map_err(|e| usage(e.message().to_owned()))?;
            Action::Flow {
                redis,
                verb,
                id: args.id,
                json: args.output.json,
            }
        }
        Command::Doctor(output) => Action::Doctor {
            redis,
            exec_allow: file.map(|f| f.exec.allow),
            json: output.json,
        },
    };
    Ok(Invocation { log, action })
}

/// What `tickq flow show|cancel|retry ID` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowVerb {
    Show,
    Cancel,
    Retry,
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

/// The id of a job about to be signed: `--id`, checked, or a new one like the library's
/// (UUID v7), written back so that the job is enqueued under the id it was signed for.
fn signing_id(id: &mut Option<String>) -> anyhow::Result<String> {
    let id = id.get_or_insert_with(|| uuid::Uuid::now_v7().to_string());
    job_id(id)
}

fn job_id(id: &str) -> anyhow::Result<String> {
    tickq::validate_job_id(id).map_err(|e| usage(e.to_string()))?;
    Ok(id.to_owned())
}
