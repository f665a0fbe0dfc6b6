"""The worker: Python handlers on tickq's Rust worker.

Claims, leases, renewals, time limits, retries and acks all stay in Rust, on threads that never
need the GIL. Plain functions run on a pool of Python threads; ``async def`` handlers run as
tasks on an asyncio loop. See docs/python.md.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar, Union

from . import _tickq
from ._client import Client

log = logging.getLogger("tickq")

Seconds = Union[int, float, timedelta, str]
F = TypeVar("F", bound=Callable[..., Any])

#: How often the supervisor looks at the worker (housekeeping, signals, the end).
_TICK = 0.1


class Retry(Exception):
    """Raise in a handler to fail this attempt and retry: after ``after`` (seconds or a
    timedelta), or by the worker's retry policy when ``after`` is None. Attempts still count
    toward the job's ``max_attempts``."""

    _tickq_action = "retry"

    def __init__(self, message: str = "retry requested", *, after: Optional[Seconds] = None) -> None:
        super().__init__(message)
        self.after = after


class Kill(Exception):
    """Raise in a handler to fail the job for good: it goes to dead without more attempts."""

    _tickq_action = "kill"

    def __init__(self, reason: str = "killed by its handler") -> None:
        super().__init__(reason)


@dataclass(frozen=True)
class ExponentialBackoff:
    """Wait ``base * factor**(attempt-1)`` (at most ``max``) before a retry, the last
    ``jitter`` fraction of it random. The default policy."""

    base: Seconds = 1.0
    factor: float = 2.0
    max: Seconds = 3600.0
    jitter: float = 0.5
    _tickq_retry: ClassVar[str] = "exponential"


@dataclass(frozen=True)
class FixedBackoff:
    """The same wait before every retry."""

    delay: Seconds
    _tickq_retry: ClassVar[str] = "fixed"


def _queues(queues: Union[Mapping[str, Union[int, Mapping[str, int]]], Iterable[str], str]) -> List[Tuple[str, int, int]]:
    """``(name, weight, shards)`` per queue, from the forms :class:`Worker` takes."""
    if isinstance(queues, str):
        return [(queues, 1, 1)]
    if not isinstance(queues, Mapping):
        return [(str(q), 1, 1) for q in queues]
    out = []
    for name, spec in queues.items():
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"weight", "shards"}
            if unknown:
                raise _tickq.InvalidArgument(f"queue {name!r}: unknown keys {sorted(unknown)}; known keys: weight, shards")
            out.append((str(name), int(spec.get("weight", 1)), int(spec.get("shards", 1))))
        else:
            out.append((str(name), int(spec), 1))
    return out


