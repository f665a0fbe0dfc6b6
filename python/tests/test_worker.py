"""The worker: handlers, outcomes, time limits, the GIL, shutdown, the in-process scheduler."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time

import pytest

import tickq

from helpers import LIMIT, Redis, python_process, running, wait_for


def state_of(client: tickq.Client, id: str, queue: str = "q") -> str:
    return client.job(id, queue).state


def test_sync_handlers_see_the_job_and_their_results_are_kept(client: tickq.Client) -> None:
    seen = {}
    worker = tickq.Worker(client, queues={"q": 1}, concurrency=4)

    @worker.handler("greet")
    def greet(job: tickq.Job):
        seen[job.id] = (job.queue, job.kind, job.attempt, job.fence, job.payload, job.scheduled_at, job.stopped)
        return {"hello": job.payload["name"]}

    ids = [client.enqueue("q", "greet", {"name": f"n{i}"}) for i in range(50)]
    with running(worker):
        wait_for("every job to complete", lambda: all(state_of(client, i) == "completed" for i in ids))
    assert worker.stats()["completed"] == 50
    for i, id in enumerate(ids):
        queue, kind, attempt, fence, payload, scheduled_at, stopped = seen[id]
        assert (queue, kind, attempt, payload, stopped) == ("q", "greet", 1, {"name": f"n{i}"}, False)
        assert fence >= 1 and scheduled_at is not None
        info = client.job(id, "q")
        assert info.result == '{"hello":"n%d"}' % i
        assert info.worker and info.worker.startswith(worker.id.split(":")[0])


def test_weighted_queues_are_all_served_and_the_node_is_listed(client: tickq.Client) -> None:
    ran = []
    worker = tickq.Worker(client, queues={"high": 3, "low": 1}, concurrency=4, node="py-node")

    @worker.handler("k")
    def k(job: tickq.Job) -> None:
        ran.append(job.queue)

    for q in ("high", "low"):
        client.enqueue_bulk([{"queue": q, "kind": "k"} for _ in range(20)])
    with running(worker):
        wait_for("both queues to drain", lambda: len(ran) == 40)
        [node] = client.nodes()["nodes"]
        assert node["name"] == "py-node" and node["id"] == worker.id
        assert sorted((q["queue"], q["weight"]) for q in node["queues"]) == [("high", 3), ("low", 1)]
    assert sorted(ran) == ["high"] * 20 + ["low"] * 20


def test_async_handlers_run_on_the_event_loop(client: tickq.Client) -> None:
    loops = set()
    worker = tickq.Worker(client, queues=["q"], concurrency=32)

    @worker.handler("wait")
    async def wait(job: tickq.Job) -> str:
        loops.add(id(asyncio.get_running_loop()))
        await asyncio.sleep(0.2)
        return f"waited {job.payload}"

    ids = [client.enqueue("q", "wait", i) for i in range(32)]
    started = time.monotonic()
    with running(worker):
        wait_for("every job to complete", lambda: all(state_of(client, i) == "completed" for i in ids))
    # 32 jobs of 0.2 s at concurrency 32 ran together, not one after another.
    assert time.monotonic() - started < 32 * 0.2
    assert len(loops) == 1
    assert client.job(ids[3], "q").result == "waited 3"


def test_run_async_serves_sync_and_async_handlers(redis: Redis) -> None:
    async def main() -> None:
        client = await tickq.Client.connect_async(redis.url)
        worker = tickq.Worker(client, queues={"q": 1})
        threads = set()

        @worker.handler("sync")
        def sync(job: tickq.Job) -> None:
            threads.add(threading.current_thread().name)

        @worker.handler("async")
        async def run_async(job: tickq.Job) -> None:
            threads.add(threading.current_thread().name)

        ids = [await client.enqueue_async("q", kind) for kind in ("sync", "async") * 10]
        task = asyncio.create_task(worker.run_async())

        async def done() -> bool:
            states = [(await client.job_async(i, "q")).state for i in ids]
            return all(s == "completed" for s in states)

        deadline = time.monotonic() + LIMIT
        while not await done():
            assert time.monotonic() < deadline, "jobs did not complete"
            await asyncio.sleep(0.02)
        worker.shutdown()
        await asyncio.wait_for(task, LIMIT)
        assert threading.current_thread().name in threads  # the async ones ran on this loop
        assert any(t.startswith("tickq-handler") for t in threads)

    asyncio.run(main())


def test_exceptions_retry_with_backoff_then_die(client: tickq.Client) -> None:
    times = []
    worker = tickq.Worker(client, queues=["q"], retry=tickq.ExponentialBackoff(base=0.2, factor=2, jitter=0))

    @worker.handler("flaky")
    def flaky(job: tickq.Job) -> None:
        times.append(time.monotonic())
        raise ValueError(f"attempt {job.attempt} failed")

    id = client.enqueue("q", "flaky", max_attempts=3)
    with running(worker):
        wait_for("the job to die", lambda: state_of(client, id) == "dead")
    info = client.job(id, "q")
    assert info.attempt == 3
    assert "ValueError: attempt 3 failed" in info.last_error
    assert "Traceback" in info.last_error and "in flaky" in info.last_error
    assert len(times) == 3
    assert times[1] - times[0] >= 0.2 * 0.95
    assert times[2] - times[1] >= 0.4 * 0.95


def test_kill_and_retry_after(client: tickq.Client) -> None:
    times = []
    worker = tickq.Worker(client, queues=["q"])

    @worker.handler("kill")
    def kill(job: tickq.Job) -> None:
        raise tickq.Kill("no such user")

    @worker.handler("later")
    def later(job: tickq.Job) -> str:
        times.append(time.monotonic())
        if job.attempt == 1:
            raise tickq.Retry("busy", after=0.5)
        return "done"

    @worker.handler("async-kill")
    async def async_kill(job: tickq.Job) -> None:
        raise tickq.Kill("async no")

    killed = client.enqueue("q", "kill")
    async_killed = client.enqueue("q", "async-kill")
    retried = client.enqueue("q", "later")
    with running(worker):
        wait_for("outcomes", lambda: state_of(client, killed) == "dead" and state_of(client, retried) == "completed" and state_of(client, async_killed) == "dead")
    assert client.job(killed, "q").attempt == 1
    assert client.job(killed, "q").last_error == "no such user"
    assert client.job(async_killed, "q").last_error == "async no"
    assert client.job(retried, "q").attempt == 2
    assert times[1] - times[0] >= 0.5 * 0.95


def test_a_sync_handler_that_never_returns_is_timed_out_and_the_worker_goes_on(client: tickq.Client) -> None:
    interrupted = []
    ran = []
    worker = tickq.Worker(client, queues=["q"], concurrency=1, retry=tickq.FixedBackoff(0.1))

    @worker.handler("spin")
    def spin(job: tickq.Job) -> str:
        if job.attempt > 1:
            return "second attempt"
        try:
            while True:  # pure Python: holds the GIL between switches, never returns
                pass
        except tickq.JobStopped:
            interrupted.append(job.id)
            raise

    @worker.handler("block")
    def block(job: tickq.Job) -> str:
        if job.attempt > 1:
            return "second attempt"
        threading.Event().wait()  # blocked in C: cannot even be interrupted
        return "unreachable"

    @worker.handler("quick")
    def quick(job: tickq.Job) -> None:
        ran.append(job.id)

    spinning = client.enqueue("q", "spin", timeout=0.5)
    blocked = client.enqueue("q", "block", timeout=0.5)
    quick_ids = [client.enqueue("q", "quick") for _ in range(20)]
    with running(worker):
        wait_for("the stuck jobs to be retried", lambda: state_of(client, spinning) == "completed" and state_of(client, blocked) == "completed")
        wait_for("the other jobs to run", lambda: len(ran) == 20)
    assert interrupted == [spinning]
    for id in (spinning, blocked):
        info = client.job(id, "q")
        assert info.attempt == 2 and info.result == "second attempt"
    assert all(state_of(client, i) == "completed" for i in quick_ids)


def test_an_async_handler_past_its_timeout_is_cancelled_and_retried(client: tickq.Client) -> None:
    cancelled = []
    worker = tickq.Worker(client, queues=["q"], retry=tickq.FixedBackoff(0.1))

    @worker.handler("slow")
    async def slow(job: tickq.Job) -> str:
        if job.attempt > 1:
            return "ok"
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            cancelled.append(job.id)
            raise
        return "unreachable"

    id = client.enqueue("q", "slow", timeout=0.3)
    with running(worker):
        wait_for("the retry to complete", lambda: state_of(client, id) == "completed")
    assert cancelled == [id]
    assert client.job(id, "q").attempt == 2


@pytest.mark.alone  # it times GIL holds against a speed it measured first
def test_leases_renew_while_python_holds_the_gil(client: tickq.Client) -> None:
    # A lease long enough that a renewal (every lease/3) delayed by a loaded machine still
    # lands in time, and a GIL hold measured on this machine to outlast it.
    lease = 1.0
    started = time.monotonic()
    sum(range(5_000_000))
    per_item = (time.monotonic() - started) / 5_000_000
    hold_items = int(1.5 * lease / per_item)
    held_for = []
    worker = tickq.Worker(client, queues=["q"], concurrency=2, lease=lease)

    @worker.handler("hog")
    def hog(job: tickq.Job) -> None:
        # sum() over a range runs in C without ever releasing the GIL; each call holds it
        # for longer than the whole lease.
        started = time.monotonic()
        while time.monotonic() - started < 3 * lease:
            call = time.monotonic()
            sum(range(hold_items))
            held_for.append(time.monotonic() - call)

    @worker.handler("nap")
    def nap(job: tickq.Job) -> None:
        time.sleep(3 * lease)

    hog_id = client.enqueue("q", "hog")
    nap_id = client.enqueue("q", "nap")
    with running(worker):
        wait_for("both to complete", lambda: state_of(client, hog_id) == "completed" and state_of(client, nap_id) == "completed")
    # Each ran once: their leases (renewed every lease/3) never lapsed.
    assert client.job(hog_id, "q").attempt == 1
    assert client.job(nap_id, "q").attempt == 1
    assert worker.stats()["abandoned"] == 0
    # One hold longer than the lease is the proof (a renewal that needed the GIL would have
    # missed it); each need not be: the speed measured above can drift with the machine's load
    # (0.99, 0.99 and 1.23 s once, for a lease of 1 s).
    assert max(held_for) > lease, f"a GIL hold must outlast the lease: {held_for}"


def test_progress_is_kept_and_wait_answers_the_ended_job(client: tickq.Client) -> None:
    worker = tickq.Worker(client, queues=["q"])
    reported = threading.Event()
    go_on = threading.Event()

    @worker.handler("copy")
    def copy(job: tickq.Job) -> str:
        assert job.progress(0.4, "copied 4 of 10 files") is True
        reported.set()
        go_on.wait(LIMIT)
        return "copied"

    @worker.handler("copy-async")
    async def copy_async(job: tickq.Job) -> str:
        assert await job.progress_async(2.0) is True  # clamped to 1.0
        return "copied too"

    id = client.enqueue("q", "copy")
    other = client.enqueue("q", "copy-async")
    with running(worker):
        wait_for("the progress report", reported.is_set)
        assert client.job(id).progress == {"value": 0.4, "message": "copied 4 of 10 files"}
        with pytest.raises(tickq.Timeout):
            client.wait(id, "q", timeout=0.1)
        go_on.set()
        ended = client.wait(id, timeout=LIMIT)
        assert (ended.state, ended.result) == ("completed", "copied")
        assert asyncio.run(client.wait_async(other, "q", timeout=LIMIT)).result == "copied too"
        assert asyncio.run(client.job_async(other)).state == "completed"  # a coroutine: asyncio.run takes it
    assert client.job(other).progress["value"] == 1.0


def test_a_running_job_can_be_cancelled(client: tickq.Client) -> None:
    worker = tickq.Worker(client, queues=["q"], lease=0.6)
    started = threading.Event()

    @worker.handler("long")
    def long(job: tickq.Job) -> None:
        started.set()
        while not job.stopped:
            time.sleep(0.01)

    id = client.enqueue("q", "long")
    with running(worker):
        wait_for("the job to start", started.is_set)
        assert client.cancel(id)["outcome"] == "cancelling"
        wait_for("the job to be cancelled", lambda: state_of(client, id) == "cancelled")


def test_the_scheduler_runs_in_the_same_process(client: tickq.Client) -> None:
    ticks = []
    client.upsert_schedule({"name": "tick", "schedule": "@every 1s", "queue": "q", "tasks": [{"kind": "tick", "payload": {"n": 1}}]})
    worker = tickq.Worker(client, queues=["q"], scheduler=True)

    @worker.handler("tick")
    def tick(job: tickq.Job) -> None:
        ticks.append((job.cron, job.scheduled_at, job.payload))

    with running(worker):
        wait_for("two ticks", lambda: len(ticks) >= 2)
    assert worker.stats()["ticks_fired"] >= 2
    for cron, at, payload in ticks:
        assert cron == "tick" and payload == {"n": 1}
        assert at.microsecond == 0  # a tick is a whole second


WORKER_SCRIPT = """
import sys, time, tickq
client = tickq.Client(sys.argv[1])
worker = tickq.Worker(client, queues=["q"], concurrency=2, shutdown_timeout=10)

