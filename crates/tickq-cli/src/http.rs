//! The node's HTTP surface: `GET /healthz`, `GET /metrics`, and the JSON API and dashboard of
//! `tickq-web` (`/api/...`, `/`).
//!
//! Access: the listener is on loopback unless `[http] token` is set (config validation
//! enforces that). `/healthz` is always open, so load balancers can probe it; `/metrics` takes either
//! token (bearer or the dashboard's login cookie) when one is configured, checked by
//! `tickq-web` like the API's read routes (see docs/api.md).

use crate::metrics::Metrics;
use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Bind before anything else starts, so a taken port fails the node at once.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}; is another tickq server using it? choose another with --listen")
    })
}

/// Who may use the node's HTTP surface.
pub struct Access {
    pub token: Option<String>,
    pub read_token: Option<String>,
}

fn router(metrics: Metrics, client: tickq::Client, access: Access) -> Router {
    let options = tickq_web::WebOptions {
        token: access.token,
        read_token: access.read_token,
    };
    let metrics = Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(tickq_web::readers_only(metrics, &options))
        .merge(tickq_web::router(client, options))
}

async fn render_metrics(State(metrics): State<Metrics>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render().await,
    )
        .into_response()
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    client: tickq::Client,
    access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics, client, access))
        .with_graceful_shutdown(shutdown)
        .await
}