class Worker:
    """A pool of job slots that claims from ``queues`` and runs the handlers registered with
    :meth:`handler`.

    ``queues``: ``{"name": weight}``, a list of names (weight 1) or one name; a sharded queue
    (:meth:`Client.shard_queue`) as ``{"name": {"weight": W, "shards": K}}``, claimed from
    every shard without starving any. ``concurrency``:
    most jobs running at once (also the size of the thread pool for plain-function handlers).
    ``lease``: lease of a claimed job, renewed every third of it. ``job_timeout``: time limit
    of an attempt when the job sets none. ``shutdown_timeout``: how long a graceful shutdown
    waits for running jobs before handing them back. ``stop_grace``: how long a stopped async
    handler may clean up. ``retry``: :class:`ExponentialBackoff` (default) or
    :class:`FixedBackoff`. ``scheduler=True`` also fires due schedules from this process (run
    one on every node; there is no leader)."""

    def __init__(
        self,
        client: Client,
        queues: Union[Mapping[str, Union[int, Mapping[str, int]]], Iterable[str], str] = "default",
        *,
        concurrency: int = 16,
        lease: Seconds = 30.0,
        job_timeout: Seconds = 1800.0,
        shutdown_timeout: Seconds = 25.0,
        stop_grace: Seconds = 1.0,
        node: Optional[str] = None,
        retry: Union[ExponentialBackoff, FixedBackoff, None] = None,
        scheduler: bool = False,
        claim_batch: Optional[int] = None,
    ) -> None:
        self._queues = _queues(queues)
        self._client = client
        self._concurrency = concurrency
        self._lease = lease
        self._job_timeout = job_timeout
        self._shutdown_timeout = shutdown_timeout
        self._stop_grace = stop_grace
        self._node = node
        self._retry = retry
        self._scheduler = scheduler
        self._claim_batch = claim_batch
        self._handlers: Dict[str, Callable[..., Any]] = {}
        self._native: Optional[_tickq.NativeWorker] = None
        self._threads: List[threading.Thread] = []
        self._signals = 0

    def handler(self, kind: str) -> Callable[[F], F]:
        """Register the decorated function for jobs of ``kind``. It gets a :class:`tickq.Job`;
        what it returns is kept as the job's result (None: nothing; str as is; else JSON).
        Raising :class:`Retry` or :class:`Kill` decides what happens next; any other exception
        fails the attempt, which is retried by policy."""

        def register(fn: F) -> F:
            if self._native is not None:
                raise RuntimeError("register handlers before the worker runs")
            self._handlers[kind] = fn
            return fn

        return register

    @property
    def id(self) -> Optional[str]:
        """The id this worker holds leases under (``node:random``), once running."""
        return self._native.id if self._native is not None else None

    def stats(self) -> Dict[str, int]:
        """What this worker did so far: completed, failed, stale, abandoned, handed_back,
        recovered (and ticks_fired with the scheduler)."""
        if self._native is None:
            return {}
        return self._native.stats()

    def shutdown(self) -> None:
        """Stop claiming, let running jobs finish (up to ``shutdown_timeout``), hand the rest
        back. What the first SIGTERM/SIGINT does."""
        if self._native is not None:
            self._native.shutdown()

    def force(self) -> None:
        """Stop now: running jobs are handed back without charging an attempt. What a second
        SIGTERM/SIGINT does."""
        if self._native is not None:
            self._native.force()

    # ---- running ----

    def _build(self) -> _tickq.NativeWorker:
        if self._native is not None:
            raise RuntimeError("a worker runs once; make a new one")
        if not self._handlers:
            raise _tickq.InvalidArgument("register at least one handler with @worker.handler(kind)")
        handlers = [(kind, fn, inspect.iscoroutinefunction(fn)) for kind, fn in self._handlers.items()]
        # The native worker keeps the spawner for as long as it lives: a weak reference keeps
        # it from holding this object in a cycle the garbage collector cannot see.
        me = weakref.ref(self)

        def spawn() -> None:
            worker = me()
            if worker is not None:
                worker._spawn_thread()

        self._native = _tickq.NativeWorker(
            self._client._n,
            self._queues,
            handlers,
            spawn,
            self._concurrency,
            self._lease,
            self._job_timeout,
            self._shutdown_timeout,
            self._stop_grace,
            self._node,
            self._retry,
            self._scheduler,
            self._claim_batch,
        )
        return self._native

    def _has_sync(self) -> bool:
        return any(not inspect.iscoroutinefunction(fn) for fn in self._handlers.values())

    def _spawn_thread(self) -> None:
        native = self._native
        assert native is not None
        t = threading.Thread(target=native.serve, name=f"tickq-handler-{len(self._threads)}", daemon=True)
        self._threads.append(t)
        t.start()

    def _start_threads(self) -> None:
        if self._has_sync():
            for _ in range(self._concurrency):
                self._spawn_thread()

    def _on_signal(self, *_: object) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("shutting down: finishing running jobs (signal again to force)")
            self.shutdown()
        else:
            log.warning("forced shutdown: handing running jobs back")
            self.force()

    def _finish(self) -> None:
        native = self._native
        assert native is not None
        native.close()
        # Threads stuck in a handler that never returns are daemons: they do not hold the
        # process up, and the Rust side has already given their jobs up.
        deadline = time.monotonic() + 2
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        native.result()

    def run(self) -> None:
        """Run until :meth:`shutdown` (or SIGTERM/SIGINT, when called from the main thread),
        then drain and return. ``async def`` handlers get an asyncio loop on a thread of their
        own."""
        native = self._build()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        loop: Optional[asyncio.AbstractEventLoop] = None
        loop_thread: Optional[threading.Thread] = None
        started = False
        try:
            if native.has_async:
                loop = asyncio.new_event_loop()
                loop_thread = threading.Thread(target=loop.run_forever, name="tickq-asyncio", daemon=True)
                loop_thread.start()
                native.start(loop, _Dispatcher(loop).dispatch)
            else:
                native.start()
            started = True
            self._start_threads()
            while not native.wait(_TICK):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            # Left by an exception (KeyboardInterrupt while not in charge of signals, say):
            # hand the running jobs back rather than leave them to their leases.
            if started and not native.wait(0):
                native.force()
                while not native.wait(_TICK):
                    pass
            if loop is not None and loop_thread is not None:
                loop.call_soon_threadsafe(loop.stop)
                loop_thread.join(timeout=5)
                if not loop.is_running():
                    loop.close()
            self._finish()

    async def run_async(self) -> None:
        """:meth:`run` inside a running asyncio loop: ``async def`` handlers run on it; plain
        ones still run on the thread pool. Signal handlers are installed on the loop when it runs
        in the main thread."""
        loop = asyncio.get_running_loop()
        native = self._build()
        installed = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self._on_signal)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        started = False
        try:
            if native.has_async:
                native.start(loop, _Dispatcher(loop).dispatch)
            else:
                native.start()
            started = True
            self._start_threads()
            while not native.wait(0):
                await asyncio.sleep(_TICK / 2)
        except asyncio.CancelledError:
            if started:
                native.force()
                while not native.wait(_TICK):
                    pass
            raise
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            self._finish()


class _Dispatcher:
    """Runs async handlers as tasks on ``loop``: the pump thread calls :meth:`dispatch` there
    with new jobs and the ids of jobs the worker stopped."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.tasks: Dict[int, "asyncio.Task[None]"] = {}

    def dispatch(self, slots: List[_tickq.Slot], cancels: List[int]) -> None:
        for slot in slots:
            task = self.loop.create_task(self._run(slot))
            self.tasks[slot.id] = task
            task.add_done_callback(self._forget(slot.id))
        for i in cancels:
            running = self.tasks.get(i)
            if running is not None:
                running.cancel()

    def _forget(self, id: int) -> Callable[["asyncio.Task[None]"], None]:
        def forget(_task: "asyncio.Task[None]") -> None:
            self.tasks.pop(id, None)

        return forget

    @staticmethod
    async def _run(slot: _tickq.Slot) -> None:
        try:
            result = await slot.handler(slot.job)
        except asyncio.CancelledError:
            return  # the worker stopped it; it no longer waits for an answer
        except BaseException as e:  # noqa: BLE001 - every exception is an outcome
            slot.err(e)
            return
        slot.ok(result)


__all__ = ["ExponentialBackoff", "FixedBackoff", "Kill", "Retry", "Worker"]
