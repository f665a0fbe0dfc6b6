//! The node's HTTP surface. For now only `GET /healthz`; the JSON API, dashboard and metrics
//! join it here.

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Bind before anything else starts, so a taken port fails the node at once.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}; is another tickq server using it? choose another with --listen")
    })
}

fn router() -> Router {
    Router::new().route("/healthz", get(|| async { "ok" }))
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}
