//! Log setup: human lines or JSON objects on stderr; RUST_LOG wins over -v.

use crate::cli::LogFormat;
use crate::config::LogConfig;
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

pub fn init(config: LogConfig) {
    let level = match config.verbose {
        0 => config.default_level,
        1 => "debug",
        _ => "trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(level),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
