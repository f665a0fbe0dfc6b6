"""Fixtures: a private redis-server per test (unix socket and a free port, never 6379) and a
client connected to it. The tests import `tickq` as installed (./dev test builds it into
.venv-test), never from the source tree."""

from __future__ import annotations

from typing import Iterator

import pytest
from helpers import Redis

import tickq


@pytest.fixture
def redis() -> Iterator[Redis]:
    server = Redis()
    yield server
    server.stop()


@pytest.fixture
def client(redis: Redis) -> tickq.Client:
    return tickq.Client(redis.url)
