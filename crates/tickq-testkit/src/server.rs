//! One `redis-server` process per test.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::REDIS_SERVER_ENV;
use crate::certs::TestCerts;
use crate::process::{self, POLL_INTERVAL};

/// Shared CI machines can be slow to fork, exec and replay an append-only file.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// A graceful shutdown fsyncs the append-only file; that is quick unless the disk is not.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A single readiness probe; the overall wait is bounded by `START_TIMEOUT`.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Ports picked at random can be taken by another process before redis-server binds them.
const TCP_START_ATTEMPTS: u32 = 5;
const LOG_TAIL_LINES: usize = 30;

/// `sun_path` holds 108 bytes on Linux (104 on the BSDs), including the trailing NUL.
const MAX_UNIX_SOCKET_PATH: usize = 103;

const LOG_FILE: &str = "redis.log";
/// Where redis-server's stdout and stderr go: configuration errors are printed there,
/// before the log file is opened.
const STDIO_FILE: &str = "redis.stdio.log";

/// Configures a [`TestRedis`] before starting it. Created by [`TestRedis::builder`].
///
/// ```
/// let redis = tickq_testkit::TestRedis::builder()
///     .tcp()
///     .appendonly(false)
///     .extra_args(["--maxmemory", "10mb"])
///     .start();
/// assert!(redis.url().starts_with("redis://127.0.0.1:"));
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct TestRedisBuilder {
    tcp: bool,
    appendonly: bool,
    extra_args: Vec<OsString>,
    cluster_bus: bool,
    tls: Option<Tls>,
    /// Certificates shared with other servers (a TLS Cluster's nodes); new ones otherwise.
    shared_certs: Option<Arc<TestCerts>>,
}

/// How a TLS server treats clients.
#[derive(Debug, Clone, Copy)]
enum Tls {
    /// Any client that trusts the server's CA.
    ServerOnly,
    /// Only clients with a certificate signed by the CA (`--tls-auth-clients yes`).
    ClientCerts,
}

impl TestRedisBuilder {
    /// Serves clients over TLS only, on a free TCP port of 127.0.0.1, with certificates from
    /// a new private CA ([`TestRedis::certs`]); clients need not present a certificate.
    ///
    /// [`TestRedis::url`] is then `rediss://127.0.0.1:PORT`. The server also listens on a
    /// plain unix socket in its directory, which the testkit uses to check readiness and
    /// which [`TestRedis::client`], [`TestRedis::conn`] and [`TestRedis::sync_conn`]
    /// connect to, so tests can set up and inspect state without TLS settings.
    pub fn tls(mut self) -> Self {
        self.tls = Some(Tls::ServerOnly);
        self
    }

    /// Like [`tls`](Self::tls), and clients must present a certificate signed by the CA
    /// (`--tls-auth-clients yes`; [`TestCerts::client_cert`] is one).
    pub fn tls_client_certs(mut self) -> Self {
        self.tls = Some(Tls::ClientCerts);
        self
    }

    /// Like [`tls`](Self::tls) with these certificates, so that several servers (a Cluster's
    /// nodes) share one CA.
    pub(crate) fn tls_with(mut self, certs: Arc<TestCerts>) -> Self {
        self.tls = Some(Tls::ServerOnly);
        self.shared_certs = Some(certs);
        self
    }

    /// Listens on a free TCP port of 127.0.0.1 instead of a unix socket.
    ///
    /// The port is kept across [`TestRedis::restart`] and [`TestRedis::start_again`], so
    /// reconnecting clients find the server again.
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// Turns the append-only file on (the default) or off.
    ///
    /// With it off, [`TestRedis::restart`] and [`TestRedis::kill`] lose the data set
    /// (no RDB snapshots are taken either).
    pub fn appendonly(mut self, enabled: bool) -> Self {
        self.appendonly = enabled;
        self
    }

    /// Appends command-line arguments for `redis-server`, such as
    /// `["--maxmemory", "10mb"]`.
    ///
    /// They come after the testkit's own arguments, so for single-valued settings they win.
    /// Calling this again appends more.
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Also requires port + 10000 to be free, for the Redis Cluster bus.
    pub(crate) fn cluster_bus(mut self) -> Self {
        self.cluster_bus = true;
        self
    }

