"""The client: enqueue, read and act on jobs, schedules and locks. Every call has a blocking
form (the GIL is released while it waits for Redis) and an awaitable ``*_async`` form."""

from __future__ import annotations

import copy
import functools
import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Dict, Iterable, List, Literal, Mapping, Optional, Tuple, TypeVar, Union, cast

from . import _tickq
from ._tickq import Enqueued, FencedWrite, JobInfo, LockBusy, PartialEnqueue, ScheduleInfo

Seconds = Union[int, float, timedelta, str]
When = Union[int, float, datetime, str]

DEFAULT_URL = "redis://127.0.0.1:6379"
"""Where Redis is when neither an URL nor ``TICKQ_REDIS_URL`` says otherwise."""


def _default_url() -> str:
    return os.environ.get("TICKQ_REDIS_URL") or DEFAULT_URL


class _Twins:
    """Base of the classes whose calls come in pairs: ``x`` blocks (the GIL released while it
    waits for Redis) and ``x_async`` is its coroutine twin, made by :func:`_awaitable` from the
    same body. A body passes ``self._aio`` as the native call's first argument."""

    __slots__ = ("_aio",)

    # False, as the type checker sees it; True only on the copy a twin runs the body on, where
    # the native calls answer awaitables (see `_awaitable`).
    _aio: Literal[False]


if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    _P = ParamSpec("_P")
_T = TypeVar("_T", bound=_Twins)
_R = TypeVar("_R")


