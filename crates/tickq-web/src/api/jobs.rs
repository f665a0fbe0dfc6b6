//! Jobs: pages with filters and a cursor, enqueue, one job, actions, bulk actions.

use super::responses::{Acting, BadInput, Conflict, NotFound, Reading};
use super::{Body, Params, PathArgs, duration, time};
use crate::State;
use crate::auth::{Operator, Reader};
use crate::error::ApiError;
use axum::Json;
use axum::http::StatusCode;
use serde::Deserialize;
use tickq::{
    BulkOutcome, Enqueued, JobActed, JobAction, JobFilter, JobInfo, JobPage, JobState, NewJob,
};

/// Which jobs of a queue to list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// `waiting scheduled pending active retry dead completed cancelled`; default `pending`.
    state: Option<String>,
    /// Only jobs of this kind.
    kind: Option<String>,
    /// Only jobs whose payload (as JSON text) contains this.
    q: Option<String>,
    /// Only jobs whose last error contains this.
    error: Option<String>,
    /// Only jobs whose time in the state is at or after this (RFC 3339 or Unix ms).
    from: Option<String>,
    /// Only jobs whose time in the state is before this.
    to: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// At most this many jobs, 1 to 1000; default 50.
    limit: Option<usize>,
}

/// The filters of a list or bulk request.
fn filter(
    kind: Option<String>,
    q: Option<String>,
    error: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> Result<JobFilter, ApiError> {
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    Ok(JobFilter {
        kind: nonempty(kind),
        payload: nonempty(q),
        error: nonempty(error),
        from: nonempty(from).map(|t| time("from", &t)).transpose()?,
        to: nonempty(to).map(|t| time("to", &t)).transpose()?,
    })
}

/// A page of a queue's jobs in one state (`tickq jobs QUEUE --state S --json`).
#[utoipa::path(get, path = "/api/queues/{queue}/jobs", tag = "jobs",
    params(("queue" = String, Path, description = "The queue"), ListQuery),
    responses((status = 200, description = "OK", body = JobPage), BadInput, Reading))]
pub(crate) async fn jobs(
    state: State,
    _: Reader,
    PathArgs(queue): PathArgs<String>,
    Params(q): Params<ListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let job_state: JobState = q.state.as_deref().unwrap_or("pending").parse()?;
    let filter = filter(q.kind, q.q, q.error, q.from, q.to)?;
    let page = state
        .inspector
        .jobs(
            &queue,
            job_state,
            &filter,
            q.cursor.as_deref(),
            q.limit.unwrap_or(50),
        )
        .await?;
    Ok(Json(page))
}

/// A job to enqueue: the options of `tickq enqueue`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewJobBody {
    /// Which handler runs it.
    kind: String,
    /// Its arguments (any JSON). Default: null.
    #[serde(default)]
    payload: serde_json::Value,
    /// The job id. Default: a new UUID v7.
    id: Option<String>,
    /// Run after this delay (DUR).
    #[serde(rename = "in")]
    delay: Option<String>,
    /// Run at this time (RFC 3339 or Unix ms).
    at: Option<String>,
    /// Keep it unique for this long (DUR): no equal job is enqueued meanwhile.
    unique_for: Option<String>,
    /// Compare this key instead of kind and payload (needs unique_for).
    unique_key: Option<String>,
    /// On a sharded queue, the shard comes from this key: same key, same shard, in order.
    /// Not with unique_for.
    shard_key: Option<String>,
    /// Attempts before dead. Default: 25.
    max_attempts: Option<u32>,
    /// Time limit of one attempt (DUR).
    timeout: Option<String>,
    /// -1000 to 1000, higher first. Default: 0.
    priority: Option<i32>,
}

/// Enqueue a job. A taken id or unique key is 409 `already_exists`, naming the job there.
#[utoipa::path(post, path = "/api/queues/{queue}/jobs", tag = "jobs", request_body = NewJobBody,
    params(("queue" = String, Path, description = "The queue")),
    responses((status = 201, description = "Created", body = Enqueued), BadInput, Acting, Conflict))]
