//! An app on a private redis-server, and a request helper.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tickq::Client;
use tickq_testkit::TestRedis;
use tower::ServiceExt as _;

pub(crate) struct App {
    pub redis: TestRedis,
    pub client: Client,
    pub router: Router,
}

impl App {
    pub(crate) async fn start(options: tickq_web::WebOptions) -> App {
        let redis = TestRedis::start();
        let client = Client::connect(&redis.url()).await.unwrap();
        let router = tickq_web::router(client.clone(), options);
        App {
            redis,
            client,
            router,
        }
    }

    pub(crate) async fn open() -> App {
        App::start(Default::default()).await
    }

    /// Send a request; answers the status and the body as JSON (`Null` when empty or not
    /// JSON).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(path);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_owned()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, serde_json::Value) {
        self.call(Method::GET, path, None, &[]).await
    }

    pub(crate) async fn post(&self, path: &str, body: &str) -> (StatusCode, serde_json::Value) {
        self.call(Method::POST, path, Some(body), &[]).await
    }
}