def _awaitable(blocking: Callable[Concatenate[_T, _P], _R]) -> Callable[Concatenate[_T, _P], Coroutine[Any, Any, _R]]:
    """The ``*_async`` twin of a blocking method, with its parameters: the same body, run on a
    copy of the object whose native calls answer awaitables (``_aio`` True), and awaited. So a
    method's parameters, defaults and mapping to the native call are written once."""

    async def twin(self: _T, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        awaiting = copy.copy(self)
        object.__setattr__(awaiting, "_aio", True)
        return await cast("Awaitable[_R]", blocking(awaiting, *args, **kwargs))

    functools.update_wrapper(twin, blocking)  # its signature, for help() and inspect
    twin.__name__ = f"{blocking.__name__}_async"
    twin.__qualname__ = f"{blocking.__qualname__}_async"
    twin.__doc__ = f":meth:`{blocking.__name__}`, awaitable."
    return twin


def _tls(ca_file: Optional[str], cert_file: Optional[str], key_file: Optional[str]) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """TLS files as given, else from the environment the ``tickq`` verbs read."""
    env = os.environ.get
    return (ca_file or env("TICKQ_REDIS_CA"), cert_file or env("TICKQ_REDIS_CERT"), key_file or env("TICKQ_REDIS_KEY"))


class Client(_Twins):
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
        self._aio = False
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
        return self._n.enqueue(self._aio, queue, kind, payload, delay, at, id, unique_for, unique_key, max_attempts, timeout, priority, meta, shard_key)
    enqueue_async = _awaitable(enqueue)

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
        return self._n.enqueue_bulk(self._aio, jobs)
    enqueue_bulk_async = _awaitable(enqueue_bulk)

    def job(self, id: str, queue: Optional[str] = None) -> JobInfo:
        """Read a job (from ``queue``, or found in any queue). Raises ``NotFound``."""
        return self._n.job(self._aio, id, queue)
    job_async = _awaitable(job)

    def wait(self, id: str, queue: Optional[str] = None, timeout: Seconds = 30) -> JobInfo:
        """Wait until the job ends (completed, dead or cancelled; no polling: tickq's job events)
        and answer it as it ended. Raises ``Timeout`` when it has not ended in time, ``NotFound``
        when it is deleted meanwhile."""
        return self._n.wait(self._aio, id, queue, timeout)
    wait_async = _awaitable(wait)

    def cancel(self, id: str) -> Dict[str, Any]:
        """Cancel a job found by id: a waiting one at once (``outcome`` ``"cancelled"``), a
        running one by its worker at its next lease renewal (``"cancelling"``). Answers the
        action's document: ``id``, ``queue``, ``action``, ``previous_state``, ``state``,
        ``outcome``."""
        return self._n.act(self._aio, "cancel", id)
    cancel_async = _awaitable(cancel)

    def retry(self, id: str) -> Dict[str, Any]:
        """Run a dead, cancelled, retry or scheduled job now (``Conflict`` for a running
        one). Answers the action's document, with ``previous_state``."""
        return self._n.act(self._aio, "retry", id)
    retry_async = _awaitable(retry)

    def kill(self, id: str) -> Dict[str, Any]:
        """Send a waiting job to dead (``Conflict`` for a running or finished one)."""
        return self._n.act(self._aio, "kill", id)
    kill_async = _awaitable(kill)

    def delete(self, id: str) -> Dict[str, Any]:
        """Delete a job that is not running (``Conflict`` for a running one)."""
        return self._n.act(self._aio, "delete", id)
    delete_async = _awaitable(delete)

    def stats(self) -> Dict[str, Any]:
        """``{"queues": [...]}``: per queue, counts by state, processed, failed, paused, limits
        (the document of ``tickq stats --json`` and ``GET /api/stats``)."""
        return self._n.stats(self._aio)
    stats_async = _awaitable(stats)

    def nodes(self) -> Dict[str, Any]:
        """``{"nodes": [...]}``: the live workers (Python, Rust or ``tickq server``), each with
        its name, queues and weights, concurrency and running jobs (``tickq nodes --json``)."""
        return self._n.nodes(self._aio)
    nodes_async = _awaitable(nodes)

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
        return self._n.jobs(self._aio, queue, state, kind, payload, error, cursor, limit)
    jobs_async = _awaitable(jobs)

    def shard_queue(self, queue: str, shards: int) -> None:
        """Make ``queue`` a sharded queue of ``shards`` sub-queues (on Redis Cluster they spread
        over the masters), or check that it is one; another count raises ``Conflict``. Jobs
        spread over the shards by ``shard_key``, unique key, id or round robin; workers,
        stats and actions see one queue (docs/queue-control.md)."""
        return self._n.shard_queue(self._aio, queue, shards)
    shard_queue_async = _awaitable(shard_queue)

    def pause_queue(self, queue: str) -> Dict[str, Any]:
        """Stop every worker from starting jobs of ``queue`` (running ones finish)."""
        return self._n.pause_queue(self._aio, queue, True)
    pause_queue_async = _awaitable(pause_queue)

    def resume_queue(self, queue: str) -> Dict[str, Any]:
        """Let workers start jobs of a paused queue again."""
        return self._n.pause_queue(self._aio, queue, False)
    resume_queue_async = _awaitable(resume_queue)

    def set_limits(self, queue: str, *, concurrency: Optional[int] = None, rate: Optional[str] = None) -> Dict[str, Any]:
        """Replace a queue's limits, for every worker on every node: at most ``concurrency``
        jobs active, at most ``rate`` starts (``"50/1s"``). None: no limit."""
        return self._n.set_limits(self._aio, queue, concurrency, rate)
    set_limits_async = _awaitable(set_limits)

    def limits(self, queue: str) -> Dict[str, Any]:
        """A queue's limits: ``{"queue", "limits": {"concurrency", "rate"}}``."""
        return self._n.limits(self._aio, queue)
    limits_async = _awaitable(limits)

    def purge(self, queue: str, state: str) -> Dict[str, Any]:
        """Delete every job of ``queue`` in ``state`` (active jobs are refused: cancel them);
        answers ``{"queue", "state", "purged"}``."""
        return self._n.purge(self._aio, queue, state)
    purge_async = _awaitable(purge)

    # ---- schedules ----

    def upsert_schedule(self, spec: Mapping[str, Any]) -> str:
        """Create or change a schedule, written like a config file's ``[[cron]]`` table:
        ``{"name", "schedule", "queue", "timezone", "overlap", "catchup", "tasks": [{"kind",
        "payload"} | {"kind": "exec", "cmd": [...]}]}``. Answers ``"created"``,
        ``"updated"`` or ``"unchanged"`` (the same spec again is a no-op)."""
        return self._n.upsert_schedule(self._aio, spec)
    upsert_schedule_async = _awaitable(upsert_schedule)

    def schedules(self) -> List[ScheduleInfo]:
        """Every schedule, sorted by name."""
        return self._n.schedules(self._aio)
    schedules_async = _awaitable(schedules)

    def schedule(self, name: str) -> ScheduleInfo:
        """One schedule. Raises ``NotFound``."""
        return self._n.schedule(self._aio, name)
    schedule_async = _awaitable(schedule)

    def remove_schedule(self, name: str) -> None:
        """Remove a schedule; jobs it made are left alone."""
        return self._n.remove_schedule(self._aio, name)
    remove_schedule_async = _awaitable(remove_schedule)

    def pause_schedule(self, name: str) -> None:
        """Stop a schedule from firing until it is resumed."""
        return self._n.pause_schedule(self._aio, name)
    pause_schedule_async = _awaitable(pause_schedule)

    def resume_schedule(self, name: str) -> None:
        """Let a paused schedule fire again."""
        return self._n.resume_schedule(self._aio, name)
    resume_schedule_async = _awaitable(resume_schedule)

    def trigger_schedule(self, name: str) -> List[Enqueued]:
        """Create the schedule's jobs now, outside its timetable."""
        return self._n.trigger_schedule(self._aio, name)
    trigger_schedule_async = _awaitable(trigger_schedule)

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
        return self._n.submit_flow(self._aio, queue, name, steps, batches, id)
    submit_flow_async = _awaitable(submit_flow)

    def flow(self, id: str) -> Dict[str, Any]:
        """A workflow with its state, counts and steps (``tickq flow show ID --json``, ``GET
        /api/flows/{id}``). Raises ``NotFound``."""
        return self._n.flow(self._aio, id)
    flow_async = _awaitable(flow)

    def flows(self, queue: Optional[str] = None, limit: int = 50) -> Dict[str, Any]:
        """Workflows, newest first: running ones and finished ones within their retention
        (``tickq flow ls --json``)."""
        return self._n.flows(self._aio, queue, limit)
    flows_async = _awaitable(flows)

    def cancel_flow(self, id: str) -> Dict[str, Any]:
        """Cancel a whole workflow: running steps are stopped, waiting ones cancelled."""
        return self._n.act_on_flow(self._aio, "cancel", id)
    cancel_flow_async = _awaitable(cancel_flow)

    def retry_flow(self, id: str) -> Dict[str, Any]:
        """Start a failed workflow's dead and cancelled steps over."""
        return self._n.act_on_flow(self._aio, "retry", id)
    retry_flow_async = _awaitable(retry_flow)

    # ---- locks ----

    def lock(self, name: str, ttl: Seconds = 30, wait: Seconds = 0) -> "Lock":
        """A lock named ``name``, acquired by ``with`` / ``async with`` (``LockBusy`` when
        another holder keeps it past ``wait``) or by :meth:`Lock.acquire`. It is renewed in the
        background every third of ``ttl``."""
        return Lock(self._n.lock(name, ttl, wait))


class Lock(_Twins):
    """One acquisition of a lock: its fencing token, its lost signal and its fenced store.

    ``lock.lost`` turns true when Redis gave the lock to someone else, or when the lease ran out
    before a renewal succeeded (Redis stalled, this process was stopped); a holder must then
    stop. ``lock.fenced_set`` writes only while no later holder has written."""

    __slots__ = ("_n",)

    def __init__(self, native: _tickq.Lock) -> None:
        self._aio = False
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
        return self._n.acquire(self._aio)
    acquire_async = _awaitable(acquire)

    def release(self) -> bool:
        """Give the lock back: True when it was still ours."""
        return self._n.release(self._aio)
    release_async = _awaitable(release)

    def wait_lost(self, timeout: Optional[Seconds] = None) -> Optional[str]:
        """Block until the lock is lost (answers the reason) or ``timeout`` passes (None)."""
        return self._n.wait_lost(self._aio, timeout)
    wait_lost_async = _awaitable(wait_lost)

    def fenced_set(self, key: str, value: Union[bytes, str]) -> FencedWrite:
        """Store ``value`` under ``key`` with this acquisition's fence. Refused (falsy answer,
        with ``latest`` and ``stored``) once a later holder has written."""
        return self._n.fenced_set(self._aio, key, value)
    fenced_set_async = _awaitable(fenced_set)

    def fenced_get(self, key: str) -> Optional[Tuple[bytes, int]]:
        """The value under ``key`` and the fence it was written with, or None."""
        return self._n.fenced_get(self._aio, key)
    fenced_get_async = _awaitable(fenced_get)

    def __enter__(self) -> "Lock":
        if not self.acquire():
            raise self._n.busy()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    async def __aenter__(self) -> "Lock":
        if not await self.acquire_async():
            raise self._n.busy()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release_async()


__all__ = ["DEFAULT_URL", "Client", "Lock", "LockBusy"]
