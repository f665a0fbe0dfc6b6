//! The node's HTTP surface: `GET /healthz`, `GET /metrics`, and the JSON API and dashboard of
//! `tickq-web` (`/api/...`, `/`).
//!
//! Access: the listener is on loopback unless `[http] token` is set (config validation
//! enforces that). `/healthz` is always open, so load balancers can probe it; `/metrics` needs
//! `Authorization: Bearer <token>` (either token) when one is configured; the API and the
//! dashboard check their own (see docs/api.md).

use crate::metrics::Metrics;
use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
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
    let tokens: Vec<Arc<str>> = access
        .token
        .iter()
        .chain(&access.read_token)
        .map(|t| Arc::from(t.as_str()))
        .collect();
    let guarded = Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics)
        .layer(middleware::from_fn_with_state(
            Arc::new(tokens),
            require_token,
        ));
    let web = tickq_web::router(
        client,
        tickq_web::WebOptions {
            token: access.token,
            read_token: access.read_token,
        },
    );
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(guarded)
        .merge(web)
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

async fn require_token(
    State(tokens): State<Arc<Vec<Arc<str>>>>,
    req: Request,
    next: Next,
) -> Response {
    if tokens.is_empty() {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if tokens.iter().any(|t| same(given.as_bytes(), t.as_bytes())) => {
            next.run(req).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong token: send `Authorization: Bearer <[http] token>`\n",
        )
            .into_response(),
    }
}

/// Compare without stopping at the first difference, so timing does not reveal the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn compares_tokens() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cret", b"s3cre"));
    }
}
