//! The fault harness (issue 12, docs/reliability.md): a mixed workload on several real
//! `tickq server` processes against a real Redis, one fault injected per scenario, a history
//! written outside Redis, and an independent checker (`check.rs`).
//!
//! The workload: immediate, delayed, prioritised and unique `exec` jobs enqueued while the
//! fault goes on, plus a cron schedule firing every second on every node. Each job is a shell
//! program that appends `S` (start) and `E` (end) lines with its id, fence, node and time to
//! the history file, and prints `fence=N` as its result; the harness appends `Q` for every
//! enqueue Redis answered and `F` for every fault (from its start to its repair). In the
//! kill -9, Redis crash and Redis stall scenarios, two Rust worker processes (this test
//! binary started again, see `faults_rust_worker_process`) run every third job with a Rust
//! handler that does the same.
//!
//! Every scenario runs short here (CI); `TICKQ_FAULTS=long` runs the long version:
//!
//! ```text
//! TICKQ_FAULTS=long cargo nextest run -p tickq-cli -E 'test(/^faults::/)' --no-capture
//! ```
//!
//! Each scenario prints its row of docs/reliability.md's table.

mod check;
mod proxy;

use crate::util::Server;
use check::Report;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tickq::NewJob;
use tickq_testkit::{TestCluster, TestRedis, TestSentinel};

const QUEUE: &str = "f";
/// The queue of the Rust-handler jobs (kind `rust`), which only the Rust worker processes
/// take: a `tickq server` has no handler for them.
const RUST_QUEUE: &str = "fr";
/// Set (to the Redis URL) in the environment of this test binary started again as a Rust
/// worker process: see [`faults_rust_worker_process`].
const RUST_WORKER_ENV: &str = "TICKQ_FAULTS_RUST_WORKER";
const LEASE: &str = "2s";
const LEASE_MS: u64 = 2000;

/// Appends its start and end to the history file ($1), runs for $2 seconds, answers its fence.
const JOB: &str = r#"line() { printf '%s %s %s %s %s %s %s\n' "$1" "$TICKQ_JOB_ID" "$TICKQ_FENCE" "$TICKQ_NODE" "$(date +%s%3N)" "${TICKQ_CRON:-}" "${TICKQ_SCHEDULED_AT:-}" >> "$HIST"; }
HIST="$1"; line S; sleep "$2"; line E; echo "fence=$TICKQ_FENCE""#;

/// A job whose middle runs inside a lock ($2 is the tickq binary, $3 the Redis URL, $4 the
/// lock): the critical section appends `L <lock> <lock fence> <start ms> <end ms>`.
const LOCKED_JOB: &str = r#"line() { printf '%s %s %s %s %s %s %s\n' "$1" "$TICKQ_JOB_ID" "$TICKQ_FENCE" "$TICKQ_NODE" "$(date +%s%3N)" "" "" >> "$HIST"; }
HIST="$1"; line S
"$2" --redis "$3" lock run "$4" --ttl 2s --wait 60s -- sh -c 's=$(date +%s%3N); sleep 0.05; printf "L %s %s %s %s\n" "$TICKQ_LOCK" "$TICKQ_FENCE" "$s" "$(date +%s%3N)" >> "$0"' "$HIST" || exit 1
line E; echo "fence=$TICKQ_FENCE""#;

struct Scale {
    jobs: usize,
    nodes: usize,
    /// Faults per run (kills, restarts, stalls...).
    faults: usize,
    job_secs: &'static str,
}

