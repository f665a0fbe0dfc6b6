//! Table tests of every script, through the `Broker`: state in, call, state out.
//!
//! Each test starts its own redis-server, builds the state it needs with broker calls (or with
//! raw commands where the API cannot reach a state: an orphan index entry, a hash without data,
//! an expired lease), makes the call under test and then asserts the Redis state it left: hash
//! fields, index memberships and scores. `assert_state` checks the invariant every test relies
//! on: a job's hash names a state and the job is in that state's index and in no other.

use super::enqueue::ENQUEUE_CHUNK;
use super::*;
use crate::broker::conn::Conn;
use std::collections::BTreeSet;
use tickq_testkit::TestRedis;

// The other script tests, by subject; each says what it covers at its top.
mod enqueue;
mod flow;
mod flow_cross;
mod flow_prop;
mod layout;
mod lifecycle;
mod limits;
mod pending;
mod unique;

pub(super) const Q: &str = "q";
/// A lease that does not run out during a test.
pub(super) const LEASE: Duration = Duration::from_secs(600);
pub(super) const HOUR: Duration = Duration::from_secs(3600);

/// One redis-server, a broker on it, and a raw connection for setting up and inspecting state.
pub(super) struct Env {
    pub(super) broker: Broker,
    pub(super) keys: Arc<QueueKeys>,
    pub(super) conn: Conn,
    // Last, so the server outlives the connections when the test ends.
    _redis: TestRedis,
}

/// The pending lists of a queue, highest priority first, each front first. Asserts the
/// invariant between them and the set of priorities on the way: the set names exactly the
/// lists there are (KEYS finds them: a test's server holds little), and none is empty.
pub(super) async fn pending_lists(conn: &mut Conn, keys: &QueueKeys) -> Vec<(i32, Vec<String>)> {
    let set: Vec<(String, f64)> = conn.zrange_withscores(&keys.pending, 0, -1).await.unwrap();
    let mut lists = Vec::new();
    for (member, score) in &set {
        let band = super::read::pending_band(member, *score).unwrap_or_else(|| {
            panic!("{member} (score {score}) in the pending set is no priority")
        });
        let ids: Vec<String> = conn.lrange(keys.pending_band(band), 0, -1).await.unwrap();
        assert!(
            !ids.is_empty(),
            "priority {band} is in the pending set, its list is empty"
        );
        lists.push((band, ids));
    }
    let mut found: Vec<String> = conn.keys(format!("{}:*", keys.pending)).await.unwrap();
    found.sort();
    let mut named: Vec<String> = lists.iter().map(|(b, _)| keys.pending_band(*b)).collect();
    named.sort();
    assert_eq!(
        found, named,
        "pending lists and the set of priorities disagree"
    );
    lists
}

/// The pending ids in claim order, read from the lists (see `pending_lists`).
pub(super) async fn pending_ids(conn: &mut Conn, keys: &QueueKeys) -> Vec<String> {
    let lists = pending_lists(conn, keys).await;
    lists.into_iter().flat_map(|(_, ids)| ids).collect()
}

/// A record's fields as text (empty: no record).
pub(super) fn record_text(fields: Option<record::Fields>) -> BTreeMap<String, String> {
    fields
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect()
}

pub(super) fn job(id: &str) -> NewJob {
    NewJob::new(Q, "work").id(id)
}

/// Generous retention: nothing finished goes away during a test unless the test says so.
pub(super) const KEEP: Retention = Retention {
    completed_for: Duration::from_secs(24 * 3600),
    completed_max: 10_000,
    dead_for: Duration::from_secs(30 * 24 * 3600),
    dead_max: 10_000,
};

pub(super) async fn start() -> Env {
    // Nothing here restarts Redis, so the append-only file would only cost fsyncs.
    let redis = TestRedis::builder().appendonly(false).start();
    let broker = Broker::connect(&redis.url(), &Default::default())
        .await
        .unwrap();
    Env {
        keys: broker.keys(Q),
        conn: broker.conn(),
        broker,
        _redis: redis,
    }
}

impl Env {
    /// Enqueue one job and check it was created.
    pub(super) async fn enqueue(&self, job: NewJob) -> Enqueued {
        let mut answers = self.broker.enqueue(vec![job]).await.unwrap();
        let answer = answers.pop().unwrap();
        assert!(answer.created, "{answer:?}");
        answer
    }

    pub(super) async fn claim(&self, owner: &str, max: usize) -> ClaimBatch {
        self.broker
            .claim(&self.keys, owner, LEASE, max, Duration::ZERO)
            .await
            .unwrap()
    }

