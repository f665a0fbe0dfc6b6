"""Workflows from Python: submit, run steps in a Python worker that read their parents'
results, failure policies, batch callbacks, cancel, retry, the list."""

from __future__ import annotations

import signal
import subprocess
from typing import Any, Dict, List

import pytest

import tickq

from helpers import LIMIT, Redis, python_process, running, wait_for


def flow_state(client: tickq.Client, id: str) -> str:
    return str(client.flow(id)["state"])


def test_a_fan_in_runs_its_child_once_after_every_parent_with_their_results(client: tickq.Client) -> None:
    ran: List[str] = []
    seen: Dict[str, Any] = {}
    worker = tickq.Worker(client, queues={"q": 1}, concurrency=4)

    @worker.handler("part")
    def part(job: tickq.Job) -> str:
        ran.append(str(job.step))
        return f"rows-{job.payload['n']}"

    @worker.handler("report")
    async def report(job: tickq.Job) -> None:
        ran.append(str(job.step))
        seen.update(flow_id=job.flow_id, parents=sorted(job.parents), results=await job.parent_results_async())

    steps = [{"id": f"part{n}", "kind": "part", "payload": {"n": n}} for n in range(4)]
    steps.append({"id": "report", "kind": "report", "after": [f"part{n}" for n in range(4)]})
    submitted = client.submit_flow("q", "nightly", steps, id="night-1")
    assert submitted == {"id": "night-1", "queue": "q", "created": True}
    assert client.submit_flow("q", "nightly", steps, id="night-1")["created"] is False

    with running(worker):
        wait_for("the workflow to succeed", lambda: flow_state(client, "night-1") == "succeeded")
    assert sorted(ran[:4]) == ["part0", "part1", "part2", "part3"] and ran[4:] == ["report"]
    assert seen == {
        "flow_id": "night-1",
        "parents": ["part0", "part1", "part2", "part3"],
        "results": {f"part{n}": f"rows-{n}" for n in range(4)},
    }
    doc = client.flow("night-1")
    assert {s["id"]: s["state"] for s in doc["steps"]} == {**{f"part{n}": "completed" for n in range(4)}, "report": "completed"}
    assert [f["id"] for f in client.flows("q")["flows"]] == ["night-1"]


def test_a_dead_parent_cancels_runs_or_skips_by_policy_and_batch_callbacks_fire(client: tickq.Client) -> None:
    ran: List[str] = []
    worker = tickq.Worker(client, queues={"q": 1}, concurrency=2)

    @worker.handler("ok")
    def ok(job: tickq.Job) -> None:
        ran.append(str(job.step))

    @worker.handler("boom")
    def boom(job: tickq.Job) -> None:
        raise tickq.Kill("broken input")

    steps = [
        {"id": "good", "kind": "ok"},
        {"id": "bad", "kind": "boom"},
        {"id": "cancelled", "kind": "ok", "after": "bad"},
        {"id": "anyway", "kind": "ok", "after": ["bad"], "on_parent_failure": "run"},
        {"id": "skipped", "kind": "ok", "after": ["bad"], "on_parent_failure": "skip"},
        {"id": "cleanup", "kind": "ok"},
        {"id": "celebrate", "kind": "ok"},
    ]
    batches = [{"steps": ["good", "bad"], "on_failure": "cleanup", "on_success": "celebrate"}]
    id = client.submit_flow("q", "policies", steps, batches=batches)["id"]
    with running(worker):
        wait_for("the workflow to end", lambda: flow_state(client, id) == "failed")
    states = {s["id"]: s["state"] for s in client.flow(id)["steps"]}
    assert states == {
        "good": "completed",
        "bad": "dead",
        "cancelled": "cancelled",
        "anyway": "completed",
        "skipped": "skipped",
        "cleanup": "completed",
        "celebrate": "cancelled",
    }
    assert sorted(ran) == ["anyway", "cleanup", "good"]


def test_cancel_and_retry_a_whole_workflow(client: tickq.Client) -> None:
    steps = [{"id": "a", "kind": "k"}, {"id": "b", "kind": "k", "after": ["a"]}]
    id = client.submit_flow("q", "chain", steps)["id"]
    cancelled = client.cancel_flow(id)
    assert cancelled["id"] == id
    assert flow_state(client, id) == "cancelled"
    retried = client.retry_flow(id)
    assert retried["id"] == id
    assert {s["id"]: s["state"] for s in client.flow(id)["steps"]} == {"a": "pending", "b": "waiting"}
    with pytest.raises(tickq.NotFound):
        client.flow("no-such-flow")


