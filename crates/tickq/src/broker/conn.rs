//! Where Redis is: one server (or a replica set's primary), a primary found through Redis
//! Sentinel, or a Cluster, and the connections to it. Everything above talks to [`Conn`], which
//! sends a command or a pipeline to the right place; every script and pipeline of tickq touches
//! one hash slot, so in a Cluster each goes to one node whole.

use super::{redact_url, tls};
use crate::connect::TlsFiles;
use crate::{Error, ErrorKind, Result};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    Cmd, ConnectionAddr, Pipeline, RedisError, RedisFuture, ServerErrorKind, TlsCertificates,
    TlsMode, Value,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod failover;

const URL_HELP: &str = "expected redis://[user:pass@]host:port[/db], rediss://..., \
    redis+unix:///path/to/redis.sock, for a Cluster redis-cluster://[user:pass@]host:port,\
    host:port,... (rediss-cluster:// for TLS, or a comma-separated list of redis:// URLs), or \
    for Sentinel redis-sentinel://[user:pass@]host:port[,host:port...]/MASTER_NAME[/db] \
    (rediss-sentinel:// for TLS)";

const SENTINEL_URL_HELP: &str = "expected \
    redis-sentinel://[user:pass@]host:port[,host:port...]/MASTER_NAME[/db] (the sentinels' \
    addresses, then the name of the monitored master; user:pass are for the Redis servers, \
    sentinels are reached without a password; rediss-sentinel:// speaks TLS to both)";

/// The port sentinels listen on unless the URL says otherwise.
const DEFAULT_SENTINEL_PORT: u16 = 26_379;

/// Asking the sentinels and checking the master they name takes a few round trips; a
/// sentinel that accepts connections but never answers must not hang the caller.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach Redis, from a URL.
#[derive(Clone)]
pub(crate) enum Target {
    Single(Box<redis::Client>),
    /// The seed nodes, and the certificates when they speak TLS.
    Cluster(Vec<String>, Option<Box<TlsCertificates>>),
    /// Boxed so that the enum stays small.
    Sentinel(Box<SentinelTarget>),
}

/// The sentinels to ask for the current master, and how to talk to that master.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SentinelTarget {
    sentinels: Vec<(String, u16)>,
    master: String,
    db: i64,
    /// Username and password for the Redis servers (not the sentinels).
    auth: Option<(Option<String>, String)>,
    /// TLS to the sentinels and the Redis servers (`rediss-sentinel://`).
    tls: Option<Certs>,
}

/// TLS with these certificates (none: the public roots and no client certificate). Equal when
/// the same bytes are.
#[derive(Clone, Debug)]
struct Certs(Option<TlsCertificates>);

impl PartialEq for Certs {
    fn eq(&self, other: &Certs) -> bool {
        let bytes = |c: &Certs| {
            c.0.as_ref().map(|c| {
                (
                    c.root_cert.clone(),
                    c.client_tls
                        .as_ref()
                        .map(|t| (t.client_cert.clone(), t.client_key.clone())),
                )
            })
        };
        bytes(self) == bytes(other)
    }
}

