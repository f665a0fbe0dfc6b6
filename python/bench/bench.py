"""tickq for Python: throughput of the Python package, measured the way tickq-bench and
shared/bench-peers measure (see docs/benchmarks.md, "Python").

    python python/bench/bench.py                      # every workload, 3 runs, private Redis
    python python/bench/bench.py --n 5000 --runs 1 process-sync

Workloads (queue `bench`, no-op jobs with payload {"i": index}, N = 20,000 by default):

  enqueue-one        client.enqueue(...) awaited one by one (blocking calls)
  enqueue-one-async  await client.enqueue_async(...) one by one
  enqueue-bulk       one client.enqueue_bulk([...]) call with all N jobs
  enqueue-bulk-async one await client.enqueue_bulk_async([...]) with all N jobs
  process-sync       N jobs enqueued in bulk first, then one Worker in this process drains them
                     with a plain-function no-op handler (thread pool), concurrency 8 and 64
  process-async      the same with an `async def` no-op handler on an asyncio loop

Processing rate = (N - 1) / (last - first completion), completion instants noted in process
memory by the handler (no Redis I/O per job), so start-up is excluded; afterwards the run
checks that Redis counts N processed and nothing pending, active or failed. Every run starts
with FLUSHALL on the measured Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import tickq

QUEUE = "bench"
WORKLOADS = ["enqueue-one", "enqueue-one-async", "enqueue-bulk", "enqueue-bulk-async", "process-sync", "process-async"]


class PrivateRedis:
    """redis-server on a free port of 127.0.0.1, persistence off (as bench-peers runs it)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="tq-bench-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if command(("127.0.0.1", self.port), "PING").startswith(b"+PONG"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.02)
        self.url = f"redis://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def address(url: str):
    if url.startswith("redis+unix://"):
        return url[len("redis+unix://") :].split("?")[0]
    if url.startswith("redis://"):
        hostport = url[len("redis://") :].split("/")[0].split("@")[-1]
        host, _, port = hostport.rpartition(":")
        if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            raise SystemExit("--redis must be on this machine (every run starts with FLUSHALL)")
        return (host.strip("[]"), int(port or 6379))
    raise SystemExit("--redis: use redis://127.0.0.1:PORT or redis+unix:///path")


def command(addr, *words: str) -> bytes:
    """One Redis command over a plain socket (FLUSHALL, INFO): no Redis client needed."""
    family = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
    with socket.socket(family) as s:
        s.connect(addr)
        s.sendall(f"*{len(words)}\r\n".encode() + b"".join(f"${len(w)}\r\n{w}\r\n".encode() for w in words))
        data = b""
        while not data.endswith(b"\r\n"):
            data += s.recv(65536)
        return data


def counts(client: tickq.Client) -> Dict:
    for q in client.stats()["queues"]:
        if q["queue"] == QUEUE:
            return q
    return {"processed": 0, "failed": 0, "states": {}}


def noop_jobs(n: int) -> List[Dict]:
    return [{"queue": QUEUE, "kind": "noop", "payload": {"i": i}} for i in range(n)]


def enqueue_one(client: tickq.Client, n: int) -> Dict[str, float]:
    started = time.perf_counter()
    for i in range(n):
        client.enqueue(QUEUE, "noop", {"i": i})
    elapsed = time.perf_counter() - started
    assert counts(client)["states"].get("pending") == n, "enqueue incomplete"
    return {"rate": n / elapsed}


def enqueue_one_async(url: str, n: int) -> Dict[str, float]:
    async def main() -> float:
        client = await tickq.Client.connect_async(url)
        started = time.perf_counter()
        for i in range(n):
            await client.enqueue_async(QUEUE, "noop", {"i": i})
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    assert counts(tickq.Client(url))["states"].get("pending") == n, "enqueue incomplete"
    return {"rate": n / elapsed}


def enqueue_bulk(client: tickq.Client, n: int) -> Dict[str, float]:
    jobs = noop_jobs(n)
    started = time.perf_counter()
    client.enqueue_bulk(jobs)
    elapsed = time.perf_counter() - started
    assert counts(client)["states"].get("pending") == n, "enqueue incomplete"
    return {"rate": n / elapsed}


def enqueue_bulk_async(url: str, n: int) -> Dict[str, float]:
    async def main() -> float:
        client = await tickq.Client.connect_async(url)
        jobs = noop_jobs(n)
        started = time.perf_counter()
        await client.enqueue_bulk_async(jobs)
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    assert counts(tickq.Client(url))["states"].get("pending") == n, "enqueue incomplete"
    return {"rate": n / elapsed}


def settle(client: tickq.Client, times: List[float], n: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while len(times) < n or counts(client)["processed"] < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"run failed: {len(times)} of {n} jobs ran within {limit}s")
        time.sleep(0.002)