@pytest.mark.parametrize(
    "steps, words",
    [
        ([{"kind": "k"}], "needs an id"),
        ([{"id": "a"}], "needs a kind"),
        ([{"id": "a", "kind": "k", "colour": "red"}], "unknown step key"),
        ([{"id": "a", "kind": "k", "after": ["nope"]}], "nope"),
        ([{"id": "a", "kind": "k", "on_parent_failure": "maybe"}], "on_parent_failure"),
        (["not a dict"], "must be a dict"),
    ],
)
def test_bad_steps_are_invalid_and_create_nothing(client: tickq.Client, steps: List[Any], words: str) -> None:
    with pytest.raises(tickq.InvalidArgument, match=words):
        client.submit_flow("q", "bad", steps)
    assert client.flows()["flows"] == []


def test_steps_in_other_queues_run_after_their_parents_with_their_results(client: tickq.Client) -> None:
    order: List[str] = []
    seen: Dict[str, Any] = {}
    worker = tickq.Worker(client, queues=["home", "exports", "reports"], concurrency=4)

    @worker.handler("part")
    def part(job: tickq.Job) -> str:
        order.append(f"{job.step}@{job.queue}")
        return f"rows-{job.payload['n']}"

    @worker.handler("report")
    def report(job: tickq.Job) -> None:
        order.append(f"{job.step}@{job.queue}")
        seen.update(job.parent_results())

    steps: List[Dict[str, Any]] = [
        {"id": "p1", "kind": "part", "payload": {"n": 1}, "queue": "exports"},
        {"id": "p2", "kind": "part", "payload": {"n": 2}},
        {"id": "report", "kind": "report", "after": ["p1", "p2"], "queue": "reports"},
    ]
    id = client.submit_flow("home", "across", steps)["id"]
    with running(worker):
        wait_for("the workflow to succeed", lambda: flow_state(client, id) == "succeeded")
    assert sorted(order[:2]) == ["p1@exports", "p2@home"] and order[2:] == ["report@reports"]
    assert seen == {"p1": "rows-1", "p2": "rows-2"}
    assert {s["id"]: s["queue"] for s in client.flow(id)["steps"]} == {"p1": "exports", "p2": "home", "report": "reports"}


FAN_IN_WORKER = """
import sys, tickq
client = tickq.Client(sys.argv[1])
worker = tickq.Worker(client, queues=["q"], concurrency=16, node=sys.argv[2])

@worker.handler("part")
def part(job):
    return str(job.payload["n"])

@worker.handler("sum")
def total(job):
    results = job.parent_results()
    # One log job per run of the child: the test counts them.
    client.enqueue("log", "run", {"flow": job.flow_id, "parents": len(results),
                                  "ended": sum(1 for v in results.values() if v is not None)})

worker.run()
"""


def test_a_fan_in_of_200_parents_on_3_worker_processes_runs_its_child_once_after_all(redis: Redis, client: tickq.Client) -> None:
    parents, rounds = 200, 50
    procs = [python_process(FAN_IN_WORKER, redis.url, f"node{n}") for n in range(3)]
    try:
        for r in range(rounds):
            steps: List[Dict[str, Any]] = [{"id": f"p{i}", "kind": "part", "payload": {"n": i}} for i in range(parents)]
            steps.append({"id": "sum", "kind": "sum", "after": [f"p{i}" for i in range(parents)]})
            client.submit_flow("q", "fan-in", steps, id=f"round-{r}")
        wait_for(
            "every round's child to run",
            lambda: all(flow_state(client, f"round-{r}") == "succeeded" for r in range(rounds)),
            limit=120,
        )
        logged = client.jobs("log", "pending", limit=1000)["jobs"]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(LIMIT)
            except subprocess.TimeoutExpired:
                p.kill()
    runs = sorted((j["payload"]["flow"], j["payload"]["parents"], j["payload"]["ended"]) for j in logged)
    # Each child ran exactly once, and only after all 200 of its parents had completed.
    assert runs == [(f"round-{r}", parents, parents) for r in sorted(range(rounds), key=lambda r: f"round-{r}")]
    # The parents really completed on several processes at once (the newest round's jobs are
    # still kept; older ones left the completed index's cap).
    nodes = {str(client.job(f"flow:round-{rounds - 1}:p{i}", "q").worker).split(":")[0] for i in range(parents)}
    assert len(nodes) >= 2, nodes
