//! `tickq server`: one node. Finds (or starts) Redis, runs a worker for the configured queues
//! with the built-in job kinds, serves HTTP if asked, and drains on SIGTERM/SIGINT.
//!
//! Must be awaited on the main thread (directly under `block_on`, not in a spawned task): the
//! embedded redis-server is tied to the thread that spawns it (see `embedded.rs`).

use crate::config::{RedisOrigin, ServerConfig};
use crate::embedded::{self, EmbeddedRedis};
use crate::{exec_kind, http};
use anyhow::Context as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tickq::Worker;
use tokio::sync::watch;

pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    // Signal handlers go in first: a SIGTERM during startup must stop the node cleanly (and
    // any redis-server it started), not kill it with Redis left running.
    let signals = Signals::install()?;
    let redis_url = tickq::redact_url(&config.redis.url);
    tracing::info!(
        node = %config.node,
        redis = %redis_url,
        redis_from = %config.redis.origin,
        queues = ?config.queues,
        concurrency = config.concurrency,
        "tickq server starting"
    );
    announce(&config);

    let listener = match config.listen {
        Some(addr) => Some(http::bind(addr).await?),
        None => None,
    };

    let embedded = match config.redis.origin {
        RedisOrigin::Default { port } if !embedded::answers(port).await => {
            let redis = EmbeddedRedis::start(port, &config.data_dir).await?;
            tracing::info!(
                pid = redis.pid,
                address = %format!("127.0.0.1:{port}"),
                data = %redis.dir.display(),
                "no Redis at the default address and none configured: started an embedded \
                 redis-server (stopped when this node exits); pass --redis to use another"
            );
            Some(redis)
        }
        _ => None,
    };

    let result = serve(&config, listener, embedded.as_ref(), &signals).await;
    exec_kind::kill_leftovers();
    if let Some(redis) = embedded {
        redis.stop().await;
    }
    result
}

async fn serve(
    config: &ServerConfig,
    listener: Option<tokio::net::TcpListener>,
    embedded: Option<&EmbeddedRedis>,
    signals: &Signals,
) -> anyhow::Result<()> {
    let client = crate::commands::connect(&config.redis).await?;
    let mut builder = Worker::builder(&client)
        .node(&config.node)
        .concurrency(config.concurrency)
        // The exec kind needs its grace to go from SIGTERM to SIGKILL before its future is
        // dropped; dropping it early still kills the program, just without waiting.
        .stop_grace(exec_kind::KILL_GRACE + Duration::from_secs(1))
        .handler(
            exec_kind::KIND,
            exec_kind::handler(config.exec_allow.clone(), config.node.clone()),
        );
    for (queue, weight) in &config.queues {
        builder = builder.queue(queue, *weight);
    }
    let worker = builder.build().context("configuring the worker")?;
    let handle = worker.shutdown_handle();
    signals.drive(handle.clone());

    let redis_died = Arc::new(AtomicBool::new(false));
    if let Some(redis) = embedded {
        let exited = redis.exited();
        let (handle, died) = (handle.clone(), redis_died.clone());
        tokio::spawn(async move {
            let status = exited.await;
            tracing::error!(%status, "the embedded redis-server exited; stopping this node");
            died.store(true, Ordering::SeqCst);
            handle.force();
        });
    }

    let (stopped_tx, stopped_rx) = watch::channel(false);
    let http = listener.map(|listener| {
        tracing::info!(address = %config.listen.expect("listening"), "HTTP: GET /healthz");
        let mut stopped = stopped_rx.clone();
        tokio::spawn(http::serve(listener, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    });

    let result = worker.run().await;
    let _ = stopped_tx.send(true);
    if let Some(http) = http {
        match http.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server failed"),
            Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
            Ok(Ok(())) => {}
        }
    }
    let stats = worker.stats();
    tracing::info!(
        completed = stats.completed,
        failed = stats.failed,
        handed_back = stats.handed_back,
        "tickq server stopped"
    );
    result.context("the worker stopped with an error")?;
    if redis_died.load(Ordering::SeqCst) {
        anyhow::bail!(
            "the embedded redis-server exited unexpectedly; see its log in {}",
            embedded
                .map(|r| r.dir.display().to_string())
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Log what this node will and will not do.
fn announce(config: &ServerConfig) {
    if config.exec_allow.is_empty() {
        tracing::info!("exec jobs are off: no [exec] allow list in the config");
    } else {
        tracing::info!(allow = ?config.exec_allow, "exec jobs may run these programs");
        for program in &config.exec_allow {
            if !exec_kind::exists(program) {
                tracing::warn!(
                    program,
                    "[exec] allow names a program not found on this node"
                );
            }
        }
    }
    if !config.cron.is_empty() {
        let names: Vec<&str> = config.cron.iter().map(|c| c.name.as_str()).collect();
        tracing::warn!(
            schedules = ?names,
            "[[cron]] schedules are checked but not run by this version of tickq"
        );
    }
}

/// SIGTERM/SIGINT: the first drains, the second forces.
///
/// Registered up front rather than with `ShutdownHandle::on_signals`, which installs its
/// handlers in a spawned task after the worker exists: a signal before that would kill the
/// process with the default action, leaving an embedded redis-server behind.
struct Signals {
    count: watch::Receiver<u32>,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        let (tx, count) = watch::channel(0);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        Ok(Signals { count })
    }

    /// Apply signals (including any that came during startup) to the worker.
    fn drive(&self, handle: tickq::ShutdownHandle) {
        let mut count = self.count.clone();
        tokio::spawn(async move {
            if count.wait_for(|n| *n >= 1).await.is_err() {
                return;
            }
            tracing::info!("shutting down: finishing running jobs (signal again to force)");
            handle.shutdown();
            if count.wait_for(|n| *n >= 2).await.is_err() {
                return;
            }
            tracing::warn!("forced shutdown: handing running jobs back");
            handle.force();
        });
    }
}
