"""Test helpers: a private redis-server (unix socket and a free port, never 6379), the `tickq`
binary, a worker on a background thread, and polling with a deadline instead of sleeping."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List, Optional, TypeVar

import pytest

import tickq

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
LIMIT = 20.0


def wait_for(what: str, check: Callable[[], Optional[T]], limit: float = LIMIT) -> T:
    """Poll `check` until it answers something truthy; fail after `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit}s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """One redis-server on a unix socket and a TCP port of 127.0.0.1."""

    def __init__(self) -> None:
        # Short path: a unix socket path must fit in 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="tq-", dir="/tmp")
        self.socket = os.path.join(self.dir, "redis.sock")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                os.environ.get("TICKQ_REDIS_SERVER", "redis-server"),
                "--port", str(self.port), "--bind", "127.0.0.1",
                "--unixsocket", self.socket, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("redis-server to listen", self._up, 10)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"redis-server exited with {self.proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(self.socket)
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"redis+unix://{self.socket}"

    @property
    def tcp_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def running(worker: tickq.Worker) -> Iterator[tickq.Worker]:
    """Run `worker` on a background thread for the block, then shut it down."""
    errors = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    wait_for("the worker to start", lambda: worker.id)
    try:
        yield worker
    finally:
        worker.shutdown()
        t.join(LIMIT)
        assert not t.is_alive(), "the worker did not stop"
        if errors:
            raise errors[0]


def tickq_bin() -> str:
    """The `tickq` binary: TICKQ_BIN, or the workspace's debug build."""
    path = os.environ.get("TICKQ_BIN") or str(REPO / "target" / "debug" / "tickq")
    if not os.path.exists(path):
        pytest.fail(f"no tickq binary at {path}: run `cargo build -p tickq-cli` or set TICKQ_BIN")
    return path


def python_process(script: str, *args: str, **kw) -> subprocess.Popen:
    """Run `script` (Python source) in a fresh interpreter of this environment."""
    return subprocess.Popen([sys.executable, "-c", script, *args], **kw)


def command(port: int, *words: str) -> bytes:
    """One Redis command over a plain socket (cluster setup needs no Redis client)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"*{len(words)}\r\n".encode() + b"".join(f"${len(w)}\r\n{w}\r\n".encode() for w in words))
        data = s.recv(1 << 16)
        if data.startswith(b"$"):
            size = int(data[1 : data.index(b"\r\n")])
            while len(data) < data.index(b"\r\n") + 2 + size:
                data += s.recv(1 << 16)
        return data


class Cluster:
    """A Redis Cluster of `n` primaries on 127.0.0.1, formed by hand as the Rust testkit does:
    slots split evenly, distinct config epochs, every pair met directly."""

    SLOTS = 16384

    def __init__(self, n: int = 3) -> None:
        self.dir = tempfile.mkdtemp(prefix="tqc-", dir="/tmp")
        self.ports: List[int] = []
        self.procs: List[subprocess.Popen] = []
        while len(self.ports) < n:
            port = free_port()
            if port + 10000 > 65535 or not _free(port + 10000) or port in self.ports:
                continue
            self.ports.append(port)
        for i, port in enumerate(self.ports):
            self.procs.append(
                subprocess.Popen(
                    [
                        os.environ.get("TICKQ_REDIS_SERVER", "redis-server"),
                        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--dir", self.dir, "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{i}.conf",
                        "--cluster-node-timeout", "5000", "--cluster-announce-ip", "127.0.0.1",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.ports:
            wait_for(f"cluster node {port} to start", lambda: _pong(port), 10)
        for i, port in enumerate(self.ports):
            first, last = i * self.SLOTS // n, (i + 1) * self.SLOTS // n - 1
            assert command(port, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last)).startswith(b"+OK")
            assert command(port, "CLUSTER", "SET-CONFIG-EPOCH", str(i + 1)).startswith(b"+OK")
        for i, port in enumerate(self.ports):
            for peer in self.ports[i + 1 :]:
                command(port, "CLUSTER", "MEET", "127.0.0.1", str(peer))
        wait_for("the cluster to form", self._formed, 20)

    def _formed(self) -> bool:
        for port in self.ports:
            if b"cluster_state:ok" not in command(port, "CLUSTER", "INFO"):
                return False
            nodes = command(port, "CLUSTER", "NODES").decode()
            if sum(" connected " in line and "master" in line for line in nodes.splitlines()) != len(self.ports):
                return False
        return True

    @property
    def url(self) -> str:
        return "redis-cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _pong(port: int) -> bool:
    try:
        return command(port, "PING").startswith(b"+PONG")
    except OSError:
        return False
