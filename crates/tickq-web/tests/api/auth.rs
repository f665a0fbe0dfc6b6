//! Tokens, the login cookie, read-only, and refusals of cross-site actions.

use crate::util::App;
use axum::http::{Method, StatusCode};
use tickq_web::WebOptions;

async fn app() -> App {
    App::start(WebOptions {
        token: Some("op-secret".into()),
        read_token: Some("ro-secret".into()),
    })
    .await
}

#[tokio::test]
async fn reading_needs_a_token_and_acting_needs_the_operator_token() {
    let app = app().await;
    let (status, json) = app.get("/api/stats").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["kind"], "unauthenticated");

    let read = [("authorization", "Bearer ro-secret")];
    let (status, _) = app.call(Method::GET, "/api/stats", None, &read).await;
    assert_eq!(status, StatusCode::OK);
    let (status, json) = app
        .call(Method::POST, "/api/queues/q/pause", Some("{}"), &read)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json["error"]["kind"], "forbidden");
    assert!(!app.client.inspector().counts("q").await.unwrap().paused);

    let op = [("authorization", "Bearer op-secret")];
    let (status, json) = app
        .call(Method::POST, "/api/queues/q/pause", Some("{}"), &op)
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(app.client.inspector().counts("q").await.unwrap().paused);

    let wrong = [("authorization", "Bearer nope")];
    let (status, _) = app.call(Method::GET, "/api/stats", None, &wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Log in and answer the cookie the server set (`name=value`).
async fn login(app: &App, token: &str) -> (StatusCode, Option<String>) {
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/login")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(format!(r#"{{"token": "{token}"}}"#)))
        .unwrap();
    use tower::ServiceExt as _;
    let response = app.router.clone().oneshot(req).await.unwrap();
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    if let Some(c) = &cookie {
        assert!(c.contains("HttpOnly"), "{c}");
        assert!(c.contains("SameSite=Strict"), "{c}");
    }
    (
        response.status(),
        cookie.map(|c| c.split(';').next().unwrap().to_owned()),
    )
}

#[tokio::test]
async fn the_login_cookie_stands_for_the_token() {
    let app = app().await;
    let (status, cookie) = login(&app, "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(cookie.is_none());

    let (status, cookie) = login(&app, "ro-secret").await;
    assert_eq!(status, StatusCode::OK);
    let cookie = cookie.unwrap();
    assert!(
        !cookie.contains("ro-secret"),
        "the cookie must not carry the token"
    );
    let with = [("cookie", cookie.as_str())];
    let (_, who) = app.call(Method::GET, "/api/whoami", None, &with).await;
    assert_eq!(who, serde_json::json!({"role": "read", "auth": true}));
    let (status, _) = app.call(Method::GET, "/api/stats", None, &with).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(Method::POST, "/api/queues/q/pause", Some("{}"), &with)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, who) = app.get("/api/whoami").await;
    assert_eq!(who, serde_json::json!({"role": null, "auth": true}));
}

#[tokio::test]
async fn a_cross_site_post_is_refused_even_with_a_valid_cookie() {
    let app = app().await;
    let (_, cookie) = login(&app, "op-secret").await;
    let cookie = cookie.unwrap();
    for headers in [
        vec![
            ("cookie", cookie.as_str()),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![("cookie", cookie.as_str()), ("sec-fetch-site", "same-site")],
        vec![
            ("cookie", cookie.as_str()),
            ("host", "127.0.0.1:7700"),
            ("origin", "https://evil.example"),
        ],
    ] {
        let (status, json) = app
            .call(Method::POST, "/api/queues/q/pause", Some("{}"), &headers)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cross-site")
        );
    }
    assert!(!app.client.inspector().counts("q").await.unwrap().paused);
    // The same request from the dashboard's own origin goes through.
    let own = [
        ("cookie", cookie.as_str()),
        ("sec-fetch-site", "same-origin"),
        ("host", "127.0.0.1:7700"),
        ("origin", "http://127.0.0.1:7700"),
    ];
    let (status, _) = app
        .call(Method::POST, "/api/queues/q/pause", Some("{}"), &own)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn without_tokens_everyone_is_an_operator() {
    let app = App::open().await;
    let (_, who) = app.get("/api/whoami").await;
    assert_eq!(who, serde_json::json!({"role": "operator", "auth": false}));
    let (status, _) = app.post("/api/queues/q/pause", "{}").await;
    assert_eq!(status, StatusCode::OK);
}