impl SentinelTarget {
    /// `rest` is the URL after `redis-sentinel://` (or `rediss-sentinel://`, with `tls`).
    fn parse(
        url: &str,
        rest: &str,
        tls: Option<Option<TlsCertificates>>,
    ) -> Result<SentinelTarget> {
        let invalid = |why: &str| {
            Error::invalid(format!(
                "invalid Redis Sentinel URL {:?}: {why}; {SENTINEL_URL_HELP}",
                redact_url(url)
            ))
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid("the master name is missing"))?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let mut sentinels = Vec::new();
        for host in hosts.split(',').map(str::trim) {
            let (name, port) = match host.rsplit_once(':') {
                // An IPv6 address without a port has colons but ends with ']'.
                Some((name, port)) if !port.ends_with(']') => {
                    let port = port
                        .parse::<u16>()
                        .map_err(|_| invalid(&format!("{port:?} is not a port number")))?;
                    (name, port)
                }
                _ => (host, DEFAULT_SENTINEL_PORT),
            };
            let name = name.trim_start_matches('[').trim_end_matches(']');
            if name.is_empty() {
                return Err(invalid("a sentinel address is empty"));
            }
            sentinels.push((name.to_owned(), port));
        }
        let mut segments = path.split('/');
        let master = segments.next().unwrap_or_default();
        if master.is_empty() {
            return Err(invalid("the master name is missing"));
        }
        if master.contains(['?', '#']) {
            return Err(invalid("query parameters are not supported"));
        }
        let db = match segments.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|db| *db >= 0)
                .ok_or_else(|| invalid(&format!("{db:?} is not a database number")))?,
        };
        if segments.any(|s| !s.is_empty()) {
            return Err(invalid("too many path segments after the master name"));
        }
        // redis-rs decodes percent-encoded credentials; reuse it on a throwaway URL.
        let auth = match userinfo {
            None => None,
            Some(userinfo) => {
                let info = redis::Client::open(format!("redis://{userinfo}@localhost"))
                    .map_err(|e| invalid("the user:pass part is malformed").with_source(e))?;
                let settings = info.get_connection_info().redis_settings();
                settings
                    .password()
                    .map(|password| (settings.username().map(str::to_owned), password.to_owned()))
            }
        };
        Ok(SentinelTarget {
            sentinels,
            master: master.to_owned(),
            db,
            auth,
            tls: tls.map(Certs),
        })
    }

    /// Asks the sentinels, in the URL's order, for the current master, and checks that the
    /// server they name does consider itself a master.
    async fn resolve(&self) -> redis::RedisResult<redis::Client> {
        let sentinels = self.sentinels.iter().map(|(host, port)| match self.tls {
            None => ConnectionAddr::Tcp(host.clone(), *port),
            Some(_) => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            },
        });
        let mut builder =
            SentinelClientBuilder::new(sentinels, &self.master, SentinelServerType::Master)?
                .set_client_to_redis_db(self.db);
        if let Some((username, password)) = &self.auth {
            if let Some(username) = username {
                builder = builder.set_client_to_redis_username(username);
            }
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(Certs(certs)) = &self.tls {
            builder = builder
                .set_client_to_sentinel_tls_mode(TlsMode::Secure)
                .set_client_to_redis_tls_mode(TlsMode::Secure);
            if let Some(certs) = certs {
                builder = builder
                    .set_client_to_sentinel_certificates(certs.clone())
                    .set_client_to_redis_certificates(certs.clone());
            }
        }
        let mut client = builder.build()?;
        tokio::time::timeout(RESOLVE_TIMEOUT, client.async_get_client())
            .await
            .map_err(|_| {
                RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the sentinels did not name a master in time",
                ))
            })?
    }
}

impl Target {
    /// `redis-cluster://[user:pass@]h1:p1,h2:p2` or `redis://a,redis://b` select a Cluster
    /// (seeded with those nodes); `redis-sentinel://h1:p1,h2:p2/MASTER_NAME[/db]` the master
    /// the sentinels name; anything else is one server. `rediss` in the scheme means TLS,
    /// with the certificates of `tls`; `tls` with a plain URL is an error.
    pub(crate) fn parse(url: &str, tls: &TlsFiles) -> Result<Target> {
        let target = Target::parse_url(url, tls::certificates(tls)?)?;
        if !tls.is_empty() && !target.is_tls() {
            return Err(Error::invalid(format!(
                "TLS certificate files are set but {} is not a TLS URL; use rediss://                  (rediss-cluster://, rediss-sentinel://), or unset the TLS files",
                redact_url(url)
            )));
        }
        if target.is_tls() {
            tls::install_crypto_provider();
        }
        Ok(target)
    }

    fn is_tls(&self) -> bool {
        match self {
            Target::Single(client) => matches!(
                client.get_connection_info().addr(),
                ConnectionAddr::TcpTls { .. }
            ),
            Target::Cluster(nodes, _) => nodes.iter().any(|n| n.starts_with("rediss://")),
            Target::Sentinel(target) => target.tls.is_some(),
        }
    }

