//! The whole system: nodes, locks, history, live events.

use super::responses::{BadInput, Reading};
use super::{Params, duration, time};
use crate::State;
use crate::auth::Reader;
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use axum::response::IntoResponse;
use serde::Deserialize;
use tickq::{History, HistoryQuery, LockList, NodeList};

/// The live nodes and the jobs each runs now (`tickq nodes --json`).
#[utoipa::path(get, path = "/api/nodes", tag = "system",
    responses((status = 200, description = "OK", body = NodeList), Reading))]
pub(crate) async fn nodes(state: State, _: Reader) -> Result<Json<NodeList>, ApiError> {
    Ok(Json(state.inspector.nodes().await?))
}

/// Locks held now, and those taken in the last week (`tickq lock ls --json`).
#[utoipa::path(get, path = "/api/locks", tag = "system",
    responses((status = 200, description = "OK", body = LockList), Reading))]
pub(crate) async fn locks(state: State, _: Reader) -> Result<Json<LockList>, ApiError> {
    Ok(Json(state.inspector.locks().await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryParams {
    /// One queue; default: every queue, summed.
    queue: Option<String>,
    /// Start (RFC 3339 or Unix ms); default: an hour before `to`.
    from: Option<String>,
    /// End; default: now.
    to: Option<String>,
    /// Width of a point, whole minutes (DUR); default 1m.
    step: Option<String>,
}

/// Per-minute counts kept in Redis for 8 days (`tickq history --json`).
#[utoipa::path(get, path = "/api/history", tag = "system", params(HistoryParams),
    responses((status = 200, description = "OK", body = History), BadInput, Reading))]
pub(crate) async fn history(
    state: State,
    _: Reader,
    Params(p): Params<HistoryParams>,
) -> Result<Json<History>, ApiError> {
    let query = HistoryQuery {
        queue: p.queue.filter(|q| !q.is_empty()),
        from: p.from.map(|t| time("from", &t)).transpose()?,
        to: p.to.map(|t| time("to", &t)).transpose()?,
        step: p.step.map(|d| duration("step", &d)).transpose()?,
    };
    Ok(Json(state.inspector.history(&query).await?))
}

/// Server-Sent Events: `counts` (the `/api/stats` document, when a count changed, at most
/// once a second), `jobs` (job state changes, coalesced, at most four batches a second) and
/// `gap` (changes were missed: re-read).
#[utoipa::path(get, path = "/api/events", tag = "system",
    responses((status = 200, description = "An event stream", content_type = "text/event-stream"),
              (status = 401, description = "Missing or wrong credentials", body = ErrorBody)))]
pub(crate) async fn events(state: State, _: Reader) -> impl IntoResponse {
    state.hub.stream().await
}
