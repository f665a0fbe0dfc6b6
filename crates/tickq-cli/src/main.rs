//! The `tickq` binary: parse, validate, run, map the outcome to an exit status.
//!
//! | module | job |
//! | --- | --- |
//! | `cli` | the command line as clap sees it (raw) |
//! | `config/` | raw args + environment + config file → a validated `Invocation` (file, redis, server, cron, verbs, sources) |
//! | `commands/` | the verbs, one file per family |
//! | `output` | text tables vs `--json` |
//! | `server` | `tickq server` |
//! | `embedded` | the embedded redis-server |
//! | `kinds/` | the built-in job kinds: `exec` (payload, signing, running the program), `http`, `flow` |
//! | `http` | the node's HTTP surface |
//! | `metrics` | the Prometheus recorder and `GET /metrics` |
//! | `logging` | tracing setup |
//!
//! Exit status: 0 ok, 1 the operation failed, 2 usage error (clap's, or a [`UsageError`]);
//! `lock run` passes its program's status on (see `commands/lock.rs`).

mod child;
mod cli;
mod commands;
mod config;
mod connect;
mod embedded;
mod http;
mod kinds;
mod logging;
mod metrics;
mod output;
mod server;

use clap::Parser as _;
use config::{Action, UsageError};
use std::process::ExitCode;

fn main() -> ExitCode {
    // clap prints its own errors and exits with 2.
    let cli = cli::Cli::parse();
    let invocation = match config::load(cli) {
        Ok(invocation) => invocation,
        Err(e) => return report(&e),
    };
    logging::init(invocation.log);

    let runtime = match invocation.action {
        // A node runs many jobs at once; a verb makes a few round trips.
        Action::Server(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Everything the run owns (an embedded redis-server, child programs) is stopped inside
    // `commands::run` before it returns, so nothing depends on destructors after this.
    let result = runtime.block_on(commands::run(invocation.action));
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn report(e: &anyhow::Error) -> ExitCode {
    // `tickq jobs q | head` closes stdout early: not a failure.
    if e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        return ExitCode::SUCCESS;
    }
    // `tickq lock run` passes its program's status on; it printed what there was to say.
    if let Some(commands::lock::Exit(code)) = e.downcast_ref() {
        return ExitCode::from(*code);
    }
    eprintln!("error: {}", render(e));
    if e.chain().any(|c| c.is::<UsageError>()) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// The error and its causes on one line. tickq's errors print their cause themselves, so a
/// cause already in the text is not repeated.
fn render(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}
