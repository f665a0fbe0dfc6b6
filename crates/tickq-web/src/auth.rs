//! Who may do what: the operator token acts, the read token reads, a login cookie stands for
//! either; and no unsafe request from another site, whatever it carries.
//!
//! Tokens are compared as SHA-256 digests, so the comparison takes the same time whatever the
//! guess, and the cookie holds a digest (bound to this purpose), never the token itself.

use crate::error::ApiError;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

/// The login cookie's name.
pub(crate) const COOKIE: &str = "tickq_session";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read and act.
    Operator,
    /// Read only.
    Read,
}

/// The configured tokens, as digests.
#[derive(Clone, Default)]
pub(crate) struct Auth {
    operator: Option<[u8; 32]>,
    read: Option<[u8; 32]>,
}

fn digest(purpose: &str, token: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    h.update([0]);
    h.update(token.as_bytes());
    h.finalize().into()
}

/// Equal without stopping at the first difference.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Auth {
    pub(crate) fn new(token: Option<&str>, read_token: Option<&str>) -> Auth {
        Auth {
            operator: token.map(|t| digest("token", t)),
            read: read_token.map(|t| digest("token", t)),
        }
    }

    /// Whether any token is configured: without one, everyone who can reach the listener
    /// (a loopback address; the server refuses others) is an operator.
    pub(crate) fn enabled(&self) -> bool {
        self.operator.is_some() || self.read.is_some()
    }

    /// The role a token gives.
    pub(crate) fn role_of_token(&self, token: &str) -> Option<Role> {
        let d = digest("token", token);
        if self.operator.is_some_and(|o| same(&o, &d)) {
            Some(Role::Operator)
        } else if self.read.is_some_and(|r| same(&r, &d)) {
            Some(Role::Read)
        } else {
            None
        }
    }

    /// The cookie value that stands for `role` (a digest of its token).
    pub(crate) fn cookie_for(&self, role: Role) -> Option<String> {
        let token = match role {
            Role::Operator => self.operator?,
            Role::Read => self.read?,
        };
        Some(hex(&digest("session", &hex(&token))))
    }

    fn role_of_cookie(&self, value: &str) -> Option<Role> {
        [Role::Operator, Role::Read].into_iter().find(|role| {
            self.cookie_for(*role)
                .is_some_and(|c| c.as_bytes() == value.as_bytes())
        })
    }

    /// The caller's role: everyone is an operator when no token is configured; otherwise a
    /// bearer token or the login cookie decides.
    pub(crate) fn role(&self, headers: &HeaderMap) -> Option<Role> {
        if !self.enabled() {
            return Some(Role::Operator);
        }
        if let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return self.role_of_token(token.trim());
        }
        cookie(headers, COOKIE).and_then(|v| self.role_of_cookie(&v))
    }
}

/// The value of cookie `name`, if the request carries it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The caller's role, put in the request by [`guard`]; `None`: not authenticated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller(pub(crate) Option<Role>);

/// Middleware for every `/api` route: records the caller's role, and refuses unsafe methods
/// sent from another site (a page elsewhere must not act through a logged-in browser) whether
/// or not they carry credentials.
pub(crate) async fn guard(
    auth: axum::extract::State<Auth>,
    mut req: Request,
    next: Next,
) -> Response {
    use axum::response::IntoResponse;
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && let Err(e) = same_site(req.headers())
    {
        return e.into_response();
    }
    let role = auth.role(req.headers());
    req.extensions_mut().insert(Caller(role));
    next.run(req).await
}

/// Middleware for routes outside `/api` that only read (see [`crate::readers_only`]).
pub(crate) async fn require_reader(
    auth: axum::extract::State<Auth>,
    req: Request,
    next: Next,
) -> Response {
    use axum::response::IntoResponse;
    match auth.role(req.headers()) {
        Some(_) => next.run(req).await,
        None => ApiError::unauthenticated().into_response(),
    }
}

/// Unsafe requests must come from this origin: `Sec-Fetch-Site` (sent by every current
/// browser) must be `same-origin` or `none`, and an `Origin`, when present, must name the host
/// the request was sent to. Clients that are not browsers send neither and pass.
fn same_site(headers: &HeaderMap) -> Result<(), ApiError> {
    let refuse = || {
        ApiError::forbidden(
            "cross-site request refused: actions must come from the dashboard's own origin or \
             from a client that is not a browser",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refuse());
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        if origin == "null" || host.is_none() || origin_host != host {
            return Err(refuse());
        }
    }
    Ok(())
}

/// An extractor for routes that read: any valid credential (or none needed).
pub(crate) struct Reader;

/// An extractor for routes that act: the operator token (or none configured).
pub(crate) struct Operator;

impl<S: Send + Sync> FromRequestParts<S> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(Caller(Some(_))) => Ok(Reader),
            _ => Err(ApiError::unauthenticated()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(Caller(Some(Role::Operator))) => Ok(Operator),
            Some(Caller(Some(Role::Read))) => Err(ApiError::forbidden(
                "the read token cannot act: use the operator token ([http] token)",
            )),
            _ => Err(ApiError::unauthenticated()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn roles_from_tokens_and_cookies() {
        let auth = Auth::new(Some("op"), Some("ro"));
        assert_eq!(
            auth.role(&headers(&[("authorization", "Bearer op")])),
            Some(Role::Operator)
        );
        assert_eq!(
            auth.role(&headers(&[("authorization", "Bearer ro")])),
            Some(Role::Read)
        );
        assert_eq!(
            auth.role(&headers(&[("authorization", "Bearer nope")])),
            None
        );
        assert_eq!(auth.role(&headers(&[])), None);
        let cookie = format!("a=b; {COOKIE}={}", auth.cookie_for(Role::Read).unwrap());
        assert_eq!(
            auth.role(&headers(&[("cookie", &cookie)])),
            Some(Role::Read)
        );
        // The cookie is not the token, and a token is not a cookie.
        assert_ne!(auth.cookie_for(Role::Operator).unwrap(), "op");
        assert_eq!(
            auth.role(&headers(&[("cookie", &format!("{COOKIE}=op"))])),
            None
        );
        assert_eq!(
            Auth::new(None, None).role(&headers(&[])),
            Some(Role::Operator)
        );
    }

    #[test]
    fn cross_site_requests_are_refused() {
        assert!(same_site(&headers(&[])).is_ok());
        assert!(same_site(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(same_site(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_site(&headers(&[("sec-fetch-site", "same-site")])).is_err());
        let ok = [
            ("host", "127.0.0.1:7700"),
            ("origin", "http://127.0.0.1:7700"),
        ];
        assert!(same_site(&headers(&ok)).is_ok());
        let evil = [
            ("host", "127.0.0.1:7700"),
            ("origin", "http://evil.example"),
        ];
        assert!(same_site(&headers(&evil)).is_err());
        assert!(same_site(&headers(&[("host", "h"), ("origin", "null")])).is_err());
    }
}
