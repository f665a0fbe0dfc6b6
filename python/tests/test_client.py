"""Every client call, blocking and awaitable, against a real Redis."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

import tickq

from helpers import Redis, command, running, wait_for


def test_connects_with_every_single_server_url_form(redis: Redis) -> None:
    for url in (redis.url, redis.tcp_url, redis.tcp_url + "/3", redis.url + "?db=2"):
        c = tickq.Client(url)
        job = c.enqueue("q", "k")
        assert c.job(job, "q").state == "pending", url
    # Different databases are different tickq installations.
    assert tickq.Client(redis.tcp_url + "/3").stats() != tickq.Client(redis.tcp_url + "/4").stats()


def test_a_redis_cluster_url_runs_jobs_and_locks() -> None:
    from helpers import Cluster

    cluster = Cluster(3)
    try:
        client = tickq.Client(cluster.url)
        worker = tickq.Worker(client, queues={f"q{i}": 1 for i in range(6)}, concurrency=8)
        done = []

        @worker.handler("k")
        def k(job: tickq.Job) -> None:
            done.append(job.queue)

        ids = [client.enqueue(f"q{i % 6}", "k", {"i": i}) for i in range(60)]
        with running(worker):
            wait_for("the jobs on every queue", lambda: len(done) == 60)
        assert all(client.job(i).state == "completed" for i in ids)
        with client.lock("nightly", ttl=5) as lock:
            assert lock.fenced_set("cursor", "x")
    finally:
        cluster.stop()


def test_rediss_with_a_private_ca_and_a_client_certificate(tmp_path) -> None:
    import subprocess

    from helpers import free_port

    def sh(*args: str) -> None:
        subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)

    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=tickq test CA")
    for name, cn in (("server", "127.0.0.1"), ("client", "tickq client")):
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        (tmp_path / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n" if name == "server" else "extendedKeyUsage=clientAuth\n")
        sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile", f"{name}.ext")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
         "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "yes"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"rediss://127.0.0.1:{port}"
        certs = dict(ca_file=str(tmp_path / "ca.crt"), cert_file=str(tmp_path / "client.crt"), key_file=str(tmp_path / "client.key"))

        def connected() -> bool:
            try:
                tickq.Client(url, **certs).stats()
                return True
            except tickq.Error:
                return False

        wait_for("redis-server to serve TLS", connected)
        client = tickq.Client(url, **certs)
        id = client.enqueue("q", "k", {"over": "tls"})
        assert client.job(id).payload == {"over": "tls"}
        # Without the client certificate Redis refuses the connection.
        with pytest.raises(tickq.Error):
            tickq.Client(url, ca_file=certs["ca_file"]).stats()
        with pytest.raises(tickq.InvalidArgument, match="both"):
            tickq.Client(url, ca_file=certs["ca_file"], cert_file=certs["cert_file"])
    finally:
        server.kill()
        server.wait()


def test_a_bad_url_names_the_problem() -> None:
    with pytest.raises(tickq.Error) as e:
        tickq.Client("http://127.0.0.1:6379")
    assert "redis://" in str(e.value)


def test_no_redis_is_unavailable() -> None:
    from helpers import free_port

    with pytest.raises((tickq.Unavailable, tickq.Timeout)):
        c = tickq.Client(f"redis://127.0.0.1:{free_port()}")
        c.enqueue("q", "k")


def test_enqueue_and_read_back(client: tickq.Client) -> None:
    id = client.enqueue("emails", "welcome", {"user": 7, "tags": ["a", None, 1.5, True]})
    job = client.job(id, "emails")
    assert (job.id, job.queue, job.kind, job.state) == (id, "emails", "welcome", "pending")
    assert job.payload == {"user": 7, "tags": ["a", None, 1.5, True]}
    assert job.attempt == 0 and job.max_attempts == 25 and job.priority == 0
    assert job.created_at.tzinfo is not None
    # Without a queue the job is found in any queue.
    assert client.job(id).id == id


def test_enqueue_options(client: tickq.Client) -> None:
    in_an_hour = client.job(client.enqueue("q", "k", delay=3600), "q")
    assert in_an_hour.state == "scheduled"
    assert in_an_hour.due_at > datetime.now(timezone.utc) + timedelta(minutes=59)
    at = datetime.now(timezone.utc) + timedelta(days=1)
    tomorrow = client.job(client.enqueue("q", "k", at=at), "q")
    assert tomorrow.state == "scheduled"
    assert abs((tomorrow.due_at - at).total_seconds()) < 0.01
    also = client.job(client.enqueue("q", "k", delay=timedelta(seconds=90)), "q")
    assert also.state == "scheduled"
    # The CLI's units work too: DUR strings and RFC 3339 times.
    in_five = client.job(client.enqueue("q", "k", delay="5m", timeout="1m30s"), "q")
    assert in_five.state == "scheduled" and in_five.timeout == 90
    at_text = client.job(client.enqueue("q", "k", at="2030-01-01T08:00:00+08:00"), "q")
    assert at_text.due_at == datetime(2030, 1, 1, tzinfo=timezone.utc)
    full = client.job(
        client.enqueue("q", "k", None, id="my-id", max_attempts=3, timeout=2.5, priority=7, meta={"team": "a"}),
        "q",
    )
    assert (full.id, full.max_attempts, full.timeout, full.priority) == ("my-id", 3, 2.5, 7)
    assert full.meta["team"] == "a"


def test_duplicates_raise_already_exists_naming_the_job(client: tickq.Client) -> None:
    client.enqueue("q", "k", id="once")
    with pytest.raises(tickq.AlreadyExists) as e:
        client.enqueue("q", "k", id="once")
    assert e.value.existing_id == "once"
    first = client.enqueue("q", "report", {"day": 1}, unique_for=60)
    with pytest.raises(tickq.AlreadyExists) as e:
        client.enqueue("q", "report", {"day": 1}, unique_for=60)
    assert e.value.existing_id == first
    client.enqueue("q", "report", {"day": 2}, unique_for=60)  # another payload is another job
    keyed = client.enqueue("q", "report", {"x": 1}, unique_for=60, unique_key="daily")
    with pytest.raises(tickq.AlreadyExists) as e:
        client.enqueue("q", "report", {"x": 2}, unique_for=60, unique_key="daily")
    assert e.value.existing_id == keyed
    assert isinstance(e.value, tickq.Error)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda c: c.enqueue("bad queue", "k"), "queue name"),
        (lambda c: c.enqueue("q", "k", delay=1, at=2), "not both"),
        (lambda c: c.enqueue("q", "k", object()), "payload must be JSON"),
        (lambda c: c.enqueue("q", "k", {1: 2}), "keys must be str"),
        (lambda c: c.enqueue("q", "k", float("nan")), "not valid JSON"),
        (lambda c: c.enqueue("q", "k", 2**70), "64 bits"),
        (lambda c: c.enqueue("q", "k", delay=-1), "non-negative"),
        (lambda c: c.enqueue("q", "k", delay="soon"), "delay"),
        (lambda c: c.enqueue("q", "k", at="tomorrow"), "at"),
        (lambda c: c.enqueue("q", "k", at=datetime(2030, 1, 1)), "naive"),
        (lambda c: c.enqueue("q", "k", max_attempts=0), "max attempts"),
        (lambda c: c.enqueue("q", "k", priority=5000), "priority"),
        (lambda c: c.enqueue("q", "k", unique_key="x"), "unique_for"),
        (lambda c: c.enqueue_bulk([{"queue": "q", "kind": "k", "colour": 1}]), "colour"),
        (lambda c: c.upsert_schedule({"name": "n", "schedule": "* * * * *", "tasks": [{"kind": "k"}], "when": 1}), "when"),
        (lambda c: c.upsert_schedule({"name": "n", "schedule": "61 * * * *", "tasks": [{"kind": "k"}]}), "schedule n"),
        (lambda c: c.upsert_schedule({"name": "n", "schedule": "* * * * *", "tasks": []}), "at least one task"),
        (lambda c: c.upsert_schedule({"name": "n", "schedule": "* * * * *", "overlap": "sometimes", "tasks": [{"kind": "k"}]}), "overlap"),
        (lambda c: c.upsert_schedule({"name": "n", "schedule": "* * * * *", "tasks": [{"kind": "exec"}]}), "cmd"),
        (lambda c: c.lock("a b"), "lock name"),
        (lambda c: c.lock("a", ttl=0.01).acquire(), "too short"),
    ],
)
def test_bad_input_is_invalid_argument_and_changes_nothing(client: tickq.Client, call, words) -> None:
    with pytest.raises(tickq.InvalidArgument) as e:
        call(client)
    assert words in str(e.value)
    assert client.stats() == {"queues": []}


def test_enqueue_bulk(client: tickq.Client) -> None:
    client.enqueue("q", "k", id="there")
    answers = client.enqueue_bulk(
        [
            {"queue": "q", "kind": "k", "payload": {"i": 1}},
            {"queue": "q", "kind": "k", "id": "there"},
            {"queue": "other", "kind": "k", "delay": 60, "priority": 3},
        ]
    )
    assert [(a.queue, a.created, a.duplicate) for a in answers] == [("q", True, False), ("q", False, False), ("other", True, False)]
    assert answers[1].id == "there"
    assert answers[2].state == "scheduled"
    assert client.job(answers[0].id, "q").payload == {"i": 1}


def test_a_bulk_cut_off_by_a_full_redis_says_what_went_in_and_resends_the_rest_once(redis: Redis, client: tickq.Client) -> None:
    n = 30_000
    client.enqueue("q", "warm-up")
    used = int(dict(line.split(":", 1) for line in command(redis.port, "INFO", "memory").decode().split("\r\n") if ":" in line)["used_memory"])
    # Room for a few thousand jobs: the bulk fills it part way.
    command(redis.port, "CONFIG", "SET", "maxmemory", str(used + 2_000_000))
    with pytest.raises(tickq.RedisFull) as caught:
        client.enqueue_bulk({"queue": "q", "kind": "k", "payload": {"i": i}} for i in range(n))
    partial = caught.value.partial
    assert isinstance(partial, tickq.PartialEnqueue)
    went_in = len(partial.enqueued)
    assert 0 < went_in < n, repr(partial)
    assert went_in + len(partial.unconfirmed) == n
    indexes = [i for i, _ in partial.enqueued] + [i for i, _ in partial.unconfirmed]
    assert sorted(indexes) == list(range(n))
    assert all(id for _, id in partial.unconfirmed)
    assert client.stats()["queues"][0]["states"]["pending"] == 1 + went_in

    command(redis.port, "CONFIG", "SET", "maxmemory", "0")
    again = client.enqueue_bulk(partial)
    assert len(again) == len(partial.unconfirmed)
    assert [a.id for a in again] == [id for _, id in partial.unconfirmed]
    # Every job once: the ones that went in unanswered (if any) answer created=False.
    assert client.stats()["queues"][0]["states"]["pending"] == 1 + n
    payloads = sorted(client.job(id, "q").payload["i"] for id in [e.id for _, e in partial.enqueued][:5] + [a.id for a in again][-5:])
    assert len(set(payloads)) == 10


def test_errors_other_than_a_cut_off_bulk_carry_no_partial(client: tickq.Client) -> None:
    with pytest.raises(tickq.NotFound) as caught:
        client.job("nope", "q")
    assert caught.value.partial is None


def test_a_sharded_queue_spreads_its_jobs_and_is_one_queue(client: tickq.Client) -> None:
    client.shard_queue("hot", 4)
    client.shard_queue("hot", 4)  # the same count again is fine
    with pytest.raises(tickq.Conflict):
        client.shard_queue("hot", 2)
    ids = [client.enqueue("hot", "k", {"i": i}, shard_key=f"user-{i % 10}") for i in range(40)]
    answers = client.enqueue_bulk({"queue": "hot", "kind": "k", "shard_key": "user-1"} for _ in range(10))
    assert {a.queue for a in answers} == {"hot"}
    [hot] = [q for q in client.stats()["queues"] if q["queue"] == "hot"]
    assert hot["states"]["pending"] == 50
    assert client.job(ids[0]).queue == "hot"


def test_cancel_retry_kill_delete(client: tickq.Client) -> None:
    id = client.enqueue("q", "k")
    cancelled = client.cancel(id)
    assert (cancelled["id"], cancelled["queue"], cancelled["outcome"]) == (id, "q", "cancelled")
    assert client.job(id).state == "cancelled"
    with pytest.raises(tickq.Conflict):
        client.kill(id)  # a finished job cannot be killed
    assert client.retry(id)["previous_state"] == "cancelled"
    assert client.job(id).state == "pending"
    assert client.kill(id)["previous_state"] == "pending"
    assert client.job(id).state == "dead"
    deleted = client.delete(id)
    assert deleted["previous_state"] == "dead" and deleted["deleted"] is True
    with pytest.raises(tickq.NotFound):
        client.job(id)
    for call in (client.cancel, client.retry, client.kill, client.delete):
        with pytest.raises(tickq.NotFound):
            call("nope")


def test_stats(client: tickq.Client) -> None:
    client.enqueue("a", "k")
    client.enqueue("a", "k", delay=60)
    stats = {s["queue"]: s for s in client.stats()["queues"]}
    assert stats["a"]["states"]["pending"] == 1
    assert stats["a"]["states"]["scheduled"] == 1
    assert stats["a"]["paused"] is False


def test_queue_admin(client: tickq.Client) -> None:
    for i in range(5):
        client.enqueue("q", "report" if i % 2 else "mail", {"n": i})
    page = client.jobs("q", "pending", limit=2)
    assert len(page["jobs"]) == 2 and page["next_cursor"]
    rest = client.jobs("q", "pending", cursor=page["next_cursor"], limit=10)
    assert len(rest["jobs"]) == 3
    assert {j["payload"]["n"] for j in client.jobs("q", "pending", kind="report")["jobs"]} == {1, 3}
    assert client.pause_queue("q")["paused"] is True
    assert client.stats()["queues"][0]["paused"] is True
    assert client.resume_queue("q")["paused"] is False
    client.set_limits("q", concurrency=3, rate="50/1s")
    limits = client.limits("q")["limits"]
    assert limits["concurrency"] == 3 and limits["rate"] is not None
    client.set_limits("q")
    assert client.limits("q")["limits"]["concurrency"] is None
    assert client.purge("q", "pending")["purged"] == 5
    with pytest.raises(tickq.InvalidArgument):
        client.purge("q", "finished")
    with pytest.raises(tickq.InvalidArgument):
        client.set_limits("q", rate="fast")

    async def main() -> None:
        assert (await client.pause_queue_async("q"))["paused"] is True
        assert (await client.resume_queue_async("q"))["paused"] is False
        await client.set_limits_async("q", concurrency=1)
        assert (await client.limits_async("q"))["limits"]["concurrency"] == 1
        await client.enqueue_async("q", "k")
        assert len((await client.jobs_async("q", "pending"))["jobs"]) == 1
        assert (await client.purge_async("q", "pending"))["purged"] == 1

    asyncio.run(main())


NIGHTLY = {
    "name": "nightly",
    "schedule": "0 2 * * *",
    "timezone": "Asia/Shanghai",
    "queue": "reports",
    "overlap": "forbid",
    "catchup": "latest",
    "tasks": [
        {"kind": "exec", "cmd": ["/usr/local/bin/report.sh", "--part", "1"]},
        {"kind": "report", "payload": {"part": 2}},
    ],
}


def test_schedules(client: tickq.Client) -> None:
    assert client.upsert_schedule(NIGHTLY) == "created"
    assert client.upsert_schedule(NIGHTLY) == "unchanged"
    changed = dict(NIGHTLY, schedule="0 3 * * *")
    assert client.upsert_schedule(changed) == "updated"
    [info] = client.schedules()
    assert info.name == "nightly" and info.version == 2 and not info.paused
    assert info.spec == changed
    assert info.next_at.hour == 19  # 03:00 in Shanghai
    assert client.schedule("nightly").spec == changed
    client.pause_schedule("nightly")
    assert client.schedule("nightly").paused
    client.resume_schedule("nightly")
    jobs = client.trigger_schedule("nightly")
    assert [j.queue for j in jobs] == ["reports", "reports"]
    assert client.job(jobs[1].id).payload == {"part": 2}
    assert client.job(jobs[0].id).payload == {"cmd": ["/usr/local/bin/report.sh", "--part", "1"]}
    client.remove_schedule("nightly")
    assert client.schedules() == []
    with pytest.raises(tickq.NotFound):
        client.schedule("nightly")


def test_locks(client: tickq.Client) -> None:
    with client.lock("nightly", ttl=30) as lock:
        assert lock.held and not lock.lost and lock.lost_reason is None
        first = lock.fence
        assert lock.fenced_set("cursor", "2026-11-22")
        assert lock.fenced_get("cursor") == (b"2026-11-22", first)
        with pytest.raises(tickq.LockBusy):
            with client.lock("nightly"):
                pass
        assert client.lock("nightly", wait=0.05).acquire() is False
    assert not lock.held
    other = client.lock("nightly")
    assert other.acquire()
    assert other.fence > first
    assert other.fenced_set("cursor", b"later")
    # The earlier holder's fence is refused now.
    stale = lock.fenced_set("cursor", "old")
    assert not stale and stale.latest == other.fence and stale.stored == other.fence
    assert other.release() is True
    assert other.release() is False


def test_every_call_has_an_awaitable_form(redis: Redis) -> None:
    async def main() -> None:
        c = await tickq.Client.connect_async(redis.url)
        id = await c.enqueue_async("q", "k", {"a": 1}, delay=60, priority=2)
        assert (await c.job_async(id)).state == "scheduled"
        with pytest.raises(tickq.AlreadyExists):
            await c.enqueue_async("q", "k", id=id)
        bulk = await c.enqueue_bulk_async([{"queue": "q", "kind": "k"} for _ in range(3)])
        assert len(bulk) == 3
        assert (await c.cancel_async(id))["outcome"] == "cancelled"
        assert (await c.retry_async(id))["previous_state"] == "cancelled"
        assert (await c.kill_async(id))["previous_state"] == "pending"
        assert (await c.delete_async(id))["previous_state"] == "dead"
        with pytest.raises(tickq.NotFound):
            await c.job_async(id)
        assert (await c.stats_async())["queues"][0]["states"]["pending"] == 3
        assert await c.nodes_async() == {"nodes": []}
        assert await c.upsert_schedule_async(NIGHTLY) == "created"
        assert [s.name for s in await c.schedules_async()] == ["nightly"]
        assert (await c.schedule_async("nightly")).spec == NIGHTLY
        await c.pause_schedule_async("nightly")
        await c.resume_schedule_async("nightly")
        assert len(await c.trigger_schedule_async("nightly")) == 2
        await c.remove_schedule_async("nightly")
        async with c.lock("l", ttl=5) as lock:
            assert (await lock.fenced_set_async("k", "v")).written
            assert await lock.fenced_get_async("k") == (b"v", lock.fence)
            assert await lock.wait_lost_async(timeout=0.05) is None
            other = c.lock("l")
            assert await other.acquire_async() is False
        assert await other.acquire_async() is True
        assert await other.release_async() is True
        # Many calls in flight together.
        ids = await asyncio.gather(*(c.enqueue_async("many", "k", i) for i in range(200)))
        assert len(set(ids)) == 200

    asyncio.run(main())
