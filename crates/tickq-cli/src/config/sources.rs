//! Everything validation reads from outside the command line (the config file, environment
//! variables, a `--payload @FILE` or `@-`), read once up front, so that the checks themselves
//! do no I/O and a test can hand them any input.

use super::file::{FileConfig, load_file};
use super::redis::{DEFAULT_PORT_ENV, REDIS_URL_ENV, TLS_ENV};
use super::usage;
use crate::cli::{Cli, Command, CronCommand, FlowCommand};

/// What the checks read besides the command line.
#[derive(Debug, Default)]
pub(super) struct Sources {
    /// `--config FILE`, parsed.
    pub(super) file: Option<FileConfig>,
    /// `TICKQ_REDIS_URL`.
    pub(super) redis_url: Option<String>,
    /// `TICKQ_DEFAULT_REDIS_PORT` (tests only).
    pub(super) default_port: Option<String>,
    /// `TICKQ_REDIS_CA`, `TICKQ_REDIS_CERT`, `TICKQ_REDIS_KEY`, in that order.
    pub(super) tls: [Option<std::ffi::OsString>; 3],
    /// `TICKQ_EXEC_SECRET`, if set (it may not be UTF-8: the check says so).
    pub(super) exec_secret: Option<std::ffi::OsString>,
    /// The text a `--payload @FILE` or `@-` names, and where it came from.
    pub(super) payload: Option<PayloadText>,
    /// The file of `flow run FILE`.
    pub(super) flow: Option<PayloadText>,
}

#[derive(Debug)]
pub(super) struct PayloadText {
    /// `stdin` or `file PATH`, for messages.
    pub(super) source: String,
    pub(super) text: String,
}

impl Sources {
    pub(super) fn read(cli: &Cli) -> anyhow::Result<Sources> {
        // `cron next` needs nothing but its arguments: not even a readable config file.
        if matches!(&cli.command, Command::Cron(CronCommand::Next(_))) {
            return Ok(Sources::default());
        }
        let file = match &cli.global.config {
            Some(path) => Some(load_file(path)?),
            None => None,
        };
        let payload_arg = match &cli.command {
            Command::Enqueue(args) => args.payload.as_deref(),
            Command::Cron(CronCommand::Add(args)) => args.payload.as_deref(),
            _ => None,
        };
        let payload = match payload_arg.and_then(|p| p.strip_prefix('@')) {
            None => None,
            Some("-") => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map_err(|e| usage(format!("--payload @-: cannot read stdin: {e}")))?;
                Some(PayloadText {
                    source: "stdin".to_owned(),
                    text,
                })
            }
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| usage(format!("--payload @{path}: cannot read the file: {e}")))?;
                Some(PayloadText {
                    source: format!("file {path}"),
                    text,
                })
            }
        };
        let flow = match &cli.command {
            Command::Flow(FlowCommand::Run(args)) => Some(PayloadText {
                source: format!("file {}", args.file),
                text: std::fs::read_to_string(&args.file).map_err(|e| {
                    usage(format!("workflow file {}: cannot read it: {e}", args.file))
                })?,
            }),
            _ => None,
        };
        Ok(Sources {
            flow,
            file,
            redis_url: std::env::var(REDIS_URL_ENV).ok(),
            default_port: std::env::var(DEFAULT_PORT_ENV).ok(),
            tls: TLS_ENV.map(std::env::var_os),
            exec_secret: std::env::var_os(crate::kinds::exec::SECRET_ENV),
            payload,
        })
    }
}
