//! The web dashboard in a real headless Chromium (over WebDriver) against a real `tickq server`
//! and a real Redis: pages, live updates, actions, search, bulk actions, login, and the time
//! the overview of a big Redis takes to load. The run also takes the screenshots of
//! docs/dashboard.md, into docs/img/*.png when `TICKQ_UPDATE_SCREENSHOTS` is set.

use crate::util::{Server, free_port, wait_for};
use crate::webdriver::Browser;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(20);

/// Where a screenshot goes: docs/img of the repository when `TICKQ_UPDATE_SCREENSHOTS` is set
/// (docs/dashboard.md), else the target directory, so that a test run leaves the work tree
/// as it was.
fn img(name: &str) -> PathBuf {
    let dir = if std::env::var_os("TICKQ_UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/img")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    };
    dir.join(name)
}

/// A JSON client of the server's HTTP API, for setting the scene and checking outcomes.
struct Api {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(addr: &str, token: Option<&str>) -> Api {
        Api {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
            token: token.map(str::to_owned),
        }
    }

    /// One request: (status, JSON body or Null).
    #[track_caller]
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("calling the API: {method} {path}: {e}"))
    }

    /// One request; an error when the server cannot be reached.
    fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        self.rt.block_on(async move {
            let res = req.send().await?;
            let status = res.status().as_u16();
            let bytes = res.bytes().await?;
            Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        })
    }

    #[track_caller]
    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, doc) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {doc}"
        );
        doc
    }

    /// Enqueue an exec job; its id.
    #[track_caller]
    fn exec(&self, queue: &str, cmd: &[&str], max_attempts: u32) -> String {
        let doc = self.ok(
            "POST",
            &format!("/api/queues/{queue}/jobs"),
            Some(json!({"kind": "exec", "payload": {"cmd": cmd}, "max_attempts": max_attempts})),
        );
        doc["id"].as_str().expect("job id").to_owned()
    }

    fn job(&self, id: &str) -> Value {
        self.ok("GET", &format!("/api/jobs/{id}"), None)
    }

    #[track_caller]
    fn wait_state(&self, id: &str, state: &str, limit: Duration) -> Value {
        wait_for(limit, &format!("job {id} {state}"), || {
            let job = self.job(id);
            (job["state"] == state).then_some(job)
        })
    }

    /// The counts of one queue, from `/api/stats`.
    fn counts(&self, queue: &str) -> Value {
        let stats = self.ok("GET", "/api/stats", None);
        stats["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["queue"] == queue).cloned())
            .unwrap_or(Value::Null)
    }
}

/// Enqueue `count` jobs of kind `kind` in `queue` with the library, in batches; the ids.
fn seed(url: &str, queue: &str, count: usize, payload: impl Fn(usize) -> Value) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Ids of our own make a batch safe to send again: an id that exists is left as it is.
    let call = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    rt.block_on(async {
        let client = tickq::Client::connect(url).await.expect("connecting");
        let mut ids = Vec::with_capacity(count);
        let mut start = 0;
        while start < count {
            let end = (start + 10_000).min(count);
            let batch = || -> Vec<tickq::NewJob> {
                (start..end)
                    .map(|i| {
                        tickq::NewJob::new(queue, "exec")
                            .id(format!("{queue}-{call}-{i}"))
                            .payload(payload(i))
                    })
                    .collect()
            };
            let mut attempt = 0;
            let done = loop {
                attempt += 1;
                match client.enqueue_bulk(batch()).await {
                    Ok(done) => break done,
                    // Seen once on a loaded machine: "lost the connection to Redis (broken
                    // pipe)" in the middle of a 10,000-job batch. Seeding is not what these
                    // tests check, so say it and send the batch again.
                    Err(e) if attempt < 3 && e.kind() == tickq::ErrorKind::Unavailable => {
                        eprintln!("seeding {queue}: {e}; sending the batch again");
                    }
                    Err(e) => panic!("seeding {queue}: {e}"),
                }
            };
            ids.extend(done.into_iter().map(|d| d.id));
            start = end;
        }
        ids
    })
}

/// A node with the HTTP API on a free port, its Redis, and an API client.
struct Node {
    redis: TestRedis,
    server: Option<Server>,
    extra_config: String,
    addr: String,
    api: Api,
}

