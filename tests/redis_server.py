"""A private ``redis-server`` for tests and benchmarks, on a free loopback port.

:class:`RedisServer` runs ``redis-server --port N --bind 127.0.0.1 --save ""
--appendonly no`` (nothing written to disk) in a short-named directory under
``/tmp``, waits until it answers ``PING``, and :meth:`~RedisServer.stop` kills
it and removes the directory. :meth:`~RedisServer.paused` freezes it with
SIGSTOP (it keeps its port: connections hang, as behind a dead network) until
SIGCONT. A machine's own Redis on 6379 is never touched.

Fixtures (import them into a test module to use them):

* ``redis_server``: one server for the session; tests keep apart by key prefix;
* ``start_redis_server(password=None)``: a fresh server for one test (which
  may pause or stop it), stopped at teardown.

Without the ``redis-server`` binary the test is skipped, or fails in CI
(``CI=true``), which must run it. The server's log is added to the report of
a failing test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.brokers import free_port
from tests.conftest import need_binary
from tests.process import LogsOnFailure

REDIS_SERVER = "redis-server"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class RedisServer:
    """One ``redis-server`` process; ``url`` includes the password when there is one."""

    def __init__(self, binary: str, password: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="redis-", dir="/tmp"))
        self.port = free_port()
        self.password = password
        self.log_path = self.root / "redis.log"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.root)]
        argv += ["--logfile", str(self.log_path), "--daemonize", "no"]
        if password is not None:
            argv += ["--requirepass", password]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )

    def __repr__(self) -> str:
        return f"RedisServer(127.0.0.1:{self.port}, pid={self.process.pid})"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, binary: str, password: str | None = None) -> RedisServer:
        server = cls(binary, password)
        try:
            server.wait_until_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def wait_until_ready(self) -> None:
        """Until the server answers PING (``-NOAUTH`` counts: it is serving)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}:\n{self.log_text()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"redis-server did not answer on {self.port}:\n{self.log_text()}"
                )
            time.sleep(0.02)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Freeze the server (SIGSTOP) for the block; it resumes (SIGCONT) after, also on error."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        """Kill the server (nothing to save) and remove its directory; safe to call twice."""
        try:
            if self.process.poll() is None:
                self.process.kill()  # also ends a stopped (SIGSTOP) process
            self.process.wait(STOP_TIMEOUT)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def redis_binary() -> str:
    """The ``redis-server`` path; skips the test (fails it in CI) when it is missing."""
    return need_binary(shutil.which(REDIS_SERVER), "redis-server (apt-get install redis-server)")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer.start(redis_binary())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_redis_server(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., RedisServer]]:
    """``start(password=None)``: a fresh server for this test only."""
    started: list[RedisServer] = []

    def start(password: str | None = None) -> RedisServer:
        server = RedisServer.start(redis_binary(), password)
        started.append(server)
        LogsOnFailure.attach(request, f"redis-server log ({server.root})", server.log_text)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