    fn parse_url(url: &str, certs: Option<TlsCertificates>) -> Result<Target> {
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
        if let Some(rest) = url.strip_prefix("redis-sentinel://") {
            return Ok(Target::Sentinel(Box::new(SentinelTarget::parse(
                url, rest, None,
            )?)));
        }
        if let Some(rest) = url.strip_prefix("rediss-sentinel://") {
            return Ok(Target::Sentinel(Box::new(SentinelTarget::parse(
                url,
                rest,
                Some(certs),
            )?)));
        }
        let cluster = [
            ("redis-cluster://", "redis"),
            ("rediss-cluster://", "rediss"),
        ]
        .into_iter()
        .find_map(|(prefix, scheme)| url.strip_prefix(prefix).map(|rest| (rest, scheme)));
        let nodes: Vec<String> = if let Some((rest, scheme)) = cluster {
            let (userinfo, hosts) = match rest.rsplit_once('@') {
                Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
                None => (String::new(), rest),
            };
            hosts
                .split(',')
                .map(|h| format!("{scheme}://{userinfo}{}", h.trim()))
                .collect()
        } else if url.contains(',') {
            url.split(',').map(|u| u.trim().to_owned()).collect()
        } else {
            let client = match certs {
                Some(certs) if url.starts_with("rediss://") || url.starts_with("valkeys://") => {
                    redis::Client::build_with_tls(url, certs)
                }
                _ => redis::Client::open(url),
            }
            .map_err(|e| invalid(Some(e)))?;
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
        let tls = nodes.iter().filter(|n| n.starts_with("rediss://")).count();
        if tls != 0 && tls != nodes.len() {
            return Err(Error::invalid(format!(
                "invalid Redis Cluster URL {:?}: some nodes are rediss:// and some are not; a \
                 Cluster speaks TLS on every node or on none",
                redact_url(url)
            )));
        }
        let certs = certs.filter(|_| tls != 0).map(Box::new);
        Ok(Target::Cluster(nodes, certs))
    }

    /// A connection whose requests time out after `response_timeout`; it reconnects on its
    /// own after Redis restarts, (Cluster) moves slots or (Sentinel) fails over.
    pub(crate) async fn connect(&self, response_timeout: Duration) -> redis::RedisResult<Conn> {
        // redis-rs defaults to a 500 ms response timeout, too short for a loaded Redis and for
        // blocking commands; each connection sets its own.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(response_timeout))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(6);
        match self {
            Target::Single(client) => Ok(Conn::Single(
                client.get_connection_manager_with_config(config).await?,
            )),
            Target::Cluster(nodes, certs) => {
                let client = self.cluster_client(nodes, certs, response_timeout)?;
                let conn = client.get_async_connection().await?;
                Ok(Conn::Cluster(ClusterConn(Arc::new(ClusterShared {
                    client,
                    hold: response_timeout,
                    current: tokio::sync::RwLock::new(ClusterCurrent {
                        generation: 0,
                        conn,
                        made: tokio::time::Instant::now(),
                    }),
                }))))
            }
            Target::Sentinel(target) => {
                let client = target.resolve().await?;
                let addr = client.get_connection_info().addr().to_string();
                let conn = client
                    .get_connection_manager_with_config(config.clone())
                    .await?;
                let stop = CancellationToken::new();
                let shared = Arc::new(SentinelShared {
                    target: (**target).clone(),
                    config,
                    current: tokio::sync::RwLock::new(Current {
                        generation: 0,
                        conn,
                        addr,
                    }),
                    hold: tokio::sync::watch::Sender::new(None),
                    stop: stop.clone(),
                });
                failover::spawn(&shared, stop);
                Ok(Conn::Sentinel(SentinelConn(shared)))
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
            Target::Cluster(nodes, certs) => {
                let client = self.cluster_client(nodes, certs, Duration::from_secs(5))?;
                let mut conn = client.get_async_connection().await?;
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            }
            Target::Sentinel(target) => {
                // Resolving already connects to the master to check its role.
                target.resolve().await?;
            }
        }
        Ok(())
    }

    /// A pub/sub connection. On a Cluster any node will do: a PUBLISH reaches every node.
    /// It does not reconnect on its own: its stream ends when the connection drops.
    pub(crate) async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        match self {
            Target::Single(client) => client.get_async_pubsub().await,
            Target::Cluster(nodes, certs) => {
                let mut last = None;
                for node in nodes {
                    let client = match certs {
                        Some(certs) => {
                            redis::Client::build_with_tls(node.as_str(), (**certs).clone())
                        }
                        None => redis::Client::open(node.as_str()),
                    };
                    match client {
                        Ok(client) => match client.get_async_pubsub().await {
                            Ok(pubsub) => return Ok(pubsub),
                            Err(e) => last = Some(e),
                        },
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "no Cluster node to subscribe on",
                    ))
                }))
            }
            Target::Sentinel(target) => target.resolve().await?.get_async_pubsub().await,
        }
    }

    fn cluster_client(
        &self,
        nodes: &[String],
        certs: &Option<Box<TlsCertificates>>,
        response_timeout: Duration,
    ) -> redis::RedisResult<ClusterClient> {
        let mut builder = ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(response_timeout)
            .retries(6)
            // redis-rs waits 1.28-2 s between its own tries of a request the cluster answers
            // with CLUSTERDOWN or TRYAGAIN (a primary failed, its replica not yet elected);
            // that wait was most of the time work took to resume after a promotion. Short
            // waits here, and `ClusterConn` holds a request whose node is gone for longer.
            .min_retry_wait(20)
            .max_retry_wait(100);
        if let Some(certs) = certs {
            builder = builder.certs((**certs).clone());
        }
        builder.build()
    }
}

