//! Where a job's fields live (layout 5, lua/prelude.lua "Job records"): a plain waiting job is
//! its payload field and its list entry, nothing else; its notes and the sparse per-queue
//! hashes get an entry only while it has a rare fact, and lose it when the fact goes.

use super::*;
use crate::broker::enqueue::PLAIN_MIN;

/// Every key of the queue that mentions job `id` (its notes key) or holds an entry of it (the
/// per-queue hashes), as "key" or "hash[id]".
async fn homes_of(env: &Env, id: &str) -> Vec<String> {
    let mut conn = env.conn.clone();
    let mut out = Vec::new();
    let notes: bool = conn.exists(env.keys.record(id)).await.unwrap();
    if notes {
        out.push("notes".to_owned());
    }
    for (name, hash) in [
        ("jobs", &env.keys.jobs),
        ("attempts", &env.keys.attempts),
        ("groups", &env.keys.groups),
        ("dues", &env.keys.dues),
        ("ends", &env.keys.ends),
        ("running", &env.keys.running),
        ("acked", &env.keys.acked),
    ] {
        let there: bool = conn.hexists(hash, id).await.unwrap();
        if there {
            out.push(name.to_owned());
        }
    }
    out
}

#[tokio::test]
async fn a_plain_waiting_job_has_no_key_of_its_own() {
    let env = start().await;
    env.enqueue(job("a")).await;
    // A bulk big enough for the transaction path (broker/enqueue.rs), which writes the
    // payloads itself.
    let bulk: Vec<NewJob> = (0..PLAIN_MIN)
        .map(|i| job(&format!("b{i}")).priority(-(i as i32 % 3)))
        .collect();
    env.broker.enqueue(bulk).await.unwrap();

    for id in ["a", "b0", "b1", "b31"] {
        assert_eq!(homes_of(&env, id).await, ["jobs"], "{id}");
        env.assert_state(id, JobState::Pending).await;
    }
    // The queue's keys: the payloads, the lists and their set, and what every enqueue
    // writes (wake stream, history); no key names a job.
    let keys: Vec<String> = env.conn.clone().keys("tickq:*").await.unwrap();
    assert!(
        keys.iter()
            .all(|k| !k.starts_with(&env.keys.job_prefix) && !k.ends_with(":a")),
        "{keys:?}"
    );
    // Claimed and acked: still no notes, no sparse entry.
    let fence = env.claim_next("a").await;
    assert_eq!(homes_of(&env, "a").await, ["jobs", "running"]);
    env.broker
        .ack(&env.keys, &KEEP, &[("a".into(), fence, String::new())])
        .await
        .unwrap();
    assert_eq!(homes_of(&env, "a").await, ["jobs", "acked"]);
    env.assert_state("a", JobState::Completed).await;
}