def process(client: tickq.Client, url: str, n: int, concurrency: int, is_async: bool, limit: float) -> Dict[str, float]:
    client.enqueue_bulk(noop_jobs(n))
    times: List[float] = []
    note = times.append
    worker = tickq.Worker(client, [QUEUE], concurrency=concurrency)
    if is_async:

        @worker.handler("noop")
        async def noop_async(job: tickq.Job) -> None:
            note(time.perf_counter())

    else:

        @worker.handler("noop")
        def noop(job: tickq.Job) -> None:
            note(time.perf_counter())

    spawned = time.perf_counter()
    if is_async:

        async def main() -> None:
            task = asyncio.create_task(worker.run_async())
            deadline = time.monotonic() + limit
            while len(times) < n or (await client.stats_async())["queues"][0]["processed"] < n:
                if time.monotonic() > deadline or task.done():
                    raise SystemExit(f"run failed: {len(times)} of {n} jobs ran within {limit}s")
                await asyncio.sleep(0.002)
            worker.shutdown()
            await task

        asyncio.run(main())
    else:
        t = threading.Thread(target=worker.run)
        t.start()
        try:
            settle(client, times, n, limit)
        finally:
            worker.shutdown()
            t.join()
    all_acked = time.perf_counter()
    c = counts(client)
    states = c["states"]
    assert c["processed"] == n and c["failed"] == 0 and not states.get("pending") and not states.get("active"), c
    assert len(times) == n, f"the handler ran {len(times)} times for {n} jobs"
    first, last = min(times), max(times)
    return {"rate": (n - 1) / (last - first), "wall_s": all_acked - spawned, "start_to_first_ms": (first - spawned) * 1e3}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workloads", nargs="*", metavar="WORKLOAD", help=" ".join(WORKLOADS))
    p.add_argument("--redis", help="measure against this Redis on this machine (WIPED before every run)")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--concurrency", default="8,64", help="worker concurrencies of the process workloads")
    p.add_argument("--timeout-secs", type=float, default=120)
    p.add_argument("--json", action="store_true", help="one JSON line per run on stdout")
    args = p.parse_args()
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload {unknown[0]!r}; choose from {' '.join(WORKLOADS)}")
    workloads = args.workloads or WORKLOADS
    concurrencies = [int(c) for c in args.concurrency.split(",")]

    private = None if args.redis else PrivateRedis()
    url = args.redis or private.url
    addr = address(url)
    out = sys.stderr if args.json else sys.stdout
    version = command(addr, "INFO", "server").decode().split("redis_version:")[1].split("\r\n")[0]
    print(f"tickq {tickq.__version__} (Python {sys.version.split()[0]}), Redis {version} at {url}, N = {args.n}, {args.runs} runs", file=out)

    plan: List[Tuple[str, Callable[[tickq.Client], Dict[str, float]]]] = []
    for w in workloads:
        if w == "enqueue-one":
            plan.append((w, lambda c: enqueue_one(c, args.n)))
        elif w == "enqueue-one-async":
            plan.append((w, lambda c: enqueue_one_async(url, args.n)))
        elif w == "enqueue-bulk":
            plan.append((w, lambda c: enqueue_bulk(c, args.n)))
        elif w == "enqueue-bulk-async":
            plan.append((w, lambda c: enqueue_bulk_async(url, args.n)))
        else:
            for conc in concurrencies:
                plan.append(
                    (f"{w}-{conc}", lambda c, conc=conc, a=(w == "process-async"): process(c, url, args.n, conc, a, args.timeout_secs))
                )
    results: Dict[str, List[Dict[str, float]]] = {name: [] for name, _ in plan}
    try:
        for run in range(args.runs):  # interleaved rounds, as bench-peers does
            for name, fn in plan:
                command(addr, "FLUSHALL")
                client = tickq.Client(url)
                r = fn(client)
                results[name].append(r)
                if args.json:
                    print(json.dumps({"workload": name, "run": run + 1, "n": args.n, **r}), flush=True)
                print(f"  run {run + 1} {name}: {r['rate']:,.0f} jobs/s", file=sys.stderr)
    finally:
        if private:
            private.stop()
    print(f"\n{'workload':<22} {'jobs/s: median (min-max)':>32}", file=out)
    for name, runs in results.items():
        rates = [r["rate"] for r in runs]
        print(f"{name:<22} {statistics.median(rates):>14,.0f} ({min(rates):,.0f}-{max(rates):,.0f})", file=out)
        if args.json:
            print(json.dumps({"workload": name, "summary": True, "median": statistics.median(rates), "min": min(rates), "max": max(rates)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