/// A connection to one server, to a Cluster, or to the master the sentinels name: cheap to
/// clone (clones share the connection).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConn),
    Sentinel(SentinelConn),
}

/// How often a request whose Cluster node is gone gets a fresh view of the slots.
const CLUSTER_FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// A Cluster connection that follows a primary's replacement promptly.
///
/// redis-rs' cluster client learns a new slot owner from a `MOVED` or `READONLY` answer,
/// which a demoted primary gives (`CLUSTER FAILOVER`: the move takes milliseconds). A primary
/// that died answers nothing: requests for its slots fail with a refused connection until the
/// client happens to read the slots again, and the worker backs off between tries, so work
/// resumed only about a second after a replica had taken over (measured: 1.2 s). Here a
/// request that finds its node gone is held, and tried again on a connection that reads the
/// slots afresh every 100 ms, until it succeeds or the connection's response timeout has
/// passed: the request that was waiting goes through within about 100 ms of the promotion.
/// Sending it again is safe for the same reason as with Sentinel (see [`Failure`]).
#[derive(Clone)]
pub(crate) struct ClusterConn(Arc<ClusterShared>);

struct ClusterShared {
    client: ClusterClient,
    /// How long a request whose node is gone is held: the connection's response timeout.
    hold: Duration,
    current: tokio::sync::RwLock<ClusterCurrent>,
}

struct ClusterCurrent {
    /// Bumped on every new connection, so that of many requests failing at once only one
    /// connects again; the others use the connection it made.
    generation: u64,
    conn: ClusterConnection,
    made: tokio::time::Instant,
}

impl ClusterConn {
    async fn current(&self) -> (u64, ClusterConnection) {
        let current = self.0.current.read().await;
        (current.generation, current.conn.clone())
    }

    /// A connection with a fresh slot map, unless one was made since `generation` or in the
    /// last [`CLUSTER_FOLLOW_INTERVAL`]. Connecting fails while no seed node answers; the
    /// caller keeps the connection it has and tries again later.
    async fn follow(&self, generation: u64) -> (u64, ClusterConnection) {
        {
            let mut current = self.0.current.write().await;
            if current.generation != generation || current.made.elapsed() < CLUSTER_FOLLOW_INTERVAL
            {
                return (current.generation, current.conn.clone());
            }
            // This request connects; the others keep using the current connection meanwhile
            // (requests for the live nodes' slots must not wait for it).
            current.made = tokio::time::Instant::now();
        }
        let made = tokio::time::timeout(self.0.hold, self.0.client.get_async_connection()).await;
        let mut current = self.0.current.write().await;
        match made {
            Ok(Ok(conn)) if current.generation == generation => {
                current.generation += 1;
                current.conn = conn;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "reading the Redis Cluster's slots"),
            Err(_) => tracing::debug!("reading the Redis Cluster's slots timed out"),
        }
        (current.generation, current.conn.clone())
    }

