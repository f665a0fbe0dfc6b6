//! One shutdown handle for every part of a node (worker, scheduler, HTTP server), and the
//! signals that drive it.

use crate::{Error, Result};
use tokio_util::sync::CancellationToken;

/// Stops the parts of a node together: [`ShutdownHandle::shutdown`] drains gracefully,
/// [`ShutdownHandle::force`] hands running jobs back at once.
///
/// Make one and hand clones to every part ([`crate::WorkerBuilder::shutdown`],
/// [`crate::SchedulerBuilder::shutdown`], an HTTP server through
/// [`ShutdownHandle::stopping`]), so one signal stops them all. Each part also makes its own
/// when given none.
#[derive(Clone, Debug, Default)]
pub struct ShutdownHandle {
    graceful: CancellationToken,
    force: CancellationToken,
}

impl ShutdownHandle {
    /// Stop claiming, let running jobs finish (up to the shutdown timeout), hand the rest back.
    pub fn shutdown(&self) {
        self.graceful.cancel();
    }

    /// Stop now: running jobs are stopped and handed back without charging an attempt.
    pub fn force(&self) {
        self.graceful.cancel();
        self.force.cancel();
    }

    pub(crate) fn graceful_token(&self) -> CancellationToken {
        self.graceful.clone()
    }

    pub(crate) fn force_token(&self) -> CancellationToken {
        self.force.clone()
    }

    /// Resolves once a shutdown was asked (graceful or forced): hand it to a server's
    /// graceful-shutdown hook, e.g. `axum::serve(..).with_graceful_shutdown(h.stopping())`.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let token = self.graceful.clone();
        async move { token.cancelled().await }
    }

    /// Whether a shutdown was asked.
    pub fn is_stopping(&self) -> bool {
        self.graceful.is_cancelled()
    }

    /// Shut down on the first SIGINT/SIGTERM, force on the second. The handlers are in place
    /// when this returns, so a signal right after it is not lost; call it inside a tokio
    /// runtime.
    pub fn on_signals(&self) -> Result<()> {
        let mut signals = Signals::install().map_err(|e| {
            Error::new(
                crate::ErrorKind::Unavailable,
                "could not install signal handlers",
            )
            .with_source(e)
        })?;
        let handle = self.clone();
        tokio::spawn(async move {
            signals.next().await;
            tracing::info!("shutting down: finishing running jobs (signal again to force)");
            handle.shutdown();
            signals.next().await;
            tracing::warn!("forced shutdown: handing running jobs back");
            handle.force();
        });
        Ok(())
    }
}

/// SIGTERM and SIGINT, registered up front.
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