fn node(extra_config: &str, token: Option<&str>) -> Node {
    let redis = TestRedis::start();
    let addr = format!("127.0.0.1:{}", free_port());
    let api = Api::new(&addr, token);
    let server = start_server(&redis, &addr, extra_config, &api);
    Node {
        redis,
        server: Some(server),
        extra_config: extra_config.to_owned(),
        addr,
        api,
    }
}

fn start_server(redis: &TestRedis, addr: &str, extra_config: &str, api: &Api) -> Server {
    let config = format!(
        "[worker]\nqueues = {{ work = 1, other = 1, bulk = 1 }}\nconcurrency = 8\n\n\
         [exec]\nallow = [\"sh\", \"true\", \"false\"]\n\n{extra_config}"
    );
    let server = Server::start(
        Some(&config),
        &["--redis", &redis.url(), "--listen", addr],
        &[],
    );
    wait_for(LIMIT, "the HTTP API", || {
        let answer = api.try_call("GET", "/healthz", None);
        answer.is_ok_and(|(status, _)| status == 200).then_some(())
    });
    server
}

impl Node {
    fn page(&self, route: &str) -> String {
        format!("http://{}/#{route}", self.addr)
    }

    fn stop(&mut self) {
        self.server = None;
    }

    fn start_again(&mut self) {
        let server = start_server(&self.redis, &self.addr, &self.extra_config, &self.api);
        self.server = Some(server);
    }
}

/// Mark the page, so a later check can tell that it was not reloaded.
fn mark(browser: &Browser) {
    browser.script("window.__tickqTestMark = 42;", json!([]));
}

#[track_caller]
fn assert_not_reloaded(browser: &Browser) {
    let mark = browser.script("return window.__tickqTestMark || null;", json!([]));
    assert_eq!(mark, json!(42), "the page was reloaded");
}

const CRON: &str = "[[cron]]\nname = \"nightly-report\"\nschedule = \"0 2 * * *\"\n\
                    timezone = \"Asia/Shanghai\"\nqueue = \"work\"\n\
                    tasks = [ { kind = \"exec\", cmd = [\"true\"] } ]\n";

