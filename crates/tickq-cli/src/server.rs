//! `tickq server`: one node. Finds (or starts) Redis, registers the config's `[[cron]]`
//! schedules, runs a worker for the configured queues with the built-in job kinds and a
//! scheduler that fires every stored schedule, serves HTTP if asked, and drains on
//! SIGTERM/SIGINT.
//!
//! Must be awaited on the main thread (directly under `block_on`, not in a spawned task): the
//! embedded redis-server is tied to the thread that spawns it (see `embedded.rs`).

use crate::config::{CronTask, RedisOrigin, ServerConfig};
use crate::embedded::{self, EmbeddedRedis};
use crate::http;
use crate::kinds::{exec, flow, http as http_kind};
use anyhow::Context as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tickq::{Client, Scheduler, ShutdownHandle, Worker};
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
    exec::kill_leftovers();
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
    let client = crate::connect::connect(&config.redis).await?;
    startup_checks(&client, config).await;
    register_schedules(&client, config).await?;
    // Before the limits: a sharded queue's limits are split over its shards.
    for (queue, shards) in &config.shards {
        client
            .shard_queue(queue, *shards)
            .await
            .with_context(|| format!("declaring queue {queue} with {shards} shards"))?;
    }
    apply_limits(&client, config).await?;
    // Metrics are only readable over HTTP, so without a listener no recorder is installed
    // and the library's metrics stay no-ops.
    let metrics = match listener {
        Some(_) => Some(crate::metrics::Metrics::new(
            crate::metrics::install()?,
            client.inspector(),
        )),
        None => None,
    };

    let mut builder = Worker::builder(&client)
        .node(&config.node)
        .concurrency(config.concurrency)
        // The exec kind needs its grace to go from SIGTERM to SIGKILL before its future is
        // dropped; dropping it early still kills the program, just without waiting.
        .stop_grace(exec::KILL_GRACE + Duration::from_secs(1))
        .handler(
            exec::KIND,
            exec::handler(
                config.exec_allow.clone(),
                config.node.clone(),
                config.exec_secret.clone(),
            ),
        )
        .handler(http_kind::KIND, http_kind::handler()?)
        .handler(flow::KIND, flow::handler(client.clone()));
    if let Some(lease) = config.lease {
        // A dead node's jobs come back once their lease expired *and* a recoverer looked: with
        // a short lease, the default 5 s between looks would be most of the wait.
        builder = builder
            .lease(lease)
            .recover_interval(lease.min(Duration::from_secs(5)));
    }
    for (queue, weight) in &config.queues {
        let shards = config.shards.get(queue).copied().unwrap_or(1);
        builder = builder.sharded_queue(queue, *weight, shards);
    }
    // One handle stops the worker and the scheduler together.
    let handle = ShutdownHandle::default();
    let worker = builder
        .shutdown(handle.clone())
        .build()
        .context("configuring the worker")?;
    // Every node runs a scheduler, whatever its config says: schedules live in Redis, and a
    // tick fires once however many schedulers find it due (the fire script compare-and-sets
    // the schedule's next time). With no schedules it only looks at Redis now and then.
    let scheduler = Scheduler::builder(&client).shutdown(handle.clone()).build();
    signals.drive(handle.clone());

    let (stopped_tx, stopped_rx) = watch::channel(false);
    let redis_died = Arc::new(AtomicBool::new(false));
    if let Some(redis) = embedded {
        let exited = redis.exited();
        let (handle, died) = (handle.clone(), redis_died.clone());
        let mut stopped = stopped_rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                status = exited => {
                    tracing::error!(%status, "the embedded redis-server exited; stopping this node");
                    died.store(true, Ordering::SeqCst);
                    handle.force();
                }
                // The node stopped first: Redis is stopped on purpose after this.
                _ = stopped.wait_for(|s| *s) => {}
            }
        });
    }

    let http = listener.zip(metrics).map(|(listener, metrics)| {
        let address = config.listen.expect("listening");
        tracing::info!(
            %address,
            "HTTP: the dashboard at http://{address}/, the API under /api (docs/api.md), \
             GET /healthz, GET /metrics"
        );
        let mut stopped = stopped_rx.clone();
        tokio::spawn(http::serve(
            listener,
            metrics,
            client.clone(),
            http::Access {
                token: config.token.clone(),
                read_token: config.read_token.clone(),
            },
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ))
    });

    tracing::info!("scheduler started");
    // Both stop on the same signals; if either ends by itself (an error), the other is
    // stopped too, so the node never keeps running half of itself. The scheduler holds no
    // jobs, so stopping it needs no drain.
    let (result, scheduled) = tokio::join!(
        async {
            let result = worker.run().await;
            handle.shutdown();
            result
        },
        async {
            let result = scheduler.run().await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "the scheduler stopped; stopping this node");
                handle.shutdown();
            }
            result
        },
    );
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
        ticks_fired = scheduler.ticks_fired(),
        "tickq server stopped"
    );
    result.context("the worker stopped with an error")?;
    scheduled.context("the scheduler stopped with an error")?;
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
        if config.exec_secret.is_some() {
            tracing::info!("exec jobs must be signed with the configured [exec] secret");
        } else {
            tracing::info!("exec jobs are not checked for a signature: no [exec] secret");
        }
    }
}

