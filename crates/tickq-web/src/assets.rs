//! The dashboard: static files embedded in the binary (no build step, no CDN), served at `/`
//! and `/assets/...`. Every other path that is not under `/api` answers `index.html`, so the
//! page's own routes survive a reload and can be bookmarked.

use crate::error::ApiError;
use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// (path under `/assets/`, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
];

const INDEX: &[u8] = include_bytes!("../assets/index.html");

pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().fallback(serve)
}

async fn serve(uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return ApiError::not_found(format!("no route {path}; GET /api/openapi.json lists them"))
            .into_response();
    }
    if let Some(name) = path.strip_prefix("/assets/") {
        return match FILES.iter().find(|(n, _, _)| *n == name) {
            Some((_, kind, bytes)) => (
                [
                    (header::CONTENT_TYPE, *kind),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                *bytes,
            )
                .into_response(),
            None => (StatusCode::NOT_FOUND, "no such file").into_response(),
        };
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}