    /// Starts the server and waits until it answers.
    ///
    /// # Panics
    ///
    /// If `redis-server` cannot be found, or does not answer within 10 seconds; the message
    /// includes the tail of the server's log.
    pub fn start(self) -> TestRedis {
        let dir = tempfile::Builder::new()
            .prefix("tickq-redis-")
            .tempdir()
            .expect("creating a temporary directory for redis-server");
        let certs = match (self.tls, self.shared_certs) {
            (None, _) => None,
            (Some(_), Some(shared)) => Some(shared),
            (Some(_), None) => Some(Arc::new(TestCerts::generate())),
        };
        let socket = dir.path().join("redis.sock");
        let listener = if let Some(tls) = self.tls {
            Listener::Tls {
                port: process::free_port(self.cluster_bus),
                socket,
                client_certs: matches!(tls, Tls::ClientCerts),
            }
        } else if self.tcp {
            Listener::Tcp(process::free_port(self.cluster_bus))
        } else {
            assert!(
                socket.as_os_str().len() <= MAX_UNIX_SOCKET_PATH,
                "unix socket path {} is too long for the OS; set TMPDIR to a shorter directory",
                socket.display()
            );
            Listener::Unix(socket)
        };

        let appendonly = if self.appendonly { "yes" } else { "no" };
        // `--save ""`: no RDB snapshots. Durability comes from the append-only file alone,
        // and background saves would only add fork noise to the tests.
        let mut config: Vec<OsString> = [
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            appendonly,
            "--appendfsync",
            "always",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        config.extend([
            "--dir".into(),
            dir.path().into(),
            "--logfile".into(),
            dir.path().join(LOG_FILE).into(),
        ]);
        if let Some(certs) = &certs {
            config.extend([
                "--tls-cert-file".into(),
                certs.server_cert().into(),
                "--tls-key-file".into(),
                certs.server_key().into(),
                "--tls-ca-cert-file".into(),
                certs.ca().into(),
            ]);
        }

        let mut redis = TestRedis {
            binary: server_binary(),
            config,
            extra_args: self.extra_args,
            listener,
            child: None,
            paused: false,
            certs,
            dir,
        };
        let attempts = if self.tcp || self.tls.is_some() {
            TCP_START_ATTEMPTS
        } else {
            1
        };
        for attempt in 1..=attempts {
            match redis.launch() {
                Ok(()) => break,
                // Most likely another process took the port before redis-server bound it.
                Err(StartError::Exited(_)) if attempt < attempts => {
                    redis
                        .listener
                        .new_port(process::free_port(self.cluster_bus));
                }
                Err(err) => redis.fail(&err.to_string()),
            }
        }
        redis
    }
}

/// A `redis-server` process owned by one test, in its own temporary directory.
///
/// Dropping it kills the server (`SIGKILL`), reaps it and removes the directory.
///
/// The fault-injection methods ([`restart`](Self::restart), [`kill`](Self::kill),
/// [`start_again`](Self::start_again), [`pause`](Self::pause), [`resume`](Self::resume))
/// keep the address and the data directory, so clients can reconnect to the same URL.
#[derive(Debug)]
pub struct TestRedis {
    binary: OsString,
    config: Vec<OsString>,
    extra_args: Vec<OsString>,
    listener: Listener,
    /// `None` after `kill`.
    child: Option<Child>,
    paused: bool,
    /// The private CA and certificates of a TLS server.
    certs: Option<Arc<TestCerts>>,
    // Last, so that the directory outlives the process in `Drop`.
    dir: TempDir,
}

#[derive(Debug)]
enum Listener {
    Unix(PathBuf),
    Tcp(u16),
    /// TLS on `port`, plain on the unix `socket` (for the testkit's own connections).
    Tls {
        port: u16,
        socket: PathBuf,
        client_certs: bool,
    },
}

#[derive(Debug)]
enum StartError {
    Exited(ExitStatus),
    NotReady,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited(status) => write!(f, "redis-server exited during startup ({status})"),
            Self::NotReady => write!(
                f,
                "redis-server did not answer PING within {} s",
                START_TIMEOUT.as_secs()
            ),
        }
    }
}

