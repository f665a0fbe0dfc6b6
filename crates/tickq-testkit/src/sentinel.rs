//! A primary, a replica and a Redis Sentinel watching them, for failover tests.

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::certs::TestCerts;
use crate::process::{self, POLL_INTERVAL};
use crate::server::{TestRedis, server_binary};
use std::sync::Arc;

/// The sentinel starts in milliseconds; the rest is headroom for slow CI machines.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Sentinel learns of a primary's replicas from the primary's `INFO`, which it reads every
/// 10 s: a replica that connected just after the first reading is seen 10 s later, so the
/// wait for it must outlast two periods (a busy machine failed the test at 10 s).
const REPLICA_SEEN_TIMEOUT: Duration = Duration::from_secs(25);
/// A forced failover promotes the replica within a second or two, but Sentinel waits about
/// 8 s (four hello periods) before it demotes the old primary.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const START_ATTEMPTS: u32 = 5;
const LOG_FILE: &str = "sentinel.log";
const STDIO_FILE: &str = "sentinel.stdio.log";
const CONFIG_FILE: &str = "sentinel.conf";
const LOG_TAIL_LINES: usize = 30;

/// Two `redis-server`s on free TCP ports, one replicating the other, and one
/// `redis-server --sentinel` monitoring them as [`MASTER_NAME`](Self::MASTER_NAME).
///
/// The sentinel declares a silent master down after 1 s and a failover times out after 5 s,
/// so tests of failures are quick. Dropping it kills every process.
///
/// ```no_run
/// use tickq_testkit::TestSentinel;
///
/// let mut set = TestSentinel::start();
/// let old = set.master().port();
/// set.failover();
/// assert_ne!(set.master().port(), old);
/// ```
#[derive(Debug)]
pub struct TestSentinel {
    /// `nodes[master]` is the node the sentinel names as master.
    nodes: [TestRedis; 2],
    master: usize,
    sentinel: Child,
    sentinel_port: u16,
    /// A TLS set's certificates and the sentinel's TLS port (its plain port stays open for
    /// the testkit's own connections).
    tls: Option<(Arc<TestCerts>, u16)>,
    // Last, so that the directory outlives the process in `Drop`.
    dir: TempDir,
}

impl TestSentinel {
    /// The name the sentinel monitors the set under.
    pub const MASTER_NAME: &'static str = "mymaster";

    /// Starts the primary, the replica and the sentinel, and returns once the replica is in
    /// sync and the sentinel knows both, so that [`failover`](Self::failover) can work.
    ///
    /// # Panics
    ///
    /// If `redis-server` cannot be found or cannot run as a sentinel, or the set is not
    /// ready within 10 seconds.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Like [`start`](Self::start), with the primary, the replica and the sentinel serving
    /// TLS with certificates of one private CA ([`certs`](Self::certs)), replication and the
    /// sentinel's links over TLS too; [`url`](Self::url) is then `rediss-sentinel://` on the
    /// sentinel's TLS port. The testkit's own connections use plain ports and sockets.
    pub fn start_tls() -> Self {
        Self::start_with(Some(Arc::new(TestCerts::generate())))
    }

    /// The private CA and certificates of a set started with [`start_tls`](Self::start_tls).
    pub fn certs(&self) -> Option<&TestCerts> {
        self.tls.as_ref().map(|(certs, _)| &**certs)
    }

