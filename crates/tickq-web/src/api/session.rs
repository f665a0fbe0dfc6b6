//! The session: who the caller is, logging in and out, and the OpenAPI document.

use crate::auth::{COOKIE, Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::{State, api::Body};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// What the caller may do.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct WhoAmI {
    /// `operator`, `read`, or null when not logged in.
    role: Option<Role>,
    /// Whether a token is configured at all (without one, everyone is an operator).
    auth: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct Login {
    /// The operator or the read token.
    token: String,
}

/// The OpenAPI 3.1 document of every `/api` route.
#[utoipa::path(get, path = "/api/openapi.json", tag = "session",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> Response {
    Json(crate::openapi()).into_response()
}

/// The caller's role, and whether auth is on.
#[utoipa::path(get, path = "/api/whoami", tag = "session",
    responses((status = 200, description = "OK", body = WhoAmI)))]
pub(crate) async fn whoami(
    state: State,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Json<WhoAmI> {
    Json(WhoAmI {
        role: caller.0,
        auth: state.auth.enabled(),
    })
}

/// Log in with a token: sets an HttpOnly, SameSite=Strict cookie that later requests carry.
#[utoipa::path(post, path = "/api/login", tag = "session", request_body = Login,
    responses((status = 200, description = "OK", body = WhoAmI), (status = 401, description = "Missing or wrong credentials", body = ErrorBody),
              (status = 400, description = "A malformed path, query or body", body = ErrorBody)))]
pub(crate) async fn login(state: State, Body(login): Body<Login>) -> Result<Response, ApiError> {
    if !state.auth.enabled() {
        return Err(ApiError::invalid(
            "no token is configured: there is nothing to log in to",
        ));
    }
    let role = state
        .auth
        .role_of_token(login.token.trim())
        .ok_or_else(ApiError::unauthenticated)?;
    let value = state
        .auth
        .cookie_for(role)
        .expect("a configured token has a cookie");
    let cookie = format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/");
    let mut response = Json(WhoAmI {
        role: Some(role),
        auth: true,
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("a hex cookie is a valid header"),
    );
    Ok(response)
}

/// Log out: clears the cookie.
#[utoipa::path(post, path = "/api/logout", tag = "session",
    responses((status = 204, description = "Logged out")))]
pub(crate) async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}