impl TestRedis {
    /// Starts a server on a unix socket with an fsync-always append-only file.
    ///
    /// Shorthand for `TestRedis::builder().start()`.
    ///
    /// # Panics
    ///
    /// See [`TestRedisBuilder::start`].
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// A builder, for TCP, no append-only file, or extra `redis-server` arguments.
    pub fn builder() -> TestRedisBuilder {
        TestRedisBuilder {
            tcp: false,
            appendonly: true,
            extra_args: Vec::new(),
            cluster_bus: false,
            tls: None,
            shared_certs: None,
        }
    }

    /// The URL clients connect to: `redis+unix:///tmp/…/redis.sock`,
    /// `redis://127.0.0.1:PORT` or (TLS) `rediss://127.0.0.1:PORT`. It does not change across
    /// restarts.
    pub fn url(&self) -> String {
        match &self.listener {
            Listener::Unix(path) => unix_url(path),
            Listener::Tcp(port) => format!("redis://127.0.0.1:{port}"),
            Listener::Tls { port, .. } => format!("rediss://127.0.0.1:{port}"),
        }
    }

    /// The URL of the plain unix socket a TLS server also listens on, or [`url`](Self::url)
    /// for any other server: what [`client`](Self::client) connects to.
    pub fn plain_url(&self) -> String {
        match &self.listener {
            Listener::Tls { socket, .. } => unix_url(socket),
            _ => self.url(),
        }
    }

    /// The TCP port (also of a TLS server), or `None` for a server on a unix socket.
    pub fn port(&self) -> Option<u16> {
        match self.listener {
            Listener::Unix(_) => None,
            Listener::Tcp(port) | Listener::Tls { port, .. } => Some(port),
        }
    }

    /// The private CA and certificates of a server started with
    /// [`TestRedisBuilder::tls`] or [`TestRedisBuilder::tls_client_certs`].
    pub fn certs(&self) -> Option<&TestCerts> {
        self.certs.as_deref()
    }