    /// Claim the next pending job with a real `lease`, then wait until Redis' clock (the one
    /// the scripts read) is past it: an expired lease made the ordinary way.
    pub(super) async fn claim_until_expired(&self, lease: Duration) -> ClaimBatch {
        let batch = self
            .broker
            .claim(&self.keys, "w1", lease, 1, Duration::ZERO)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.now().await <= batch.lease_until_ms {
            assert!(
                tokio::time::Instant::now() < deadline,
                "Redis time stands still"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        batch
    }

    /// Claim exactly the job `id` (it must be the next pending one); answers its fence.
    pub(super) async fn claim_next(&self, id: &str) -> u64 {
        let batch = self.claim("w1", 1).await;
        assert_eq!(batch.jobs.len(), 1, "nothing to claim for {id}");
        assert_eq!(
            batch.jobs[0].id, id,
            "claim_next: another job was pending first"
        );
        batch.jobs[0].fence
    }

    /// A new job `id` brought into `state` the ordinary way; answers its fence (0 if it was
    /// never claimed). Jobs that need a claim must be the next pending job.
    pub(super) async fn put(&self, id: &str, state: JobState) -> u64 {
        match state {
            JobState::Waiting => panic!("only a workflow makes a waiting job (tests/flow.rs)"),
            JobState::Scheduled => {
                self.enqueue(job(id).delay(HOUR)).await;
                0
            }
            JobState::Pending => {
                self.enqueue(job(id)).await;
                0
            }
            JobState::Cancelled => {
                self.enqueue(job(id)).await;
                self.broker.cancel(&self.keys, &KEEP, id).await.unwrap();
                0
            }
            JobState::Active | JobState::Retry | JobState::Dead | JobState::Completed => {
                self.enqueue(job(id)).await;
                let fence = self.claim_next(id).await;
                let b = &self.broker;
                let k = &self.keys;
                match state {
                    JobState::Retry => {
                        let mode = FailMode::Retry(HOUR);
                        let out = b.fail(k, &KEEP, id, fence, "boom", mode).await.unwrap();
                        assert_eq!(out, FailOutcome::Retry);
                    }
                    JobState::Dead => {
                        let mode = FailMode::Kill;
                        let out = b.fail(k, &KEEP, id, fence, "boom", mode).await.unwrap();
                        assert_eq!(out, FailOutcome::Dead);
                    }
                    JobState::Completed => {
                        let acks = [(id.into(), fence, "ok".into())];
                        assert_eq!(b.ack(k, &KEEP, &acks).await.unwrap().acked, 1);
                    }
                    _ => {}
                }
                fence
            }
        }
    }

    /// Redis `TIME` in milliseconds: the clock the scripts use.
    pub(super) async fn now(&self) -> i64 {
        let (s, us): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await
            .unwrap();
        s * 1000 + us / 1000
    }

    /// Job `id`'s record, field by field (empty: no record).
    pub(super) async fn hash(&self, id: &str) -> BTreeMap<String, String> {
        record_text(
            record::get(&mut self.conn.clone(), &self.keys, id)
                .await
                .unwrap(),
        )
    }

    pub(super) async fn field(&self, id: &str, name: &str) -> Option<String> {
        self.hash(id).await.remove(name)
    }

    /// A numeric hash field; panics when it is missing.
    pub(super) async fn num(&self, id: &str, name: &str) -> i64 {
        let v = self.field(id, name).await;
        v.unwrap_or_else(|| panic!("job {id} has no {name} field"))
            .parse()
            .unwrap()
    }

    pub(super) async fn set_field(&self, id: &str, name: &str, value: impl ToString) {
        let value = value.to_string();
        record::set(&mut self.conn.clone(), &self.keys, id, &[(name, &value)])
            .await
            .unwrap();
    }

    /// `id`'s score in `state`'s index; for pending, the priority whose list holds it.
    pub(super) async fn score(&self, state: JobState, id: &str) -> Option<i64> {
        if state == JobState::Pending {
            for (band, ids) in pending_lists(&mut self.conn.clone(), &self.keys).await {
                if ids.iter().any(|i| i == id) {
                    return Some(band.into());
                }
            }
            return None;
        }
        let score: Option<f64> = self
            .conn
            .clone()
            .zscore(self.keys.index(state), id)
            .await
            .unwrap();
        score.map(|s| s as i64)
    }

    /// Put `id` into `state`'s index with `score`, by hand; for pending, `score` is the
    /// priority and the id goes to the front of its list.
    async fn set_score(&self, state: JobState, id: &str, score: i64) {
        if state == JobState::Pending {
            let _: () = redis::pipe()
                .lpush(self.keys.pending_band(score as i32), id)
                .zadd(&self.keys.pending, score, -score)
                .query_async(&mut self.conn.clone())
                .await
                .unwrap();
            return;
        }
        let _: () = self
            .conn
            .clone()
            .zadd(self.keys.index(state), id, score)
            .await
            .unwrap();
    }

    /// The ids in `state`'s index, lowest score first (pending: in claim order).
    pub(super) async fn members(&self, state: JobState) -> Vec<String> {
        if state == JobState::Pending {
            return pending_ids(&mut self.conn.clone(), &self.keys).await;
        }
        self.conn
            .clone()
            .zrange(self.keys.index(state), 0, -1)
            .await
            .unwrap()
    }

    /// What the user sees of a finished job's retention: no TTL (its notes must not expire
    /// before its payload, or it would read as pending), kept by the janitor until it is
    /// older than [`KEEP`], then deleted by it. Changes the job's index score.
    pub(super) async fn assert_kept_for_the_retention(&self, id: &str, state: JobState) {
        assert_eq!(self.pttl(id).await, -1, "{id}: no TTL");
        self.broker
            .janitor(&self.keys, &KEEP, 100, false)
            .await
            .unwrap();
        self.assert_state(id, state).await;
        let keep_ms = KEEP.completed_for.as_millis() as i64;
        let now = self.now().await;
        self.set_score(state, id, now - keep_ms - 1).await;
        self.broker
            .janitor(&self.keys, &KEEP, 100, false)
            .await
            .unwrap();
        self.assert_gone(id).await;
    }

    pub(super) async fn pttl(&self, id: &str) -> i64 {
        record::ttl_ms(&mut self.conn.clone(), &self.keys, id)
            .await
            .unwrap()
    }

    pub(super) async fn stat(&self, name: &str) -> i64 {
        let v: Option<i64> = self
            .conn
            .clone()
            .hget(&self.keys.stats, name)
            .await
            .unwrap();
        v.unwrap_or(0)
    }

    /// The states whose index holds `id`.
    pub(super) async fn indexes_of(&self, id: &str) -> Vec<JobState> {
        let mut found = Vec::new();
        for state in JobState::ALL {
            if self.score(state, id).await.is_some() {
                found.push(state);
            }
        }
        found
    }

    /// The job's hash says `state`, and the job is in that state's index and in no other.
    pub(super) async fn assert_state(&self, id: &str, state: JobState) {
        assert_eq!(
            self.field(id, "state").await.as_deref(),
            Some(state.as_str()),
            "state field of job {id}"
        );
        assert_eq!(
            self.indexes_of(id).await,
            [state],
            "indexes holding job {id}"
        );
    }

    /// No hash and no index entry is left of the job.
    pub(super) async fn assert_gone(&self, id: &str) {
        assert_eq!(self.hash(id).await, BTreeMap::new(), "hash of job {id}");
        assert_eq!(self.indexes_of(id).await, [], "indexes holding job {id}");
    }

    /// Lease of an active job moved into the past, as if its worker had stopped renewing.
    pub(super) async fn expire_lease(&self, id: &str) -> i64 {
        self.expire_lease_by(id, 1000).await
    }

    /// Lease of an active job moved `ago_ms` into the past.
    pub(super) async fn expire_lease_by(&self, id: &str, ago_ms: i64) -> i64 {
        let past = self.now().await - ago_ms;
        self.set_field(id, "lease", past).await;
        let _: () = redis::cmd("ZADD")
            .arg(&self.keys.active)
            .arg("XX")
            .arg(past)
            .arg(id)
            .query_async(&mut self.conn.clone())
            .await
            .unwrap();
        past
    }

    pub(super) async fn snapshot(&self) -> BTreeMap<String, String> {
        snapshot(&self.conn).await
    }
}

/// Every tickq key with its full contents, for "this call changed nothing".
pub(super) async fn snapshot(conn: &Conn) -> BTreeMap<String, String> {
    let mut conn = conn.clone();
    let keys: Vec<String> = conn.keys("tickq:*").await.unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let contents = match kind.as_str() {
            "hash" => {
                let h: BTreeMap<String, String> = conn.hgetall(&key).await.unwrap();
                format!("{h:?}")
            }
            "zset" => {
                let z: Vec<(String, f64)> = conn.zrange_withscores(&key, 0, -1).await.unwrap();
                format!("{z:?}")
            }
            "set" => {
                let s: BTreeSet<String> = conn.smembers(&key).await.unwrap();
                format!("{s:?}")
            }
            "string" => conn.get(&key).await.unwrap(),
            "list" => {
                let l: Vec<String> = conn.lrange(&key, 0, -1).await.unwrap();
                format!("{l:?}")
            }
            // The wake stream: whether a wake-up is there (entry ids are times, the stream is
            // trimmed approximately, and a repeated wake-up is not a change of state).
            "stream" => {
                let len: i64 = redis::cmd("XLEN")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                format!("stream, woken: {}", len > 0)
            }
            other => panic!("unexpected key type {other} of {key}"),
        };
        out.insert(key, contents);
    }
    out
}

#[track_caller]
fn assert_between(what: &str, value: i64, from: i64, to: i64) {
    assert!(
        (from..=to).contains(&value),
        "{what} = {value}, expected within [{from}, {to}]"
    );
}

/// A stored envelope of a job of the test queue, which must not carry the job's id or queue
/// (both are the key's).
fn envelope(data: &[u8]) -> Envelope {
    let text = std::str::from_utf8(data).unwrap();
    assert!(
        !text.contains("\"id\":") && !text.contains("\"queue\":"),
        "{text}"
    );
    Envelope::decode(data, "any", Q).unwrap()
}

// ---------------------------------------------------------------------------------------------
// enqueue

#[tokio::test]
async fn enqueue_now_creates_a_pending_job() {
    let env = start().await;

    let t0 = env.now().await;
    let answers = env
        .broker
        .enqueue(vec![
            job("a")
                .payload(serde_json::json!({"to": "x@y"}))
                .max_attempts(3)
                .priority(7)
                .meta("tag", "t"),
        ])
        .await
        .unwrap();
    let t1 = env.now().await;

    assert_eq!(
        answers,
        [Enqueued {
            id: "a".into(),
            queue: Q.into(),
            state: JobState::Pending,
            created: true,
            duplicate: false,
        }]
    );
    env.assert_state("a", JobState::Pending).await;
    let h = env.hash("a").await;
    assert_eq!(h["attempt"], "0");
    assert_eq!(h["max"], "3");
    assert_eq!(h["priority"], "7");
    assert_eq!(h["fence"], "0");
    assert_eq!(h["due"], h["created"]);
    assert_between("created", env.num("a", "created").await, t0, t1);
    let data = envelope(h["data"].as_bytes());
    assert_eq!(data.v, 2);
    assert_eq!(data.kind, "work");
    assert_eq!(data.payload, serde_json::json!({"to": "x@y"}));
    assert_eq!(data.meta["tag"], "t");
    assert_eq!(env.pttl("a").await, -1, "a waiting job never expires");
    assert_eq!(env.broker.queues().await.unwrap(), [Q]);
}

#[tokio::test]
async fn enqueue_many_across_queues_answers_in_the_order_given() {
    let env = start().await;
    let other = env.broker.keys("other");

    let answers = env
        .broker
        .enqueue(vec![
            job("a"),
            NewJob::new("other", "work").id("b"),
            job("c").delay(HOUR),
            NewJob::new("other", "work").id("d"),
            NewJob::new("other", "work"),
        ])
        .await
        .unwrap();

    let got: Vec<(&str, JobState, bool)> = answers
        .iter()
        .map(|a| (a.queue.as_str(), a.state, a.created))
        .collect();
    assert_eq!(
        got,
        [
            (Q, JobState::Pending, true),
            ("other", JobState::Pending, true),
            (Q, JobState::Scheduled, true),
            ("other", JobState::Pending, true),
            ("other", JobState::Pending, true),
        ]
    );
    let generated = &answers[4].id;
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    assert_eq!(env.members(JobState::Pending).await, ["a"]);
    assert_eq!(env.members(JobState::Scheduled).await, ["c"]);
    let pending = pending_ids(&mut env.conn.clone(), &other).await;
    assert_eq!(pending, ["b", "d", generated.as_str()]);
    let b = record::get(&mut env.conn.clone(), &other, "b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record::text(&b, "state").as_deref(), Some("pending"));
    assert_eq!(env.broker.queues().await.unwrap(), ["other", Q]);
}

#[tokio::test]
async fn enqueue_of_an_existing_id_answers_exists_and_changes_nothing() {
    let env = start().await;
    env.put("a", JobState::Active).await;
    env.put("s", JobState::Scheduled).await;
    let before = env.hash("a").await;

    let answers = env
        .broker
        .enqueue(vec![
            job("a").payload(serde_json::json!("other")),
            job("s"),
            job("n"),
            job("n").priority(5),
        ])
        .await
        .unwrap();

    let got: Vec<(&str, JobState, bool)> = answers
        .iter()
        .map(|a| (a.id.as_str(), a.state, a.created))
        .collect();
    assert_eq!(
        got,
        [
            ("a", JobState::Active, false),
            ("s", JobState::Scheduled, false),
            ("n", JobState::Pending, true),
            ("n", JobState::Pending, false),
        ]
    );
    assert_eq!(env.hash("a").await, before);
    env.assert_state("a", JobState::Active).await;
    env.assert_state("s", JobState::Scheduled).await;
    env.assert_state("n", JobState::Pending).await;
    assert_eq!(env.field("n", "priority").await.as_deref(), Some("0"));
}

#[tokio::test]
async fn enqueue_with_a_delay_is_scheduled_at_redis_now_plus_the_delay() {
    let env = start().await;

    let t0 = env.now().await;
    let answer = env.enqueue(job("a").delay(Duration::from_secs(90))).await;
    let t1 = env.now().await;

    assert_eq!(answer.state, JobState::Scheduled);
    env.assert_state("a", JobState::Scheduled).await;
    let created = env.num("a", "created").await;
    assert_between("created", created, t0, t1);
    // `created` is Redis' clock in whole ms, rounded down; the due time is rounded up, so it
    // is a millisecond more than created + delay (docs/benchmarks.md, "never start early").
    assert_eq!(env.num("a", "due").await, created + 90_001);
    assert_eq!(
        env.score(JobState::Scheduled, "a").await,
        Some(created + 90_001)
    );
}

#[tokio::test]
async fn enqueue_at_a_future_time_is_scheduled_at_that_time() {
    let env = start().await;
    let at = env.now().await + 3_600_000;

    let answer = env
        .enqueue(job("a").at(jiff::Timestamp::from_millisecond(at).unwrap()))
        .await;

    assert_eq!(answer.state, JobState::Scheduled);
    env.assert_state("a", JobState::Scheduled).await;
    assert_eq!(env.num("a", "due").await, at);
    assert_eq!(env.score(JobState::Scheduled, "a").await, Some(at));
}

#[tokio::test]
async fn enqueue_at_a_past_time_is_pending_and_due_now() {
    let env = start().await;
    let past = jiff::Timestamp::from_millisecond(env.now().await - 60_000).unwrap();

    let t0 = env.now().await;
    let answers = env
        .broker
        .enqueue(vec![
            job("a").at(past),
            job("epoch").at(jiff::Timestamp::UNIX_EPOCH),
        ])
        .await
        .unwrap();
    let t1 = env.now().await;

    assert!(answers.iter().all(|a| a.state == JobState::Pending));
    for id in ["a", "epoch"] {
        env.assert_state(id, JobState::Pending).await;
        assert_between("due", env.num(id, "due").await, t0, t1);
    }
}

#[tokio::test]
async fn pending_jobs_run_higher_priority_first_then_in_enqueue_order() {
    let env = start().await;
    // One bulk call and single calls, so FIFO holds within a call and across calls.
    env.broker
        .enqueue(vec![
            job("p0-1"),
            job("p5-1").priority(5),
            job("p0-2"),
            job("m3-1").priority(-3),
        ])
        .await
        .unwrap();
    env.enqueue(job("p5-2").priority(5)).await;
    env.enqueue(job("max").priority(1000)).await;
    env.enqueue(job("p0-3")).await;
    env.enqueue(job("min").priority(-1000)).await;

    let expected = ["max", "p5-1", "p5-2", "p0-1", "p0-2", "p0-3", "m3-1", "min"];
    let ids = env.broker.ids(&env.keys, JobState::Pending, 0, 100).await;
    assert_eq!(ids.unwrap(), expected);
    let mut claimed = Vec::new();
    for max in [1, 2, 5] {
        let batch = env.claim("w1", max).await;
        claimed.extend(batch.jobs.into_iter().map(|j| j.id));
    }
    assert_eq!(claimed, expected);
}

#[tokio::test]
async fn enqueue_splits_a_big_batch_into_chunks_and_answers_every_job() {
    let env = start().await;
    let n = ENQUEUE_CHUNK * 2 + 7;
    let jobs: Vec<NewJob> = (0..n).map(|i| job(&format!("j{i:05}"))).collect();

    let answers = env.broker.enqueue(jobs).await.unwrap();

    assert_eq!(answers.len(), n);
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(
            (a.id.as_str(), a.state),
            (format!("j{i:05}").as_str(), JobState::Pending)
        );
    }
    let counts = env.broker.counts(&env.keys).await.unwrap();
    assert_eq!(counts.states[&JobState::Pending], n as u64);
}

#[tokio::test]
async fn enqueue_rejects_an_invalid_job_before_writing_anything() {
    let env = start().await;

    let err = env
        .broker
        .enqueue(vec![job("ok"), job("bad").priority(1001)])
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(env.snapshot().await, BTreeMap::new());
}

// ---------------------------------------------------------------------------------------------
// claim

#[tokio::test]
async fn claim_leases_a_job_until_redis_now_plus_the_lease() {
    let env = start().await;
    env.enqueue(job("a").payload(serde_json::json!(42))).await;

    let t0 = env.now().await;
    let batch = env
        .broker
        .claim(
            &env.keys,
            "w1",
            Duration::from_millis(30_000),
            10,
            Duration::ZERO,
        )
        .await
        .unwrap();
    let t1 = env.now().await;

    assert_between("now_ms", batch.now_ms, t0, t1);
    assert_eq!(batch.lease_until_ms, batch.now_ms + 30_000);
    assert_eq!(batch.next_due_ms, -1, "nothing else waits");
    assert_eq!(batch.jobs.len(), 1);
    let claimed = &batch.jobs[0];
    assert_eq!((claimed.id.as_str(), claimed.attempt), ("a", 1));
    // At least Redis' clock in µs at the claim (reserve_fences).
    assert!(claimed.fence >= t0 as u64 * 1000, "{}", claimed.fence);
    assert_eq!(envelope(&claimed.data).payload, serde_json::json!(42));
    env.assert_state("a", JobState::Active).await;
    let h = env.hash("a").await;
    assert_eq!(h["owner"], "w1");
    assert_eq!(h["attempt"], "1");
    assert_eq!(h["fence"], claimed.fence.to_string());
    assert_eq!(h["lease"], batch.lease_until_ms.to_string());
    assert_eq!(h["started"], batch.now_ms.to_string());
    let score = env.score(JobState::Active, "a").await;
    assert_eq!(score, Some(batch.lease_until_ms));
}

#[tokio::test]
async fn every_claim_grows_the_fence_and_the_attempt() {
    let env = start().await;
    env.enqueue(job("a")).await;
    let k = &env.keys;

    // Claim 1; fail with retry now; claim 2; lease expires and is recovered; claim 3;
    // handed back by requeue (attempt not charged); claim 4.
    let first = env.claim("w1", 1).await.jobs.remove(0);
    env.broker
        .fail(
            k,
            &KEEP,
            "a",
            first.fence,
            "e",
            FailMode::Retry(Duration::ZERO),
        )
        .await
        .unwrap();
    let second = env.claim("w2", 1).await.jobs.remove(0);
    env.expire_lease("a").await;
    env.broker.recover(k, &KEEP, 10).await.unwrap();
    let third = env.claim("w1", 1).await.jobs.remove(0);
    env.broker
        .requeue(k, &[("a".into(), third.fence)])
        .await
        .unwrap();
    let fourth = env.claim("w2", 1).await.jobs.remove(0);

    let seen: Vec<(u32, u64)> = [first, second, third, fourth]
        .iter()
        .map(|c| (c.attempt, c.fence))
        .collect();
    let attempts: Vec<u32> = seen.iter().map(|(a, _)| *a).collect();
    assert_eq!(attempts, [1, 2, 3, 3]);
    assert!(
        seen.windows(2).all(|w| w[0].1 < w[1].1),
        "every claim a greater fence: {seen:?}"
    );
    assert_eq!(env.num("a", "fence").await, seen[3].1 as i64);
    assert_eq!(env.num("a", "attempt").await, 3);
    assert_eq!(env.field("a", "owner").await.as_deref(), Some("w2"));
}

#[tokio::test]
async fn claim_promotes_due_scheduled_and_retry_jobs_in_priority_order() {
    let env = start().await;
    // A retry job due now (zero delay), a scheduled job whose time has come, one not yet due,
    // and a pending job of lower priority.
    let fence = env.put("r", JobState::Active).await;
    let out = env
        .broker
        .fail(
            &env.keys,
            &KEEP,
            "r",
            fence,
            "e",
            FailMode::Retry(Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(out, FailOutcome::Retry);
    env.enqueue(job("low").priority(-1)).await;
    env.enqueue(job("s").delay(HOUR).priority(3)).await;
    env.set_score(JobState::Scheduled, "s", env.now().await - 1)
        .await;
    env.enqueue(job("later").delay(HOUR)).await;
    let later_due = env.score(JobState::Scheduled, "later").await.unwrap();

    let batch = env.claim("w1", 10).await;

    let ids: Vec<&str> = batch.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["s", "r", "low"]);
    let attempts: Vec<u32> = batch.jobs.iter().map(|j| j.attempt).collect();
    assert_eq!(attempts, [1, 2, 1]);
    for id in ["s", "r", "low"] {
        env.assert_state(id, JobState::Active).await;
    }
    env.assert_state("later", JobState::Scheduled).await;
    assert_eq!(batch.next_due_ms, later_due);
}

#[tokio::test]
async fn claim_answers_when_to_look_again() {
    const MINUTE: Duration = Duration::from_secs(60);
    // (case, pending jobs, scheduled job due in, retry job due in, claim max)
    let cases = [
        ("nothing at all", 0, None, None, 5),
        ("took everything", 2, None, None, 5),
        ("pending left", 3, None, None, 2),
        ("max 0, pending left", 1, None, None, 0),
        ("pending left beats a due time", 3, Some(HOUR), None, 1),
        ("scheduled earliest", 0, Some(MINUTE), Some(HOUR), 5),
        ("retry earliest", 1, Some(HOUR), Some(MINUTE), 5),
    ];
    for (case, pending, scheduled_in, retry_in, max) in cases {
        let env = start().await;
        let mut earliest: Option<i64> = None;
        if let Some(delay) = retry_in {
            let fence = env.put("r", JobState::Active).await;
            let mode = FailMode::Retry(delay);
            env.broker
                .fail(&env.keys, &KEEP, "r", fence, "e", mode)
                .await
                .unwrap();
            earliest = env.score(JobState::Retry, "r").await;
        }
        if let Some(delay) = scheduled_in {
            env.enqueue(job("s").delay(delay)).await;
            let due = env.score(JobState::Scheduled, "s").await.unwrap();
            earliest = Some(earliest.map_or(due, |e| e.min(due)));
        }
        for i in 0..pending {
            env.enqueue(job(&format!("p{i}"))).await;
        }

        let batch = env.claim("w1", max).await;

        let expected = if pending > max {
            batch.now_ms
        } else {
            earliest.unwrap_or(-1)
        };
        assert_eq!(batch.next_due_ms, expected, "{case}");
        assert_eq!(batch.jobs.len(), pending.min(max), "{case}");
    }
}

#[tokio::test]
async fn claim_takes_at_most_max_jobs_oldest_first() {
    let env = start().await;
    for id in ["a", "b", "c", "d", "e"] {
        env.enqueue(job(id)).await;
    }

    let none = env.claim("w1", 0).await;
    let two = env.claim("w1", 2).await;

    assert!(none.jobs.is_empty());
    assert_eq!(none.next_due_ms, none.now_ms);
    let ids: Vec<&str> = two.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(env.members(JobState::Active).await, ["a", "b"]);
    assert_eq!(env.members(JobState::Pending).await, ["c", "d", "e"]);
    assert_eq!(env.field("c", "attempt").await.as_deref(), Some("0"));
}

#[tokio::test]
async fn claim_drops_ids_whose_job_hash_is_gone() {
    let env = start().await;
    // Orphans in pending, in scheduled and in retry (hash deleted by hand or evicted), each
    // ahead of a real job.
    env.set_score(JobState::Pending, "ghost-p", 0).await;
    env.enqueue(job("a")).await;
    env.set_score(JobState::Scheduled, "ghost-s", 1).await;
    env.set_score(JobState::Retry, "ghost-r", 1).await;

    let batch = env.claim("w1", 10).await;

    let ids: Vec<&str> = batch.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["a"]);
    env.assert_state("a", JobState::Active).await;
    for ghost in ["ghost-p", "ghost-s", "ghost-r"] {
        env.assert_gone(ghost).await;
    }
}

#[tokio::test]
async fn claim_leases_a_job_without_data_so_the_worker_can_bury_it() {
    let env = start().await;
    record::set(
        &mut env.conn.clone(),
        &env.keys,
        "x",
        &[
            ("state", "pending"),
            ("attempt", "0"),
            ("max", "3"),
            ("fence", "0"),
        ],
    )
    .await
    .unwrap();
    env.set_score(JobState::Pending, "x", 0).await;

    let batch = env.claim("w1", 10).await;

    assert_eq!(batch.jobs.len(), 1);
    let x = &batch.jobs[0];
    assert_eq!(
        (x.id.as_str(), x.data.as_slice(), x.attempt),
        ("x", &b""[..], 1)
    );
    env.assert_state("x", JobState::Active).await;
}

// ---------------------------------------------------------------------------------------------
// ack

#[tokio::test]
async fn ack_completes_a_held_job() {
    let env = start().await;
    let fence = env.put("a", JobState::Active).await;

    let t0 = env.now().await;
    let out = env
        .broker
        .ack(
            &env.keys,
            &KEEP,
            &[("a".into(), fence, "the result".into())],
        )
        .await
        .unwrap();
    let t1 = env.now().await;

    assert_eq!((out.acked, out.stale), (1, vec![]));
    env.assert_state("a", JobState::Completed).await;
    let finished = env.num("a", "finished").await;
    assert_between("finished", finished, t0, t1);
    assert_eq!(
        env.field("a", "result").await.as_deref(),
        Some("the result")
    );
    assert_eq!(env.score(JobState::Completed, "a").await, Some(finished));
    assert_eq!(env.pttl("a").await, -1, "the janitor deletes it, not a TTL");
    assert_eq!(env.stat("processed").await, 1);
}

#[tokio::test]
async fn ack_without_a_result_stores_none() {
    let env = start().await;
    let fence = env.put("a", JobState::Active).await;

    let out = env
        .broker
        .ack(&env.keys, &KEEP, &[("a".into(), fence, String::new())])
        .await;

    assert_eq!(out.unwrap().acked, 1);
    env.assert_state("a", JobState::Completed).await;
    assert_eq!(env.field("a", "result").await, None);
}

#[tokio::test]
async fn ack_twice_answers_again_the_second_time_and_changes_nothing() {
    let env = start().await;
    let fence = env.put("a", JobState::Active).await;
    let acked = [("a".to_owned(), fence, "r".to_owned())];
    env.broker.ack(&env.keys, &KEEP, &acked).await.unwrap();
    let before = env.snapshot().await;

    let out = env.broker.ack(&env.keys, &KEEP, &acked).await.unwrap();

    assert_eq!((out.acked, out.again, out.stale), (0, 1, vec![]));
    assert_eq!(env.snapshot().await, before);
    assert_eq!(env.stat("processed").await, 1);
}

#[tokio::test]
async fn ack_replicated_on_a_primary_without_replicas_fails_and_a_retry_answers_again() {
    let env = start().await;
    let fence = env.put("a", JobState::Active).await;
    let acks = [("a".to_owned(), fence, String::new())];
    let wait = Duration::from_millis(50);
    let mut conn = env.broker.blocking_connection(wait).await.unwrap();

    let err = env
        .broker
        .ack_replicated(&mut conn, &env.keys, &KEEP, &acks, 1, wait)
        .await
        .unwrap_err();

    // Applied on this primary, but not confirmed: the caller must not count it as done.
    assert_eq!(err.kind(), crate::ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("0 of 1 replicas"), "{err}");
    env.assert_state("a", JobState::Completed).await;
    let again = env.broker.ack(&env.keys, &KEEP, &acks).await.unwrap();
    assert_eq!((again.acked, again.again, again.stale), (0, 1, vec![]));
    assert_eq!(env.stat("processed").await, 1);
}

#[tokio::test]
async fn ack_with_a_wrong_fence_is_stale_and_changes_nothing() {
    let env = start().await;
    let fence = env.put("a", JobState::Active).await;
    let before = env.snapshot().await;

    for wrong in [fence - 1, fence + 1] {
        let out = env
            .broker
            .ack(&env.keys, &KEEP, &[("a".into(), wrong, "r".into())])
            .await
            .unwrap();
        assert_eq!((out.acked, out.stale), (0, vec!["a".to_owned()]));
    }
    let out = env
        .broker
        .ack(&env.keys, &KEEP, &[("missing".into(), 1, "r".into())])
        .await
        .unwrap();
    assert_eq!(out.stale, ["missing"]);

    assert_eq!(env.snapshot().await, before);
    env.assert_state("a", JobState::Active).await;
}

#[tokio::test]
async fn ack_of_a_batch_applies_the_held_jobs_and_reports_the_stale_ones() {
    let env = start().await;
    env.enqueue(job("a")).await;
    env.enqueue(job("b")).await;
    env.enqueue(job("c")).await;
    let batch = env.claim("w1", 3).await;
    let fence = |id: &str| batch.jobs.iter().find(|j| j.id == id).unwrap().fence;

    let out = env
        .broker
        .ack(
            &env.keys,
            &KEEP,
            &[
                ("a".into(), fence("a"), "ra".into()),
                ("b".into(), fence("b") + 1, "rb".into()),
                ("c".into(), fence("c"), String::new()),
                ("a".into(), fence("a"), "again".into()),
            ],
        )
        .await
        .unwrap();

    // The second ack of "a" in the batch finds it completed with its fence: again, no change.
    assert_eq!(
        (out.acked, out.again, out.stale),
        (2, 1, vec!["b".to_owned()])
    );
    env.assert_state("a", JobState::Completed).await;
    env.assert_state("b", JobState::Active).await;
    env.assert_state("c", JobState::Completed).await;
    assert_eq!(env.field("a", "result").await.as_deref(), Some("ra"));
    assert_eq!(env.stat("processed").await, 2);
}

#[tokio::test]
async fn ack_without_retention_deletes_the_job() {
    let zero_time = Retention {
        completed_for: Duration::ZERO,
        ..Retention::default()
    };
    let zero_count = Retention {
        completed_max: 0,
        ..Retention::default()
    };
    for retention in [zero_time, zero_count] {
        let env = start().await;
        let fence = env.put("a", JobState::Active).await;

        let out = env
            .broker
            .ack(&env.keys, &retention, &[("a".into(), fence, "r".into())])
            .await
            .unwrap();

        assert_eq!(out.acked, 1, "{retention:?}");
        env.assert_gone("a").await;
        assert_eq!(env.stat("processed").await, 1);
    }
}

#[tokio::test]
async fn ack_caps_the_completed_index_and_deletes_the_evicted_jobs() {
    let env = start().await;
    let retention = Retention {
        completed_max: 2,
        ..Retention::default()
    };
    for id in ["a", "b", "c"] {
        let fence = env.put(id, JobState::Active).await;
        env.broker
            .ack(&env.keys, &retention, &[(id.into(), fence, String::new())])
            .await
            .unwrap();
    }
    env.assert_gone("a").await;
    assert_eq!(env.members(JobState::Completed).await, ["b", "c"]);

    // Two more in one call: both oldest go, the new ones stay.
    env.enqueue(job("d")).await;
    env.enqueue(job("e")).await;
    let batch = env.claim("w1", 2).await;
    let acks: Vec<(String, u64, String)> = batch
        .jobs
        .iter()
        .map(|j| (j.id.clone(), j.fence, String::new()))
        .collect();
    let out = env.broker.ack(&env.keys, &retention, &acks).await.unwrap();

    assert_eq!(out.acked, 2);
    assert_eq!(env.members(JobState::Completed).await, ["d", "e"]);
    for id in ["b", "c"] {
        env.assert_gone(id).await;
    }
    for id in ["d", "e"] {
        env.assert_state(id, JobState::Completed).await;
    }
    assert_eq!(env.stat("processed").await, 5);
}

// ---------------------------------------------------------------------------------------------
// fail

#[tokio::test]
async fn fail_with_retry_waits_for_the_delay_in_the_retry_set() {
    let env = start().await;
    env.enqueue(job("a").max_attempts(3)).await;
    let fence = env.claim_next("a").await;

    let t0 = env.now().await;
    let mode = FailMode::Retry(Duration::from_secs(5));
    let out = env
        .broker
        .fail(&env.keys, &KEEP, "a", fence, "boom", mode)
        .await;
    let t1 = env.now().await;

    assert_eq!(out.unwrap(), FailOutcome::Retry);
    env.assert_state("a", JobState::Retry).await;
    let due = env.num("a", "due").await;
    assert_between("due - delay", due - 5000, t0, t1);
    assert_eq!(env.score(JobState::Retry, "a").await, Some(due));
    assert_eq!(env.field("a", "error").await.as_deref(), Some("boom"));
    assert_eq!(env.field("a", "attempt").await.as_deref(), Some("1"));
    assert_eq!(env.field("a", "finished").await, None);
    assert_eq!(env.pttl("a").await, -1);
    assert_eq!(env.stat("failed").await, 1);
}

#[tokio::test]
async fn fail_with_retry_on_the_last_attempt_goes_dead() {
    let env = start().await;
    env.enqueue(job("a").max_attempts(2)).await;
    let first = env.claim_next("a").await;
    let mode = FailMode::Retry(Duration::ZERO);
    let out = env
        .broker
        .fail(&env.keys, &KEEP, "a", first, "one", mode)
        .await;
    assert_eq!(out.unwrap(), FailOutcome::Retry);
    let second = env.claim_next("a").await;

    let t0 = env.now().await;
    let out = env
        .broker
        .fail(&env.keys, &KEEP, "a", second, "two", mode)
        .await;
    let t1 = env.now().await;

    assert_eq!(out.unwrap(), FailOutcome::Dead);
    env.assert_state("a", JobState::Dead).await;
    let finished = env.num("a", "finished").await;
    assert_between("finished", finished, t0, t1);
    assert_eq!(env.score(JobState::Dead, "a").await, Some(finished));
    assert_eq!(env.field("a", "error").await.as_deref(), Some("two"));
    assert_eq!(
        env.pttl("a").await,
        -1,
        "dead jobs go by the janitor, not by TTL"
    );
    assert_eq!(env.stat("failed").await, 2);
}

#[tokio::test]
async fn fail_with_kill_goes_dead_with_attempts_left() {
    let env = start().await;
    let fence = env.put("a", JobState::Active).await;

    let out = env
        .broker
        .fail(&env.keys, &KEEP, "a", fence, "bad input", FailMode::Kill);

    assert_eq!(out.await.unwrap(), FailOutcome::Dead);
    env.assert_state("a", JobState::Dead).await;
    assert_eq!(env.field("a", "attempt").await.as_deref(), Some("1"));
    assert_eq!(env.field("a", "max").await.as_deref(), Some("25"));
    assert_eq!(env.field("a", "error").await.as_deref(), Some("bad input"));
    assert_eq!(env.stat("failed").await, 1);
}

#[tokio::test]
async fn fail_with_cancel_goes_cancelled_and_clears_the_request() {
    let env = start().await;
    let fence = env.put("a", JobState::Active).await;
    let asked = env.broker.cancel(&env.keys, &KEEP, "a").await.unwrap();
    assert_eq!(asked, CancelOutcome::Cancelling);

    let t0 = env.now().await;
    let out = env
        .broker
        .fail(&env.keys, &KEEP, "a", fence, "cancelled", FailMode::Cancel);
    let out = out.await.unwrap();
    let t1 = env.now().await;

    assert_eq!(out, FailOutcome::Cancelled);
    env.assert_state("a", JobState::Cancelled).await;
    let finished = env.num("a", "finished").await;
    assert_between("finished", finished, t0, t1);
    assert_eq!(env.score(JobState::Cancelled, "a").await, Some(finished));
    assert_eq!(env.field("a", "cancel").await, None);
    env.assert_kept_for_the_retention("a", JobState::Cancelled)
        .await;
    assert_eq!(env.stat("failed").await, 0, "a cancel is not a failure");
}

#[tokio::test]
async fn fail_with_a_wrong_fence_is_stale_and_changes_nothing() {
    let env = start().await;
    let fence = env.put("a", JobState::Active).await;
    let before = env.snapshot().await;
    let modes = [
        FailMode::Retry(Duration::ZERO),
        FailMode::Kill,
        FailMode::Cancel,
    ];

    for mode in modes {
        for (id, wrong) in [("a", fence - 1), ("a", fence + 1), ("missing", 1)] {
            let out = env.broker.fail(&env.keys, &KEEP, id, wrong, "zombie", mode);
            assert_eq!(
                out.await.unwrap(),
                FailOutcome::Stale,
                "{mode:?} {id} {wrong}"
            );
        }
    }

    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn fail_twice_is_stale_the_second_time() {
    let modes = [
        (FailMode::Retry(HOUR), JobState::Retry),
        (FailMode::Kill, JobState::Dead),
        (FailMode::Cancel, JobState::Cancelled),
    ];
    for (mode, state) in modes {
        let env = start().await;
        let fence = env.put("a", JobState::Active).await;
        env.broker
            .fail(&env.keys, &KEEP, "a", fence, "e", mode)
            .await
            .unwrap();
        let before = env.snapshot().await;

        let out = env
            .broker
            .fail(&env.keys, &KEEP, "a", fence, "e", mode)
            .await;

        assert_eq!(out.unwrap(), FailOutcome::Stale, "{mode:?}");
        assert_eq!(env.snapshot().await, before, "{mode:?}");
        env.assert_state("a", state).await;
    }
}

#[tokio::test]
async fn fail_caps_the_dead_index_and_deletes_the_evicted_jobs() {
    let env = start().await;
    let retention = Retention {
        dead_max: 2,
        ..Retention::default()
    };
    for id in ["a", "b", "c"] {
        let fence = env.put(id, JobState::Active).await;
        let out = env
            .broker
            .fail(&env.keys, &retention, id, fence, "e", FailMode::Kill);
        assert_eq!(out.await.unwrap(), FailOutcome::Dead);
    }

    env.assert_gone("a").await;
    assert_eq!(env.members(JobState::Dead).await, ["b", "c"]);
    env.assert_state("b", JobState::Dead).await;
    env.assert_state("c", JobState::Dead).await;
}

// ---------------------------------------------------------------------------------------------
// renew

#[tokio::test]
async fn renew_extends_the_lease_in_the_hash_and_the_active_index() {
    let env = start().await;
    env.enqueue(job("a")).await;
    let batch = env
        .broker
        .claim(&env.keys, "w1", Duration::from_secs(10), 1, Duration::ZERO)
        .await
        .unwrap();
    let fence = batch.jobs[0].fence;

    let t0 = env.now().await;
    let renewed = env
        .broker
        .renew(&env.keys, Duration::from_secs(60), &[("a".into(), fence)])
        .await
        .unwrap();
    let t1 = env.now().await;

    assert_between("deadline - lease", renewed.lease_until_ms - 60_000, t0, t1);
    assert!(renewed.lease_until_ms > batch.lease_until_ms);
    assert!(renewed.lost.is_empty() && renewed.cancel_requested.is_empty());
    env.assert_state("a", JobState::Active).await;
    assert_eq!(env.num("a", "lease").await, renewed.lease_until_ms);
    assert_eq!(
        env.score(JobState::Active, "a").await,
        Some(renewed.lease_until_ms)
    );
    assert_eq!(
        env.num("a", "fence").await,
        fence as i64,
        "renewing is not claiming"
    );

    // Renewing again only moves the deadline again.
    let again = env
        .broker
        .renew(&env.keys, Duration::from_secs(60), &[("a".into(), fence)])
        .await
        .unwrap();
    assert!(again.lost.is_empty());
    assert_eq!(
        env.score(JobState::Active, "a").await,
        Some(again.lease_until_ms)
    );
}

#[tokio::test]
async fn renew_of_a_job_not_held_with_that_fence_is_lost_and_changes_nothing() {
    let env = start().await;
    let a = env.put("a", JobState::Active).await;
    let done = env.put("done", JobState::Completed).await;
    env.put("p", JobState::Pending).await;
    let before = env.snapshot().await;

    let renewed = env
        .broker
        .renew(
            &env.keys,
            LEASE,
            &[
                ("a".into(), a + 1),
                ("done".into(), done),
                ("p".into(), 0),
                ("missing".into(), 1),
            ],
        )
        .await
        .unwrap();

    assert_eq!(renewed.lost, ["a", "done", "p", "missing"]);
    assert!(renewed.cancel_requested.is_empty());
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn renew_after_the_deadline_is_lost_even_with_the_right_fence() {
    let env = start().await;
    env.enqueue(job("a")).await;
    let batch = env.claim_until_expired(Duration::from_millis(1)).await;
    let before = env.snapshot().await;

    let fence = batch.jobs[0].fence;
    let renewed = env
        .broker
        .renew(&env.keys, LEASE, &[("a".into(), fence)])
        .await;

    assert_eq!(renewed.unwrap().lost, ["a"]);
    assert_eq!(
        env.snapshot().await,
        before,
        "the lease stays expired for recovery"
    );
    env.assert_state("a", JobState::Active).await;
}

#[tokio::test]
async fn renew_reports_a_cancel_request_and_still_renews() {
    let env = start().await;
    let a = env.put("a", JobState::Active).await;
    let b = env.put("b", JobState::Active).await;
    env.broker.cancel(&env.keys, &KEEP, "b").await.unwrap();

    let renewed = env
        .broker
        .renew(&env.keys, LEASE, &[("a".into(), a), ("b".into(), b)])
        .await
        .unwrap();

    assert!(renewed.lost.is_empty());
    assert_eq!(renewed.cancel_requested, ["b"]);
    for id in ["a", "b"] {
        env.assert_state(id, JobState::Active).await;
        assert_eq!(env.num(id, "lease").await, renewed.lease_until_ms);
    }
}

// ---------------------------------------------------------------------------------------------
// recover

#[tokio::test]
async fn recover_returns_an_expired_job_to_pending_with_its_attempt_kept() {
    let env = start().await;
    env.enqueue(job("a").max_attempts(3)).await;
    // A real short lease that runs out by Redis' clock.
    let batch = env.claim_until_expired(Duration::from_millis(5)).await;

    let out = env.broker.recover(&env.keys, &KEEP, 100).await.unwrap();

    assert_eq!(
        out,
        Recovered {
            to_pending: 1,
            to_dead: 0,
            to_cancelled: 0
        }
    );
    env.assert_state("a", JobState::Pending).await;
    let h = env.hash("a").await;
    let first_fence = batch.jobs[0].fence;
    assert_eq!(
        (h["attempt"].as_str(), h["fence"].as_str()),
        ("1", first_fence.to_string().as_str())
    );
    assert!(h["error"].starts_with("lease expired"), "{}", h["error"]);
    assert!(
        !h.contains_key("owner") && !h.contains_key("lease"),
        "{h:?}"
    );
    assert_eq!(env.stat("failed").await, 0);

    let next = env.claim("w2", 1).await.jobs.remove(0);
    assert_eq!((next.id.as_str(), next.attempt), ("a", 2));
    assert!(next.fence > first_fence);
}

/// What a tickq older than the `running` hash does to this version's jobs during a rolling
/// upgrade (janitor.lua): its recover drops an expired job it does not see as active from
/// `active`, and its janitor drops a completed job from `completed` but leaves its acked
/// facts. The janitor puts the first back for recovery and deletes the second.
#[tokio::test]
async fn janitor_repairs_facts_an_older_version_left_without_their_index() {
    let env = start().await;
    env.enqueue(job("ran").max_attempts(3)).await;
    let fence = env.claim_next("ran").await;
    env.put("done", JobState::Completed).await;
    let mut conn = env.conn.clone();
    let _: () = redis::pipe()
        .zrem(&env.keys.active, "ran")
        .zrem(&env.keys.completed, "done")
        .query_async(&mut conn)
        .await
        .unwrap();

    env.broker
        .janitor(&env.keys, &Retention::default(), 100, false)
        .await
        .unwrap();

    assert_eq!(env.score(JobState::Active, "ran").await, Some(0));
    env.assert_gone("done").await;
    let acked: bool = conn.hexists(&env.keys.acked, "done").await.unwrap();
    assert!(!acked, "the acked facts of a deleted job");
    let out = env.broker.recover(&env.keys, &KEEP, 100).await.unwrap();
    assert_eq!(out.to_pending, 1);
    env.assert_state("ran", JobState::Pending).await;
    assert_eq!(env.hash("ran").await["fence"], fence.to_string());
    let next = env.claim("w2", 1).await.jobs.remove(0);
    assert_eq!((next.id.as_str(), next.attempt), ("ran", 2));
}

#[tokio::test]
async fn recover_sends_a_job_that_was_on_its_last_attempt_to_dead() {
    let env = start().await;
    env.enqueue(job("a").max_attempts(1)).await;
    env.claim_next("a").await;
    env.expire_lease("a").await;

    let t0 = env.now().await;
    let out = env.broker.recover(&env.keys, &KEEP, 100).await.unwrap();
    let t1 = env.now().await;

    assert_eq!(
        out,
        Recovered {
            to_pending: 0,
            to_dead: 1,
            to_cancelled: 0
        }
    );
    env.assert_state("a", JobState::Dead).await;
    let finished = env.num("a", "finished").await;
    assert_between("finished", finished, t0, t1);
    assert_eq!(env.score(JobState::Dead, "a").await, Some(finished));
    let h = env.hash("a").await;
    assert!(h["error"].starts_with("lease expired"), "{}", h["error"]);
    assert!(
        !h.contains_key("owner") && !h.contains_key("lease"),
        "{h:?}"
    );
    assert_eq!(env.stat("failed").await, 1);
}

#[tokio::test]
async fn recover_cancels_an_expired_job_whose_cancel_was_asked() {
    let env = start().await;
    env.put("a", JobState::Active).await;
    env.broker.cancel(&env.keys, &KEEP, "a").await.unwrap();
    env.expire_lease("a").await;

    let out = env.broker.recover(&env.keys, &KEEP, 100).await.unwrap();

    assert_eq!(
        out,
        Recovered {
            to_pending: 0,
            to_dead: 0,
            to_cancelled: 1
        }
    );
    env.assert_state("a", JobState::Cancelled).await;
    let h = env.hash("a").await;
    assert_eq!(h["error"], "cancelled");
    assert!(!h.contains_key("cancel") && !h.contains_key("owner") && !h.contains_key("lease"));
    assert_eq!(
        env.score(JobState::Cancelled, "a").await,
        Some(env.num("a", "finished").await)
    );
    env.assert_kept_for_the_retention("a", JobState::Cancelled)
        .await;
}

#[tokio::test]
async fn recover_leaves_unexpired_leases_alone_and_is_a_no_op_the_second_time() {
    let env = start().await;
    env.put("expired", JobState::Active).await;
    env.put("running", JobState::Active).await;
    env.expire_lease("expired").await;

    let first = env.broker.recover(&env.keys, &KEEP, 100).await.unwrap();
    let before = env.snapshot().await;
    let second = env.broker.recover(&env.keys, &KEEP, 100).await.unwrap();

    assert_eq!(
        first,
        Recovered {
            to_pending: 1,
            to_dead: 0,
            to_cancelled: 0
        }
    );
    assert_eq!(second, Recovered::default());
    assert_eq!(env.snapshot().await, before);
    env.assert_state("expired", JobState::Pending).await;
    env.assert_state("running", JobState::Active).await;
    assert_eq!(env.field("running", "owner").await.as_deref(), Some("w1"));
}

#[tokio::test]
async fn recover_takes_at_most_limit_jobs_earliest_deadline_first() {
    let env = start().await;
    for id in ["a", "b", "c"] {
        env.put(id, JobState::Active).await;
    }
    env.expire_lease_by("c", 3000).await;
    env.expire_lease_by("a", 2000).await;
    env.expire_lease_by("b", 1000).await;

    let first = env.broker.recover(&env.keys, &KEEP, 2).await.unwrap();

    assert_eq!(first.to_pending, 2);
    assert_eq!(env.members(JobState::Pending).await, ["c", "a"]);
    env.assert_state("b", JobState::Active).await;
    let rest = env.broker.recover(&env.keys, &KEEP, 2).await.unwrap();
    assert_eq!(rest.to_pending, 1);
    assert_eq!(env.members(JobState::Pending).await, ["c", "a", "b"]);
}

// ---------------------------------------------------------------------------------------------
// requeue

#[tokio::test]
async fn requeue_hands_a_job_back_without_charging_the_attempt() {
    let env = start().await;
    env.enqueue(job("a").priority(2)).await;
    let fence = env.claim_next("a").await;
    env.enqueue(job("b")).await;

    let moved = env
        .broker
        .requeue(&env.keys, &[("a".into(), fence)])
        .await
        .unwrap();

    assert_eq!(moved, 1);
    env.assert_state("a", JobState::Pending).await;
    let h = env.hash("a").await;
    assert_eq!(
        (h["attempt"].as_str(), h["fence"].as_str()),
        ("0", fence.to_string().as_str())
    );
    assert!(
        !h.contains_key("owner") && !h.contains_key("lease"),
        "{h:?}"
    );
    assert_eq!(
        env.members(JobState::Pending).await,
        ["a", "b"],
        "its priority still counts"
    );

    let before = env.snapshot().await;
    let again = env
        .broker
        .requeue(&env.keys, &[("a".into(), fence)])
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn requeue_with_a_wrong_fence_is_ignored() {
    let env = start().await;
    let fence = env.put("a", JobState::Active).await;
    let before = env.snapshot().await;

    let moved = env
        .broker
        .requeue(&env.keys, &[("a".into(), fence + 1), ("missing".into(), 1)])
        .await
        .unwrap();

    assert_eq!(moved, 0);
    assert_eq!(env.snapshot().await, before);
    env.assert_state("a", JobState::Active).await;
}

// ---------------------------------------------------------------------------------------------
// cancel

#[tokio::test]
async fn cancel_of_a_waiting_job_cancels_it() {
    for state in [JobState::Pending, JobState::Scheduled, JobState::Retry] {
        let env = start().await;
        env.put("a", state).await;

        let t0 = env.now().await;
        let out = env.broker.cancel(&env.keys, &KEEP, "a").await.unwrap();
        let t1 = env.now().await;

        assert_eq!(out, CancelOutcome::Cancelled, "from {state}");
        env.assert_state("a", JobState::Cancelled).await;
        let finished = env.num("a", "finished").await;
        assert_between("finished", finished, t0, t1);
        assert_eq!(env.score(JobState::Cancelled, "a").await, Some(finished));

        // Twice: still cancelled, nothing changes.
        let before = env.snapshot().await;
        let again = env.broker.cancel(&env.keys, &KEEP, "a").await.unwrap();
        assert_eq!(again, CancelOutcome::Cancelled);
        assert_eq!(env.snapshot().await, before);
        env.assert_kept_for_the_retention("a", JobState::Cancelled)
            .await;
    }
}

#[tokio::test]
async fn cancel_of_an_active_job_asks_its_worker() {
    let env = start().await;
    env.put("a", JobState::Active).await;
    let before = env.hash("a").await;

    let first = env.broker.cancel(&env.keys, &KEEP, "a").await.unwrap();
    let second = env.broker.cancel(&env.keys, &KEEP, "a").await.unwrap();

    assert_eq!(
        (first, second),
        (CancelOutcome::Cancelling, CancelOutcome::Cancelling)
    );
    env.assert_state("a", JobState::Active).await;
    let mut expected = before;
    expected.insert("cancel".into(), "1".into());
    assert_eq!(env.hash("a").await, expected);
    assert!(
        env.broker
            .job(&env.keys, "a")
            .await
            .unwrap()
            .unwrap()
            .cancel_requested
    );
}

// ---------------------------------------------------------------------------------------------
// delete

#[tokio::test]
async fn delete_removes_a_job_that_is_not_running() {
    let states = [
        JobState::Scheduled,
        JobState::Pending,
        JobState::Retry,
        JobState::Dead,
        JobState::Completed,
        JobState::Cancelled,
    ];
    for state in states {
        let env = start().await;
        env.put("a", state).await;
        env.put("other", JobState::Pending).await;

        let out = env.broker.delete(&env.keys, "a").await.unwrap();

        assert_eq!(out, state);
        env.assert_gone("a").await;
        env.assert_state("other", JobState::Pending).await;

        let err = env.broker.delete(&env.keys, "a").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "twice, from {state}");
    }
}

// ---------------------------------------------------------------------------------------------
// retry

#[tokio::test]
async fn retry_of_a_dead_or_cancelled_job_starts_it_over() {
    for state in [JobState::Dead, JobState::Cancelled] {
        let env = start().await;
        let fence = env.put("a", state).await;

        let t0 = env.now().await;
        let out = env.broker.retry(&env.keys, "a").await.unwrap();
        let t1 = env.now().await;

        assert_eq!(out, state);
        env.assert_state("a", JobState::Pending).await;
        let h = env.hash("a").await;
        assert_eq!(h["attempt"], "0", "a fresh attempt budget, from {state}");
        assert_eq!(h["fence"], fence.to_string(), "fences never go back");
        assert!(!h.contains_key("finished"), "{h:?}");
        assert_between("due", env.num("a", "due").await, t0, t1);
        assert_eq!(env.pttl("a").await, -1, "a retried job no longer expires");

        let next = env.claim("w1", 1).await.jobs.remove(0);
        assert_eq!(next.attempt, 1);
        assert!(next.fence > fence, "fences only grow");
    }
}

#[tokio::test]
async fn retry_of_a_waiting_job_runs_it_now_with_its_attempts_kept() {
    for state in [JobState::Retry, JobState::Scheduled] {
        let env = start().await;
        let fence = env.put("a", state).await;
        let attempt = env.field("a", "attempt").await;

        let t0 = env.now().await;
        let out = env.broker.retry(&env.keys, "a").await.unwrap();
        let t1 = env.now().await;

        assert_eq!(out, state);
        env.assert_state("a", JobState::Pending).await;
        assert_eq!(env.field("a", "attempt").await, attempt, "from {state}");
        assert_between("due", env.num("a", "due").await, t0, t1);

        let next = env.claim("w1", 1).await.jobs.remove(0);
        assert!(next.fence > fence, "fences only grow");
    }
}

#[tokio::test]
async fn retry_of_a_dead_job_forgets_the_cancel_request_of_its_last_run() {
    let env = start().await;
    // Cancel asked while it ran, but the handler failed for good before the worker saw it.
    let fence = env.put("a", JobState::Active).await;
    env.broker.cancel(&env.keys, &KEEP, "a").await.unwrap();
    let out = env
        .broker
        .fail(&env.keys, &KEEP, "a", fence, "e", FailMode::Kill);
    assert_eq!(out.await.unwrap(), FailOutcome::Dead);

    env.broker.retry(&env.keys, "a").await.unwrap();

    assert_eq!(env.field("a", "cancel").await, None);
    let fence = env.claim_next("a").await;
    let renewed = env
        .broker
        .renew(&env.keys, LEASE, &[("a".into(), fence)])
        .await;
    assert!(
        renewed.unwrap().cancel_requested.is_empty(),
        "the new run is not cancelled"
    );
}

// ---------------------------------------------------------------------------------------------
// what the operator's actions refuse

/// An operator's action on one job, as the refusal table calls it.
#[derive(Debug, Clone, Copy)]
enum ByHand {
    Cancel,
    Delete,
    Retry,
    Kill,
    Reschedule,
}

impl ByHand {
    async fn on(self, env: &Env, id: &str) -> Result<()> {
        let (b, k) = (&env.broker, &env.keys);
        match self {
            ByHand::Cancel => b.cancel(k, &KEEP, id).await.map(drop),
            ByHand::Delete => b.delete(k, id).await.map(drop),
            ByHand::Retry => b.retry(k, id).await.map(drop),
            ByHand::Kill => b.kill(k, &KEEP, id).await.map(drop),
            ByHand::Reschedule => b.reschedule(k, id, &Due::Now).await.map(drop),
        }
    }
}

/// Each action, the states it refuses (Conflict, naming the state, and the hint when there is
/// one), beside which it refuses a missing job (NotFound); a refusal changes nothing.
#[rustfmt::skip]
const REFUSED: &[(ByHand, &[JobState], Option<&str>)] = {
    use JobState::*;
    &[
        (ByHand::Cancel, &[Completed, Dead], None),
        (ByHand::Delete, &[Active], Some("cancel it first")),
        (ByHand::Retry, &[Pending, Active, Completed], None),
        (ByHand::Kill, &[Active, Completed, Cancelled], None),
        (ByHand::Reschedule, &[Active, Dead, Completed, Cancelled], None),
    ]
};

#[tokio::test]
async fn operator_actions_refuse_wrong_states_and_missing_jobs_and_change_nothing() {
    for &(action, states, hint) in REFUSED {
        for &state in states {
            let env = start().await;
            env.put("a", state).await;
            let before = env.snapshot().await;

            let err = action.on(&env, "a").await.unwrap_err();

            let what = format!("{action:?} of a {state} job");
            assert_eq!(err.kind(), ErrorKind::Conflict, "{what}: {err}");
            assert!(err.message().contains(state.as_str()), "{what}: {err}");
            if let Some(hint) = hint {
                assert!(err.message().contains(hint), "{what}: {err}");
            }
            assert_eq!(env.snapshot().await, before, "{what} changed something");
        }
        let env = start().await;
        let err = action.on(&env, "missing").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{action:?}: {err}");
        assert_eq!(env.snapshot().await, BTreeMap::new(), "{action:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// janitor

#[tokio::test]
async fn janitor_drops_old_finished_jobs_and_keeps_young_ones() {
    let env = start().await;
    let retention = Retention {
        completed_for: Duration::from_secs(60),
        dead_for: Duration::from_secs(600),
        ..Retention::default()
    };
    for state in [JobState::Completed, JobState::Cancelled, JobState::Dead] {
        for age in ["old", "young"] {
            env.put(&format!("{age}-{state}"), state).await;
        }
    }
    // Finished 2 minutes ago: past the completed keep time, within the dead keep time.
    let now = env.now().await;
    for state in [JobState::Completed, JobState::Cancelled, JobState::Dead] {
        env.set_score(state, &format!("old-{state}"), now - 120_000)
            .await;
    }
    env.set_score(JobState::Dead, "ancient-dead", now - 700_000)
        .await;
    env.set_field("ancient-dead", "state", "dead").await;

    let dropped = env
        .broker
        .janitor(&env.keys, &retention, 100, false)
        .await
        .unwrap();

    assert_eq!(dropped, 3);
    for id in ["old-completed", "old-cancelled", "ancient-dead"] {
        env.assert_gone(id).await;
    }
    env.assert_state("old-dead", JobState::Dead).await;
    env.assert_state("young-completed", JobState::Completed)
        .await;
    env.assert_state("young-cancelled", JobState::Cancelled)
        .await;
    env.assert_state("young-dead", JobState::Dead).await;

    let before = env.snapshot().await;
    let again = env
        .broker
        .janitor(&env.keys, &retention, 100, false)
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn janitor_drops_at_most_limit_entries_per_index_per_call() {
    let env = start().await;
    let retention = Retention {
        completed_for: Duration::from_secs(60),
        ..Retention::default()
    };
    let old = env.now().await - 120_000;
    for id in ["a", "b", "c"] {
        env.put(id, JobState::Completed).await;
        env.set_score(JobState::Completed, id, old).await;
    }

    let first = env
        .broker
        .janitor(&env.keys, &retention, 2, false)
        .await
        .unwrap();

    assert_eq!(first, 2);
    assert_eq!(env.members(JobState::Completed).await, ["c"]);
    assert_eq!(
        env.broker
            .janitor(&env.keys, &retention, 2, false)
            .await
            .unwrap(),
        1
    );
    env.assert_gone("c").await;
}

#[tokio::test]
async fn janitor_trim_drops_young_completed_and_cancelled_jobs_but_not_dead_ones() {
    let env = start().await;
    let retention = Retention::default();
    for state in [JobState::Completed, JobState::Cancelled, JobState::Dead] {
        env.put(&format!("young-{state}"), state).await;
    }

    let dropped = env
        .broker
        .janitor(&env.keys, &retention, 100, true)
        .await
        .unwrap();

    assert_eq!(dropped, 2);
    env.assert_gone("young-completed").await;
    env.assert_gone("young-cancelled").await;
    env.assert_state("young-dead", JobState::Dead).await;
}

// ---------------------------------------------------------------------------------------------
// reads: counts, ids, job, jobs

#[tokio::test]
async fn counts_reports_every_state_and_the_totals() {
    let env = start().await;
    env.put("active", JobState::Active).await;
    env.put("retry", JobState::Retry).await;
    env.put("dead", JobState::Dead).await;
    env.put("completed", JobState::Completed).await;
    env.put("cancelled", JobState::Cancelled).await;
    env.put("scheduled", JobState::Scheduled).await;
    env.put("pending-1", JobState::Pending).await;
    env.put("pending-2", JobState::Pending).await;
    // A waiting step, and its parent, pending.
    let flow = crate::flow::Workflow::new(Q, "counts")
        .id("f")
        .step(crate::flow::Step::new("a", NewJob::new(Q, "work")))
        .step(crate::flow::Step::new("b", NewJob::new(Q, "work")).after(["a"]));
    assert!(env.broker.submit_flow(&flow, "f", 1000).await.unwrap());

    let counts = env.broker.counts(&env.keys).await.unwrap();

    let expected: BTreeMap<JobState, u64> = JobState::ALL
        .into_iter()
        .map(|s| (s, if s == JobState::Pending { 3 } else { 1 }))
        .collect();
    assert_eq!(
        counts,
        QueueCounts {
            queue: Q.into(),
            states: expected,
            processed: 1,
            failed: 2,
            paused: false,
            limits: Default::default(),
        }
    );
    let empty = env.broker.counts(&env.broker.keys("empty")).await.unwrap();
    assert!(empty.states.values().all(|&n| n == 0) && empty.states.len() == JobState::ALL.len());
    assert_eq!((empty.processed, empty.failed), (0, 0));
}

#[tokio::test]
async fn ids_pages_through_an_index_in_order() {
    let env = start().await;
    for id in ["a", "b", "c", "d"] {
        env.enqueue(job(id)).await;
    }
    env.enqueue(job("first").priority(1)).await;
    let page = |offset, limit| env.broker.ids(&env.keys, JobState::Pending, offset, limit);

    assert_eq!(page(0, 10).await.unwrap(), ["first", "a", "b", "c", "d"]);
    assert_eq!(page(1, 2).await.unwrap(), ["a", "b"]);
    assert_eq!(page(4, 10).await.unwrap(), ["d"]);
    assert!(page(5, 10).await.unwrap().is_empty());
    assert!(page(0, 0).await.unwrap().is_empty());
    let dead = env
        .broker
        .ids(&env.keys, JobState::Dead, 0, 10)
        .await
        .unwrap();
    assert!(dead.is_empty());
}

#[tokio::test]
async fn job_reads_every_field_of_an_active_job() {
    let env = start().await;
    env.enqueue(
        job("a")
            .payload(serde_json::json!([1, 2]))
            .timeout(Duration::from_secs(9))
            .max_attempts(4)
            .priority(-2)
            .meta("k", "v"),
    )
    .await;
    let batch = env.claim("w1", 1).await;
    env.broker.cancel(&env.keys, &KEEP, "a").await.unwrap();

    let info = env.broker.job(&env.keys, "a").await.unwrap().unwrap();

    let h = env.hash("a").await;
    let ts = |field: &str| ms_to_timestamp(h[field].parse().unwrap());
    assert_eq!(
        info,
        JobInfo {
            id: "a".into(),
            queue: Q.into(),
            kind: "work".into(),
            payload: serde_json::json!([1, 2]),
            state: JobState::Active,
            attempt: 1,
            max_attempts: 4,
            priority: -2,
            fence: batch.jobs[0].fence,
            timeout_ms: Some(9000),
            created_at: ts("created"),
            due_at: ts("due"),
            started_at: ms_to_timestamp(batch.now_ms),
            finished_at: None,
            lease_until: ms_to_timestamp(batch.lease_until_ms),
            worker: Some("w1".into()),
            last_error: None,
            result: None,
            cancel_requested: true,
            progress: None,
            meta: [("k".to_owned(), "v".to_owned())].into(),
            corrupt: None,
        }
    );
    assert_eq!(env.broker.job(&env.keys, "missing").await.unwrap(), None);
}

#[tokio::test]
async fn job_reports_unreadable_data_instead_of_failing() {
    let env = start().await;
    env.put("a", JobState::Dead).await;
    env.set_field("a", "data", "not json").await;

    let info = env.broker.job(&env.keys, "a").await.unwrap().unwrap();

    assert_eq!(info.state, JobState::Dead);
    assert_eq!(info.kind, "");
    assert!(info.corrupt.unwrap().contains("not a tickq job envelope"));
}

#[tokio::test]
async fn jobs_reads_many_in_the_order_asked_and_skips_missing_ones() {
    let env = start().await;
    env.put("a", JobState::Active).await;
    env.put("b", JobState::Pending).await;
    env.put("c", JobState::Scheduled).await;

    let ids: Vec<String> = ["c", "missing", "a", "b"].map(String::from).into();
    let infos = env.broker.jobs(&env.keys, &ids).await.unwrap();

    let got: Vec<(&str, JobState)> = infos.iter().map(|j| (j.id.as_str(), j.state)).collect();
    assert_eq!(
        got,
        [
            ("c", JobState::Scheduled),
            ("a", JobState::Active),
            ("b", JobState::Pending)
        ]
    );
    assert!(infos[1].lease_until.is_some());
    assert_eq!(infos[0].lease_until, None);
}

#[tokio::test]
async fn a_reused_job_id_never_gets_a_fence_of_the_deleted_job() {
    let env = start().await;
    env.enqueue(job("a")).await;
    let old_fence = env.claim_next("a").await;
    env.broker
        .fail(&env.keys, &KEEP, "a", old_fence, "x", FailMode::Kill)
        .await
        .unwrap();
    env.broker.delete(&env.keys, "a").await.unwrap();

    env.enqueue(job("a")).await;
    let new_fence = env.claim_next("a").await;

    assert!(new_fence > old_fence, "{new_fence} > {old_fence}");
    // The zombie of the deleted job cannot complete the new one.
    let zombie_ack = [("a".to_owned(), old_fence, String::new())];
    let outcome = env.broker.ack(&env.keys, &KEEP, &zombie_ack).await.unwrap();
    assert_eq!(outcome.stale, ["a"]);
    env.assert_state("a", JobState::Active).await;
}

#[tokio::test]
async fn claim_reports_when_each_job_was_due() {
    let env = start().await;
    env.enqueue(job("a")).await;
    let batch = env.claim("w1", 10).await;
    let info = env.broker.job(&env.keys, "a").await.unwrap().unwrap();
    assert_eq!(batch.jobs[0].due_ms, info.due_at.unwrap().as_millisecond());
}

#[tokio::test]
async fn kill_sends_a_waiting_job_to_dead() {
    for state in [JobState::Scheduled, JobState::Pending, JobState::Retry] {
        let env = start().await;
        env.put("a", state).await;

        let out = env.broker.kill(&env.keys, &KEEP, "a").await.unwrap();

        assert_eq!(out, state);
        env.assert_state("a", JobState::Dead).await;
        let info = env.broker.job(&env.keys, "a").await.unwrap().unwrap();
        assert_eq!(info.last_error.as_deref(), Some("killed by hand"));
        let again = env.broker.kill(&env.keys, &KEEP, "a").await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::Conflict, "twice, from {state}");
    }
}

// ---------------------------------------------------------------------------------------------
// queue_pause

impl Env {
    fn inspector(&self) -> crate::Inspector {
        crate::Inspector {
            broker: self.broker.clone(),
            retention: KEEP,
        }
    }

    pub(super) async fn marker_set(&self) -> bool {
        let n: i64 = redis::cmd("XLEN")
            .arg(&self.keys.wake)
            .query_async(&mut self.conn.clone())
            .await
            .unwrap();
        n > 0
    }
}

#[tokio::test]
async fn a_paused_queue_leases_nothing_and_tells_workers_to_sleep() {
    let env = start().await;
    env.put("a", JobState::Pending).await;
    env.enqueue(job("due").delay(Duration::from_millis(1)))
        .await;
    tokio::time::sleep(Duration::from_millis(5)).await;

    assert!(!env.broker.set_paused(&env.keys, true).await.unwrap());
    let batch = env.claim("w1", 10).await;

    assert!(batch.jobs.is_empty(), "{:?}", batch.jobs);
    assert_eq!(batch.next_due_ms, -1, "paused: sleep until woken");
    env.assert_state("a", JobState::Pending).await;
    // Due jobs are still promoted, so they are ready the moment the queue resumes.
    env.assert_state("due", JobState::Pending).await;
    assert_eq!(env.field("a", "attempt").await.as_deref(), Some("0"));

    // Twice: still paused, and the answer says it was.
    assert!(env.broker.set_paused(&env.keys, true).await.unwrap());
    assert!(env.claim("w1", 10).await.jobs.is_empty());
    assert!(env.broker.counts(&env.keys).await.unwrap().paused);
}

/// The stream is trimmed approximately, so a burst of wake-ups leaves many entries: a worker
/// reads them all at once and acts on the newest, not once per entry.
#[tokio::test]
async fn a_burst_of_wake_ups_is_read_at_once() {
    let env = start().await;
    for _ in 0..150 {
        let () = wake_command(&env.keys)
            .query_async(&mut env.conn.clone())
            .await
            .unwrap();
    }
    let newest: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
        .arg(&env.keys.wake)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut env.conn.clone())
        .await
        .unwrap();
    let block = Duration::from_millis(50);
    let mut conn = env.broker.blocking_connection(block).await.unwrap();

    let seen = env
        .broker
        .wait_for_wake(&mut conn, &env.keys, "0-0", block)
        .await;

    let seen = seen.unwrap().expect("entries are there");
    assert_eq!(seen, newest[0].0, "the newest entry, in one read");
    // Nothing newer: the next read waits out its block.
    let again = env
        .broker
        .wait_for_wake(&mut conn, &env.keys, &seen, block)
        .await;
    assert_eq!(again.unwrap(), None);
    // Trimmed: old entries go a node at a time, so the stream stays small.
    let len: u64 = redis::cmd("XLEN")
        .arg(&env.keys.wake)
        .query_async(&mut env.conn.clone())
        .await
        .unwrap();
    assert!((1..=200).contains(&len), "{len} entries");
}

#[tokio::test]
async fn resume_lets_claims_lease_again_and_wakes_a_worker() {
    let env = start().await;
    env.put("a", JobState::Pending).await;
    env.broker.set_paused(&env.keys, true).await.unwrap();
    let _: () = env.conn.clone().del(&env.keys.wake).await.unwrap();

    assert!(env.broker.set_paused(&env.keys, false).await.unwrap());

    assert!(env.marker_set().await, "resume sets the marker");
    assert!(!env.broker.counts(&env.keys).await.unwrap().paused);
    let batch = env.claim("w1", 10).await;
    assert_eq!(batch.jobs.len(), 1);
    env.assert_state("a", JobState::Active).await;

    // Twice: nothing to resume, no error.
    assert!(!env.broker.set_paused(&env.keys, false).await.unwrap());
}

#[tokio::test]
async fn pause_leaves_active_jobs_running() {
    let env = start().await;
    let fence = env.put("a", JobState::Active).await;
    env.broker.set_paused(&env.keys, true).await.unwrap();

    let acks = [("a".into(), fence, "ok".into())];
    assert_eq!(
        env.broker.ack(&env.keys, &KEEP, &acks).await.unwrap().acked,
        1
    );
    env.assert_state("a", JobState::Completed).await;
}

// ---------------------------------------------------------------------------------------------
// queue_purge

#[tokio::test]
async fn purge_deletes_every_job_in_one_state_only() {
    let states = [
        JobState::Scheduled,
        JobState::Pending,
        JobState::Retry,
        JobState::Dead,
        JobState::Completed,
        JobState::Cancelled,
    ];
    for state in states {
        let env = start().await;
        // Jobs that need a claim must be next in pending, so build them before the others.
        env.put("other-active", JobState::Active).await;
        env.put("a", state).await;
        env.put("b", state).await;
        let other = if state == JobState::Pending {
            JobState::Scheduled
        } else {
            JobState::Pending
        };
        env.put("other", other).await;

        let n = env.inspector().purge(Q, state).await.unwrap().purged;

        assert_eq!(n, 2, "{state}");
        env.assert_gone("a").await;
        env.assert_gone("b").await;
        env.assert_state("other", other).await;
        env.assert_state("other-active", JobState::Active).await;

        // Twice: nothing left.
        assert_eq!(
            env.inspector().purge(Q, state).await.unwrap().purged,
            0,
            "{state}"
        );
    }
}

#[tokio::test]
async fn purge_works_in_batches_until_the_index_is_empty() {
    let env = start().await;
    let jobs = (0..2500).map(|i| job(&format!("j{i}"))).collect();
    env.broker.enqueue(jobs).await.unwrap();

    assert_eq!(
        env.broker
            .purge_batch(&env.keys, JobState::Pending, 1000)
            .await
            .unwrap(),
        1000
    );
    assert_eq!(env.members(JobState::Pending).await.len(), 1500);

    assert_eq!(
        env.inspector()
            .purge(Q, JobState::Pending)
            .await
            .unwrap()
            .purged,
        1500
    );
    assert_eq!(
        record::count(&mut env.conn.clone(), &env.keys)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn purge_of_active_jobs_is_refused() {
    let env = start().await;
    env.put("a", JobState::Active).await;
    let before = env.snapshot().await;

    let err = env
        .inspector()
        .purge(Q, JobState::Active)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("cancel"), "{err}");
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn reschedule_moves_a_waiting_job_to_its_new_time() {
    for state in [JobState::Scheduled, JobState::Pending, JobState::Retry] {
        let env = start().await;
        env.put("a", state).await;
        let attempt = env
            .broker
            .job(&env.keys, "a")
            .await
            .unwrap()
            .unwrap()
            .attempt;

        let out = env
            .broker
            .reschedule(&env.keys, "a", &Due::In(HOUR))
            .await
            .unwrap();

        assert_eq!(out, state);
        env.assert_state("a", JobState::Scheduled).await;
        let info = env.broker.job(&env.keys, "a").await.unwrap().unwrap();
        let now = env.broker.now_ms().await.unwrap();
        let due = info.due_at.unwrap().as_millisecond();
        assert!(
            (due - now - 3_600_000).abs() < 5_000,
            "due in an hour: {due} vs {now}"
        );
        assert_eq!(info.attempt, attempt, "attempts are kept");

        // A time that has passed makes it pending at once; twice is the same.
        let past = Due::At(jiff::Timestamp::from_millisecond(1).unwrap());
        env.broker.reschedule(&env.keys, "a", &past).await.unwrap();
        env.broker.reschedule(&env.keys, "a", &past).await.unwrap();
        env.assert_state("a", JobState::Pending).await;
    }
}