@worker.handler("slow")
def slow(job):
    print("started", flush=True)
    time.sleep(1)
    return "finished"

worker.run()
print("stopped", flush=True)
"""


def test_sigterm_drains_gracefully(redis: Redis, client: tickq.Client) -> None:
    id = client.enqueue("q", "slow")
    proc = python_process(WORKER_SCRIPT, redis.url, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=LIMIT)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert out.strip() == "stopped"
    info = client.job(id, "q")
    assert (info.state, info.result, info.attempt) == ("completed", "finished", 1)


def test_a_second_signal_forces_and_hands_the_job_back(redis: Redis, client: tickq.Client) -> None:
    id = client.enqueue("q", "slow")
    proc = python_process(WORKER_SCRIPT.replace("time.sleep(1)", "time.sleep(30)"), redis.url, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)  # not waiting for an outcome: two distinct signals
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=LIMIT)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    info = client.job(id, "q")
    # Handed back without charging the attempt: pending again.
    assert info.state == "pending"


def test_a_worker_needs_handlers_and_valid_settings(client: tickq.Client) -> None:
    with pytest.raises(tickq.InvalidArgument):
        tickq.Worker(client, ["q"]).run()
    w = tickq.Worker(client, {"q": 0})
    w.handler("k")(lambda job: None)
    with pytest.raises(tickq.InvalidArgument, match="weight"):
        w.run()
    w = tickq.Worker(client, ["q"], lease=0.1)
    w.handler("k")(lambda job: None)
    with pytest.raises(tickq.InvalidArgument, match="lease"):
        w.run()


def test_a_sharded_queue_is_worked_by_a_python_worker(client: tickq.Client) -> None:
    ran: list = []
    worker = tickq.Worker(client, queues={"hot": {"weight": 2, "shards": 3}}, concurrency=4)

    @worker.handler("k")
    def k(job: tickq.Job) -> None:
        ran.append(job.queue)

    client.shard_queue("hot", 3)
    client.enqueue_bulk({"queue": "hot", "kind": "k"} for _ in range(30))
    with running(worker):
        wait_for("every job to run", lambda: len(ran) == 30)
    assert {q.split("#")[0] for q in ran} == {"hot"}
    with pytest.raises(tickq.InvalidArgument, match="unknown keys"):
        tickq.Worker(client, queues={"hot": {"weigth": 2}})