    /// The server's working directory: append-only file, `redis.log`, and
    /// `redis.stdio.log` (stdout and stderr).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client for this server (over its plain unix socket for a TLS server).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.plain_url()).expect("the testkit's URL is valid for redis-rs")
    }

    /// A new multiplexed async connection. Needs a tokio runtime.
    ///
    /// # Panics
    ///
    /// If connecting fails.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        // Setup writes can be large (a pipeline of thousands of commands) and the machine
        // busy: a reply may take longer than redis-rs' default response timeout (500 ms).
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(30)));
        self.client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap_or_else(|err| panic!("connecting to {}: {err}", self.url()))
    }

    /// A new blocking connection, handy for setting up and asserting on state.
    ///
    /// # Panics
    ///
    /// If connecting fails or takes more than 10 seconds (for example while paused).
    pub fn sync_conn(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .unwrap_or_else(|err| panic!("connecting to {}: {err}", self.url()))
    }

    /// The process id of the running server. It changes on every restart.
    ///
    /// # Panics
    ///
    /// If the server was killed and not started again.
    pub fn pid(&self) -> u32 {
        self.running().id()
    }

    /// Whether a server process exists, paused or not; false after [`kill`](Self::kill).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the server is stopped by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Shuts the server down gracefully (`SIGTERM`: the append-only file is fsynced and
    /// closed), starts it again on the same address and data directory, and waits until
    /// it answers. Resumes a paused server first; starts a killed one.
    ///
    /// # Panics
    ///
    /// If the server does not exit within 10 seconds or does not come back.
    pub fn restart(&mut self) {
        if self.paused {
            self.resume();
        }
        if let Some(mut child) = self.child.take() {
            process::signal(&child, libc::SIGTERM);
            if process::wait_exit(&mut child, Instant::now() + STOP_TIMEOUT).is_none() {
                process::kill_and_reap(&mut child);
                self.fail(&format!(
                    "redis-server did not exit within {} s of SIGTERM",
                    STOP_TIMEOUT.as_secs()
                ));
            }
        }
        self.relaunch();
    }

    /// Kills the server with `SIGKILL` (also when paused) and reaps it, like a crash or
    /// an OOM kill. Writes acknowledged before are on disk with the default
    /// `appendfsync always`.
    ///
    /// # Panics
    ///
    /// If the server is not running.
    pub fn kill(&mut self) {
        let mut child = self
            .child
            .take()
            .expect("kill(): redis-server is not running");
        process::kill_and_reap(&mut child);
        self.paused = false;
    }

    /// Starts the server again after [`kill`](Self::kill), on the same address and data
    /// directory, and waits until it has loaded its data and answers.
    ///
    /// # Panics
    ///
    /// If the server is already running, or does not come back.
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "start_again(): redis-server is already running; use restart()"
        );
        self.relaunch();
    }

    /// Stalls the server with `SIGSTOP`, and returns once it is stopped. Connections stay
    /// open and new ones are still accepted by the kernel, but nothing is answered: clients
    /// see timeouts, not errors. Pausing a paused server does nothing.
    ///
    /// # Panics
    ///
    /// If the server is not running.
    pub fn pause(&mut self) {
        if self.paused {
            return;
        }
        let child = self.running();
        process::signal(child, libc::SIGSTOP);
        if let Err(err) = process::wait_stopped(child, Instant::now() + STOP_TIMEOUT) {
            self.fail(&err);
        }
        self.paused = true;
    }

    /// Continues a server stalled by [`pause`](Self::pause) (`SIGCONT`). Does nothing if
    /// it is not paused.
    pub fn resume(&mut self) {
        if self.paused {
            process::signal(self.running(), libc::SIGCONT);
            self.paused = false;
        }
    }

    fn running(&self) -> &Child {
        self.child
            .as_ref()
            .expect("redis-server is not running (killed and not started again)")
    }

    fn relaunch(&mut self) {
        if let Err(err) = self.launch() {
            self.fail(&err.to_string());
        }
    }

    /// Spawns redis-server and waits until this very process answers.
    fn launch(&mut self) -> Result<(), StartError> {
        let stdio = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(STDIO_FILE))
            .expect("opening redis-server's stdio log");
        let mut command = Command::new(&self.binary);
        command
            .args(&self.config)
            .args(self.listener.args())
            .args(&self.extra_args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(clone_file(&stdio))
            .stderr(stdio);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                panic!("{}", not_found_message(&self.binary))
            }
            Err(err) => panic!("spawning {}: {err}", self.binary.to_string_lossy()),
        };
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.listener.answers_as(pid) {
                return Ok(());
            }
            let child = self.child.as_mut().expect("just spawned");
            if let Some(status) = child.try_wait().expect("try_wait on redis-server") {
                self.child = None;
                return Err(StartError::Exited(status));
            }
            if Instant::now() >= deadline {
                process::kill_and_reap(child);
                self.child = None;
                return Err(StartError::NotReady);
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn fail(&self, reason: &str) -> ! {
        let dir = self.dir.path();
        panic!(
            "{reason}\n  url: {url}\n  command: {command}\n\
             --- {LOG_FILE} (last {LOG_TAIL_LINES} lines) ---\n{log}\n\
             --- stdout/stderr (last {LOG_TAIL_LINES} lines) ---\n{stdio}",
            url = self.url(),
            command = self.command_line(),
            log = process::tail(&dir.join(LOG_FILE), LOG_TAIL_LINES),
            stdio = process::tail(&dir.join(STDIO_FILE), LOG_TAIL_LINES),
        );
    }

    fn command_line(&self) -> String {
        let mut line = self.binary.to_string_lossy().into_owned();
        let listener_args = self.listener.args();
        let args = self
            .config
            .iter()
            .chain(&listener_args)
            .chain(&self.extra_args);
        for arg in args {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(' ') {
                write!(line, " {arg:?}").expect("writing to a String");
            } else {
                write!(line, " {arg}").expect("writing to a String");
            }
        }
        line
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused {
                // Errors are ignored: panicking in drop could abort a test that is already
                // unwinding, and SIGKILL ends a stopped process anyway.
                let _ = process::try_signal(&child, libc::SIGCONT);
            }
            process::kill_and_reap(&mut child);
        }
    }
}

