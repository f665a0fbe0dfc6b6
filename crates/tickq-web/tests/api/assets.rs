//! The dashboard's static files: every file of `assets/` is served with its type, and the
//! page's own routes answer the page.

use crate::util::App;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::path::PathBuf;
use tower::ServiceExt as _;

/// GET `path`: status, content type, body.
async fn get(app: &App, path: &str) -> (StatusCode, String, Vec<u8>) {
    let req = Request::get(path).body(Body::empty()).unwrap();
    let response = app.router.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, kind, body.to_vec())
}

fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
}

#[tokio::test]
async fn every_file_of_the_assets_folder_is_served_with_its_type() {
    let app = App::open().await;
    let mut names: Vec<String> = std::fs::read_dir(assets())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.contains(&"app.js".to_owned()), "{names:?}");
    for name in names {
        let on_disk = std::fs::read(assets().join(&name)).unwrap();
        let path = if name == "index.html" {
            "/".to_owned()
        } else {
            format!("/assets/{name}")
        };
        let (status, kind, body) = get(&app, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, on_disk, "{path} serves the file as it is on disk");
        // A module script with another type is refused by the browser.
        let expected = match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("html") => "text/html",
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            other => panic!("a file of an unexpected type in assets/: {name} ({other:?})"),
        };
        assert!(kind.starts_with(expected), "{path}: {kind}");
    }
}

#[tokio::test]
async fn the_page_links_only_files_that_are_served() {
    let app = App::open().await;
    let (_, _, page) = get(&app, "/").await;
    let page = String::from_utf8(page).unwrap();
    let links: Vec<&str> = page
        .split('"')
        .filter(|part| part.starts_with("/assets/"))
        .collect();
    assert!(links.len() >= 2, "{page}");
    for link in links {
        let (status, _, _) = get(&app, link).await;
        assert_eq!(status, StatusCode::OK, "{link}");
    }
    let (status, _, _) = get(&app, "/assets/no-such-file.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn any_other_path_but_the_api_answers_the_page() {
    let app = App::open().await;
    let (_, _, index) = get(&app, "/").await;
    let (status, kind, body) = get(&app, "/queues/emails").await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert_eq!(body, index);
    let (status, kind, _) = get(&app, "/api/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(kind.starts_with("application/json"), "{kind}");
}
