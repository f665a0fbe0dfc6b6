//! Schedules: list, trigger, pause, resume.

use super::PathArgs;
use crate::State;
use crate::auth::{Operator, Reader};
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use tickq::{ScheduleList, SchedulePaused, ScheduleTriggered};

/// Every schedule with its next fire time (`tickq cron ls --json`).
#[utoipa::path(get, path = "/api/schedules", tag = "schedules",
    responses((status = 200, body = ScheduleList), (status = 401, body = ErrorBody)))]
pub(crate) async fn list(state: State, _: Reader) -> Result<Json<ScheduleList>, ApiError> {
    Ok(Json(state.inspector.schedules().await?))
}

/// Create the schedule's jobs now, outside its timetable.
#[utoipa::path(post, path = "/api/schedules/{name}/trigger", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses((status = 200, body = ScheduleTriggered), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn trigger(
    state: State,
    _: Operator,
    PathArgs(name): PathArgs<String>,
) -> Result<Json<ScheduleTriggered>, ApiError> {
    Ok(Json(state.inspector.trigger_schedule(&name).await?))
}

/// Stop a schedule from firing until resumed.
#[utoipa::path(post, path = "/api/schedules/{name}/pause", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses((status = 200, body = SchedulePaused), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn pause(
    state: State,
    _: Operator,
    PathArgs(name): PathArgs<String>,
) -> Result<Json<SchedulePaused>, ApiError> {
    Ok(Json(state.inspector.pause_schedule(&name).await?))
}

/// Let a paused schedule fire again.
#[utoipa::path(post, path = "/api/schedules/{name}/resume", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses((status = 200, body = SchedulePaused), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn resume(
    state: State,
    _: Operator,
    PathArgs(name): PathArgs<String>,
) -> Result<Json<SchedulePaused>, ApiError> {
    Ok(Json(state.inspector.resume_schedule(&name).await?))
}
