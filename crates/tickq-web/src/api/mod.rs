//! The `/api` routes. Each file holds the handlers of one resource; [`routes`] lists them all,
//! and the OpenAPI document is built from that same list, so the two cannot disagree.

mod cluster;
mod flows;
mod jobs;
mod queues;
mod responses;
mod schedules;
mod session;

use crate::error::{ApiError, ErrorBody};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tickq",
        description = "tickq's HTTP API: every document is the one the CLI prints with --json. \
                       See docs/api.md for auth, errors and live updates."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// `Authorization: Bearer TOKEN` (or the login cookie), on every route but the session ones.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route, with its OpenAPI description.
pub(crate) fn routes() -> OpenApiRouter<Arc<crate::AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(session::openapi_json))
        .routes(routes!(session::whoami))
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(queues::stats))
        .routes(routes!(queues::queues))
        .routes(routes!(jobs::jobs, jobs::enqueue))
        .routes(routes!(queues::pause_queue))
        .routes(routes!(queues::resume_queue))
        .routes(routes!(queues::queue_limits, queues::set_queue_limits))
        .routes(routes!(queues::queue_shards))
        .routes(routes!(queues::purge_queue))
        .routes(routes!(jobs::bulk))
        .routes(routes!(jobs::job, jobs::delete_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(jobs::kill_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(schedules::schedules))
        .routes(routes!(schedules::trigger_schedule))
        .routes(routes!(schedules::pause_schedule))
        .routes(routes!(schedules::resume_schedule))
        .routes(routes!(flows::flows))
        .routes(routes!(flows::flow))
        .routes(routes!(flows::cancel_flow))
        .routes(routes!(flows::retry_flow))
        .routes(routes!(cluster::nodes))
        .routes(routes!(cluster::locks))
        .routes(routes!(cluster::history))
        .routes(routes!(cluster::events))
}

/// A route that exists, with a method it does not take.
pub(crate) async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "invalid_argument",
        format!(
            "{} does not take {method}; GET /api/openapi.json lists its methods",
            uri.path()
        ),
    )
}

/// A JSON body whose rejection is an [`ApiError`].
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state)
            .await
            .map_err(|e: JsonRejection| ApiError::from(e))?;
        Ok(Body(value))
    }
}

/// A query string whose rejection is an [`ApiError`].
pub(crate) struct Params<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|e: QueryRejection| ApiError::from(e))?;
        Ok(Params(value))
    }
}

/// Path parameters whose rejection is an [`ApiError`].
pub(crate) struct PathArgs<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e: PathRejection| ApiError::from(e))?;
        Ok(PathArgs(value))
    }
}

/// A DUR (`500ms`, `30s`, `5m`...) from a body or query field named `what`.
pub(crate) fn duration(what: &str, text: &str) -> Result<std::time::Duration, ApiError> {
    tickq::units::duration(text).map_err(|e| ApiError::invalid(format!("{what}: {e}")))
}

/// A TIME (RFC 3339 or Unix ms) from a body or query field named `what`.
pub(crate) fn time(what: &str, text: &str) -> Result<jiff::Timestamp, ApiError> {
    tickq::units::time(text).map_err(|e| ApiError::invalid(format!("{what}: {e}")))
}