/// `tickq doctor`'s checks, once, as warnings: a node runs on an unsound deployment (its
/// operator may know why), but says what is wrong and what to do.
async fn startup_checks(client: &Client, config: &ServerConfig) {
    let mut doctor = client.doctor();
    // An empty list is announced above already.
    if !config.exec_allow.is_empty() {
        doctor = doctor.exec_allow(&config.exec_allow);
    }
    match doctor.run().await {
        Ok(report) => {
            for finding in report.problems() {
                tracing::warn!(
                    check = ?finding.check,
                    severity = ?finding.severity,
                    fix = finding.fix.as_deref().unwrap_or(""),
                    "deployment check: {}",
                    finding.message
                );
            }
            if report.sound {
                tracing::info!("deployment checks passed (`tickq doctor` shows them)");
            }
        }
        Err(e) => tracing::warn!(error = %e, "the deployment checks could not run"),
    }
}

/// Set the config's `[limits.QUEUE]` in Redis. They hold for every node, so the last node to
/// start decides; queues the config does not name keep the limits they have.
async fn apply_limits(client: &Client, config: &ServerConfig) -> anyhow::Result<()> {
    let inspector = client.inspector();
    for (queue, limits) in &config.limits {
        let before = inspector.limits(queue).await?.limits;
        inspector
            .set_limits(queue, *limits)
            .await
            .with_context(|| format!("setting [limits.{queue}]"))?;
        if before != *limits {
            tracing::info!(queue, limits = %limits, was = %before, "[limits] set for every node");
        }
    }
    Ok(())
}

/// Create or update the config's `[[cron]]` schedules in Redis, and say what changed.
///
/// Nothing is removed: a schedule in Redis that this config does not name may belong to
/// another node's config (or to `tickq cron add`), and this node cannot tell which.
async fn register_schedules(client: &Client, config: &ServerConfig) -> anyhow::Result<()> {
    let worked: Vec<&str> = config.queues.iter().map(|(q, _)| q.as_str()).collect();
    for cron in &config.cron {
        // Signed here, not in the config: `config show` shows the schedule as written.
        let mut signed = cron.clone();
        if let Some(secret) = &config.exec_secret {
            signed.sign_exec(secret);
        }
        let outcome = client
            .upsert_schedule(&signed.to_schedule())
            .await
            .with_context(|| format!("registering [[cron]] schedule {}", cron.name))?;
        let outcome = outcome.as_str();
        tracing::info!(
            schedule = %cron.name,
            outcome = %outcome,
            cron = %cron.schedule,
            timezone = %cron.timezone,
            queue = %cron.queue,
            "[[cron]] schedule {outcome}"
        );
        if !worked.contains(&cron.queue.as_str()) {
            tracing::warn!(
                schedule = %cron.name,
                queue = %cron.queue,
                "this node does not work the schedule's queue; its jobs wait for a node that does"
            );
        }
        for task in &cron.tasks {
            if let CronTask::Exec { exec, .. } = task
                && let Some(program) = exec.cmd.first()
                && !config.exec_allow.contains(program)
            {
                tracing::warn!(
                    schedule = %cron.name,
                    program,
                    "the schedule runs a program that is not on this node's [exec] allow list; \
                     its jobs fail on this node"
                );
            }
        }
    }
    let mine: Vec<&str> = config.cron.iter().map(|c| c.name.as_str()).collect();
    let others: Vec<String> = client
        .inspector()
        .schedules()
        .await
        .context("listing schedules")?
        .schedules
        .into_iter()
        .map(|s| s.name)
        .filter(|name| !mine.contains(&name.as_str()))
        .collect();
    if !others.is_empty() {
        tracing::info!(
            schedules = ?others,
            "schedules in Redis that this node's config does not name are fired too and left \
             in place (another node's config may own them); remove one with `tickq cron rm NAME`"
        );
    }
    Ok(())
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

    /// Apply signals (including any that came during startup) to the worker and scheduler.
    fn drive(&self, handle: ShutdownHandle) {
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
