"""Fixtures: a private redis-server per test (unix socket and a free port, never 6379) and a
client connected to it. The tests import `tickq` as installed (./dev test builds it into
.venv-test), never from the source tree."""

from __future__ import annotations

from typing import Iterator

import pytest
from helpers import Redis

import tickq


def pytest_configure(config: pytest.Config) -> None:
    # ./dev test runs the suite four tests at a time (pytest-xdist), then these one by one.
    config.addinivalue_line(
        "markers", "alone: a test whose timing depends on having the CPU to itself; ./dev runs it after the others, alone"
    )


@pytest.fixture
def redis() -> Iterator[Redis]:
    server = Redis()
    yield server
    server.stop()


@pytest.fixture
def client(redis: Redis) -> tickq.Client:
    return tickq.Client(redis.url)