    /// Runs `request` until it succeeds, fails for a reason other than a node gone, or the
    /// hold is over; between tries, waits a moment and follows the slots.
    async fn hold<'a, T, F>(&self, mut request: F) -> redis::RedisResult<T>
    where
        F: FnMut(ClusterConnection) -> RedisFuture<'a, T>,
    {
        let deadline = tokio::time::Instant::now() + self.0.hold;
        let (mut generation, mut conn) = self.current().await;
        let mut followed = false;
        loop {
            let e = match request(conn.clone()).await {
                Err(e) => e,
                ok => {
                    if followed {
                        tracing::info!(
                            "a Redis Cluster node came back or was replaced; requests go through again"
                        );
                    }
                    return ok;
                }
            };
            // MOVED or ASK here: redis-rs followed redirects as often as it tries, e.g. a
            // replica's MOVED to its dead primary; CLUSTERDOWN: the slot has no live primary
            // yet. All end when a replica takes over.
            let gone = Failure::of(&e) == Failure::Moved
                || matches!(
                    e.kind(),
                    redis::ErrorKind::Server(
                        ServerErrorKind::ClusterDown
                            | ServerErrorKind::TryAgain
                            | ServerErrorKind::Moved
                            | ServerErrorKind::Ask
                    )
                );
            if !gone || tokio::time::Instant::now() + CLUSTER_FOLLOW_INTERVAL > deadline {
                return Err(e);
            }
            if !followed {
                tracing::warn!(error = %e, "a Redis Cluster node is gone; holding requests for its slots until a replica takes over");
                followed = true;
            }
            tokio::time::sleep(CLUSTER_FOLLOW_INTERVAL).await;
            (generation, conn) = self.follow(generation).await;
        }
    }
}

impl ConnectionLike for ClusterConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.hold(|mut conn| Box::pin(async move { conn.req_packed_command(cmd).await }))
                .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.hold(|mut conn| {
                Box::pin(async move { conn.req_packed_commands(pipeline, offset, count).await })
            })
            .await
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// A connection to the current master of a Sentinel-monitored set, which follows failovers:
/// when a request finds the master gone or demoted, it asks the sentinels again, reconnects,
/// and sends that request once more to the new master.
#[derive(Clone)]
pub(crate) struct SentinelConn(Arc<SentinelShared>);

struct SentinelShared {
    target: SentinelTarget,
    config: ConnectionManagerConfig,
    current: tokio::sync::RwLock<Current>,
    /// Set while the sentinels promote a replica (see `failover.rs`): new requests wait until
    /// the new primary is connected, or until this instant at the latest.
    hold: tokio::sync::watch::Sender<Option<tokio::time::Instant>>,
    /// Stops the failover listeners with the last clone of the connection.
    stop: CancellationToken,
}

impl Drop for SentinelShared {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Current {
    /// Bumped on every reconnect, so that of many requests failing at once only the first
    /// asks the sentinels; the others use the connection it made.
    generation: u64,
    conn: ConnectionManager,
    /// The primary's address, `host:port`.
    addr: String,
}

/// What a failed request says about the master.
#[derive(Debug, PartialEq)]
enum Failure {
    /// Gone (connection dropped or refused) or demoted (READONLY): the request goes to the
    /// new master. A dropped request may have run on the old one first; sending it again is
    /// safe because every tickq script and transaction is idempotent or guarded by a fence.
    Moved,
    /// No answer in time: the master may be stalled and replaced, but the request may also
    /// have run, so the connection follows the sentinels without sending it again.
    Silent,
    /// An answer from a working master (a script error, a wrong type): nothing to follow.
    Other,
}

impl Failure {
    fn of(e: &RedisError) -> Failure {
        if e.is_timeout() {
            Failure::Silent
        } else if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(
                e.kind(),
                redis::ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
            )
            // A transaction on a demoted master fails as a whole (EXECABORT) and names the
            // READONLY error of the command that was refused only in its text.
            || e.to_string().contains("READONLY")
        {
            Failure::Moved
        } else {
            Failure::Other
        }
    }
}

impl SentinelConn {
    async fn current(&self) -> (u64, ConnectionManager) {
        // A promotion under way: writes sent to the old primary now may be lost with it.
        let mut hold = self.0.hold.subscribe();
        let until = *hold.borrow_and_update();
        if let Some(until) = until {
            let _ = tokio::time::timeout_at(until, hold.wait_for(Option::is_none)).await;
        }
        let current = self.0.current.read().await;
        (current.generation, current.conn.clone())
    }

