//! tickq's HTTP API and dashboard as an [`axum::Router`]: `tickq server` serves it, and any
//! Rust service that embeds tickq can mount the same router.
//!
//! Every `/api` route is a thin layer over [`tickq::Inspector`] (and [`tickq::Client`] for
//! enqueues): parse the path, query and body, call the library, send its typed document, the
//! same one the CLI prints with `--json`. Errors are JSON with a status decided in one place
//! ([`ApiError`]). The routes, their parameters and their documents are described by an
//! OpenAPI 3.1 document built from the same code ([`openapi`], served at
//! `GET /api/openapi.json`). The contract is `docs/api.md`.
//!
//! | module | job |
//! | --- | --- |
//! | `api/` | the routes, one file per resource |
//! | `auth` | tokens, the login cookie, the same-site check |
//! | `events` | `GET /api/events`: one Redis subscription per server, coalesced SSE batches |
//! | `assets` | the dashboard's static files, embedded in the binary |
//! | `error` | errors as JSON |
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = tickq::Client::connect("redis://127.0.0.1:6379").await?;
//! let app = tickq_web::router(client, tickq_web::WebOptions::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7700").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod api;
mod assets;
mod auth;
mod error;
mod events;

pub use auth::Role;
pub use error::ApiError;

use axum::Router;
use std::sync::Arc;
use tickq::{Client, Inspector};

/// Who may use the API.
#[derive(Debug, Clone, Default)]
pub struct WebOptions {
    /// The operator token (read and act): `[http] token`. Default: none.
    pub token: Option<String>,
    /// The read-only token: `[http] read_token`. Default: none.
    ///
    /// With neither token, everyone who reaches the listener reads and acts: serve it on a
    /// loopback address only (`tickq server` refuses any other without a token).
    pub read_token: Option<String>,
}

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) client: Client,
    pub(crate) inspector: Inspector,
    pub(crate) auth: auth::Auth,
    pub(crate) hub: Arc<events::Hub>,
}

pub(crate) type State = axum::extract::State<Arc<AppState>>;

/// The API under `/api` and the dashboard at `/`.
pub fn router(client: Client, options: WebOptions) -> Router {
    let auth = auth::Auth::new(options.token.as_deref(), options.read_token.as_deref());
    let state = Arc::new(AppState {
        inspector: client.inspector(),
        hub: events::Hub::new(client.clone()),
        client,
        auth: auth.clone(),
    });
    let (api, _) = api::routes().split_for_parts();
    // Paths under /api that no route takes are answered by the assets' fallback (one
    // fallback per router: axum cannot merge two).
    let api = api
        .method_not_allowed_fallback(api::no_method)
        .layer(axum::middleware::from_fn_with_state(auth, auth::guard))
        .with_state(state);
    Router::new().merge(api).merge(assets::router())
}

/// `routes` guarded like the API's read routes: any valid credential (either token, as a
/// bearer token or through the login cookie) reaches them, or everyone when no token is set.
/// `tickq server` serves its `/metrics` this way, so there is one place that checks tokens.
pub fn readers_only(routes: Router, options: &WebOptions) -> Router {
    let auth = auth::Auth::new(options.token.as_deref(), options.read_token.as_deref());
    routes.layer(axum::middleware::from_fn_with_state(
        auth,
        auth::require_reader,
    ))
}

/// The OpenAPI 3.1 document of every `/api` route (what `GET /api/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::routes().split_for_parts().1
}
