//! Where Redis is: one server (or a replica set's primary) or a Cluster, and the connections
//! to it. Everything above talks to [`Conn`], which sends a command or a pipeline to the right
//! place; every script and pipeline of tickq touches one hash slot, so in a Cluster each goes
//! to one node whole.

use super::redact_url;
use crate::{Error, ErrorKind, Result};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::time::Duration;

const URL_HELP: &str = "expected redis://[user:pass@]host:port[/db], rediss://..., \
    redis+unix:///path/to/redis.sock, or for a Cluster redis-cluster://[user:pass@]host:port,\
    host:port,... (or a comma-separated list of redis:// URLs)";

/// How to reach Redis, from a URL.
#[derive(Clone)]
pub(crate) enum Target {
    Single(Box<redis::Client>),
    Cluster(Vec<String>),
}

impl Target {
    /// `redis-cluster://[user:pass@]h1:p1,h2:p2` or `redis://a,redis://b` select a Cluster
    /// (seeded with those nodes); anything else is one server.
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let invalid = |e: Option<redis::RedisError>| {
            let err = Error::invalid(format!(
                "invalid Redis URL {:?}: {URL_HELP}",
                redact_url(url)
            ));
            match e {
                Some(e) => err.with_source(e),
                None => err,
            }
        };
        if url.starts_with("redis-sentinel://") || url.starts_with("rediss-sentinel://") {
            return Err(Error::invalid(format!(
                "Redis Sentinel URLs ({}) are not supported by this version of tickq yet; give \
                 the primary's redis:// URL",
                redact_url(url)
            )));
        }
        let nodes: Vec<String> = if let Some(rest) = url.strip_prefix("redis-cluster://") {
            let (userinfo, hosts) = match rest.rsplit_once('@') {
                Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
                None => (String::new(), rest),
            };
            hosts
                .split(',')
                .map(|h| format!("redis://{userinfo}{}", h.trim()))
                .collect()
        } else if url.contains(',') {
            url.split(',').map(|u| u.trim().to_owned()).collect()
        } else {
            let client = redis::Client::open(url).map_err(|e| invalid(Some(e)))?;
            return Ok(Target::Single(Box::new(client)));
        };
        for node in &nodes {
            redis::Client::open(node.as_str()).map_err(|e| invalid(Some(e)))?;
        }
        if nodes
            .iter()
            .any(|n| n.trim_end_matches('/').ends_with("//"))
        {
            return Err(invalid(None));
        }
        Ok(Target::Cluster(nodes))
    }

    /// A connection whose requests time out after `response_timeout`; it reconnects on its
    /// own after Redis restarts or (Cluster) moves slots.
    pub(crate) async fn connect(&self, response_timeout: Duration) -> redis::RedisResult<Conn> {
        match self {
            Target::Single(client) => {
                // redis-rs defaults to a 500 ms response timeout, too short for a loaded Redis
                // and for blocking commands; each connection sets its own.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(response_timeout))
                    .set_max_delay(Duration::from_secs(2))
                    .set_number_of_retries(6);
                Ok(Conn::Single(
                    client.get_connection_manager_with_config(config).await?,
                ))
            }
            Target::Cluster(nodes) => {
                let client = self.cluster_client(nodes, response_timeout)?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// One plain attempt to reach Redis, failing fast: a connection manager retries with
    /// backoff for seconds before it reports a refused connection, which is right after a
    /// restart but not at start-up, where the caller wants to know at once.
    pub(crate) async fn probe(&self) -> redis::RedisResult<()> {
        match self {
            Target::Single(client) => {
                let probe = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(5)));
                client
                    .get_multiplexed_async_connection_with_config(&probe)
                    .await?;
            }
            Target::Cluster(nodes) => {
                let client = self.cluster_client(nodes, Duration::from_secs(5))?;
                let mut conn = client.get_async_connection().await?;
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    fn cluster_client(
        &self,
        nodes: &[String],
        response_timeout: Duration,
    ) -> redis::RedisResult<ClusterClient> {
        ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(response_timeout)
            .retries(6)
            .max_retry_wait(2000)
            .build()
    }
}

/// A connection to one server or to a Cluster: cheap to clone (clones share the connection).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The error for a Redis that cannot be reached at `url`.
pub(crate) fn unreachable(url: &str, e: redis::RedisError) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "no Redis at {}; start one with `redis-server` or pass --redis",
            redact_url(url)
        ),
    )
    .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(url: &str) -> Vec<String> {
        match Target::parse(url).unwrap() {
            Target::Cluster(nodes) => nodes,
            Target::Single(_) => panic!("{url} parsed as one server"),
        }
    }

    #[test]
    fn cluster_urls_name_every_seed_node() {
        assert_eq!(
            nodes("redis-cluster://10.0.0.1:7000, 10.0.0.2:7001"),
            ["redis://10.0.0.1:7000", "redis://10.0.0.2:7001"]
        );
        assert_eq!(
            nodes("redis-cluster://u:p@h1:1,h2:2"),
            ["redis://u:p@h1:1", "redis://u:p@h2:2"]
        );
        assert_eq!(
            nodes("redis://h1:1,rediss://h2:2"),
            ["redis://h1:1", "rediss://h2:2"]
        );
        assert!(matches!(
            Target::parse("redis://127.0.0.1:6379/2").unwrap(),
            Target::Single(_)
        ));
    }

    #[test]
    fn bad_urls_say_what_is_expected() {
        for url in [
            "http://h:1",
            "redis-cluster://",
            "redis://h1:1,http://h2:2",
            "redis-sentinel://h:26379/mymaster",
        ] {
            let err = Target::parse(url)
                .err()
                .unwrap_or_else(|| panic!("{url} parsed"));
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{url}");
        }
    }
}
