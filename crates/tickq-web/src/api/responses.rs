//! The error answers of the routes, as the OpenAPI document lists them: each written once
//! here and named in a route's `responses(...)`, beside its success answer. What a route can
//! answer follows from what it does: [`BadInput`] when it takes a path, query or body,
//! [`Reading`] or [`Acting`] by the role it needs, [`NotFound`] when it names one thing,
//! [`Conflict`] when the thing's state can refuse it. Every body is an [`ErrorBody`].

use crate::error::ErrorBody;

/// A malformed path, query or body (400).
#[derive(utoipa::IntoResponses)]
#[response(status = 400, description = "A malformed path, query or body")]
pub(crate) struct BadInput(#[allow(dead_code)] ErrorBody);

/// What any route that reads Redis can answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum Reading {
    #[response(status = 401, description = "Missing or wrong credentials")]
    Unauthenticated(ErrorBody),
    #[response(
        status = 503,
        description = "Redis cannot be reached or did not answer in time"
    )]
    Unavailable(ErrorBody),
}

/// What any route that changes something can answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum Acting {
    #[response(status = 401, description = "Missing or wrong credentials")]
    Unauthenticated(ErrorBody),
    #[response(
        status = 403,
        description = "A read token on an action, or a cross-site request"
    )]
    Forbidden(ErrorBody),
    #[response(
        status = 503,
        description = "Redis cannot be reached or did not answer in time"
    )]
    Unavailable(ErrorBody),
    #[response(
        status = 507,
        description = "Redis is full (maxmemory): nothing was added; jobs already accepted still run"
    )]
    RedisFull(ErrorBody),
}

/// The job, queue, schedule or workflow named is not there (404).
#[derive(utoipa::IntoResponses)]
#[response(status = 404, description = "No such job, queue, schedule or workflow")]
pub(crate) struct NotFound(#[allow(dead_code)] ErrorBody);

/// The wrong state for that, or the id or unique key is taken (409).
#[derive(utoipa::IntoResponses)]
#[response(
    status = 409,
    description = "The wrong state for that, or the id or unique key is taken"
)]
pub(crate) struct Conflict(#[allow(dead_code)] ErrorBody);