impl Listener {
    fn args(&self) -> Vec<OsString> {
        match self {
            Self::Unix(path) => vec![
                "--port".into(),
                "0".into(),
                "--unixsocket".into(),
                path.into(),
                "--unixsocketperm".into(),
                "700".into(),
            ],
            Self::Tcp(port) => vec![
                "--port".into(),
                port.to_string().into(),
                "--bind".into(),
                "127.0.0.1".into(),
            ],
            Self::Tls {
                port,
                socket,
                client_certs,
            } => vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string().into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--tls-auth-clients".into(),
                if *client_certs { "yes" } else { "no" }.into(),
                "--unixsocket".into(),
                socket.into(),
                "--unixsocketperm".into(),
                "700".into(),
            ],
        }
    }

    fn new_port(&mut self, new: u16) {
        match self {
            Self::Tcp(port) | Self::Tls { port, .. } => *port = new,
            Self::Unix(_) => {}
        }
    }

    /// Whether redis-server with process id `pid` answers here with its data loaded.
    ///
    /// Checking the pid matters for TCP: if another process grabbed our port first, our
    /// server is about to exit and whatever answers is someone else's.
    fn answers_as(&self, pid: u32) -> bool {
        let answer = match self {
            // A TLS server's plain socket answers only once the TLS port is bound too.
            Self::Unix(path) | Self::Tls { socket: path, .. } => UnixStream::connect(path)
                .and_then(|stream| {
                    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
                    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
                    probe(stream, pid)
                }),
            Self::Tcp(port) => {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
                TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).and_then(|stream| {
                    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
                    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
                    probe(stream, pid)
                })
            }
        };
        answer.unwrap_or(false)
    }
}

/// Speaks RESP by hand rather than through redis-rs, so readiness does not depend on the
/// client's connection handshake.
fn probe(mut stream: impl Read + Write, pid: u32) -> io::Result<bool> {
    // INFO is served while the append-only file is still loading; PING is not (-LOADING),
    // so a PONG means the data set is there.
    stream.write_all(b"PING\r\nINFO server\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line != "+PONG\r\n" {
        return Ok(false);
    }
    line.clear();
    reader.read_line(&mut line)?;
    let Some(len) = line
        .strip_prefix('$')
        .and_then(|len| len.trim_end().parse::<usize>().ok())
    else {
        return Ok(false);
    };
    let mut info = vec![0; len];
    reader.read_exact(&mut info)?;
    let expected = format!("process_id:{pid}");
    Ok(String::from_utf8_lossy(&info)
        .lines()
        .any(|line| line == expected))
}

/// `redis+unix://` followed by the percent-encoded absolute path; redis-rs decodes it with
/// `Url::to_file_path`.
fn unix_url(path: &Path) -> String {
    let mut url = String::from("redis+unix://");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            write!(url, "%{byte:02X}").expect("writing to a String");
        }
    }
    url
}

pub(crate) fn server_binary() -> OsString {
    std::env::var_os(REDIS_SERVER_ENV)
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| "redis-server".into())
}

fn not_found_message(binary: &OsStr) -> String {
    match std::env::var_os(REDIS_SERVER_ENV).filter(|path| !path.is_empty()) {
        Some(_) => format!(
            "redis-server not found at {} (from {REDIS_SERVER_ENV}); point {REDIS_SERVER_ENV} \
             at a redis-server binary, or unset it to use the one on PATH",
            binary.to_string_lossy()
        ),
        None => format!(
            "redis-server not found on PATH; install it with `apt-get install redis-server` \
             (or set {REDIS_SERVER_ENV} to its path)"
        ),
    }
}

fn clone_file(file: &File) -> File {
    file.try_clone().expect("duplicating a file descriptor")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_url_round_trips_through_redis_rs() {
        let path = Path::new("/tmp/dir with spaces/%odd#/redis.sock");
        let url = unix_url(path);
        assert_eq!(
            url,
            "redis+unix:///tmp/dir%20with%20spaces/%25odd%23/redis.sock"
        );
        let client = redis::Client::open(url).unwrap();
        assert_eq!(
            client.get_connection_info().addr(),
            &redis::ConnectionAddr::Unix(path.to_owned())
        );
    }
}