    fn start_with(certs: Option<Arc<TestCerts>>) -> Self {
        let node = || match &certs {
            Some(certs) => TestRedis::builder()
                .tls_with(certs.clone())
                .extra_args(["--tls-replication", "yes"]),
            None => TestRedis::builder().tcp(),
        };
        let primary = node().start();
        let primary_port = primary.port().expect("a tcp server has a port");
        let replica = node()
            .extra_args(["--replicaof".to_owned(), "127.0.0.1".to_owned()])
            .extra_args([primary_port.to_string()])
            .start();
        let dir = tempfile::Builder::new()
            .prefix("tickq-sentinel-")
            .tempdir()
            .expect("creating a temporary directory for the sentinel");
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = process::free_port(false);
            let tls = certs
                .as_ref()
                .map(|certs| (certs.clone(), process::free_port(false)));
            match launch(&dir, port, primary_port, tls.as_ref()) {
                Ok(sentinel) => {
                    let set = Self {
                        nodes: [primary, replica],
                        master: 0,
                        sentinel,
                        sentinel_port: port,
                        tls,
                        dir,
                    };
                    set.wait_ready();
                    return set;
                }
                // Most likely another process took the port first.
                Err(err) => last_error = err,
            }
        }
        panic!(
            "{last_error}\n--- {STDIO_FILE} ---\n{}\n--- {LOG_FILE} ---\n{}",
            process::tail(&dir.path().join(STDIO_FILE), LOG_TAIL_LINES),
            process::tail(&dir.path().join(LOG_FILE), LOG_TAIL_LINES),
        );
    }

    /// `redis-sentinel://127.0.0.1:PORT/mymaster` (`rediss-sentinel://` on the TLS port of
    /// a TLS set), the URL tickq connects with.
    pub fn url(&self) -> String {
        match &self.tls {
            None => format!(
                "redis-sentinel://127.0.0.1:{}/{}",
                self.sentinel_port,
                Self::MASTER_NAME
            ),
            Some((_, tls_port)) => format!(
                "rediss-sentinel://127.0.0.1:{tls_port}/{}",
                Self::MASTER_NAME
            ),
        }
    }

    /// The sentinel's TCP port.
    pub fn sentinel_port(&self) -> u16 {
        self.sentinel_port
    }

    /// The node the sentinel names as master (the primary until a failover).
    pub fn master(&self) -> &TestRedis {
        &self.nodes[self.master]
    }

    /// The node replicating the master.
    pub fn replica(&self) -> &TestRedis {
        &self.nodes[1 - self.master]
    }

    /// A blocking connection to the sentinel, for `SENTINEL ...` commands.
    ///
    /// # Panics
    ///
    /// If connecting fails.
    pub fn sentinel_conn(&self) -> redis::Connection {
        sentinel_client(self.sentinel_port)
            .get_connection_with_timeout(START_TIMEOUT)
            .unwrap_or_else(|err| panic!("connecting to the sentinel: {err}"))
    }

    /// The master's address as the sentinel reports it: (host, port).
    pub fn reported_master(&self) -> (String, u16) {
        let (host, port): (String, String) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(Self::MASTER_NAME)
            .query(&mut self.sentinel_conn())
            .expect("SENTINEL GET-MASTER-ADDR-BY-NAME");
        (
            host,
            port.parse().expect("the sentinel reports a numeric port"),
        )
    }

    /// Forces a failover (`SENTINEL FAILOVER`) and returns once the sentinel names the
    /// replica as master, the replica reports `role:master`, and the old master has been
    /// demoted to a replica of it (about 10 s: Sentinel waits before demoting). After that,
    /// [`master`](Self::master) and [`replica`](Self::replica) have swapped.
    ///
    /// # Panics
    ///
    /// If the failover is refused or does not complete within 30 seconds.
    pub fn failover(&mut self) {
        let new_master = 1 - self.master;
        let new_port = self.nodes[new_master].port().expect("tcp");
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(Self::MASTER_NAME)
            .query(&mut self.sentinel_conn())
            .unwrap_or_else(|err| panic!("SENTINEL FAILOVER refused: {err}"));
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        loop {
            let named = self.reported_master().1 == new_port;
            let promoted = role(&self.nodes[new_master]) == "master";
            let demoted = role(&self.nodes[self.master]) == "slave";
            if named && promoted && demoted {
                break;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "failover did not complete within {} s (sentinel names the new master: \
                     {named}, it is master: {promoted}, old master demoted: {demoted})",
                    FAILOVER_TIMEOUT.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.master = new_master;
    }

    /// Waits until the replica is in sync and the sentinel sees it, so a failover can pick it.
    fn wait_ready(&self) {
        let deadline = Instant::now() + REPLICA_SEEN_TIMEOUT;
        loop {
            if self.replica_known() && link_up(self.replica()) {
                return;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "the sentinel did not see an in-sync replica within {} s",
                    REPLICA_SEEN_TIMEOUT.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn replica_known(&self) -> bool {
        let Ok(mut conn) = sentinel_client(self.sentinel_port).get_connection() else {
            return false;
        };
        let replicas: Vec<std::collections::HashMap<String, String>> = match redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg(Self::MASTER_NAME)
            .query(&mut conn)
        {
            Ok(replicas) => replicas,
            Err(_) => return false,
        };
        let port = self.replica().port().expect("tcp").to_string();
        replicas.iter().any(|r| {
            r.get("port") == Some(&port)
                && r.get("flags").is_some_and(|f| f == "slave")
                && r.get("master-link-status").is_some_and(|s| s == "ok")
        })
    }

    fn fail(&self, reason: &str) -> ! {
        panic!(
            "{reason}\n--- {LOG_FILE} (last {LOG_TAIL_LINES} lines) ---\n{}",
            process::tail(&self.dir.path().join(LOG_FILE), LOG_TAIL_LINES)
        );
    }
}

impl Drop for TestSentinel {
    fn drop(&mut self) {
        process::kill_and_reap(&mut self.sentinel);
    }
}

/// Writes the sentinel's configuration (Sentinel rewrites it as it learns, so it must be a
/// file of its own) and starts it; returns once it answers.
fn launch(
    dir: &TempDir,
    port: u16,
    primary_port: u16,
    tls: Option<&(Arc<TestCerts>, u16)>,
) -> Result<Child, String> {
    let path = dir.path();
    let tls = match tls {
        None => String::new(),
        // Clients need no certificate; the sentinel's own links to the servers speak TLS.
        Some((certs, tls_port)) => format!(
            "tls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
             tls-auth-clients no\ntls-replication yes\n",
            certs.server_cert().display(),
            certs.server_key().display(),
            certs.ca().display()
        ),
    };
    let config = tls
        + &format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {log}\n\
         sentinel resolve-hostnames no\n\
         sentinel monitor {name} 127.0.0.1 {primary_port} 1\n\
         sentinel down-after-milliseconds {name} 1000\n\
         sentinel failover-timeout {name} 5000\n",
            dir = path.display(),
            log = path.join(LOG_FILE).display(),
            name = TestSentinel::MASTER_NAME,
        );
    let config_path: PathBuf = path.join(CONFIG_FILE);
    fs::write(&config_path, config).expect("writing the sentinel's configuration");
    let stdio = File::create(path.join(STDIO_FILE)).expect("creating the sentinel's stdio log");
    let binary = server_binary();
    let mut child = match Command::new(&binary)
        .arg(&config_path)
        .arg("--sentinel")
        .current_dir(path)
        .stdin(Stdio::null())
        .stdout(stdio.try_clone().expect("duplicating a file descriptor"))
        .stderr(stdio)
        .spawn()
    {
        Ok(child) => child,
        Err(err) if err.kind() == io::ErrorKind::NotFound => panic!(
            "{} not found; Redis Sentinel tests need redis-server (it runs as a sentinel with \
             --sentinel): install it with `apt-get install redis-server`, or set {} to its path",
            binary.to_string_lossy(),
            crate::REDIS_SERVER_ENV
        ),
        Err(err) => panic!("spawning {}: {err}", binary.to_string_lossy()),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if answers(port) {
            return Ok(child);
        }
        if let Some(status) = child.try_wait().expect("try_wait on the sentinel") {
            return Err(format!(
                "redis-server --sentinel exited during startup ({status}); does this \
                 redis-server support Sentinel mode?"
            ));
        }
        if Instant::now() >= deadline {
            process::kill_and_reap(&mut child);
            return Err(format!(
                "redis-server --sentinel did not answer within {} s",
                START_TIMEOUT.as_secs()
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

fn sentinel_client(port: u16) -> redis::Client {
    redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("a valid URL")
}

/// Whether a sentinel (not some other server that took the port) answers on `port`.
fn answers(port: u16) -> bool {
    let Ok(mut conn) = sentinel_client(port).get_connection_with_timeout(PROBE_TIMEOUT) else {
        return false;
    };
    let info: redis::RedisResult<String> = redis::cmd("INFO").arg("server").query(&mut conn);
    // Valkey says `server_mode`, Redis `redis_mode`.
    info.is_ok_and(|info| {
        info.contains("redis_mode:sentinel") || info.contains("server_mode:sentinel")
    })
}

/// `INFO replication`'s `role:` line of `node`, or an empty string if it does not answer.
fn role(node: &TestRedis) -> String {
    replication_field(node, "role").unwrap_or_default()
}

fn link_up(node: &TestRedis) -> bool {
    replication_field(node, "master_link_status").as_deref() == Some("up")
}

fn replication_field(node: &TestRedis, field: &str) -> Option<String> {
    let mut conn = node
        .client()
        .get_connection_with_timeout(PROBE_TIMEOUT)
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .map(|value| value.trim().to_owned())
}