    /// Hold new requests until [`release`](Self::release) or `until` (a promotion began).
    fn hold(&self, until: tokio::time::Instant) {
        self.0.hold.send_replace(Some(until));
    }

    fn release(&self) {
        self.0.hold.send_replace(None);
    }

    /// Ask the sentinels for the master now and move to it if it is not the one in use
    /// (`resolve` checks with `ROLE` that it is a master). On failure the connection stays as
    /// it is: requests that fail on it follow the sentinels by themselves.
    async fn refresh(&self, why: &str) {
        let client = match self.0.target.resolve().await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(master = %self.0.target.master, error = %e, "{why}, but the sentinels name no usable master yet");
                return;
            }
        };
        let addr = client.get_connection_info().addr().to_string();
        let mut current = self.0.current.write().await;
        if current.addr == addr {
            return;
        }
        match client
            .get_connection_manager_with_config(self.0.config.clone())
            .await
        {
            Ok(conn) => {
                tracing::info!(master = %self.0.target.master, addr = %addr, "{why}: moved to the new Redis primary");
                current.generation += 1;
                current.conn = conn;
                current.addr = addr;
            }
            Err(e) => {
                tracing::warn!(master = %self.0.target.master, addr = %addr, error = %e, "{why}, but connecting to the new primary failed");
            }
        }
    }

    /// Reconnects to the master the sentinels name now, unless another request already did
    /// since `generation`. Fails with `cause` if the sentinels name no usable master yet (a
    /// failover in progress): the caller sees the error of its own request and retries later.
    async fn follow(
        &self,
        generation: u64,
        cause: RedisError,
    ) -> redis::RedisResult<ConnectionManager> {
        let mut current = self.0.current.write().await;
        if current.generation != generation {
            return Ok(current.conn.clone());
        }
        let client = match self.0.target.resolve().await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(
                    master = %self.0.target.master,
                    error = %e,
                    "Redis request failed ({cause}) and the sentinels name no usable master yet"
                );
                return Err(cause);
            }
        };
        let conn = match client
            .get_connection_manager_with_config(self.0.config.clone())
            .await
        {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(
                    master = %self.0.target.master,
                    error = %e,
                    "connecting to the new Redis master"
                );
                return Err(cause);
            }
        };
        tracing::info!(
            master = %self.0.target.master,
            addr = %client.get_connection_info().addr(),
            "reconnected to the Redis master the sentinels name ({cause})"
        );
        current.generation += 1;
        current.conn = conn.clone();
        current.addr = client.get_connection_info().addr().to_string();
        Ok(conn)
    }
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.current().await;
            let e = match conn.req_packed_command(cmd).await {
                Err(e) => e,
                ok => return ok,
            };
            match Failure::of(&e) {
                // Once only: a second failure is the caller's to handle, with its backoff.
                Failure::Moved => {
                    self.follow(generation, e)
                        .await?
                        .req_packed_command(cmd)
                        .await
                }
                Failure::Silent => {
                    let _ = self.follow(generation, e.clone()).await;
                    Err(e)
                }
                Failure::Other => Err(e),
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.current().await;
            let e = match conn.req_packed_commands(pipeline, offset, count).await {
                Err(e) => e,
                ok => return ok,
            };
            match Failure::of(&e) {
                Failure::Moved => {
                    self.follow(generation, e)
                        .await?
                        .req_packed_commands(pipeline, offset, count)
                        .await
                }
                Failure::Silent => {
                    let _ = self.follow(generation, e.clone()).await;
                    Err(e)
                }
                Failure::Other => Err(e),
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.0.target.db
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
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
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

/// The error for a Redis that cannot be reached at `url`: a TLS handshake that failed says
/// which certificate setting to fix, anything else that Redis is not there.
pub(crate) fn unreachable(url: &str, e: redis::RedisError) -> Error {
    if let Some(tls) = tls::failure(url, &e) {
        return tls.with_source(e);
    }
    if url.starts_with("redis-sentinel://") {
        let message = if e.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel {
            format!(
                "the sentinels at {} know no master by that name; check the name after the \
                 addresses (`SENTINEL MASTERS` on a sentinel lists them)",
                redact_url(url)
            )
        } else {
            format!(
                "no Redis master found through the sentinels at {} ({e}); check that a \
                 sentinel is running there and that the master it names is up",
                redact_url(url)
            )
        };
        return Error::new(ErrorKind::Unavailable, message).with_source(e);
    }
    Error::new(
        ErrorKind::Unavailable,
        format!("no Redis at {}", redact_url(url)),
    )
    .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(url: &str) -> Vec<String> {
        match Target::parse(url, &TlsFiles::new()).unwrap() {
            Target::Cluster(nodes, _) => nodes,
            _ => panic!("{url} did not parse as a Cluster"),
        }
    }

    fn sentinel(url: &str) -> SentinelTarget {
        match Target::parse(url, &TlsFiles::new()).unwrap() {
            Target::Sentinel(target) => *target,
            _ => panic!("{url} did not parse as Sentinel"),
        }
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_the_master_and_the_db() {
        assert_eq!(
            sentinel("redis-sentinel://10.0.0.1:26380, s2:26381/mymaster"),
            SentinelTarget {
                sentinels: vec![("10.0.0.1".into(), 26380), ("s2".into(), 26381)],
                master: "mymaster".into(),
                db: 0,
                auth: None,
                tls: None,
            }
        );
        assert_eq!(
            sentinel("redis-sentinel://u:p%40ss@h/jobs/3"),
            SentinelTarget {
                sentinels: vec![("h".into(), DEFAULT_SENTINEL_PORT)],
                master: "jobs".into(),
                db: 3,
                auth: Some((Some("u".into()), "p@ss".into())),
                tls: None,
            }
        );
        let target = sentinel("redis-sentinel://:secret@[::1]:5000/m/");
        assert_eq!(target.sentinels, [("::1".to_owned(), 5000)]);
        assert_eq!(target.auth, Some((None, "secret".into())));
    }

    #[test]
    fn bad_sentinel_urls_say_what_is_wrong_and_what_is_expected() {
        for (url, why) in [
            ("redis-sentinel://h:26379", "master name is missing"),
            ("redis-sentinel://h:26379/", "master name is missing"),
            ("redis-sentinel://h:port/m", "not a port number"),
            ("redis-sentinel://h:1,/m", "sentinel address is empty"),
            ("redis-sentinel://h:1/m/x", "not a database number"),
            ("redis-sentinel://h:1/m/1/2", "too many path segments"),
            (
                "redis-sentinel://h:1/m?sentinel_password=x",
                "query parameters",
            ),
        ] {
            let err = Target::parse(url, &TlsFiles::new())
                .err()
                .unwrap_or_else(|| panic!("{url} parsed"));
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{url}");
            assert!(err.message().contains(why), "{url}: {}", err.message());
            if url.starts_with("redis-sentinel") {
                assert!(
                    err.message().contains("MASTER_NAME"),
                    "{url}: {}",
                    err.message()
                );
            }
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
            nodes("rediss-cluster://h1:1,h2:2"),
            ["rediss://h1:1", "rediss://h2:2"]
        );
        assert!(sentinel("rediss-sentinel://h/m").tls.is_some());
        assert!(matches!(
            Target::parse("redis://127.0.0.1:6379/2", &TlsFiles::new()).unwrap(),
            Target::Single(_)
        ));
    }

    #[test]
    fn bad_urls_say_what_is_expected() {
        for url in [
            "http://h:1",
            "redis-cluster://",
            "redis://h1:1,http://h2:2",
            "redis://h1:1,rediss://h2:2",
        ] {
            let err = Target::parse(url, &TlsFiles::new())
                .err()
                .unwrap_or_else(|| panic!("{url} parsed"));
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{url}");
        }
    }
}
