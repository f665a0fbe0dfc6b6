//! A small W3C WebDriver client: Debian's `chromedriver` driving a headless Chromium.
//!
//! Plain JSON over HTTP (reqwest on a private current-thread runtime, so tests stay
//! synchronous like the rest of this binary). Only what the dashboard tests use: navigate,
//! find, click, type, read text, run a script, screenshot, and the browser's console log.

use crate::util::free_port;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The key under which W3C WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One chromedriver process with one browser session. Both end on drop.
pub struct Browser {
    driver: Child,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// A reference to an element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

/// A WebDriver error answer: `error` is the W3C code, such as `no such element`.
#[derive(Debug)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

impl Browser {
    /// Start chromedriver on a free port and open a headless Chromium with a fresh profile.
    pub fn start() -> Browser {
        let profile = tempfile::tempdir().expect("browser profile dir");
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {CHROMEDRIVER} ({e}); `./dev test` installs chromium-driver")
            });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut browser = Browser {
            driver,
            rt,
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = browser.raw("GET", "/status", None)
                && status["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // On a loaded machine Chromium now and then fails to start ("DevTools port number
        // file ... unexpected format"): try again with a fresh profile, which tells a flaky
        // start from a broken install.
        let mut attempt = 0;
        let created = loop {
            attempt += 1;
            if attempt > 1 {
                browser._profile = tempfile::tempdir().expect("browser profile dir");
            }
            let profile = format!("--user-data-dir={}", browser._profile.path().display());
            let args = [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                &profile,
            ];
            let caps = json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                "goog:loggingPrefs": {"browser": "ALL"},
                // Tests wait for what they need on the page; DOMContentLoaded is enough.
                "pageLoadStrategy": "eager",
                "timeouts": {"pageLoad": 30000, "script": 30000, "implicit": 0},
            }}});
            match browser.raw("POST", "/session", Some(caps)) {
                Ok(created) => break created,
                Err(e) if attempt < 3 && e.error == "session not created" => {
                    eprintln!("Chromium did not start ({e}); trying again");
                }
                Err(e) => panic!("cannot open a Chromium session: {e}"),
            }
        };
        browser.session = created["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        browser
    }

    /// One WebDriver request; answers its `value`.
    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let req = self.http.request(method, url);
        let req = match body {
            Some(body) => req
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => req,
        };
        let bytes = self
            .rt
            .block_on(async move {
                let res = req.send().await?;
                res.bytes().await
            })
            .map_err(|e| WdError {
                error: "transport".into(),
                message: e.to_string(),
            })?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| WdError {
            error: "bad answer".into(),
            message: format!("{e}: {}", String::from_utf8_lossy(&bytes)),
        })?;
        let value = doc["value"].clone();
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return Err(WdError {
                error: error.to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(value)
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
    }

    #[track_caller]
    fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.cmd(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// Load `url` and wait for the page's load event.
    #[track_caller]
    pub fn goto(&self, url: &str) {
        if let Err(e) = self.cmd("POST", "/url", Some(json!({ "url": url }))) {
            panic!("WebDriver: loading {url}: {e}");
        }
    }

    pub fn url(&self) -> String {
        self.must("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn back(&self) {
        self.must("POST", "/back", Some(json!({})));
    }

    pub fn forward(&self) {
        self.must("POST", "/forward", Some(json!({})));
    }

    pub fn set_size(&self, width: u32, height: u32) {
        self.must(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// Every element matching the CSS selector now (none: empty).
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.must(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn find(&self, css: &str) -> Option<Element> {
        self.find_all(css).into_iter().next()
    }

    /// Poll until an element matches `css`.
    #[track_caller]
    pub fn wait(&self, css: &str, limit: Duration) -> Element {
        self.wait_until(limit, &format!("an element {css:?}"), || self.find(css))
    }

    /// Poll until an element matching `css` shows text containing `needle`.
    #[track_caller]
    pub fn wait_text(&self, css: &str, needle: &str, limit: Duration) -> Element {
        self.wait_until(limit, &format!("{css:?} showing {needle:?}"), || {
            self.find_all(css)
                .into_iter()
                .find(|e| self.try_text(e).is_some_and(|t| t.contains(needle)))
        })
    }

    /// Poll `check` until it gives a value; on timeout, panic with what the page showed.
    #[track_caller]
    pub fn wait_until<T>(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() >= deadline {
                let page = self
                    .find("body")
                    .and_then(|b| self.try_text(&b))
                    .unwrap_or_default();
                panic!(
                    "timed out waiting for {what} at {}; the page shows:\n{page}\nconsole: {:?}",
                    self.url(),
                    self.console()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The element's rendered text; None when it left the page meanwhile.
    pub fn try_text(&self, el: &Element) -> Option<String> {
        self.cmd("GET", &format!("/element/{}/text", el.0), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// Text of the first element matching `css`, or "" when there is none.
    pub fn text_of(&self, css: &str) -> String {
        self.find(css)
            .and_then(|e| self.try_text(&e))
            .unwrap_or_default()
    }

    /// Wait for `css`, then click it. Live updates redraw parts of the page, so an element
    /// found can be replaced before the click lands: then find it again.
    #[track_caller]
    pub fn click_on(&self, css: &str, limit: Duration) {
        self.wait_until(limit, &format!("a click on {css:?}"), || {
            let el = self.find(css)?;
            match self.cmd("POST", &format!("/element/{}/click", el.0), Some(json!({}))) {
                Ok(_) => Some(()),
                Err(e) if e.error == "stale element reference" => None,
                Err(e) => panic!("clicking {css:?}: {e}"),
            }
        });
    }

    /// Replace the text of an input with `text` (found again if a redraw replaced it).
    #[track_caller]
    pub fn fill(&self, css: &str, text: &str) {
        self.wait_until(
            Duration::from_secs(10),
            &format!("typing into {css:?}"),
            || {
                let el = self.find(css)?;
                let typed = self
                    .cmd("POST", &format!("/element/{}/clear", el.0), Some(json!({})))
                    .and_then(|_| {
                        self.cmd(
                            "POST",
                            &format!("/element/{}/value", el.0),
                            Some(json!({ "text": text })),
                        )
                    });
                match typed {
                    Ok(_) => Some(()),
                    Err(e) if e.error == "stale element reference" => None,
                    Err(e) => panic!("typing into {css:?}: {e}"),
                }
            },
        );
    }

    pub fn displayed(&self, el: &Element) -> bool {
        self.cmd("GET", &format!("/element/{}/displayed", el.0), None)
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// Run `body` (a function body; `arguments` holds `args`) in the page.
    pub fn script(&self, body: &str, args: Value) -> Value {
        self.must(
            "POST",
            "/execute/sync",
            Some(json!({"script": body, "args": args})),
        )
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.must("GET", "/screenshot", None);
        let png = decode_base64(b64.as_str().expect("base64 screenshot"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("writing the screenshot");
    }

    /// Browser console entries since the last call: (level, source, message).
    pub fn console(&self) -> Vec<(String, String, String)> {
        let entries = self
            .cmd("POST", "/se/log", Some(json!({"type": "browser"})))
            .unwrap_or(Value::Null);
        entries
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| {
                        let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                        (s("level"), s("source"), s("message"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Console errors since the last call: uncaught exceptions, `console.error`, failed loads.
    pub fn console_errors(&self) -> Vec<String> {
        self.console()
            .into_iter()
            .filter(|(level, _, _)| level == "SEVERE")
            .map(|(_, source, message)| format!("{source}: {message}"))
            .collect()
    }

    /// Panic when the console holds an error.
    #[track_caller]
    pub fn assert_no_console_errors(&self, page: &str) {
        let errors = self.console_errors();
        assert!(errors.is_empty(), "console errors on {page}: {errors:#?}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (RFC 4648, with padding), as WebDriver sends screenshots.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:?}"),
        }
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c) << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    out
}

#[test]
fn decodes_base64() {
    assert_eq!(decode_base64("aGVsbG8="), b"hello");
    assert_eq!(decode_base64("aGVsbG8h"), b"hello!");
    assert_eq!(decode_base64("aGk="), b"hi");
    assert_eq!(decode_base64(""), b"");
}
