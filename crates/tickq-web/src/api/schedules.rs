//! Schedules: list, trigger, pause, resume.

use super::PathArgs;
use super::responses::{Acting, BadInput, NotFound, Reading};
use crate::State;
use crate::auth::{Operator, Reader};
use crate::error::ApiError;
use axum::Json;
use tickq::{ScheduleList, SchedulePaused, ScheduleTriggered};

/// Every schedule with its next fire time (`tickq cron ls --json`).
#[utoipa::path(get, path = "/api/schedules", tag = "schedules",
    responses((status = 200, description = "OK", body = ScheduleList), Reading))]
pub(crate) async fn schedules(state: State, _: Reader) -> Result<Json<ScheduleList>, ApiError> {
    Ok(Json(state.inspector.schedules().await?))
}

/// Create the schedule's jobs now, outside its timetable.
#[utoipa::path(post, path = "/api/schedules/{name}/trigger", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses((status = 200, description = "OK", body = ScheduleTriggered), BadInput, Acting, NotFound))]
pub(crate) async fn trigger_schedule(
    state: State,
    _: Operator,
    PathArgs(name): PathArgs<String>,
) -> Result<Json<ScheduleTriggered>, ApiError> {
    Ok(Json(state.inspector.trigger_schedule(&name).await?))
}

/// Stop a schedule from firing until resumed.
#[utoipa::path(post, path = "/api/schedules/{name}/pause", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses((status = 200, description = "OK", body = SchedulePaused), BadInput, Acting, NotFound))]
pub(crate) async fn pause_schedule(
    state: State,
    _: Operator,
    PathArgs(name): PathArgs<String>,
) -> Result<Json<SchedulePaused>, ApiError> {
    Ok(Json(state.inspector.pause_schedule(&name).await?))
}

/// Let a paused schedule fire again.
#[utoipa::path(post, path = "/api/schedules/{name}/resume", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses((status = 200, description = "OK", body = SchedulePaused), BadInput, Acting, NotFound))]
pub(crate) async fn resume_schedule(
    state: State,
    _: Operator,
    PathArgs(name): PathArgs<String>,
) -> Result<Json<SchedulePaused>, ApiError> {
    Ok(Json(state.inspector.resume_schedule(&name).await?))
}
