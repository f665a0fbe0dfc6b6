"""tickq for Python: a job queue, scheduler and locks on Redis, on tickq's Rust core.

The scripts, leases, fences, retries, schedules and locks are the Rust library's own (this
package wraps it; it does not reimplement it), so Python workers, Rust workers and the
``tickq`` binary share the same queues.

    import tickq
    client = tickq.Client("redis://127.0.0.1:6379")
    client.enqueue("emails", "welcome", {"user": 7}, delay=3600)

    worker = tickq.Worker(client, queues={"emails": 1}, concurrency=16)

    @worker.handler("welcome")
    def welcome(job):
        ...

    worker.run()   # until SIGTERM/SIGINT; `await worker.run_async()` under asyncio

See docs/python.md for the tour.
"""

from __future__ import annotations

from ._tickq import (
    AlreadyExists,
    Conflict,
    Corrupt,
    Enqueued,
    Error,
    FencedWrite,
    InvalidArgument,
    Job,
    JobInfo,
    JobStopped,
    LockBusy,
    NotFound,
    PartialEnqueue,
    RedisFull,
    ScheduleInfo,
    Shutdown,
    Timeout,
    Unavailable,
    __version__,
)
from ._client import DEFAULT_URL, Client, Lock
from ._worker import ExponentialBackoff, FixedBackoff, Kill, Retry, Worker

__all__ = [
    "DEFAULT_URL",
    "AlreadyExists",
    "Client",
    "Conflict",
    "Corrupt",
    "Enqueued",
    "Error",
    "ExponentialBackoff",
    "FencedWrite",
    "FixedBackoff",
    "InvalidArgument",
    "Job",
    "JobInfo",
    "JobStopped",
    "Kill",
    "Lock",
    "LockBusy",
    "NotFound",
    "PartialEnqueue",
    "RedisFull",
    "Retry",
    "ScheduleInfo",
    "Shutdown",
    "Timeout",
    "Unavailable",
    "Worker",
    "__version__",
]