/// Every page loads without a console error; live updates, one-job actions, pause, bulk retry
/// and search, all in one browser session (a browser start is the slowest part).
#[test]
fn pages_live_updates_and_actions() {
    let node = node(CRON, None);
    let api = &node.api;
    let browser = Browser::start();

    // Something to show: a completed job, a held lock, jobs waiting in a queue no node runs.
    let done = api.exec("work", &["true"], 3);
    api.wait_state(&done, "completed", LIMIT);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _lock = rt.block_on(async {
        let client = tickq::Client::connect(&node.redis.url()).await.unwrap();
        client
            .lock("nightly-export")
            .ttl(Duration::from_secs(300))
            .try_acquire()
            .await
            .unwrap()
            .expect("a free lock")
    });
    let long = api.exec("work", &["sh", "-c", "sleep 30"], 1);
    api.wait_state(&long, "active", LIMIT);
    // The registry lists what a node runs at its next beat.
    wait_for(LIMIT, "the node registry listing the running job", || {
        let nodes = api.ok("GET", "/api/nodes", None);
        nodes.to_string().contains(&long).then_some(())
    });
    seed(&node.redis.url(), "hay", 10_000, |i| json!({"n": i}));
    let needle = seed(
        &node.redis.url(),
        "hay",
        1,
        |_| json!({"needle": "zebra-4242"}),
    );

    // Every page, as a visitor opening its URL.
    let pages: [(&str, &str, &str); 8] = [
        ("/", "#queues tr[data-queue='work']", "overview.png"),
        (
            "/queues/work?state=completed",
            "#jobs tr[data-job-id]",
            "queue.png",
        ),
        (&format!("/jobs/{done}"), "#payload", "job.png"),
        ("/dead", "#no-dead", "dead-empty.png"),
        (
            "/schedules",
            "tr[data-schedule='nightly-report']",
            "schedules.png",
        ),
        (
            "/nodes",
            &format!(".running a[href='#/jobs/{long}']"),
            "nodes.png",
        ),
        ("/locks", "tr[data-lock='nightly-export']", "locks.png"),
        ("/no/such/page", "main h1", "not-found.png"),
    ];
    for (load, (route, ready, shot)) in pages.into_iter().enumerate() {
        // A fresh load of each page, as from a bookmark: another query string makes the
        // browser load the document again, where a change of the hash alone would not.
        browser.goto(&format!("http://{}/?load={load}#{route}", node.addr));
        browser.wait(ready, LIMIT);
        browser.wait(".live.on", LIMIT);
        if route.starts_with("/queues/") {
            // The queue's own history: the one job it ran so far.
            let processed = "#queue-charts [data-chart='processed'] .head";
            browser.wait_text(processed, "total 1", LIMIT);
        }
        browser.assert_no_console_errors(route);
        if shot != "not-found.png" && shot != "dead-empty.png" {
            browser.screenshot(&img(shot));
        }
    }
    assert!(browser.text_of("main h1").contains("Not found"));
    // A sharded queue's page lists its shards; a plain queue's has no such table.
    rt.block_on(async {
        let client = tickq::Client::connect(&node.redis.url()).await.unwrap();
        client.shard_queue("hot", 3).await.unwrap();
        let jobs = (0..6).map(|_| tickq::NewJob::new("hot", "k")).collect();
        client.enqueue_bulk(jobs).await.unwrap();
    });
    browser.goto(&node.page("/queues/hot"));
    browser.wait("#shards tr[data-shard='2']", LIMIT);
    assert!(browser.text_of("#shards h2").contains("Shards (3)"));
    let pending: u64 = (0..3)
        .map(|i| {
            browser
                .text_of(&format!(
                    "#shards tr[data-shard='{i}'] td[data-state='pending']"
                ))
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(pending, 6);
    browser.goto(&node.page("/queues/work"));
    browser.wait("#jobs", LIMIT);
    browser.wait(".live.on", LIMIT);
    assert!(browser.find("#shards table").is_none());
    browser.assert_no_console_errors("the queue pages' shards");
    // The running job, cancelled from its page: its worker stops it.
    browser.goto(&node.page(&format!("/jobs/{long}")));
    browser.wait_text("#job-state", "active", LIMIT);
    browser.click_on("#job-actions button[data-action='cancel']", LIMIT);
    let question = browser.text_of("#confirm-text");
    assert!(question.contains("1 job"), "{question}");
    browser.click_on("#confirm-ok", LIMIT);
    browser.wait_text("#job-state", "cancelled", LIMIT);

    // A schedule paused, resumed and triggered from its row.
    browser.goto(&node.page("/schedules"));
    let row = "tr[data-schedule='nightly-report']";
    browser.click_on(&format!("{row} button[data-action='pause']"), LIMIT);
    browser.wait(&format!("{row} .tag.paused"), LIMIT);
    let schedules = api.ok("GET", "/api/schedules", None);
    assert_eq!(schedules["schedules"][0]["paused"], true);
    browser.click_on(&format!("{row} button[data-action='resume']"), LIMIT);
    browser.wait(&format!("{row} button[data-action='pause']"), LIMIT);
    assert!(browser.find(&format!("{row} .tag.paused")).is_none());
    browser.click_on(&format!("{row} button[data-action='trigger']"), LIMIT);
    browser.wait_text("#banner-text", "enqueued 1 job", LIMIT);
    browser.assert_no_console_errors("the schedules' actions");

    // Back and forward walk the pages visited through the menu.
    mark(&browser);
    browser.click_on("#nav a[data-nav='locks']", LIMIT);
    browser.wait("tr[data-lock='nightly-export']", LIMIT);
    browser.click_on("#nav a[data-nav='nodes']", LIMIT);
    browser.wait(".card[data-node]", LIMIT);
    browser.back();
    browser.wait("tr[data-lock='nightly-export']", LIMIT);
    browser.back();
    browser.wait("tr[data-schedule='nightly-report']", LIMIT);
    browser.forward();
    browser.wait("tr[data-lock='nightly-export']", LIMIT);
    assert_not_reloaded(&browser);

    // A job that fails while the dead page is open appears there without a reload.
    browser.goto(&node.page("/dead"));
    browser.wait("#no-dead", LIMIT);
    browser.wait(".live.on", LIMIT);
    mark(&browser);
    let flag = node.redis.dir().join("failed-once");
    let script = format!(
        "test -e {0} || {{ touch {0}; echo first run fails >&2; exit 3; }}",
        flag.display()
    );
    let flaky = api.exec("work", &["sh", "-c", &script], 1);
    let row = format!("#jobs tr[data-job-id='{flaky}']");
    browser.wait(&row, LIMIT);
    assert_not_reloaded(&browser);
    assert!(browser.text_of(&row).contains("first run fails"));
    browser.screenshot(&img("dead.png"));

    // On its page, "retry" runs it again and the page shows it completed.
    browser.click_on(&format!("{row} a"), LIMIT);
    browser.wait_text("#job-state", "dead", LIMIT);
    browser.click_on("#job-actions button[data-action='retry']", LIMIT);
    browser.wait_text("#job-state", "completed", LIMIT);
    assert_not_reloaded(&browser);
    assert_eq!(api.job(&flaky)["attempt"], 1, "a fresh attempt budget");
    browser.assert_no_console_errors("the retried job");

    // Pausing a queue from its page stops new starts there; other queues still run.
    browser.goto(&node.page("/queues/work"));
    browser.click_on("#pause", LIMIT);
    browser.wait("#paused", LIMIT);
    assert_eq!(api.counts("work")["paused"], true);
    mark(&browser);
    let held = api.exec("work", &["true"], 3);
    let probe = api.exec("other", &["true"], 3);
    api.wait_state(&probe, "completed", LIMIT);
    assert_eq!(
        api.job(&held)["state"],
        "pending",
        "a paused queue starts nothing"
    );
    browser.wait(&format!("#jobs tr[data-job-id='{held}']"), LIMIT);
    // Limits from the same page.
    browser.fill("#limits-form input[name='concurrency']", "3");
    browser.fill("#limits-form input[name='rate']", "20/1s");
    browser.click_on("#limits-form button[type='submit']", LIMIT);
    browser.wait_text("#limits", "≤ 3 at once", LIMIT);
    let limits = &api.counts("work")["limits"];
    assert_eq!(limits["concurrency"], 3, "{limits}");
    assert_eq!(limits["rate"]["jobs"], 20, "{limits}");
    browser.click_on("#resume", LIMIT);
    api.wait_state(&held, "completed", LIMIT);
    // The list drops it live once it ran.
    browser.wait_until(LIMIT, "the pending list to drop the job", || {
        browser
            .find(&format!("#jobs tr[data-job-id='{held}']"))
            .is_none()
            .then_some(())
    });
    assert_not_reloaded(&browser);

    // A bulk retry of 500 dead jobs says how many it touches, asks, then runs them all.
    api.ok("POST", "/api/queues/bulk/pause", None);
    seed(&node.redis.url(), "bulk", 500, |_| json!({"cmd": ["true"]}));
    let killed = api.ok(
        "POST",
        "/api/queues/bulk/bulk",
        Some(json!({"action": "kill", "state": "pending"})),
    );
    assert_eq!(killed["acted"], 500);
    api.ok("POST", "/api/queues/bulk/resume", None);
    browser.goto(&node.page("/queues/bulk?state=dead"));
    browser.wait("#jobs tr[data-job-id]", LIMIT);
    browser.click_on("button[data-bulk='retry']", LIMIT);
    let dialog = browser.wait("dialog#confirm[open]", LIMIT);
    assert!(browser.displayed(&dialog));
    let question = browser.text_of("#confirm-text");
    assert!(
        question.contains("500"),
        "the question says how many: {question}"
    );
    browser.screenshot(&img("bulk-retry.png"));
    // Nothing happens before the answer.
    assert_eq!(api.counts("bulk")["states"]["dead"], 500);
    browser.click_on("#confirm-ok", LIMIT);
    wait_for(
        Duration::from_secs(60),
        "500 retried jobs completed",
        || (api.counts("bulk")["states"]["completed"] == 500).then_some(()),
    );
    browser.wait_text("#states a[data-state='completed'] .count", "500", LIMIT);
    browser.wait_until(LIMIT, "no dead job shown", || {
        (browser.text_of("#states a[data-state='dead'] .count") == "0").then_some(())
    });

    // A search by payload substring finds one job among 10,000; the URL keeps the search.
    browser.goto(&node.page("/queues/hay"));
    browser.wait("#jobs tr[data-job-id]", LIMIT);
    browser.fill("#filters input[name='q']", "zebra-4242");
    browser.click_on("#filters button[type='submit']", LIMIT);
    let found = browser.wait_until(LIMIT, "the search result", || {
        let rows = browser.find_all("#jobs tr[data-job-id]");
        (rows.len() == 1)
            .then(|| browser.try_text(&rows[0]))
            .flatten()
    });
    assert!(found.contains("zebra-4242"), "{found}");
    browser.wait(&format!("#jobs tr[data-job-id='{}']", needle[0]), LIMIT);
    assert!(browser.url().contains("q=zebra-4242"), "{}", browser.url());
    browser.screenshot(&img("search.png"));
    browser.back();
    browser.wait_until(LIMIT, "a full first page again", || {
        (browser.find_all("#jobs tr[data-job-id]").len() == 50).then_some(())
    });
    browser.forward();
    browser.wait(&format!("#jobs tr[data-job-id='{}']", needle[0]), LIMIT);

    // Usable on a phone: the overview at a phone's width.
    browser.set_size(390, 844);
    browser.goto(&node.page("/"));
    browser.wait("#queues tr[data-queue='work']", LIMIT);
    browser.screenshot(&img("overview-phone.png"));
    browser.assert_no_console_errors("the end of the session");
}

/// With tokens configured the page asks to log in, refuses a wrong token, and a read token
/// sees no action anywhere.
#[test]
fn login_rejects_a_wrong_token_and_a_read_token_sees_no_actions() {
    let config = "[http]\ntoken = \"op-secret\"\nread_token = \"look-only\"\n";
    let node = node(config, Some("op-secret"));
    let api = &node.api;
    let dead = api.exec("work", &["false"], 1);
    api.wait_state(&dead, "dead", LIMIT);
    let browser = Browser::start();

    browser.goto(&node.page("/queues/work?state=dead"));
    browser.wait("#token", LIMIT);
    browser.screenshot(&img("login.png"));
    browser.fill("#token", "not-the-token");
    browser.click_on("#login", LIMIT);
    browser.wait_text("#login-error", "Wrong token", LIMIT);
    assert!(
        browser.find("#jobs").is_none(),
        "nothing shown before login"
    );

    // The read token: the page it was going to, and no action buttons on any page.
    browser.fill("#token", "look-only");
    browser.click_on("#login", LIMIT);
    browser.wait(&format!("#jobs tr[data-job-id='{dead}']"), LIMIT);
    browser.wait("#read-only", LIMIT);
    for route in [
        "/queues/work?state=dead".to_owned(),
        format!("/jobs/{dead}"),
        "/dead".to_owned(),
        "/schedules".to_owned(),
        "/".to_owned(),
    ] {
        browser.goto(&node.page(&route));
        browser.wait("main h1", LIMIT);
        browser.wait(".live.on", LIMIT);
        for css in [
            "button[data-action]",
            "button[data-bulk]",
            "#pause",
            "#resume",
            "#limits-form",
        ] {
            assert!(
                browser.find(css).is_none(),
                "a read token sees {css} on {route}"
            );
        }
    }
    let errors: Vec<String> = browser
        .console_errors()
        .into_iter()
        .filter(|e| !(e.contains("/api/login") && e.contains("401")))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    // Log out, and in with the operator token: the actions are there.
    browser.click_on("#logout", LIMIT);
    browser.wait("#token", LIMIT);
    browser.fill("#token", "op-secret");
    browser.click_on("#login", LIMIT);
    browser.wait("#queues tr[data-queue='work']", LIMIT);
    assert!(browser.find("#read-only").is_none());
    browser.goto(&node.page(&format!("/jobs/{dead}")));
    browser.wait("#job-actions button[data-action='retry']", LIMIT);
}

/// Changes made while the server was down reach the open page once its event stream is back.
#[test]
fn the_page_reads_again_after_the_event_stream_reconnects() {
    let mut node = node("", None);
    // A queue no node runs: its job only moves when told to.
    let parked = seed(&node.redis.url(), "parked", 1, |_| json!({"cmd": ["true"]}));
    let browser = Browser::start();
    browser.goto(&node.page("/dead"));
    browser.wait("#no-dead", LIMIT);
    browser.wait(".live.on", LIMIT);
    mark(&browser);

    node.stop();
    browser.wait("#live:not(.on)", LIMIT);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = tickq::Client::connect(&node.redis.url()).await.unwrap();
        client.inspector().kill(&parked[0]).await.unwrap();
    });
    node.start_again();

    browser.wait(&format!("#jobs tr[data-job-id='{}']", parked[0]), LIMIT);
    browser.wait(".live.on", LIMIT);
    assert_not_reloaded(&browser);
    // The refused reconnects while the server was down are in the console; nothing after.
    browser.console_errors();
    browser.goto(&node.page("/queues/parked?state=dead"));
    browser.wait(&format!("#jobs tr[data-job-id='{}']", parked[0]), LIMIT);
    browser.assert_no_console_errors("the page after the reconnect");
}

