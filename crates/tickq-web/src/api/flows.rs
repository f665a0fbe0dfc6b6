//! Workflows: the list, one with its steps (the dashboard draws its DAG from this document), cancel,
//! retry.

use super::responses::{Acting, BadInput, NotFound, Reading};
use super::{Params, PathArgs};
use crate::State;
use crate::auth::{Operator, Reader};
use crate::error::ApiError;
use axum::Json;
use serde::Deserialize;
use tickq::{FlowCancelled, FlowInfo, FlowList, FlowRetried};

/// Which workflows to list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowsQuery {
    /// Only the workflows whose home is this queue (where they are listed even when some of
    /// their steps are in other queues); default: every queue's.
    queue: Option<String>,
    /// At most this many, 1 to 1000; default 50.
    limit: Option<usize>,
}

/// Workflows, newest first: those running and the finished ones within their retention
/// (`tickq flow ls --json`).
#[utoipa::path(get, path = "/api/flows", tag = "flows",
    params(FlowsQuery),
    responses((status = 200, description = "OK", body = FlowList), BadInput, Reading))]
pub(crate) async fn flows(
    state: State,
    _: Reader,
    Params(q): Params<FlowsQuery>,
) -> Result<Json<FlowList>, ApiError> {
    let queue = q.queue.filter(|s| !s.is_empty());
    Ok(Json(
        state
            .inspector
            .flows(queue.as_deref(), q.limit.unwrap_or(50))
            .await?,
    ))
}

/// A workflow and its steps, each with its state and the steps it runs after
/// (`tickq flow show ID --json`).
#[utoipa::path(get, path = "/api/flows/{id}", tag = "flows",
    params(("id" = String, Path, description = "The workflow id")),
    responses((status = 200, description = "OK", body = FlowInfo), BadInput, Reading, NotFound))]
pub(crate) async fn flow(
    state: State,
    _: Reader,
    PathArgs(id): PathArgs<String>,
) -> Result<Json<FlowInfo>, ApiError> {
    Ok(Json(state.inspector.flow(&id).await?))
}

/// Cancel a whole workflow: running steps are stopped, the others cancelled
/// (`tickq flow cancel ID --json`).
#[utoipa::path(post, path = "/api/flows/{id}/cancel", tag = "flows",
    params(("id" = String, Path, description = "The workflow id")),
    responses((status = 200, description = "OK", body = FlowCancelled), BadInput, Acting, NotFound))]
pub(crate) async fn cancel_flow(
    state: State,
    _: Operator,
    PathArgs(id): PathArgs<String>,
) -> Result<Json<FlowCancelled>, ApiError> {
    Ok(Json(state.inspector.cancel_flow(&id).await?))
}

/// Start a failed workflow's dead and cancelled steps over (`tickq flow retry ID --json`).
#[utoipa::path(post, path = "/api/flows/{id}/retry", tag = "flows",
    params(("id" = String, Path, description = "The workflow id")),
    responses((status = 200, description = "OK", body = FlowRetried), BadInput, Acting, NotFound))]
pub(crate) async fn retry_flow(
    state: State,
    _: Operator,
    PathArgs(id): PathArgs<String>,
) -> Result<Json<FlowRetried>, ApiError> {
    Ok(Json(state.inspector.retry_flow(&id).await?))
}
