//! The embedded default: a `redis-server` the node starts itself when nobody gave a Redis
//! address and none answers at the default one (INTERFACE.md, "Finding Redis").

use anyhow::{Context as _, bail};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Replaying a large append-only file takes a while; a machine that is only slow should not
/// fail here.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A graceful redis-server shutdown rewrites nothing with AOF on, but fsyncs; bounded anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether anything accepts TCP connections at 127.0.0.1:`port`.
pub async fn answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// A running `redis-server` child. Stop it with [`EmbeddedRedis::stop`]; if it is dropped
/// instead (a panic), it is killed.
pub struct EmbeddedRedis {
    pub pid: u32,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    exited: watch::Receiver<Option<ExitStatus>>,
}

impl EmbeddedRedis {
    /// Start `redis-server` on 127.0.0.1:`port` with its data in `data_dir/redis`, and wait
    /// until it answers PING.
    pub async fn start(port: u16, data_dir: &Path) -> anyhow::Result<EmbeddedRedis> {
        let binary = find_redis_server().ok_or_else(|| {
            anyhow::anyhow!(
                "no Redis at redis://127.0.0.1:{port} and no `redis-server` on PATH to start \
                 one; install Redis (Debian/Ubuntu: `apt-get install redis-server`, macOS: \
                 `brew install redis`) or pass --redis URL"
            )
        })?;
        let dir = std::path::absolute(data_dir.join("redis"))
            .with_context(|| format!("resolving the data directory {}", data_dir.display()))?;
        std::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "creating the Redis data directory {}; choose another with --data",
                dir.display()
            )
        })?;
        let log = dir.join("redis.log");
        let mut cmd = tokio::process::Command::new(&binary);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--appendonly", "yes", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Ctrl-C in a terminal signals the whole foreground group,
            // and Redis must outlive the node's graceful drain, not die with the keypress.
            .process_group(0)
            .kill_on_drop(true);
        // A node killed with -9 takes its Redis with it: nothing else would ever stop it.
        crate::child::die_with_parent(&mut cmd, libc::SIGTERM);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("redis-server exited at once")?;

        // One task owns the child: it reports an unexpected exit, or stops it when asked.
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (exit_tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = stop_rx => {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                    match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
                        Ok(status) => status,
                        Err(_) => {
                            tracing::warn!(pid, "redis-server did not stop in time; killing it");
                            let _ = child.kill().await;
                            child.wait().await
                        }
                    }
                }
            };
            let _ = exit_tx.send(Some(status.unwrap_or_default()));
        });
        let redis = EmbeddedRedis {
            pid,
            dir,
            stop: Some(stop_tx),
            exited,
        };
        if let Err(e) = redis.wait_ready(port).await {
            let tail = log_tail(&log);
            redis.stop().await;
            bail!("{e}; its log ({}) ends with:\n{tail}", log.display());
        }
        Ok(redis)
    }

    async fn wait_ready(&self, port: u16) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = *self.exited.borrow() {
                bail!("redis-server exited during startup ({status})");
            }
            if ping(port).await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "redis-server did not answer within {} s",
                    START_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resolves if redis-server exits without being asked to.
    pub fn exited(&self) -> impl Future<Output = ExitStatus> + Send + 'static {
        let mut exited = self.exited.clone();
        async move {
            let status = exited
                .wait_for(Option::is_some)
                .await
                .map(|status| status.unwrap_or_default());
            match status {
                Ok(status) => status,
                // The owner task is gone: the runtime is shutting down.
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// SIGTERM, wait for it to exit (SIGKILL after a timeout).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.exited.wait_for(Option::is_some).await;
        tracing::info!(pid = self.pid, "embedded redis-server stopped");
    }
}

impl Drop for EmbeddedRedis {
    fn drop(&mut self) {
        if self.stop.is_some() && self.exited.borrow().is_none() {
            // Not stopped on purpose (a panic): do not leave it behind.
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

fn find_redis_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.ok()?;
        conn.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).await.ok()?;
        // While loading its data set Redis answers -LOADING; only +PONG means ready.
        Some(buf[..n].starts_with(b"+PONG"))
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
        Ok(Some(true))
    )
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}