fn scale() -> Scale {
    if std::env::var("TICKQ_FAULTS").as_deref() == Ok("long") {
        Scale {
            jobs: 3000,
            nodes: 3,
            faults: 60,
            job_secs: "0.05",
        }
    } else {
        Scale {
            jobs: 300,
            nodes: 3,
            faults: 20,
            job_secs: "0.02",
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn append(path: &Path, line: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// Where Redis is: one server, a primary + replica + sentinel, or a Cluster with replicas.
enum Backend {
    Single(TestRedis),
    Sentinel(Box<TestSentinel>),
    Cluster(Box<TestCluster>),
}

/// One run: Redis, the nodes, the history.
struct Harness {
    redis: Option<TestRedis>,
    sentinel: Option<TestSentinel>,
    cluster: Option<TestCluster>,
    /// The address the nodes and the producer use.
    url: String,
    _dir: tempfile::TempDir,
    history: PathBuf,
    nodes: Vec<Option<Server>>,
    /// Rust worker processes (this test binary started again), after the servers in the
    /// numbering of [`restart`](Self::restart); none unless [`with_rust`](Self::with_rust).
    rust: Vec<Option<Child>>,
    /// Per node: the Redis URL it uses (direct, or through a proxy).
    urls: Vec<String>,
    env: Vec<(String, String)>,
    /// Per node: a libfaketime offset (`FAKETIME`) for its clock, if any.
    skew: Vec<Option<&'static str>>,
    job_secs: &'static str,
}

impl Harness {
    fn start(backend: impl Into<Backend>, nodes: usize, env: &[(&str, &str)]) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let history = dir.path().join("history");
        std::fs::write(&history, "").unwrap();
        let (redis, sentinel, cluster, url) = match backend.into() {
            Backend::Single(r) => {
                let url = r.url();
                (Some(r), None, None, url)
            }
            Backend::Sentinel(s) => {
                let url = s.url();
                (None, Some(*s), None, url)
            }
            Backend::Cluster(c) => {
                let url = c.cluster_url();
                (None, None, Some(*c), url)
            }
        };
        let mut h = Harness {
            redis,
            sentinel,
            cluster,
            url: url.clone(),
            _dir: dir,
            history,
            nodes: Vec::new(),
            rust: Vec::new(),
            urls: vec![url; nodes],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            skew: Vec::new(),
            job_secs: scale().job_secs,
        };
        for i in 0..nodes {
            let node = h.launch(i);
            h.nodes.push(Some(node));
        }
        h
    }

    fn config(&self, i: usize) -> String {
        let cmd = |secs: &str| {
            format!(
                "[\"sh\", \"-c\", {job:?}, \"sh\", {hist:?}, \"{secs}\"]",
                job = JOB,
                hist = self.history.display().to_string()
            )
        };
        format!(
            "redis = {url:?}\nnode = \"n{i}\"\n\n[worker]\nqueues = {{ {QUEUE} = 1 }}\n\
             concurrency = 4\nlease = \"{LEASE}\"\n\n[exec]\nallow = [\"sh\", {bin:?}]\n\n\
             [[cron]]\nname = \"tick\"\nschedule = \"@every 1s\"\nqueue = \"{QUEUE}\"\n\
             tasks = [ {{ kind = \"exec\", cmd = {cmd} }} ]\n",
            url = self.urls[i],
            cmd = cmd(self.job_secs),
            bin = crate::util::BIN,
        )
    }

    fn launch(&self, i: usize) -> Server {
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let preload;
        if let Some(Some(offset)) = self.skew.get(i) {
            preload = find_libfaketime();
            env.push(("LD_PRELOAD", &preload));
            env.push(("FAKETIME", offset));
        }
        Server::start(Some(&self.config(i)), &[], &env)
    }

    /// The one Redis server (scenarios that fault it).
    fn single(&mut self) -> &mut TestRedis {
        self.redis.as_mut().expect("a single Redis")
    }

    /// A connection to the current primary, for the checker.
    fn direct_conn(&self) -> Box<dyn redis::ConnectionLike> {
        match (&self.redis, &self.sentinel, &self.cluster) {
            (Some(r), _, _) => Box::new(r.sync_conn()),
            (_, Some(s), _) => Box::new(s.master().sync_conn()),
            (_, _, Some(c)) => Box::new(c.client().get_connection().unwrap()),
            _ => unreachable!(),
        }
    }

    /// Adds `n` Rust worker processes (nodes `r0`, `r1`, ...), which run the `rust` jobs the
    /// producer then mixes in.
    fn with_rust(mut self, n: usize) -> Harness {
        self.rust = (0..n).map(|i| Some(self.launch_rust(i))).collect();
        self
    }

    /// This test binary again, running [`faults_rust_worker_process`] only.
    fn launch_rust(&self, i: usize) -> Child {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "faults::faults_rust_worker_process",
            "--ignored",
            "--test-threads=1",
        ])
        .env(RUST_WORKER_ENV, &self.url)
        .env("TICKQ_FAULTS_NODE", format!("r{i}"))
        .env("TICKQ_FAULTS_HISTORY", &self.history)
        .env("TICKQ_FAULTS_JOB_SECS", self.job_secs)
        .envs(self.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
        cmd.spawn().unwrap()
    }

    /// Node `i` with `kill -9`: the servers first, then the Rust workers.
    fn kill(&mut self, i: usize) {
        if i >= self.nodes.len() {
            if let Some(mut child) = self.rust[i - self.nodes.len()].take() {
                child.kill().ok();
                child.wait().ok();
            }
        } else if let Some(node) = self.nodes[i].take() {
            node.signal(libc::SIGKILL);
            drop(node);
        }
    }

    fn restart(&mut self, i: usize) {
        self.kill(i);
        if i >= self.nodes.len() {
            let r = i - self.nodes.len();
            self.rust[r] = Some(self.launch_rust(r));
        } else {
            self.nodes[i] = Some(self.launch(i));
        }
    }

    /// Servers and Rust workers.
    fn node_count(&self) -> usize {
        self.nodes.len() + self.rust.len()
    }

    fn fault(&self, name: &str, start: u64) {
        append(&self.history, &format!("F {name} {start} {}", now_ms()));
    }

    /// Enqueue `n` jobs of the mix, spread over the run, from a thread of its own; stops when
    /// `stop` is set. Only jobs Redis answered are written to the history.
    fn producer(&self, n: usize, stop: Arc<AtomicBool>) -> thread::JoinHandle<usize> {
        let url = self.url.clone();
        let history = self.history.clone();
        let secs = self.job_secs;
        let rust = !self.rust.is_empty();
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = loop {
                    if let Ok(c) = tickq::Client::connect(&url).await {
                        break c;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                let mut accepted = 0;
                for i in 0..n {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let hist = history.display().to_string();
                    let payload = serde_json::json!({"cmd": ["sh", "-c", JOB, "sh", hist, secs]});
                    // With Rust workers, every third job is theirs.
                    let (id, mut job) = if rust && i % 3 == 2 {
                        let id = format!("r{i}");
                        (id.clone(), NewJob::new(RUST_QUEUE, "rust").id(id))
                    } else {
                        let id = format!("j{i}");
                        (
                            id.clone(),
                            NewJob::new(QUEUE, "exec").id(id).payload(payload),
                        )
                    };
                    job = match i % 4 {
                        0 => job.delay(Duration::from_millis((i % 7) as u64 * 100)),
                        1 => job.priority((i % 5) as i32),
                        2 => job
                            .unique_for(Duration::from_secs(600))
                            .unique_key(format!("u{i}")),
                        _ => job,
                    };
                    // Errors are expected while a fault goes on: such a job was not accepted.
                    if client.enqueue(job).await.is_ok() {
                        append(&history, &format!("Q {id} {}", now_ms()));
                        accepted += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                accepted
            })
        })
    }

    /// Waits until nothing is waiting or running (or `limit`), stops the nodes, and checks.
    fn finish(mut self, limit: Duration) -> Report {
        // No new cron ticks from here on, so that "nothing left running" can be checked.
        crate::util::run(Some(&self.url), &["cron", "pause", "tick"]).ok();
        let mut conn = self.direct_conn();
        let conn = conn.as_mut();
        let raw = check::RawKeys {
            queues: &[QUEUE, RUST_QUEUE],
            schedule: (QUEUE, "tick"),
            queue_of: &|id| {
                if id.starts_with('r') {
                    RUST_QUEUE
                } else {
                    QUEUE
                }
            },
        };
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline && raw.busy(conn) > 0 {
            thread::sleep(Duration::from_millis(100));
        }
        for i in 0..self.node_count() {
            self.kill(i);
        }
        let counters = raw.counters(conn);
        let events = check::read(&self.history);
        let mut job = |id: &str| raw.job(conn, id);
        let mut report = check::check(&events, &mut job, counters);
        report.lines = check::read_lines(&self.history);
        report
    }
}

fn print(name: &str, report: &Report) {
    eprintln!("{}", report.row(name, 1));
    for v in report.violations.iter().take(10) {
        eprintln!("  violation: {v}");
    }
    for l in report.lost.iter().take(10) {
        eprintln!("  lost: {l}");
    }
}

#[track_caller]
fn assert_clean(name: &str, report: &Report) {
    print(name, report);
    assert!(report.accepted > 0, "{name}: nothing was accepted");
    assert!(report.lost.is_empty(), "{name}: lost {:?}", report.lost);
    assert!(
        report.violations.is_empty(),
        "{name}: {:?}",
        report.violations
    );
}

impl From<TestRedis> for Backend {
    fn from(r: TestRedis) -> Backend {
        Backend::Single(r)
    }
}

impl From<TestCluster> for Backend {
    fn from(c: TestCluster) -> Backend {
        Backend::Cluster(Box::new(c))
    }
}

impl From<TestSentinel> for Backend {
    fn from(s: TestSentinel) -> Backend {
        Backend::Sentinel(Box::new(s))
    }
}

fn redis(fsync: &str) -> TestRedis {
    TestRedis::builder()
        .tcp()
        .extra_args(["--appendfsync", fsync])
        .start()
}

// ---- scenarios ----

/// Worker processes killed with SIGKILL at random and started again: the `tickq server`
/// nodes and two Rust worker processes, which run every third job.
fn kill9(env: &[(&str, &str)], limit: Duration) -> Report {
    let s = scale();
    let mut h = Harness::start(redis("always"), s.nodes, env).with_rust(2);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = h.producer(s.jobs, stop.clone());
    for k in 0..s.faults {
        thread::sleep(Duration::from_millis(150));
        let start = now_ms();
        let i = (k * 7 + 3) % h.node_count();
        h.restart(i);
        h.fault("kill-9", start);
    }
    producer.join().unwrap();
    h.finish(limit)
}

/// Not a test: the Rust worker process of [`Harness::with_rust`], this test binary started
/// again with [`RUST_WORKER_ENV`] set (without it, it returns at once). A `tickq::Worker`
/// whose `rust` handler writes the same `S` and `E` lines as the exec jobs' shell program and
/// answers `fence=N`; it runs until it is killed.
#[test]
#[ignore = "started by the fault harness as a worker process"]
fn faults_rust_worker_process() {
    let Ok(url) = std::env::var(RUST_WORKER_ENV) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let node = var("TICKQ_FAULTS_NODE");
    let history = PathBuf::from(var("TICKQ_FAULTS_HISTORY"));
    let secs: f64 = var("TICKQ_FAULTS_JOB_SECS").parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = loop {
            match tickq::Client::connect(&url).await {
                Ok(client) => break client,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let worker = tickq::Worker::builder(&client)
            .node(node.clone())
            .concurrency(4)
            .queue(RUST_QUEUE, 1)
            .lease(Duration::from_millis(LEASE_MS))
            .handler("rust", move |job: tickq::Job| {
                let (node, history) = (node.clone(), history.clone());
                async move {
                    let line = |se: &str| {
                        // The shell jobs' format, with no cron tick.
                        let (id, fence) = (job.id(), job.fence());
                        append(
                            &history,
                            &format!("{se} {id} {fence} {node} {}  ", now_ms()),
                        );
                    };
                    line("S");
                    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                    line("E");
                    Ok::<_, tickq::JobError>(format!("fence={}", job.fence()))
                }
            })
            .build()
            .unwrap();
        worker.run().await.unwrap();
    });
}

#[test]
fn faults_kill_9_of_nodes_loses_nothing() {
    let report = kill9(&[], Duration::from_secs(60));
    assert_clean("kill -9 of a node", &report);
    let rust = report.lines.iter().filter(|l| l.starts_with("E r")).count();
    eprintln!("  {rust} runs of Rust-handler jobs ended");
    assert!(rust > 0, "no Rust-handler job ran");
}

/// The checker catches a broken guarantee: with lease recovery off, the jobs of the killed
/// nodes stay active and are never run again.
#[test]
fn faults_checker_catches_disabled_lease_recovery() {
    // Recovery would have run every job within lease + recover interval (4 s); 6 s shows it
    // did not.
    let report = kill9(
        &[("TICKQ_TEST_DISABLE", "recovery")],
        Duration::from_secs(6),
    );
    print("kill -9, lease recovery disabled", &report);
    assert!(
        !report.lost.is_empty() || !report.violations.is_empty(),
        "the checker did not notice: {report:?}"
    );
}

/// Redis killed with SIGKILL and started again from its AOF, `appendfsync` as given.
fn redis_crash(fsync: &str) -> Report {
    let s = scale();
    let mut h = Harness::start(redis(fsync), s.nodes, &[]).with_rust(2);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = h.producer(s.jobs, stop.clone());
    for _ in 0..(s.faults / 5).max(3) {
        thread::sleep(Duration::from_millis(700));
        let start = now_ms();
        h.single().kill();
        h.single().start_again();
        h.fault("redis-kill-9", start);
    }
    producer.join().unwrap();
    h.finish(Duration::from_secs(60))
}

#[test]
fn faults_redis_crash_with_aof_always_loses_nothing() {
    assert_clean("Redis kill -9, AOF always", &redis_crash("always"));
}

/// `everysec` may lose up to a second of writes: enqueues answered just before the crash can
/// vanish (counted as lost here and in docs/reliability.md), acks can vanish (the job runs
/// again). Nothing else may break.
#[test]
fn faults_redis_crash_with_aof_everysec_loses_at_most_the_last_second() {
    let report = redis_crash("everysec");
    print("Redis kill -9, AOF everysec", &report);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

/// Redis stalled (SIGSTOP) for longer than the lease, then continued.
#[test]
fn faults_redis_stalled_past_the_lease_loses_nothing() {
    let s = scale();
    let mut h = Harness::start(redis("always"), s.nodes, &[]).with_rust(2);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = h.producer(s.jobs, stop.clone());
    for _ in 0..(s.faults / 10).max(2) {
        thread::sleep(Duration::from_millis(800));
        let start = now_ms();
        h.single().pause();
        thread::sleep(Duration::from_millis(LEASE_MS + 1000));
        h.single().resume();
        h.fault("redis-sigstop", start);
    }
    producer.join().unwrap();
    assert_clean(
        "Redis SIGSTOP past the lease",
        &h.finish(Duration::from_secs(60)),
    );
}

/// Node 0 reaches Redis through a proxy the harness controls.
fn partition(mode: &str, env: &[(&str, &str)], jobs: Option<(usize, &'static str)>) -> Report {
    let s = scale();
    let redis = redis("always");
    let proxy = proxy::Proxy::start(redis.port().unwrap());
    let mut h = Harness::start(redis, 0, env);
    let jobs = match jobs {
        Some((n, secs)) => {
            h.job_secs = secs;
            n
        }
        None => s.jobs,
    };
    h.urls = vec![format!("redis://127.0.0.1:{}", proxy.port)];
    h.urls.extend(vec![h.url.clone(); s.nodes - 1]);
    for i in 0..s.nodes {
        let node = h.launch(i);
        h.nodes.push(Some(node));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let producer = h.producer(jobs, stop.clone());
    for _ in 0..(s.faults / 10).max(2) {
        thread::sleep(Duration::from_millis(800));
        let start = now_ms();
        match mode {
            "blackhole" => {
                // Past the lease, until another node has taken one of the cut-off node's
                // jobs over (or 15 s): its acks held meanwhile then arrive while the new
                // holder runs the job, which only the fence check at ack refuses.
                proxy.hold();
                thread::sleep(Duration::from_millis(LEASE_MS));
                let deadline = Instant::now() + Duration::from_secs(15);
                while !taken_over(&h.history, "n0") && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(20));
                }
                proxy.pass();
            }
            "latency" => {
                proxy.delay(200);
                thread::sleep(Duration::from_millis(LEASE_MS));
                proxy.pass();
            }
            "reset" => proxy.reset(),
            _ => unreachable!(),
        }
        h.fault(mode, start);
    }
    producer.join().unwrap();
    h.finish(Duration::from_secs(60))
}

/// The same jobs and fault as the fence-check test below, with every protection on.
#[test]
fn faults_node_blackholed_past_the_lease_loses_nothing() {
    assert_clean(
        "node cut off (blackhole, half-open) past the lease",
        &partition("blackhole", &[], Some((40, "1.5"))),
    );
}

#[test]
fn faults_node_with_200ms_latency_loses_nothing() {
    assert_clean(
        "node with +200 ms to Redis",
        &partition("latency", &[], None),
    );
}

#[test]
fn faults_node_connections_reset_mid_reply_loses_nothing() {
    assert_clean("node's connections reset", &partition("reset", &[], None));
}

/// The checker catches a broken guarantee: with the fence check at ack off, a node whose acks
/// were held past its leases (the blackhole) completes jobs that other nodes took over. Jobs
/// of 1.5 s, so that the node holds finished jobs whose acks are held, and their second runs
/// are still going when the held acks arrive.
#[test]
fn faults_checker_catches_disabled_fence_check_at_ack() {
    let report = partition(
        "blackhole",
        &[("TICKQ_TEST_DISABLE", "ack-fence")],
        Some((40, "1.5")),
    );
    print("blackhole, fence check at ack disabled", &report);
    assert!(
        !report.violations.is_empty(),
        "the checker did not notice: {report:?}"
    );
}

/// The checker catches a broken guarantee: with the tick watermark's compare-and-set off,
/// the nodes that wake for the same tick all fire it. No fault: three nodes, the `@every 1s`
/// schedule, and a few jobs.
#[test]
fn faults_checker_catches_a_tick_fired_twice_with_the_watermark_off() {
    let ticks = if std::env::var("TICKQ_FAULTS").as_deref() == Ok("long") {
        30
    } else {
        6
    };
    let h = Harness::start(
        redis("always"),
        3,
        &[("TICKQ_TEST_DISABLE", "tick-watermark")],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let producer = h.producer(ticks * 10, stop.clone());
    thread::sleep(Duration::from_secs(ticks as u64));
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    let report = h.finish(Duration::from_secs(30));
    print("3 nodes, tick watermark disabled", &report);
    assert!(report.lost.is_empty(), "lost {:?}", report.lost);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("a tick fired more than once")),
        "the checker did not notice: {report:?}"
    );
}

/// libfaketime itself (the `faketime` wrapper forks, so signals would reach the wrapper).
fn find_libfaketime() -> String {
    let candidates = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1")]);
    for path in candidates {
        if path.exists() {
            return path.to_string_lossy().into_owned();
        }
    }
    panic!("this test needs libfaketime: apt-get install faketime (./dev test installs it)");
}

/// Node clocks skewed by +30 s and -30 s (libfaketime), one node on time, while nodes are
/// also killed: leases, due times and cron ticks go by Redis' clock, not the nodes'.
#[test]
fn faults_node_clocks_skewed_30s_loses_nothing() {
    let s = scale();
    let redis = redis("always");
    let mut h = Harness::start(redis, 0, &[]);
    h.skew = vec![Some("+30s"), Some("-30s"), None];
    h.urls = vec![h.url.clone(); s.nodes];
    for i in 0..s.nodes {
        let node = h.launch(i);
        h.nodes.push(Some(node));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let producer = h.producer(s.jobs, stop.clone());
    for k in 0..(s.faults / 4).max(3) {
        thread::sleep(Duration::from_millis(400));
        let start = now_ms();
        h.restart(k % s.nodes);
        h.fault("kill-9 (skewed clocks)", start);
    }
    producer.join().unwrap();
    assert_clean(
        "node clocks +30 s / -30 s (with kill -9)",
        &h.finish(Duration::from_secs(60)),
    );
}

/// Whether a job first started on `node` has started again elsewhere, with a new fence.
fn taken_over(history: &Path, node: &str) -> bool {
    let text = std::fs::read_to_string(history).unwrap_or_default();
    let mut first: BTreeMap<&str, &str> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if let ["S", id, _fence, n, ..] = f.as_slice() {
            match first.get(id) {
                None => {
                    first.insert(id, n);
                }
                Some(&started) if started == node && *n != node => return true,
                _ => {}
            }
        }
    }
    false
}

/// A forced Sentinel failover while 1,000 exec jobs run on three nodes (issue 12's case): the
/// nodes reach Redis through the sentinel. All jobs are enqueued, and replicated, before the
/// failover, since a failover may lose writes that were not (docs/operations.md): what is
/// measured is the jobs that run twice, which only the jobs in flight at the switch may.
#[test]
fn faults_sentinel_failover_under_load_loses_nothing_and_reruns_at_most_the_jobs_in_flight() {
    const JOBS: usize = 1000;
    let mut h = Harness::start(TestSentinel::start(), 3, &[]);
    h.job_secs = "0.1";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = tickq::Client::connect(&h.url).await.unwrap();
        let hist = h.history.display().to_string();
        let jobs = (0..JOBS).map(|i| {
            let payload = serde_json::json!({"cmd": ["sh", "-c", JOB, "sh", hist, "0.1"]});
            NewJob::new(QUEUE, "exec")
                .id(format!("j{i}"))
                .payload(payload)
        });
        for e in client.enqueue_bulk(jobs.collect()).await.unwrap() {
            append(&h.history, &format!("Q {} {}", e.id, now_ms()));
        }
    });
    let mut direct = h.direct_conn();
    let _: () = redis::cmd("SET")
        .arg("sync")
        .arg(1)
        .query(direct.as_mut())
        .unwrap();
    let replicas: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(direct.as_mut())
        .unwrap();
    assert_eq!(replicas, 1);
    // Let the run get going, then fail over (the call returns once the old primary has been
    // demoted, about 10 s later).
    let started = || {
        std::fs::read_to_string(&h.history)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("E "))
            .count()
    };
    crate::util::wait_for(Duration::from_secs(30), "a fifth of the jobs ran", || {
        (started() >= JOBS / 5).then_some(())
    });
    let start = now_ms();
    h.sentinel.as_mut().unwrap().failover();
    h.fault("sentinel-failover", start);
    let report = h.finish(Duration::from_secs(120));
    assert_clean("Sentinel failover (forced), 1,000 exec jobs", &report);
    // Three nodes of concurrency 4: at most 12 jobs were in flight at the switch.
    assert!(
        report.ran_twice <= 12,
        "{} jobs ran twice",
        report.ran_twice
    );
}

