"""The gateway as a real server process, for tests that kill, stop and restart it.

:class:`GatewayProcess` runs ``gateway.py serve`` (the same program as the
``complaint-gateway`` console script) with settings from ``GATEWAY_*``
environment variables only: the test's own environment minus any ``GATEWAY_*``
variable, plus its own. The process's output goes to a log file, which is
added to the report of a test that fails.

Fixtures (import them into a test module to use them):

* ``make_gateway_process(start=True, **env)``: a new process with both channels
  configured with the constants of ``tests.conftest``, its own data directory,
  a free port and the JSON Lines sink; ``env`` adds or overrides variables
  (``GATEWAY_KAFKA__BOOTSTRAP_SERVERS=...``). Every process is stopped at teardown.
* ``gateway_process``: one such process with the defaults, started.

:func:`send_wechat_complaints` sends many signed WeChat pushes at once, as
WeChat does during a rush, and tells which were acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

import gateway
from schemas import record_id_for
from service.senders import WeChatMode, WeChatPush, WeChatSender, wechat_text
from tests.brokers import free_port
from tests.conftest import STORE_SECRET, WECHAT_AES_KEY, WECHAT_APP_ID, WECHAT_TOKEN

GATEWAY_SCRIPT = Path(gateway.__file__)
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0  # the server drains the outbox for up to 5 s after SIGTERM


class GatewayProcess:
    """One ``gateway.py serve`` process; :meth:`restart` keeps its port and data directory."""

    def __init__(
        self, data_dir: Path, env: Mapping[str, str], log_path: Path, port: int | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env: dict[str, str] = {
            "GATEWAY_DATA_DIR": str(data_dir),
            "GATEWAY_HTTP__HOST": "127.0.0.1",
            "GATEWAY_HTTP__PORT": str(self.port),
            **env,
        }
        self.returncodes: list[int] = []
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"GatewayProcess({self.base_url}, pid={self.pid})"

    # -- where things are ---------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "outbox.sqlite3"

    @property
    def jsonl_path(self) -> Path:
        configured = self.env.get("GATEWAY_JSONL__PATH")
        return Path(configured) if configured else self.data_dir / "complaints.jsonl"

    def full_env(self) -> dict[str, str]:
        """The environment the process gets: ours minus ``GATEWAY_*``, plus :attr:`env`."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        return inherited | self.env

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Spawn the server and return once ``GET /healthz`` answers 200."""
        assert not self.running, f"{self} is already running"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"==== starting gateway on port {self.port} ====\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [sys.executable, str(GATEWAY_SCRIPT), "serve"],
                cwd=self.data_dir.parent,
                env=self.full_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    self._forget(code)
                    raise RuntimeError(
                        f"the gateway exited with {code} while starting:\n{self.log_text()}"
                    )
                try:
                    if client.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise TimeoutError(
                        f"the gateway did not answer /healthz within {timeout}s:\n{self.log_text()}"
                    )
                time.sleep(0.05)

    def kill(self) -> int:
        """SIGKILL, as a crash or the OOM killer would; returns the exit code."""
        process = self._require()
        process.send_signal(signal.SIGKILL)
        return self._forget(process.wait(STOP_TIMEOUT))

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, as an orchestrator would, and wait; SIGKILL after ``timeout``."""
        process = self._require()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            self._forget(-signal.SIGKILL)
            raise TimeoutError(f"the gateway did not stop within {timeout}s of SIGTERM") from None
        return self._forget(code)

    def restart(self) -> None:
        if self.running:
            self.stop()
        self.start()

    def _require(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, f"{self} is not running"
        return self._process

    def _forget(self, code: int) -> int:
        self._process = None
        self.returncodes.append(code)
        with self.log_path.open("ab") as log:
            log.write(f"==== gateway exited with {code} ====\n".encode())
        return code

    # -- other subcommands and what the process left on disk ---------------------------

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run another subcommand (``quarantine``, ``replay``...) with the same settings."""
        return subprocess.run(
            [sys.executable, str(GATEWAY_SCRIPT), *args],
            cwd=self.data_dir.parent,
            env=self.full_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def outbox_rows(self) -> dict[str, str | None]:
        """record_id → sent_at of every record in the outbox database (read-only)."""
        uri = f"{self.outbox_path.as_uri()}?mode=ro"
        with sqlite3.connect(uri, uri=True) as conn:
            return dict(conn.execute("SELECT record_id, sent_at FROM outbox ORDER BY seq"))

    def stream_lines(self) -> list[bytes]:
        """The complete lines of the JSON Lines stream (not one being written right now)."""
        try:
            data = self.jsonl_path.read_bytes()
        except FileNotFoundError:
            return []
        return data[: data.rfind(b"\n") + 1].splitlines()

    def published(self) -> list[dict[str, Any]]:
        """Every record in the JSON Lines stream, in file order (repeats included)."""
        return [json.loads(line) for line in self.stream_lines()]


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        time.sleep(interval)


def channel_env() -> dict[str, str]:
    """Both channels, configured through the environment with the test constants."""
    return {
        "GATEWAY_CONNECTORS__WECHAT__TOKEN": WECHAT_TOKEN,
        "GATEWAY_CONNECTORS__WECHAT__ENCODING_AES_KEY": WECHAT_AES_KEY,
        "GATEWAY_CONNECTORS__WECHAT__APP_ID": WECHAT_APP_ID,
        "GATEWAY_CONNECTORS__STORE__SECRET": STORE_SECRET,
    }


# -- traffic ------------------------------------------------------------------------------

WECHAT = WeChatSender(WECHAT_TOKEN, WECHAT_AES_KEY, WECHAT_APP_ID)
OPENID = "oProcTestUserAbCdEfGhIjKlMnOp"


def wechat_record_id(msg_id: int) -> str:
    return record_id_for("wechat", str(msg_id))


def wechat_push(
    msg_id: int, content: str | None = None, *, openid: str = OPENID, mode: WeChatMode = "plain"
) -> WeChatPush:
    """A signed text push as WeChat sends it now (its retries repeat it unchanged)."""
    now = int(time.time())
    xml = wechat_text(openid, content or f"投诉 #{msg_id}：热水器漏水", msg_id, now)
    return WECHAT.push(xml, mode=mode, timestamp=now, nonce=f"n{msg_id}")


async def send_wechat_complaints(
    base_url: str,
    msg_ids: Iterable[int],
    *,
    concurrency: int = 50,
    after_answer: Callable[[int], None] | None = None,
) -> dict[int, str]:
    """POST one text complaint per MsgId, ``concurrency`` at a time.

    Returns MsgId → ``"ack"`` (200 "success": the gateway took it) or what went
    wrong instead (another status, or the transport error of a dead server).
    ``after_answer(n)`` is called after the n-th acknowledgement, e.g. to kill the server.
    """
    outcomes: dict[int, str] = {}
    acks = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=15.0, limits=limits) as client:

        async def one(msg_id: int) -> None:
            nonlocal acks
            push = wechat_push(msg_id)
            try:
                response = await client.post(
                    "/webhooks/wechat", params=push.params, content=push.body
                )
            except httpx.TransportError as exc:
                outcomes[msg_id] = type(exc).__name__
                return
            if (response.status_code, response.text) == (200, "success"):
                outcomes[msg_id] = "ack"
                acks += 1
                if after_answer is not None:
                    after_answer(acks)
            else:
                outcomes[msg_id] = f"{response.status_code} {response.text}"

        await asyncio.gather(*(one(msg_id) for msg_id in msg_ids))
    return outcomes


def acknowledged(outcomes: Mapping[int, str]) -> set[str]:
    """The record ids of the complaints the gateway answered 200."""
    return {wechat_record_id(m) for m, outcome in outcomes.items() if outcome == "ack"}


# -- pytest plumbing ----------------------------------------------------------------------


class LogsOnFailure:
    """A pytest plugin, registered for one test, that adds log files to its failure report."""

    def __init__(self, item: pytest.Item) -> None:
        self.item = item
        self.logs: dict[str, Callable[[], str]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if item is self.item and getattr(report, "failed", False):
            for title, text in self.logs.items():
                report.sections.append((title, text()))
        return report

    @classmethod
    def attach(cls, request: pytest.FixtureRequest, title: str, text: Callable[[], str]) -> None:
        """Show ``text()`` in the report if the requesting test fails."""
        name = f"logs-on-failure-{id(request.node)}"
        plugin = request.config.pluginmanager.get_plugin(name)
        if plugin is None:
            plugin = cls(request.node)
            request.config.pluginmanager.register(plugin, name)
            request.addfinalizer(lambda: request.config.pluginmanager.unregister(name=name))
        plugin.logs[title] = text


@pytest.fixture
def make_gateway_process(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., GatewayProcess]]:
    processes: list[GatewayProcess] = []

    def make(start: bool = True, **env: str) -> GatewayProcess:
        name = f"gateway{len(processes) or ''}"
        process = GatewayProcess(
            tmp_path / name / "data", channel_env() | env, tmp_path / f"{name}.log"
        )
        processes.append(process)
        LogsOnFailure.attach(request, f"{name} log ({process.log_path})", process.log_text)
        if start:
            process.start()
        return process

    yield make
    for process in processes:
        if process.running:
            process.stop()


@pytest.fixture
def gateway_process(make_gateway_process: Callable[..., GatewayProcess]) -> GatewayProcess:
    return make_gateway_process()
