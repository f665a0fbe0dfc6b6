//! Integration tests of the `tickq` binary: real processes against real redis-servers.

mod bad_input;
mod cron;
mod server;
mod util;
mod verbs;