/// A Redis Cluster (3 primaries, a replica each) under load from exec jobs on three
/// `tickq server` nodes: the queue's primary is replaced by its replica with `CLUSTER
/// FAILOVER`, and later the new primary is killed with `kill -9`, so that the first one is
/// elected back. All jobs are enqueued, and replicated, before the faults (a failover may lose
/// writes that were not, docs/operations.md): at most the jobs in flight at each switch may
/// run twice.
#[test]
fn faults_cluster_failover_and_primary_kill_under_load_lose_nothing() {
    let s = scale();
    let cluster = TestCluster::start_with_replicas(TestCluster::DEFAULT_PRIMARIES);
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(format!("tickq:{{{QUEUE}}}:pending"))
        .query(&mut cluster.node(0).sync_conn())
        .unwrap();
    // start_with_replicas splits the slots evenly over nodes 0..3, in order.
    let primary = usize::from(slot) * TestCluster::DEFAULT_PRIMARIES / 16_384;
    let replica = cluster.replica_of(primary);
    let mut direct = cluster.node(primary).sync_conn();
    let mut h = Harness::start(cluster, s.nodes, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = tickq::Client::connect(&h.url).await.unwrap();
        let hist = h.history.display().to_string();
        let jobs = (0..s.jobs).map(|i| {
            let payload = serde_json::json!({"cmd": ["sh", "-c", JOB, "sh", hist, s.job_secs]});
            NewJob::new(QUEUE, "exec")
                .id(format!("j{i}"))
                .payload(payload)
        });
        for e in client.enqueue_bulk(jobs.collect()).await.unwrap() {
            append(&h.history, &format!("Q {} {}", e.id, now_ms()));
        }
    });
    redis::cmd("SET")
        .arg(format!("{{{QUEUE}}}sync"))
        .arg(1)
        .exec(&mut direct)
        .unwrap();
    let replicas: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut direct)
        .unwrap();
    assert_eq!(replicas, 1);
    let ended = |h: &Harness| {
        std::fs::read_to_string(&h.history)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("E "))
            .count()
    };
    crate::util::wait_for(Duration::from_secs(30), "a fifth of the jobs ran", || {
        (ended(&h) >= s.jobs / 5).then_some(())
    });
    let start = now_ms();
    h.cluster.as_ref().unwrap().failover(replica);
    h.fault("cluster-failover", start);
    crate::util::wait_for(
        Duration::from_secs(30),
        "two fifths of the jobs ran",
        || (ended(&h) >= s.jobs * 2 / 5).then_some(()),
    );
    let start = now_ms();
    let cluster = h.cluster.as_mut().unwrap();
    cluster.kill_node(replica);
    cluster.wait_for_primary(primary);
    h.fault("cluster-primary-kill-9", start);
    let report = h.finish(Duration::from_secs(120));
    assert_clean(
        "Cluster failover, then kill -9 of the new primary, exec jobs",
        &report,
    );
    // Three nodes of concurrency 4: at most 12 jobs were in flight at each of the switches.
    assert!(
        report.ran_twice <= 24,
        "{} jobs ran twice",
        report.ran_twice
    );
}

