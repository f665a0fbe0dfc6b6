//! Integration tests of the `tickq` binary: real processes against real redis-servers.

mod admin;
mod bad_input;
mod cron;
mod dashboard;
mod deploy;
mod exec_sig;
mod faults;
mod flow;
mod http_kind;
mod lock;
mod metrics;
mod server;
mod util;
mod verbs;
mod webdriver;