const FAILURE_QUEUES: usize = 20;

/// The overview of a big Redis: prints how long it takes to show. The default seed is small;
/// `TICKQ_BIG_DASHBOARD=1` seeds 1,000,000 jobs of which 200,000 are dead (slow to seed).
#[test]
fn overview_of_a_big_redis_prints_its_load_time() {
    let big = std::env::var("TICKQ_BIG_DASHBOARD").is_ok_and(|v| v == "1");
    let (waiting, dead) = if big {
        (800_000, 200_000)
    } else {
        (16_000, 4_000)
    };
    let node = node("", None);
    let api = &node.api;
    let seeded = Instant::now();
    seed(&node.redis.url(), "backlog", waiting, |i| json!({"n": i}));
    // A queue keeps at most 10,000 dead jobs (the oldest go first), so the dead ones are
    // spread over 20 queues.
    for q in 0..FAILURE_QUEUES {
        let queue = format!("failures-{q:02}");
        seed(
            &node.redis.url(),
            &queue,
            dead / FAILURE_QUEUES,
            |i| json!({"n": i}),
        );
        let killed = api.ok(
            "POST",
            &format!("/api/queues/{queue}/bulk"),
            Some(json!({"action": "kill", "state": "pending"})),
        );
        assert_eq!(killed["acted"], dead / FAILURE_QUEUES);
    }
    let seeded = seeded.elapsed();

    let browser = Browser::start();
    // Once with a cold browser cache, once warm; each time until the numbers and the last
    // failures are on screen.
    for round in ["cold", "warm"] {
        let started = Instant::now();
        // A new query string: a full load of the document each time.
        browser.goto(&format!("http://{}/?load={round}#/", node.addr));
        browser.wait("#queues tr[data-queue='backlog']", Duration::from_secs(60));
        browser.wait("#failures tr[data-job-id]", Duration::from_secs(60));
        let took = started.elapsed();
        println!(
            "dashboard overview ({round}) of {} jobs ({dead} dead): {} ms (seeding took {:.1} s)",
            waiting + dead,
            took.as_millis(),
            seeded.as_secs_f64()
        );
    }
    let total = browser
        .text_of("a.card[data-total='dead'] .n")
        .replace([',', '.', ' ', '\u{202f}', '\u{a0}'], "");
    assert_eq!(total, dead.to_string());
    browser.assert_no_console_errors("the overview");
}

