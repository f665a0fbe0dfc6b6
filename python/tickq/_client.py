"""The client: enqueue, read and act on jobs, schedules and locks. Every call has a blocking
form (the GIL is released while it waits for Redis) and an awaitable ``*_async`` form."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from . import _tickq
from ._tickq import Enqueued, FencedWrite, JobInfo, LockBusy, PartialEnqueue, ScheduleInfo

Seconds = Union[int, float, timedelta, str]
When = Union[int, float, datetime, str]

DEFAULT_URL = "redis://127.0.0.1:6379"
"""Where Redis is when neither an URL nor ``TICKQ_REDIS_URL`` says otherwise."""


def _default_url() -> str:
    return os.environ.get("TICKQ_REDIS_URL") or DEFAULT_URL


def _tls(ca_file: Optional[str], cert_file: Optional[str], key_file: Optional[str]) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """TLS files as given, else from the environment the ``tickq`` verbs read."""
    env = os.environ.get
    return (ca_file or env("TICKQ_REDIS_CA"), cert_file or env("TICKQ_REDIS_CERT"), key_file or env("TICKQ_REDIS_KEY"))


class Client:
    """A connection to tickq on one Redis: ``redis://[user:pass@]host:port[/db]``,
    ``rediss://`` (TLS), ``redis+unix:///path.sock``, ``redis-cluster://h1:p1,h2:p2`` or
    ``redis-sentinel://h1:p1,h2:p2/MASTER[/db]``. Without an URL: ``TICKQ_REDIS_URL``, else
    ``redis://127.0.0.1:6379``. For TLS with a private CA or a client certificate: ``ca_file``,
    ``cert_file`` and ``key_file`` (PEM), else ``TICKQ_REDIS_CA``, ``TICKQ_REDIS_CERT`` and
    ``TICKQ_REDIS_KEY``. Safe to share between threads and tasks."""

    __slots__ = ("_n",)

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        ca_file: Optional[str] = None,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
        _native: Optional[_tickq.Client] = None,
    ) -> None:
        if _native is not None:
            self._n = _native
        else:
            self._n = _tickq.Client.connect(False, url or _default_url(), *_tls(ca_file, cert_file, key_file))

    @classmethod
    async def connect_async(
        cls,
        url: Optional[str] = None,
        *,
        ca_file: Optional[str] = None,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
    ) -> "Client":
        """Connect without blocking the event loop."""
        native = await _tickq.Client.connect(True, url or _default_url(), *_tls(ca_file, cert_file, key_file))
        return cls(_native=native)

    def __repr__(self) -> str:
        return f"tickq.Client({self._n.url!r})"

    @property
    def url(self) -> str:
        """The URL, with any password redacted."""
        return self._n.url

    # ---- jobs ----

    def enqueue(
        self,
        queue: str,
        kind: str,
        payload: Any = None,
        *,
        delay: Optional[Seconds] = None,
        at: Optional[When] = None,
        id: Optional[str] = None,
        unique_for: Optional[Seconds] = None,
        unique_key: Optional[str] = None,
        max_attempts: Optional[int] = None,
        timeout: Optional[Seconds] = None,
        priority: Optional[int] = None,
        meta: Optional[Mapping[str, str]] = None,
        shard_key: Optional[str] = None,
    ) -> str:
        """Enqueue one job; answers its id. ``payload`` is JSON (dict, list, str, int, float,
        bool, None). ``delay`` (seconds or timedelta) or ``at`` (aware datetime or Unix
        seconds) make it wait; ``unique_for`` (with an optional ``unique_key``) makes an equal
        job a no-op while one waits or runs. A job whose id or unique key exists raises
        ``AlreadyExists`` with ``existing_id``. On a sharded queue (:meth:`shard_queue`),
        jobs with the same ``shard_key`` go to the same shard and keep their order there."""
        return self._n.enqueue(False, queue, kind, payload, delay, at, id, unique_for, unique_key, max_attempts, timeout, priority, meta, shard_key)

    async def enqueue_async(
        self,
        queue: str,
        kind: str,
        payload: Any = None,
        *,
        delay: Optional[Seconds] = None,
        at: Optional[When] = None,
        id: Optional[str] = None,
        unique_for: Optional[Seconds] = None,
        unique_key: Optional[str] = None,
        max_attempts: Optional[int] = None,
        timeout: Optional[Seconds] = None,
        priority: Optional[int] = None,
        meta: Optional[Mapping[str, str]] = None,
        shard_key: Optional[str] = None,
    ) -> str:
        """:meth:`enqueue`, awaitable."""
        return await self._n.enqueue(True, queue, kind, payload, delay, at, id, unique_for, unique_key, max_attempts, timeout, priority, meta, shard_key)

    def enqueue_bulk(self, jobs: Union[Iterable[Mapping[str, Any]], PartialEnqueue]) -> List[Enqueued]:
        """Enqueue many jobs in few round trips, each exactly once. Each job is a dict with
        ``queue``, ``kind`` and any keyword argument of :meth:`enqueue`. Jobs whose id exists
        answer ``created=False``; jobs whose unique key another job holds answer that job with
        ``duplicate=True``.

        If Redis fails part way (connection lost, timeout, Redis full), nothing more is sent
        and the error's ``partial`` (a :class:`PartialEnqueue`) lists the jobs Redis confirmed
        (``enqueued``) and the others with their ids (``unconfirmed``). Passing ``partial``
        back to ``enqueue_bulk`` sends those again; none is created twice::

            try:
                client.enqueue_bulk(jobs)
            except tickq.Error as e:
                if e.partial is None:
                    raise
                client.enqueue_bulk(e.partial)
        """
        return self._n.enqueue_bulk(False, jobs)

    async def enqueue_bulk_async(self, jobs: Union[Iterable[Mapping[str, Any]], PartialEnqueue]) -> List[Enqueued]:
        """:meth:`enqueue_bulk`, awaitable."""
        return await self._n.enqueue_bulk(True, jobs)

    def job(self, id: str, queue: Optional[str] = None) -> JobInfo:
        """Read a job (from ``queue``, or found in any queue). Raises ``NotFound``."""
        return self._n.job(False, id, queue)

    async def job_async(self, id: str, queue: Optional[str] = None) -> JobInfo:
        """:meth:`job`, awaitable."""
        return await self._n.job(True, id, queue)

    def wait(self, id: str, queue: Optional[str] = None, timeout: Seconds = 30) -> JobInfo:
        """Wait until the job ends (completed, dead or cancelled; no polling: tickq's job events)
        and answer it as it ended. Raises ``Timeout`` when it has not ended in time, ``NotFound``
        when it is deleted meanwhile."""
        return self._n.wait(False, id, queue, timeout)

    async def wait_async(self, id: str, queue: Optional[str] = None, timeout: Seconds = 30) -> JobInfo:
        """:meth:`wait`, awaitable."""
        return await self._n.wait(True, id, queue, timeout)

    def cancel(self, id: str) -> Dict[str, Any]:
        """Cancel a job found by id: a waiting one at once (``outcome`` ``"cancelled"``), a
        running one by its worker at its next lease renewal (``"cancelling"``). Answers the
        action's document: ``id``, ``queue``, ``action``, ``previous_state``, ``state``,
        ``outcome``."""
        return self._n.act(False, "cancel", id)

    async def cancel_async(self, id: str) -> Dict[str, Any]:
        """:meth:`cancel`, awaitable."""
        return await self._n.act(True, "cancel", id)

    def retry(self, id: str) -> Dict[str, Any]:
        """Run a dead, cancelled, retry or scheduled job now (``Conflict`` for a running
        one). Answers the action's document, with ``previous_state``."""
        return self._n.act(False, "retry", id)

    async def retry_async(self, id: str) -> Dict[str, Any]:
        """:meth:`retry`, awaitable."""
        return await self._n.act(True, "retry", id)

    def kill(self, id: str) -> Dict[str, Any]:
        """Send a waiting job to dead (``Conflict`` for a running or finished one)."""
        return self._n.act(False, "kill", id)

    async def kill_async(self, id: str) -> Dict[str, Any]:
        """:meth:`kill`, awaitable."""
        return await self._n.act(True, "kill", id)

    def delete(self, id: str) -> Dict[str, Any]:
        """Delete a job that is not running (``Conflict`` for a running one)."""
        return self._n.act(False, "delete", id)

    async def delete_async(self, id: str) -> Dict[str, Any]:
        """:meth:`delete`, awaitable."""
        return await self._n.act(True, "delete", id)

    def stats(self) -> Dict[str, Any]:
        """``{"queues": [...]}``: per queue, counts by state, processed, failed, paused, limits
        (the document of ``tickq stats --json`` and ``GET /api/stats``)."""
        return self._n.stats(False)

    async def stats_async(self) -> Dict[str, Any]:
        """:meth:`stats`, awaitable."""
        return await self._n.stats(True)

    def nodes(self) -> Dict[str, Any]:
        """``{"nodes": [...]}``: the live workers (Python, Rust or ``tickq server``), each with
        its name, queues and weights, concurrency and running jobs (``tickq nodes --json``)."""
        return self._n.nodes(False)

    async def nodes_async(self) -> Dict[str, Any]:
        """:meth:`nodes`, awaitable."""
        return await self._n.nodes(True)

    # ---- queues ----

    def jobs(
        self,
        queue: str,
        state: str,
        *,
        kind: Optional[str] = None,
        payload: Optional[str] = None,
        error: Optional[str] = None,
        cursor: Optional[str] = None,
        limit: int = 100,
    ) -> Dict[str, Any]:
        """One page of a queue's jobs in ``state`` (scheduled pending active retry dead
        completed cancelled), optionally only of ``kind``, whose payload or last error contains
        a text: ``{"queue", "state", "jobs": [...], "next_cursor", "scanned"}``; pass
        ``next_cursor`` back as ``cursor`` for the next page (``GET /api/queues/{q}/jobs``)."""
        return self._n.jobs(False, queue, state, kind, payload, error, cursor, limit)

    async def jobs_async(
        self,
        queue: str,
        state: str,
        *,
        kind: Optional[str] = None,
        payload: Optional[str] = None,
        error: Optional[str] = None,
        cursor: Optional[str] = None,
        limit: int = 100,
    ) -> Dict[str, Any]:
        """:meth:`jobs`, awaitable."""
        return await self._n.jobs(True, queue, state, kind, payload, error, cursor, limit)

    def shard_queue(self, queue: str, shards: int) -> None:
        """Make ``queue`` a sharded queue of ``shards`` sub-queues (on Redis Cluster they spread
        over the masters), or check that it is one; another count raises ``Conflict``. Jobs
        spread over the shards by ``shard_key``, unique key, id or round robin; workers,
        stats and actions see one queue (docs/queue-control.md)."""
        self._n.shard_queue(False, queue, shards)

    async def shard_queue_async(self, queue: str, shards: int) -> None:
        """:meth:`shard_queue`, awaitable."""
        await self._n.shard_queue(True, queue, shards)

    def pause_queue(self, queue: str) -> Dict[str, Any]:
        """Stop every worker from starting jobs of ``queue`` (running ones finish)."""
        return self._n.pause_queue(False, queue, True)

    async def pause_queue_async(self, queue: str) -> Dict[str, Any]:
        """:meth:`pause_queue`, awaitable."""
        return await self._n.pause_queue(True, queue, True)

    def resume_queue(self, queue: str) -> Dict[str, Any]:
        """Let workers start jobs of a paused queue again."""
        return self._n.pause_queue(False, queue, False)

    async def resume_queue_async(self, queue: str) -> Dict[str, Any]:
        """:meth:`resume_queue`, awaitable."""
        return await self._n.pause_queue(True, queue, False)

    def set_limits(self, queue: str, *, concurrency: Optional[int] = None, rate: Optional[str] = None) -> Dict[str, Any]:
        """Replace a queue's limits, for every worker on every node: at most ``concurrency``
        jobs active, at most ``rate`` starts (``"50/1s"``). None: no limit."""
        return self._n.set_limits(False, queue, concurrency, rate)

    async def set_limits_async(
        self, queue: str, *, concurrency: Optional[int] = None, rate: Optional[str] = None
    ) -> Dict[str, Any]:
        """:meth:`set_limits`, awaitable."""
        return await self._n.set_limits(True, queue, concurrency, rate)

    def limits(self, queue: str) -> Dict[str, Any]:
        """A queue's limits: ``{"queue", "limits": {"concurrency", "rate"}}``."""
        return self._n.limits(False, queue)

    async def limits_async(self, queue: str) -> Dict[str, Any]:
        """:meth:`limits`, awaitable."""
        return await self._n.limits(True, queue)

    def purge(self, queue: str, state: str) -> Dict[str, Any]:
        """Delete every job of ``queue`` in ``state`` (active jobs are refused: cancel them);
        answers ``{"queue", "state", "purged"}``."""
        return self._n.purge(False, queue, state)

    async def purge_async(self, queue: str, state: str) -> Dict[str, Any]:
        """:meth:`purge`, awaitable."""
        return await self._n.purge(True, queue, state)

    # ---- schedules ----

    def upsert_schedule(self, spec: Mapping[str, Any]) -> str:
        """Create or change a schedule, written like a config file's ``[[cron]]`` table:
        ``{"name", "schedule", "queue", "timezone", "overlap", "catchup", "tasks": [{"kind",
        "payload"} | {"kind": "exec", "cmd": [...]}]}``. Answers ``"created"``,
        ``"updated"`` or ``"unchanged"`` (the same spec again is a no-op)."""
        return self._n.upsert_schedule(False, spec)

    async def upsert_schedule_async(self, spec: Mapping[str, Any]) -> str:
        """:meth:`upsert_schedule`, awaitable."""
        return await self._n.upsert_schedule(True, spec)

    def schedules(self) -> List[ScheduleInfo]:
        """Every schedule, sorted by name."""
        return self._n.schedules(False)

    async def schedules_async(self) -> List[ScheduleInfo]:
        """:meth:`schedules`, awaitable."""
        return await self._n.schedules(True)

    def schedule(self, name: str) -> ScheduleInfo:
        """One schedule. Raises ``NotFound``."""
        return self._n.schedule(False, name)

    async def schedule_async(self, name: str) -> ScheduleInfo:
        """:meth:`schedule`, awaitable."""
        return await self._n.schedule(True, name)

    def remove_schedule(self, name: str) -> None:
        """Remove a schedule; jobs it made are left alone."""
        return self._n.remove_schedule(False, name)

    async def remove_schedule_async(self, name: str) -> None:
        """:meth:`remove_schedule`, awaitable."""
        return await self._n.remove_schedule(True, name)

    def pause_schedule(self, name: str) -> None:
        """Stop a schedule from firing until it is resumed."""
        return self._n.pause_schedule(False, name)

    async def pause_schedule_async(self, name: str) -> None:
        """:meth:`pause_schedule`, awaitable."""
        return await self._n.pause_schedule(True, name)

    def resume_schedule(self, name: str) -> None:
        """Let a paused schedule fire again."""
        return self._n.resume_schedule(False, name)

    async def resume_schedule_async(self, name: str) -> None:
        """:meth:`resume_schedule`, awaitable."""
        return await self._n.resume_schedule(True, name)

    def trigger_schedule(self, name: str) -> List[Enqueued]:
        """Create the schedule's jobs now, outside its timetable."""
        return self._n.trigger_schedule(False, name)

    async def trigger_schedule_async(self, name: str) -> List[Enqueued]:
        """:meth:`trigger_schedule`, awaitable."""
        return await self._n.trigger_schedule(True, name)

    # ---- workflows ----

    def submit_flow(
        self,
        queue: str,
        name: str,
        steps: Iterable[Mapping[str, Any]],
        *,
        batches: Optional[Iterable[Mapping[str, Any]]] = None,
        id: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Submit a workflow (docs/workflows.md), all or nothing: ``{"id", "queue", "created"}``.
        Each step is a dict: ``id`` and ``kind`` (required), ``queue`` (default: the
        workflow's), ``payload``, ``after`` (step ids it runs after), ``on_parent_failure`` (``"cancel"``, the default, ``"run"``, ``"skip"``
        or ``"only_if_failed"``), ``max_attempts``, ``timeout``, ``priority``, ``meta``. Each
        batch is a dict: ``steps`` and any of ``on_complete``, ``on_success``, ``on_failure``
        (step ids of callback steps). A workflow whose ``id`` exists is not created again
        (``created=False``). A step's handler reads its parents' results with
        :meth:`Job.parent_results`."""
        return self._n.submit_flow(False, queue, name, steps, batches, id)

    async def submit_flow_async(
        self,
        queue: str,
        name: str,
        steps: Iterable[Mapping[str, Any]],
        *,
        batches: Optional[Iterable[Mapping[str, Any]]] = None,
        id: Optional[str] = None,
    ) -> Dict[str, Any]:
        """:meth:`submit_flow`, awaitable."""
        return await self._n.submit_flow(True, queue, name, steps, batches, id)

    def flow(self, id: str) -> Dict[str, Any]:
        """A workflow with its state, counts and steps (``tickq flow show ID --json``, ``GET
        /api/flows/{id}``). Raises ``NotFound``."""
        return self._n.flow(False, id)

    async def flow_async(self, id: str) -> Dict[str, Any]:
        """:meth:`flow`, awaitable."""
        return await self._n.flow(True, id)

    def flows(self, queue: Optional[str] = None, limit: int = 50) -> Dict[str, Any]:
        """Workflows, newest first: running ones and finished ones within their retention
        (``tickq flow ls --json``)."""
        return self._n.flows(False, queue, limit)

    async def flows_async(self, queue: Optional[str] = None, limit: int = 50) -> Dict[str, Any]:
        """:meth:`flows`, awaitable."""
        return await self._n.flows(True, queue, limit)

    def cancel_flow(self, id: str) -> Dict[str, Any]:
        """Cancel a whole workflow: running steps are stopped, waiting ones cancelled."""
        return self._n.act_on_flow(False, "cancel", id)

    async def cancel_flow_async(self, id: str) -> Dict[str, Any]:
        """:meth:`cancel_flow`, awaitable."""
        return await self._n.act_on_flow(True, "cancel", id)

    def retry_flow(self, id: str) -> Dict[str, Any]:
        """Start a failed workflow's dead and cancelled steps over."""
        return self._n.act_on_flow(False, "retry", id)

    async def retry_flow_async(self, id: str) -> Dict[str, Any]:
        """:meth:`retry_flow`, awaitable."""
        return await self._n.act_on_flow(True, "retry", id)

    # ---- locks ----

    def lock(self, name: str, ttl: Seconds = 30, wait: Seconds = 0) -> "Lock":
        """A lock named ``name``, acquired by ``with`` / ``async with`` (``LockBusy`` when
        another holder keeps it past ``wait``) or by :meth:`Lock.acquire`. It is renewed in the
        background every third of ``ttl``."""
        return Lock(self._n.lock(name, ttl, wait))


class Lock:
    """One acquisition of a lock: its fencing token, its lost signal and its fenced store.

    ``lock.lost`` turns true when Redis gave the lock to someone else, or when the lease ran out
    before a renewal succeeded (Redis stalled, this process was stopped); a holder must then
    stop. ``lock.fenced_set`` writes only while no later holder has written."""

    __slots__ = ("_n",)

    def __init__(self, native: _tickq.Lock) -> None:
        self._n = native

    def __repr__(self) -> str:
        return f"tickq.Lock({self._n.name!r}, held={self._n.held})"

    @property
    def name(self) -> str:
        return self._n.name

    @property
    def held(self) -> bool:
        """Acquired and not released (it may still have been lost: see :attr:`lost`)."""
        return self._n.held

    @property
    def fence(self) -> int:
        """The fencing token of the latest acquisition: larger than any earlier holder's."""
        return self._n.fence

    @property
    def lost(self) -> bool:
        """Whether the latest acquisition was lost."""
        return self._n.lost

    @property
    def lost_reason(self) -> Optional[str]:
        """``"taken"`` (Redis says another holder has it or it expired), ``"expired"`` (the
        lease ran out before a renewal succeeded), or None."""
        return self._n.lost_reason

    def acquire(self) -> bool:
        """Take the lock, waiting up to the lock's ``wait``: True when held."""
        return self._n.acquire(False)

    async def acquire_async(self) -> bool:
        """:meth:`acquire`, awaitable."""
        return await self._n.acquire(True)

    def release(self) -> bool:
        """Give the lock back: True when it was still ours."""
        return self._n.release(False)

    async def release_async(self) -> bool:
        """:meth:`release`, awaitable."""
        return await self._n.release(True)

    def wait_lost(self, timeout: Optional[Seconds] = None) -> Optional[str]:
        """Block until the lock is lost (answers the reason) or ``timeout`` passes (None)."""
        return self._n.wait_lost(False, timeout)

    async def wait_lost_async(self, timeout: Optional[Seconds] = None) -> Optional[str]:
        """:meth:`wait_lost`, awaitable."""
        return await self._n.wait_lost(True, timeout)

    def fenced_set(self, key: str, value: Union[bytes, str]) -> FencedWrite:
        """Store ``value`` under ``key`` with this acquisition's fence. Refused (falsy answer,
        with ``latest`` and ``stored``) once a later holder has written."""
        return self._n.fenced_set(False, key, value)

    async def fenced_set_async(self, key: str, value: Union[bytes, str]) -> FencedWrite:
        """:meth:`fenced_set`, awaitable."""
        return await self._n.fenced_set(True, key, value)

    def fenced_get(self, key: str) -> Optional[Tuple[bytes, int]]:
        """The value under ``key`` and the fence it was written with, or None."""
        return self._n.fenced_get(False, key)

    async def fenced_get_async(self, key: str) -> Optional[Tuple[bytes, int]]:
        """:meth:`fenced_get`, awaitable."""
        return await self._n.fenced_get(True, key)

    def __enter__(self) -> "Lock":
        if not self._n.acquire(False):
            raise self._n.busy()
        return self

    def __exit__(self, *exc: object) -> None:
        self._n.release(False)

    async def __aenter__(self) -> "Lock":
        if not await self._n.acquire(True):
            raise self._n.busy()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._n.release(True)


__all__ = ["DEFAULT_URL", "Client", "Lock", "LockBusy"]