pub(crate) async fn enqueue(
    state: State,
    _: Operator,
    PathArgs(queue): PathArgs<String>,
    Body(body): Body<NewJobBody>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let mut job = NewJob::new(queue, body.kind).payload(body.payload);
    if let Some(id) = body.id {
        job = job.id(id);
    }
    match (body.delay, body.at) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("give `in` or `at`, not both")),
        (Some(d), None) => job = job.delay(duration("in", &d)?),
        (None, Some(t)) => job = job.at(time("at", &t)?),
        (None, None) => {}
    }
    if let Some(ttl) = body.unique_for {
        job = job.unique_for(duration("unique_for", &ttl)?);
    }
    if let Some(key) = body.unique_key {
        job = job.unique_key(key);
    }
    if let Some(key) = body.shard_key {
        job = job.shard_key(key);
    }
    if let Some(n) = body.max_attempts {
        job = job.max_attempts(n);
    }
    if let Some(t) = body.timeout {
        job = job.timeout(duration("timeout", &t)?);
    }
    if let Some(p) = body.priority {
        job = job.priority(p);
    }
    let enqueued = state.client.enqueue(job).await?;
    Ok((StatusCode::CREATED, Json(enqueued)))
}

/// A bulk action.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkBody {
    /// `retry`, `kill`, `delete` or `cancel`.
    action: JobAction,
    /// The state of the jobs to act on.
    state: JobState,
    /// Only jobs of this kind.
    kind: Option<String>,
    /// Only jobs whose payload contains this.
    q: Option<String>,
    /// Only jobs whose last error contains this.
    error: Option<String>,
    /// Only jobs whose time in the state is at or after this.
    from: Option<String>,
    /// Only jobs whose time in the state is before this.
    to: Option<String>,
    /// Only count the matching jobs.
    #[serde(default)]
    dry_run: bool,
}

/// Act on every job of a queue in one state that matches the filters, in bounded batches.
#[utoipa::path(post, path = "/api/queues/{queue}/bulk", tag = "jobs", request_body = BulkBody,
    params(("queue" = String, Path, description = "The queue")),
    responses((status = 200, description = "OK", body = BulkOutcome), BadInput, Acting))]
pub(crate) async fn bulk(
    state: State,
    _: Operator,
    PathArgs(queue): PathArgs<String>,
    Body(body): Body<BulkBody>,
) -> Result<Json<BulkOutcome>, ApiError> {
    let filter = filter(body.kind, body.q, body.error, body.from, body.to)?;
    let outcome = state
        .inspector
        .bulk(&queue, body.state, &filter, body.action, body.dry_run)
        .await?;
    Ok(Json(outcome))
}

/// One job, found in any queue (`tickq job ID --json`).
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses((status = 200, description = "OK", body = JobInfo), BadInput, Reading, NotFound))]
pub(crate) async fn job(
    state: State,
    _: Reader,
    PathArgs(id): PathArgs<String>,
) -> Result<Json<JobInfo>, ApiError> {
    Ok(Json(state.inspector.job(&id).await?))
}

/// The routes of the by-id job actions: one body, [`tickq::Inspector::act`] with the route's
/// [`JobAction`], under each route's own method, path and description (its doc comment).
macro_rules! job_action_routes {
    ($($(#[doc = $doc:literal])* $name:ident: $method:ident $path:literal => $action:ident;)*) => {$(
        $(#[doc = $doc])*
        #[utoipa::path($method, path = $path, tag = "jobs",
            params(("id" = String, Path, description = "The job id")),
            responses((status = 200, description = "OK", body = JobActed), BadInput, Acting, NotFound, Conflict))]
        pub(crate) async fn $name(
            state: State,
            _: Operator,
            PathArgs(id): PathArgs<String>,
        ) -> Result<Json<JobActed>, ApiError> {
            Ok(Json(state.inspector.act(JobAction::$action, &id).await?))
        }
    )*};
}

job_action_routes! {
    /// Delete a job that is not running.
    delete_job: delete "/api/jobs/{id}" => Delete;
    /// Run a dead, cancelled, retry or scheduled job now.
    retry_job: post "/api/jobs/{id}/retry" => Retry;
    /// Send a waiting job to dead.
    kill_job: post "/api/jobs/{id}/kill" => Kill;
    /// Cancel a job; a running one is stopped by its worker.
    cancel_job: post "/api/jobs/{id}/cancel" => Cancel;
}
