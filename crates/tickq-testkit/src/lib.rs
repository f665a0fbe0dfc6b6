//! Real `redis-server` processes for tickq's tests.
//!
//! Every [`TestRedis`] is its own `redis-server` in its own temporary directory, listening on
//! a unix socket in that directory (or, with [`TestRedisBuilder::tcp`], on a free port of
//! 127.0.0.1, never 6379). Nothing is shared between tests, so they can run in parallel.
//! The server keeps an append-only file fsynced on every write, so [`TestRedis::restart`] and
//! [`TestRedis::kill`] followed by [`TestRedis::start_again`] keep the data set.
//!
//! Faults are first-class: graceful restart, `kill -9`, and stalling the server with
//! `SIGSTOP` ([`TestRedis::pause`]) all keep the same address and data directory.
//! [`TestCluster`] starts a small Redis Cluster of primaries on free ports, and
//! [`TestSentinel`] a primary, a replica and a Redis Sentinel for failover tests.
//! [`TestRedisBuilder::tls`] serves TLS with certificates of a private CA ([`TestCerts`],
//! made with the `openssl` command), with or without client certificates.
//!
//! The server binary is `redis-server` from `PATH`, or the path in the environment variable
//! `TICKQ_REDIS_SERVER`. Panicking is the error handling: a testkit that cannot start Redis
//! has nothing better to do, and the panic message carries the tail of the server's log.
//!
//! ```
//! use tickq_testkit::TestRedis;
//!
//! let mut redis = TestRedis::start();
//! let mut conn = redis.sync_conn();
//! redis::cmd("SET").arg("greeting").arg("hello").exec(&mut conn).unwrap();
//!
//! redis.kill();
//! redis.start_again();
//!
//! let value: String = redis::cmd("GET").arg("greeting").query(&mut redis.sync_conn()).unwrap();
//! assert_eq!(value, "hello");
//! ```
#![deny(missing_docs)]

mod certs;
mod cluster;
mod process;
mod sentinel;
mod server;

pub use certs::TestCerts;
pub use cluster::TestCluster;
pub use sentinel::TestSentinel;
pub use server::{TestRedis, TestRedisBuilder};

/// The environment variable naming the `redis-server` binary to use instead of the one on
/// `PATH`.
pub const REDIS_SERVER_ENV: &str = "TICKQ_REDIS_SERVER";
