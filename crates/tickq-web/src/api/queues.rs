//! Queues: counts, the shards of a sharded queue, pause and resume, limits, purge.

use super::responses::{Acting, BadInput, Reading};
use super::{Body, Params, PathArgs};
use crate::State;
use crate::auth::{Operator, Reader};
use crate::error::ApiError;
use axum::Json;
use serde::Deserialize;
use tickq::{JobState, Purged, QueueLimitsView, QueuePaused, ShardCounts, Stats};

/// Every queue with its counts by state, totals, pause and limits (`tickq stats --json`).
#[utoipa::path(get, path = "/api/stats", tag = "queues",
    responses((status = 200, description = "OK", body = Stats), Reading))]
pub(crate) async fn stats(state: State, _: Reader) -> Result<Json<Stats>, ApiError> {
    Ok(Json(state.inspector.stats().await?))
}

/// The queues with their counts, limits and pause (the same document as `/api/stats`).
#[utoipa::path(get, path = "/api/queues", tag = "queues",
    responses((status = 200, description = "OK", body = Stats), Reading))]
pub(crate) async fn queues(state: State, _: Reader) -> Result<Json<Stats>, ApiError> {
    Ok(Json(state.inspector.stats().await?))
}

/// Pause a queue: no worker starts another of its jobs.
#[utoipa::path(post, path = "/api/queues/{queue}/pause", tag = "queues",
    params(("queue" = String, Path, description = "The queue")),
    responses((status = 200, description = "OK", body = QueuePaused), BadInput, Acting))]
pub(crate) async fn pause_queue(
    state: State,
    _: Operator,
    PathArgs(queue): PathArgs<String>,
) -> Result<Json<QueuePaused>, ApiError> {
    Ok(Json(state.inspector.pause_queue(&queue).await?))
}

/// Resume a paused queue.
#[utoipa::path(post, path = "/api/queues/{queue}/resume", tag = "queues",
    params(("queue" = String, Path, description = "The queue")),
    responses((status = 200, description = "OK", body = QueuePaused), BadInput, Acting))]
pub(crate) async fn resume_queue(
    state: State,
    _: Operator,
    PathArgs(queue): PathArgs<String>,
) -> Result<Json<QueuePaused>, ApiError> {
    Ok(Json(state.inspector.resume_queue(&queue).await?))
}

/// Each physical queue of a sharded queue with its counts and Cluster hash slot: the base
/// queue (jobs from before it was sharded), then shard 0, 1, ... (`tickq queue shards --json`).
/// A queue without shards answers one entry.
#[utoipa::path(get, path = "/api/queues/{queue}/shards", tag = "queues",
    params(("queue" = String, Path, description = "The queue")),
    responses((status = 200, description = "OK", body = Vec<ShardCounts>), BadInput, Reading))]
pub(crate) async fn queue_shards(
    state: State,
    _: Reader,
    PathArgs(queue): PathArgs<String>,
) -> Result<Json<Vec<ShardCounts>>, ApiError> {
    Ok(Json(state.inspector.shards(&queue).await?))
}

/// A queue's concurrency and rate limits.
#[utoipa::path(get, path = "/api/queues/{queue}/limits", tag = "queues",
    params(("queue" = String, Path, description = "The queue")),
    responses((status = 200, description = "OK", body = QueueLimitsView), BadInput, Reading))]
pub(crate) async fn queue_limits(
    state: State,
    _: Reader,
    PathArgs(queue): PathArgs<String>,
) -> Result<Json<QueueLimitsView>, ApiError> {
    Ok(Json(state.inspector.limits(&queue).await?))
}

/// A change of limits: a field that is present replaces that limit (`null` removes it); a
/// field left out keeps it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsChange {
    /// Most jobs of the queue active at once, across every node.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    concurrency: Option<Option<u32>>,
    /// Most starts per interval: `JOBS/DUR`, e.g. `50/1s`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    rate: Option<Option<String>>,
}

/// `Some(None)` for an explicit null, so that "left out" and "null" differ.
fn present<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Change a queue's limits, for every node at once.
#[utoipa::path(put, path = "/api/queues/{queue}/limits", tag = "queues", request_body = LimitsChange,
    params(("queue" = String, Path, description = "The queue")),
    responses((status = 200, description = "OK", body = QueueLimitsView), BadInput, Acting))]
pub(crate) async fn set_queue_limits(
    state: State,
    _: Operator,
    PathArgs(queue): PathArgs<String>,
    Body(change): Body<LimitsChange>,
) -> Result<Json<QueueLimitsView>, ApiError> {
    let rate = change
        .rate
        .map(|r| r.map(|text| tickq::units::rate(&text)).transpose())
        .transpose()
        .map_err(|e| ApiError::invalid(format!("rate: {e}")))?;
    let change = tickq::LimitsChange {
        concurrency: change.concurrency,
        rate,
    };
    Ok(Json(state.inspector.change_limits(&queue, change).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurgeQuery {
    /// The state whose jobs to delete (not `active`).
    state: String,
}

/// Delete every job of a queue in one state (active jobs are refused: cancel them).
#[utoipa::path(post, path = "/api/queues/{queue}/purge", tag = "queues",
    params(("queue" = String, Path, description = "The queue"), PurgeQuery),
    responses((status = 200, description = "OK", body = Purged), BadInput, Acting))]
pub(crate) async fn purge_queue(
    state: State,
    _: Operator,
    PathArgs(queue): PathArgs<String>,
    Params(q): Params<PurgeQuery>,
) -> Result<Json<Purged>, ApiError> {
    let job_state: JobState = q.state.parse()?;
    Ok(Json(state.inspector.purge(&queue, job_state).await?))
}