#[tokio::test]
async fn notes_and_sparse_entries_come_and_go_with_rare_facts() {
    let env = start().await;
    // Delayed: notes hold its state until it is due.
    env.enqueue(job("a").delay(Duration::from_secs(60))).await;
    assert_eq!(homes_of(&env, "a").await, ["notes", "jobs"]);
    env.assert_state("a", JobState::Scheduled).await;
    env.set_score(JobState::Scheduled, "a", 0).await;
    let fence = env.claim_next("a").await;
    // Promoted: no state stored (pending), so no notes; running now.
    assert_eq!(homes_of(&env, "a").await, ["jobs", "running"]);

    // A failed attempt: notes (state retry, error, the run's facts), its attempt count and
    // its new due time apart.
    let out = env
        .broker
        .fail(
            &env.keys,
            &KEEP,
            "a",
            fence,
            "boom",
            FailMode::Retry(Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(out, FailOutcome::Retry);
    assert_eq!(
        homes_of(&env, "a").await,
        ["notes", "jobs", "attempts", "dues"]
    );
    let h = env.hash("a").await;
    assert_eq!((h["state"].as_str(), h["attempt"].as_str()), ("retry", "1"));
    assert_eq!(h["error"], "boom");
    let due = env.num("a", "due").await;

    // Claimed again: the attempt count moves into the run's entry; the due time stays (the
    // worker is told when the job was due).
    let batch = env.claim("w1", 1).await;
    assert_eq!((batch.jobs[0].attempt, batch.jobs[0].due_ms), (2, due));
    assert_eq!(
        homes_of(&env, "a").await,
        ["notes", "jobs", "dues", "running"]
    );
    // Completed, then deleted: nothing is left in any home.
    let fence = batch.jobs[0].fence;
    env.broker
        .ack(&env.keys, &KEEP, &[("a".into(), fence, String::new())])
        .await
        .unwrap();
    env.broker.delete(&env.keys, "a").await.unwrap();
    assert_eq!(homes_of(&env, "a").await, Vec::<String>::new());
    assert_eq!(
        record::count(&mut env.conn.clone(), &env.keys)
            .await
            .unwrap(),
        0
    );

    // A unique key: in `ends`, carried by the run, gone with the job.
    env.enqueue(job("u").unique_key("k").unique_for(Duration::from_secs(60)))
        .await;
    assert_eq!(homes_of(&env, "u").await, ["jobs", "ends"]);
    let fence = env.claim_next("u").await;
    env.broker
        .ack(&env.keys, &KEEP, &[("u".into(), fence, "r".into())])
        .await
        .unwrap();
    // The result is a note.
    assert_eq!(
        homes_of(&env, "u").await,
        ["notes", "jobs", "ends", "acked"]
    );
    let again = env
        .enqueue(
            job("u2")
                .unique_key("k")
                .unique_for(Duration::from_secs(60)),
        )
        .await;
    assert!(again.created, "the unique key was freed by the ack");
}

/// Rewrite job `id` as layout 4 stored it: one hash with every field (`data` included), the
/// stored state ('pending' for a job whose `running` or `acked` entry says otherwise: layout
/// 4's claim and ack did not write the hash), a TTL on a cancelled job's hash; no payload
/// field, no sparse entry. The `running` and `acked` entries are layout 4's own and stay.
async fn to_layout_4(env: &Env, id: &str, cancelled: bool) {
    let mut conn = env.conn.clone();
    let k = &env.keys;
    let payload: Vec<u8> = conn.hget(&k.jobs, id).await.unwrap();
    let (header, data) = record::split_payload(&payload).unwrap();
    let mut hash: BTreeMap<String, Vec<u8>> = conn.hgetall(k.record(id)).await.unwrap();
    hash.entry("state".into())
        .or_insert_with(|| b"pending".to_vec());
    hash.insert("data".into(), data.to_vec());
    for (name, value) in ["created", "due", "max", "priority"]
        .into_iter()
        .zip(header)
    {
        if !(name == "priority" && value == "0") {
            hash.insert(name.into(), value.as_bytes().to_vec());
        }
    }
    for (name, sparse) in [
        ("attempt", &k.attempts),
        ("group", &k.groups),
        ("due", &k.dues),
    ] {
        let value: Option<Vec<u8>> = conn.hget(sparse, id).await.unwrap();
        if let Some(value) = value {
            hash.insert(name.into(), value);
        }
        let _: i64 = conn.hdel(sparse, id).await.unwrap();
    }
    let ends: Option<String> = conn.hget(&k.ends, id).await.unwrap();
    if let Some(ends) = ends {
        for (name, value) in ["unique", "flow", "step"].into_iter().zip(ends.split('\n')) {
            if !value.is_empty() {
                hash.insert(name.into(), value.as_bytes().to_vec());
            }
        }
    }
    let _: i64 = conn.hdel(&k.ends, id).await.unwrap();
    let _: i64 = conn.hdel(&k.jobs, id).await.unwrap();
    let pairs: Vec<(String, Vec<u8>)> = hash.into_iter().collect();
    let () = conn.hset_multiple(k.record(id), &pairs).await.unwrap();
    if cancelled {
        let _: bool = conn.pexpire(k.record(id), 3_600_000).await.unwrap();
    }
}

#[tokio::test]
async fn a_queue_in_layout_4_is_moved_on_first_touch_in_every_state() {
    let env = start().await;
    // Those that take a claim first, while nothing else is pending.
    let states = [
        JobState::Active,
        JobState::Retry,
        JobState::Completed,
        JobState::Dead,
        JobState::Cancelled,
        JobState::Scheduled,
        JobState::Pending,
    ];
    for state in states {
        env.put(state.as_str(), state).await;
    }
    env.enqueue(job("prio").priority(5)).await;
    env.enqueue(
        job("uniq")
            .unique_key("u")
            .unique_for(Duration::from_secs(600)),
    )
    .await;
    // A waiting workflow step as layout 4 wrote it, by hand: nothing but a workflow makes one.
    let step = "flow:f:s";
    let step_fields = [
        ("data", "{}"),
        ("state", "waiting"),
        ("max", "1"),
        ("created", "1000"),
        ("due", "1000"),
        ("flow", "tickq:{q}:flow:f"),
        ("step", "s"),
        ("wait", "1"),
        ("policy", "skip"),
    ];
    let mut conn = env.conn.clone();
    let () = conn
        .hset_multiple(env.keys.record(step), &step_fields)
        .await
        .unwrap();
    let _: i64 = conn.zadd(&env.keys.waiting, step, 1000).await.unwrap();

    let mut ids: Vec<String> = states.iter().map(|s| s.as_str().to_owned()).collect();
    ids.extend(["prio".into(), "uniq".into()]);
    let mut before = BTreeMap::new();
    for id in &ids {
        before.insert(id.clone(), env.hash(id).await);
        to_layout_4(&env, id, id == "cancelled").await;
    }
    let _: i64 = conn.del(&env.keys.layout).await.unwrap();
    // Layout 4 as layout 5 reads it: no job at all.
    for id in &ids {
        assert_eq!(env.hash(id).await, BTreeMap::new(), "job {id}");
    }

    // A new process touches the queue: everything moves before it reads or claims.
    let fresh = Broker::connect(&env._redis.url(), &Default::default())
        .await
        .unwrap();
    assert_eq!(
        fresh.upgrade(&env.keys).await.unwrap(),
        ids.len() as u64 + 1
    );
    for id in &ids {
        assert_eq!(&env.hash(id).await, &before[id], "job {id}");
    }
    let w = env.hash(step).await;
    let expected: BTreeMap<String, String> = step_fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain(
            [("attempt", "0"), ("fence", "0"), ("priority", "0")]
                .map(|(k, v)| (k.into(), v.into())),
        )
        .collect();
    assert_eq!(w, expected);
    assert_eq!(homes_of(&env, "pending").await, ["jobs"]);
    assert_eq!(homes_of(&env, "uniq").await, ["jobs", "ends"]);
    assert_eq!(env.pttl("cancelled").await, -1, "notes outlive no payload");
    assert_eq!(
        record::count(&mut conn, &env.keys).await.unwrap(),
        ids.len() + 1
    );

    // Once is enough: the marker stops a second walk, and a walk without it (two processes at
    // once) moves nothing again.
    let moved = env.snapshot().await;
    let again = Broker::connect(&env._redis.url(), &Default::default())
        .await
        .unwrap();
    assert_eq!(again.upgrade(&env.keys).await.unwrap(), 0);
    let _: i64 = conn.del(&env.keys.layout).await.unwrap();
    let third = Broker::connect(&env._redis.url(), &Default::default())
        .await
        .unwrap();
    assert_eq!(third.upgrade(&env.keys).await.unwrap(), 0);
    assert_eq!(env.snapshot().await, moved);

    // And the jobs work on: the pending ones are claimed highest priority first, the active
    // one is acked with its fence, the unique key is still held.
    let batch = fresh
        .claim(&env.keys, "w9", LEASE, 10, Duration::ZERO)
        .await
        .unwrap();
    let claimed: Vec<&str> = batch.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(claimed, ["prio", "pending", "uniq"]);
    assert!(batch.jobs.iter().all(|j| !j.data.is_empty()));
    let fence = before["active"]["fence"].parse().unwrap();
    let out = fresh
        .ack(&env.keys, &KEEP, &[("active".into(), fence, String::new())])
        .await
        .unwrap();
    assert_eq!(out.acked, 1);
    let dup = env
        .broker
        .enqueue(vec![
            job("uniq2")
                .unique_key("u")
                .unique_for(Duration::from_secs(600)),
        ])
        .await
        .unwrap()
        .remove(0);
    assert!(dup.duplicate, "{dup:?}");
}
