//! Checking the arguments of every verb but `server` and `config show`.

use super::cron::{CronSpec, LazySecret, exec_task, kind_task};
use super::redis::Redis;
use super::sources::PayloadText;
use super::{Action, CronVerb, LockRun, job_id, kind_name, queue_name, usage};
use crate::cli::{
    CatchupArg, CronAddArgs, CronCommand, CronNextArgs, FilterArgs, JobOpts, LockCommand,
    OverlapArg, QueueArgs,
};
use crate::kinds::exec::ExecPayload;
use std::collections::BTreeMap;
use std::time::Duration;
use tickq::units as parse;
use tickq::{Catchup, CronSchedule, Overlap};
use tickq::{JobFilter, NewJob};

/// The most fire times `cron next` lists.
/// The most fire times `cron next` lists.
pub(super) const MAX_NEXT_COUNT: usize = 1000;

pub(super) fn limit_change(
    clear: bool,
    concurrency: Option<String>,
    rate: Option<String>,
) -> anyhow::Result<Option<tickq::LimitsChange>> {
    if clear {
        return Ok(Some(tickq::LimitsChange::clear()));
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
    let change = tickq::LimitsChange { concurrency, rate };
    // The limits' own check, on what this change sets (the others are already valid).
    change
        .apply(tickq::QueueLimits::default())
        .validate()
        .map_err(|e| usage(e.message().to_owned()))?;
    Ok(Some(change))
}

pub(super) fn queue_pause(redis: Redis, args: QueueArgs, paused: bool) -> anyhow::Result<Action> {
    queue_name(&args.queue)?;
    Ok(Action::QueuePause {
        redis,
        queue: args.queue,
        paused,
        json: args.output.json,
    })
}

pub(super) fn cron_action(
    command: CronCommand,
    redis: Redis,
    exec_secret: &LazySecret,
    read: Option<&PayloadText>,
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
            let mut spec = cron_add(args, read)?;
            if spec.has_exec()
                && let Some(secret) = exec_secret.get()?
            {
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
pub(super) fn cron_add(args: CronAddArgs, read: Option<&PayloadText>) -> anyhow::Result<CronSpec> {
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
            Some(text) => payload(text, read)?,
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
pub(super) const LOCK_TTL: Duration = tickq::DEFAULT_LOCK_TTL;
pub(super) const LOCK_GRACE: Duration = Duration::from_secs(10);

/// `--kind`, `--search`, `--error`, `--from`, `--to`.
pub(super) fn job_filter(args: FilterArgs) -> anyhow::Result<JobFilter> {
    if let Some(kind) = &args.kind {
        kind_name(kind).map_err(|e| usage(format!("--kind: {e}")))?;
    }
    let time = |flag: &str, text: Option<String>| {
        text.map(|t| parse::time(&t).map_err(|e| usage(format!("{flag}: {e}"))))
            .transpose()
    };
    let empty = |flag: &str, text: Option<String>| match text {
        Some(t) if t.is_empty() => Err(usage(format!("{flag} needs some text"))),
        t => Ok(t),
    };
    Ok(JobFilter {
        kind: args.kind,
        payload: empty("--search", args.search)?,
        error: empty("--error", args.error)?,
        from: time("--from", args.from)?,
        to: time("--to", args.to)?,
    })
}

pub(super) fn lock_action(command: LockCommand, redis: Redis) -> anyhow::Result<Action> {
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
        LockCommand::Ls(output) => Action::LockLs {
            redis,
            json: output.json,
        },
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

pub(super) fn cron_next(args: CronNextArgs) -> anyhow::Result<Action> {
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
pub(super) fn env_pairs(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| usage(format!("--env {pair:?}: use NAME=VALUE")))?;
        env.insert(name.to_owned(), value.to_owned());
    }
    Ok(env)
}

/// `--payload`: JSON text, or (`@FILE`, `@-`) the text [`super::sources::Sources`] read for it.
pub(super) fn payload(text: &str, read: Option<&PayloadText>) -> anyhow::Result<serde_json::Value> {
    let (source, text) = match (text.starts_with('@'), read) {
        (true, Some(read)) => (read.source.as_str(), read.text.as_str()),
        (true, None) => return Err(usage(format!("--payload {text}: nothing was read"))),
        (false, _) => ("--payload", text),
    };
    serde_json::from_str(text).map_err(|e| {
        usage(format!(
            "the payload from {source} is not valid JSON ({e}); quote it for the shell, e.g. \
             --payload '{{\"user\": 7}}'"
        ))
    })
}

pub(super) fn new_job(
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
    if let Some(key) = opts.shard_key {
        if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
            return Err(usage(format!(
                "--shard-key {key:?}: use 1 to 256 printable characters"
            )));
        }
        job = job.shard_key(key);
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