/// A fault of the lock scenarios.
#[derive(Clone, Copy)]
enum LockFault {
    /// `kill -9` of a node, started again.
    NodeKill,
    /// `kill -9` of Redis, started again from its AOF (`always`).
    RedisCrash,
    /// Redis stopped (`SIGSTOP`) for 3 s: past the locks' 2 s TTL and the jobs' lease.
    RedisStall,
}

/// Lock-guarded jobs (`tickq lock run` inside exec jobs, three locks, TTL 2 s) under `fault`:
/// no two critical sections of one lock overlap, and their fences grow in the order they ran.
fn locked(fault: LockFault) -> Report {
    let s = scale();
    let jobs = s.jobs / 3;
    let mut h = Harness::start(redis("always"), s.nodes, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = tickq::Client::connect(&h.url).await.unwrap();
        let hist = h.history.display().to_string();
        let jobs = (0..jobs).map(|i| {
            let lock = format!("l{}", i % 3);
            let cmd = [
                "sh",
                "-c",
                LOCKED_JOB,
                "sh",
                &hist,
                crate::util::BIN,
                &h.url,
                &lock,
            ];
            let payload = serde_json::json!({ "cmd": cmd });
            NewJob::new(QUEUE, "exec")
                .id(format!("j{i}"))
                .payload(payload)
        });
        for e in client.enqueue_bulk(jobs.collect()).await.unwrap() {
            append(&h.history, &format!("Q {} {}", e.id, now_ms()));
        }
    });
    match fault {
        LockFault::NodeKill => {
            for k in 0..(s.faults / 2).max(5) {
                thread::sleep(Duration::from_millis(300));
                let start = now_ms();
                h.restart(k % s.nodes);
                h.fault("kill-9 (locks)", start);
            }
        }
        LockFault::RedisCrash => {
            for _ in 0..(s.faults / 5).max(3) {
                thread::sleep(Duration::from_millis(700));
                let start = now_ms();
                h.single().kill();
                h.single().start_again();
                h.fault("redis-kill-9 (locks)", start);
            }
        }
        LockFault::RedisStall => {
            for _ in 0..(s.faults / 10).max(2) {
                thread::sleep(Duration::from_millis(800));
                let start = now_ms();
                h.single().pause();
                thread::sleep(Duration::from_millis(LEASE_MS + 1000));
                h.single().resume();
                h.fault("redis-sigstop (locks)", start);
            }
        }
    }
    h.finish(Duration::from_secs(120))
}

#[track_caller]
fn assert_locks_clean(name: &str, report: &Report) {
    assert_clean(name, report);
    let sections = check::lock_sections(&report.lines);
    assert!(!sections.is_empty(), "no critical section ran");
    let overlaps = check::lock_overlaps(&sections);
    assert!(
        overlaps.is_empty(),
        "two holders inside a lock: {overlaps:?}"
    );
    eprintln!("  {} critical sections, none overlapping", sections.len());
}

#[test]
fn faults_lock_guarded_jobs_with_kill_9_never_have_two_holders() {
    assert_locks_clean(
        "lock-guarded jobs, kill -9 of nodes",
        &locked(LockFault::NodeKill),
    );
}

#[test]
fn faults_lock_guarded_jobs_with_redis_crashes_never_have_two_holders() {
    assert_locks_clean(
        "lock-guarded jobs, Redis kill -9 (AOF always)",
        &locked(LockFault::RedisCrash),
    );
}

#[test]
fn faults_lock_guarded_jobs_with_redis_stalled_past_the_ttl_never_have_two_holders() {
    assert_locks_clean(
        "lock-guarded jobs, Redis SIGSTOP past the lock TTL",
        &locked(LockFault::RedisStall),
    );
}
