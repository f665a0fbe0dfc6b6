"""Faults and interop across processes: kill -9 of a worker, SIGSTOP of a lock holder, Python
and Rust workers on one queue, jobs passed between Python and the `tickq` binary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import tickq

from helpers import LIMIT, Redis, python_process, running, tickq_bin, wait_for

WORKER = """
import sys, time, tickq
url, node, log_path, pause = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
client = tickq.Client(url)
worker = tickq.Worker(client, queues=["shared"], concurrency=4, lease=1, node=node)
log = open(log_path, "a", buffering=1)

@worker.handler("exec")
def work(job):
    log.write(f"start {job.id}\\n")
    time.sleep(pause)
    log.write(f"done {job.id}\\n")

print("ready", flush=True)
worker.run()
"""


def lines(path: Path) -> List[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


@contextmanager
def python_worker(redis: Redis, node: str, log: Path, pause: float) -> Iterator[subprocess.Popen]:
    proc = python_process(WORKER, redis.url, node, str(log), str(pause), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(LIMIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_jobs_of_a_worker_killed_9_complete_on_another(redis: Redis, client: tickq.Client, tmp_path: Path) -> None:
    ids = [e.id for e in client.enqueue_bulk([{"queue": "shared", "kind": "exec", "payload": i} for i in range(200)])]
    log = tmp_path / "victim.log"
    with python_worker(redis, "victim", log, 30) as victim:
        wait_for("the victim to hold 4 jobs", lambda: len(lines(log)) >= 4)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    held = {line.split()[1] for line in lines(log)}
    assert len(held) == 4 and not any(line.startswith("done") for line in lines(log))

    done = []
    survivor = tickq.Worker(client, ["shared"], concurrency=16, lease=1, node="survivor")

    @survivor.handler("exec")
    def work(job: tickq.Job) -> None:
        done.append((job.id, job.attempt))

    with running(survivor):
        wait_for("every job to complete", lambda: all(client.job(i, "shared").state == "completed" for i in ids))
    # Every id completed, each exactly once here; the victim's had a second attempt.
    assert sorted(i for i, _ in done) == sorted(ids)
    assert {i for i, attempt in done if attempt == 2} == held
    assert survivor.stats()["recovered"] == 4
    for i in ids:
        info = client.job(i, "shared")
        assert info.worker.startswith("survivor"), info


LOCK_HOLDER = """
import sys, tickq
client = tickq.Client(sys.argv[1])
with client.lock("nightly", ttl=1) as lock:
    print("held", lock.fence, flush=True)
    sys.stdin.readline()
    reason = lock.wait_lost(timeout=10)
    written = lock.fenced_set("cursor", "from the stopped holder")
    print("lost", reason, lock.lost, bool(written), written.latest, flush=True)
"""


def test_a_lock_held_across_sigstop_is_lost_and_its_fenced_write_refused(redis: Redis, client: tickq.Client) -> None:
    holder = python_process(LOCK_HOLDER, redis.url, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        word, fence = holder.stdout.readline().split()
        assert word == "held"
        holder.send_signal(signal.SIGSTOP)
        # Past the TTL the lock is free for someone else, with a larger fence.
        other = client.lock("nightly")
        wait_for("the stopped holder's lock to expire", other.acquire)
        assert other.fence > int(fence)
        assert other.fenced_set("cursor", "from the new holder")
        holder.send_signal(signal.SIGCONT)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        out = holder.stdout.readline().split()
        holder.wait(LIMIT)
    finally:
        holder.kill()
    assert out[0] == "lost" and out[1] in ("expired", "taken") and out[2] == "True", out
    assert out[3] == "False" and int(out[4]) == other.fence, out
    assert other.fenced_get("cursor") == (b"from the new holder", other.fence)
    other.release()


@contextmanager
def tickq_server(redis: Redis, node: str, queue: str, extra: str = "") -> Iterator[subprocess.Popen]:
    with tempfile.TemporaryDirectory() as d:
        config = Path(d) / "tickq.toml"
        config.write_text(f'[worker]\nqueues = {{ {queue} = 1 }}\nconcurrency = 4\nlease = "2s"\n\n[exec]\nallow = ["sh"]\n{extra}')
        log = Path(d) / "server.log"
        with open(log, "w") as err:
            proc = subprocess.Popen(
                [tickq_bin(), "server", "--config", str(config), "--redis", redis.url, "--node", node, "--data", d],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            wait_for("tickq server to start its worker", lambda: "worker started" in log.read_text() or proc.poll() is not None)
            assert proc.poll() is None, log.read_text()
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(LIMIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_two_python_workers_and_a_rust_worker_share_one_queue(redis: Redis, client: tickq.Client, tmp_path: Path) -> None:
    with tickq_server(redis, "rust-1", "shared"), python_worker(redis, "py-a", tmp_path / "a.log", 0.02), python_worker(
        redis, "py-b", tmp_path / "b.log", 0.02
    ):
        jobs = [{"queue": "shared", "kind": "exec", "payload": {"cmd": ["sh", "-c", "sleep 0.02"]}} for _ in range(240)]
        ids = [e.id for e in client.enqueue_bulk(jobs)]
        wait_for("every job to complete", lambda: all(client.job(i, "shared").state == "completed" for i in ids), 60)
    by_node = {}
    for i in ids:
        node = client.job(i, "shared").worker.split(":")[0]
        by_node[node] = by_node.get(node, 0) + 1
    assert set(by_node) == {"rust-1", "py-a", "py-b"}, by_node
    assert sum(by_node.values()) == 240
    assert len(lines(tmp_path / "a.log")) + len(lines(tmp_path / "b.log")) == 2 * (by_node["py-a"] + by_node["py-b"])


def test_a_job_enqueued_from_python_runs_on_tickq_server(redis: Redis, client: tickq.Client) -> None:
    with tickq_server(redis, "rust-1", "default"):
        id = client.enqueue("default", "exec", {"cmd": ["sh", "-c", 'echo "hello $TICKQ_JOB_ID attempt $TICKQ_ATTEMPT"']})
        wait_for("tickq server to run it", lambda: client.job(id).state == "completed")
    info = client.job(id)
    assert f"hello {id} attempt 1" in info.result
    assert info.worker.startswith("rust-1")


def test_a_job_enqueued_by_the_cli_runs_in_a_python_worker(redis: Redis, client: tickq.Client) -> None:
    seen = []
    worker = tickq.Worker(client, ["from-cli"])

    @worker.handler("greet")
    def greet(job: tickq.Job) -> str:
        seen.append((job.payload, job.attempt))
        return "hi " + job.payload["name"]

    out = subprocess.run(
        [tickq_bin(), "enqueue", "from-cli", "greet", "--payload", '{"name": "cli"}', "--redis", redis.url],
        capture_output=True,
        text=True,
        check=True,
    )
    id = out.stdout.strip()
    with running(worker):
        wait_for("the Python worker to run it", lambda: client.job(id).state == "completed")
    assert seen == [({"name": "cli"}, 1)]
    shown = json.loads(subprocess.run([tickq_bin(), "job", id, "--json", "--redis", redis.url], capture_output=True, text=True, check=True).stdout)
    assert shown["state"] == "completed" and shown["result"] == "hi cli"
    stats = json.loads(subprocess.run([tickq_bin(), "stats", "--json", "--redis", redis.url], capture_output=True, text=True, check=True).stdout)
    [queue] = [q for q in stats["queues"] if q["queue"] == "from-cli"]
    assert queue["processed"] == 1 and queue["states"]["completed"] == 1, queue