/// The workflow pages: the list, and one workflow's DAG drawn in layers with each step's
/// state, kept live while steps end, and cancelled from its page. Writes docs/img/flows.png
/// and docs/img/flow.png.
#[test]
fn the_workflow_list_and_a_workflows_dag() {
    let node = node("", None);
    let api = &node.api;
    let exec = |cmd: &[&str]| {
        tickq::NewJob::new("work", "exec")
            .payload(json!({ "cmd": cmd }))
            .max_attempts(1)
    };
    let id = "nightly-2026-11-30";
    // extract -> four parts (part3 fails) -> report (the batch's on_success: cancelled) and
    // alert (on_failure: runs); a slow step keeps the workflow running, archive waits for it.
    let flow = tickq::Workflow::new("work", "nightly-report")
        .id(id)
        .step(tickq::Step::new("extract", exec(&["true"])))
        .step(tickq::Step::new("part1", exec(&["true"])).after(["extract"]))
        .step(tickq::Step::new("part2", exec(&["true"])).after(["extract"]))
        .step(tickq::Step::new("part3", exec(&["false"])).after(["extract"]))
        .step(tickq::Step::new("part4", exec(&["true"])).after(["extract"]))
        .step(tickq::Step::new("report", exec(&["true"])))
        .step(tickq::Step::new("alert", exec(&["true"])))
        .step(tickq::Step::new("slow", exec(&["sh", "-c", "sleep 60"])).after(["extract"]))
        .step(
            tickq::Step::new("archive", exec(&["true"]))
                .after(["slow", "report"])
                .on_parent_failure(tickq::ParentFailure::Run),
        )
        .batch(
            tickq::Batch::new(["part1", "part2", "part3", "part4"])
                .on_success("report")
                .on_failure("alert"),
        );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = tickq::Client::connect(&node.redis.url()).await.unwrap();
        client.submit_flow(flow).await.unwrap();
    });
    let step_state = |doc: &Value, step: &str| {
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == step)
            .map(|s| s["state"].as_str().unwrap_or("").to_owned())
            .unwrap()
    };
    wait_for(LIMIT, "alert done and slow running", || {
        let doc = api.ok("GET", &format!("/api/flows/{id}"), None);
        (step_state(&doc, "alert") == "completed" && step_state(&doc, "slow") == "active")
            .then_some(())
    });

    let browser = Browser::start();
    browser.goto(&node.page("/flows"));
    let row = format!("tr[data-flow='{id}']");
    browser.wait(&row, LIMIT);
    browser.wait(".live.on", LIMIT);
    assert!(
        browser.text_of(&row).contains("running"),
        "{}",
        browser.text_of(&row)
    );
    browser.assert_no_console_errors("/flows");
    browser.screenshot(&img("flows.png"));

    // Its page, from the list.
    browser.click_on(&format!("{row} a[href='#/flows/{id}']"), LIMIT);
    browser.wait("#dag g[data-step='report'][data-state='cancelled']", LIMIT);
    browser.assert_no_console_errors("/flows/ID");
    let nodes = browser.find_all("#dag g[data-step]").len();
    let edges = browser.find_all("#dag path.edge").len();
    assert_eq!((nodes, edges), (9, 15), "a box per step, an edge per after");
    // Layers left to right: every edge goes from a box to one further right.
    let backwards = browser.script(
        "const x = (s) => document.querySelector(`#dag g[data-step='${s}']`).getBoundingClientRect().x;
         return [...document.querySelectorAll('#dag path.edge')]
           .filter((e) => x(e.dataset.from) >= x(e.dataset.to))
           .map((e) => `${e.dataset.from}->${e.dataset.to}`);",
        json!([]),
    );
    assert_eq!(backwards, json!([]), "edges that do not go right");
    for (step, state) in [
        ("part3", "dead"),
        ("alert", "completed"),
        ("slow", "active"),
        ("archive", "waiting"),
    ] {
        browser.wait(
            &format!("#dag g[data-step='{step}'][data-state='{state}']"),
            LIMIT,
        );
    }
    browser.screenshot(&img("flow.png"));

    // Cancelled from its page: the running step is stopped, the waiting one cancelled, and
    // the page follows live.
    browser.click_on("button[data-action='cancel']", LIMIT);
    browser.click_on("#confirm-ok", LIMIT);
    browser.wait("#dag g[data-step='archive'][data-state='cancelled']", LIMIT);
    // The running step stops at its worker's next lease renewal (a third of the 30 s lease).
    browser.wait_text("#flow-state", "cancelled", Duration::from_secs(45));
    browser.wait("button[data-action='retry']", LIMIT);
    browser.assert_no_console_errors("/flows/ID after cancel");
}
