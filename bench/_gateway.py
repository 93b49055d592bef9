"""A gateway under test: ``complaint-gateway serve`` as a real server process, and its ``/metrics``.

The process is configured only through ``GATEWAY_*`` environment variables
(none is inherited from the caller's environment): its own data directory,
loopback HTTP on a free port, the run's broker without idempotence (Tansu
has no InitProducerId), a topic per scenario, the connectors' sections as
``GATEWAY_CONNECTORS__<NAME>__<FIELD>``, and whatever else a scenario adds
(``env``: notifiers, notification topics). A scenario measures through
``/metrics``: ``gateway_records_published_total`` is the count of records
the sink (Kafka) acknowledged; ``gateway_notifications_total`` counts the
notifications by outcome.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench._child import ROOT

HOST = "127.0.0.1"

_SAMPLE = re.compile(rb"^(gateway_\w+?)(?:\{([^}]*)\})?\s+([0-9.eE+-]+|NaN)\s*$", re.M)
_LABEL = re.compile(rb'(\w+)="((?:[^"\\]|\\.)*)"')
#: Labels joined in this order rather than as exposed (prometheus_client sorts them).
_LABEL_ORDER = {b"gateway_notifications_total": [b"channel", b"provider", b"status", b"reason"]}


@dataclass(frozen=True)
class Metrics:
    """The counters a benchmark checks, by their one label, from one scrape of ``/metrics``."""

    published: dict[str, float] = field(default_factory=dict)  # by record channel
    accepted: dict[str, float] = field(default_factory=dict)  # by connector
    duplicates: dict[str, float] = field(default_factory=dict)  # by connector
    refused: dict[str, float] = field(default_factory=dict)  # "connector:reason"
    ignored: dict[str, float] = field(default_factory=dict)  # "connector:reason"
    quarantined: dict[str, float] = field(default_factory=dict)  # "connector:reason"
    publish_failures: float = 0.0
    #: "channel:provider:status:reason" (gateway_notifications_total)
    notifications: dict[str, float] = field(default_factory=dict)
    notification_jobs: dict[str, float] = field(default_factory=dict)  # by state

    @property
    def published_total(self) -> float:
        return sum(self.published.values())

    def notifications_with(self, status: str) -> float:
        """Notification attempts that ended with ``status`` (sent, failed, skipped, unknown)."""
        return sum(v for k, v in self.notifications.items() if k.split(":")[2:3] == [status])

    @classmethod
    def parse(cls, text: bytes) -> Metrics:
        by_name: dict[bytes, dict[str, float]] = defaultdict(dict)
        for name, labels, value in _SAMPLE.findall(text):
            pairs = dict(_LABEL.findall(labels or b""))
            order = _LABEL_ORDER.get(name, list(pairs))
            key = ":".join(pairs.get(label, b"").decode() for label in order)
            by_name[name][key] = by_name[name].get(key, 0.0) + float(value)
        return cls(
            published=by_name[b"gateway_records_published_total"],
            accepted=by_name[b"gateway_records_accepted_total"],
            duplicates=by_name[b"gateway_duplicates_total"],
            refused=by_name[b"gateway_webhooks_refused_total"],
            ignored=by_name[b"gateway_events_ignored_total"],
            quarantined=by_name[b"gateway_payloads_quarantined_total"],
            publish_failures=sum(by_name[b"gateway_publish_failures_total"].values()),
            notifications=by_name[b"gateway_notifications_total"],
            notification_jobs=by_name[b"gateway_notification_jobs"],
        )


async def scrape(port: int) -> Metrics:
    """One ``GET /metrics`` over a fresh connection."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
    try:
        writer.write(
            f"GET /metrics HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    return Metrics.parse(data)


def scrape_now(port: int) -> Metrics:
    return asyncio.run(scrape(port))


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Per label, what a counter gained between two scrapes (unmoved labels left out)."""
    out = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return {k: v for k, v in sorted(out.items()) if v}


def registered_connectors() -> set[str]:
    """The connectors a gateway started from this environment can serve (its entry points)."""
    from service.registry import Registry

    return set(Registry.from_entry_points().connectors)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    """One ``complaint-gateway serve``; ``started_at`` is its spawn time (``perf_counter``)."""

    def __init__(
        self,
        work: Path,
        name: str,
        *,
        bootstrap: str,
        topic: str,
        connectors: dict[str, dict[str, str]],
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.data_dir = work / f"data-{name}"
        self.log_path = work / f"gateway-{name}.log"
        self.env = {
            "GATEWAY_DATA_DIR": str(self.data_dir),
            "GATEWAY_HTTP__HOST": HOST,
            "GATEWAY_HTTP__PORT": str(self.port),
            "GATEWAY_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "GATEWAY_KAFKA__ENABLE_IDEMPOTENCE": "false",
            "GATEWAY_KAFKA__TOPIC": topic,
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
        for connector, section in connectors.items():
            for key, value in section.items():
                self.env[f"GATEWAY_CONNECTORS__{connector.upper()}__{key.upper()}"] = value
        self.env.update(env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        return self._process.pid if self._process else 0

    def start(self, ready_timeout: float = 30) -> float:
        """Spawn the process and wait for ``/healthz``; returns the seconds that took."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(self.env)
        self.started_at = time.perf_counter()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                _command(),
                env=env,
                cwd=self.log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_http(self.port, "/healthz", ready_timeout)
        return time.perf_counter() - self.started_at

    def check_running(self) -> None:
        if self._process is None or self._process.poll() is not None:
            code = self._process.returncode if self._process else None
            raise RuntimeError(f"gateway exited ({code}); see {self.log_path}")

    def metrics(self) -> Metrics:
        return scrape_now(self.port)

    def wait_published(self, target: float, timeout: float, interval: float = 0.1) -> Metrics:
        """Scrape until ``target`` records are published or ``timeout`` passes; the last scrape."""
        deadline = time.monotonic() + timeout
        while True:
            metrics = self.metrics()
            if metrics.published_total >= target or time.monotonic() >= deadline:
                return metrics
            self.check_running()
            time.sleep(interval)

    def stop(self) -> None:
        stop_process(self._process, signal.SIGINT)


def wait_http(port: int, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                sock.sendall(
                    f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
                )
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"gateway did not answer {path} on port {port} within {timeout}s")


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    """Signal ``proc`` and wait for it; kill it if it lingers past 20 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _command() -> list[str]:
    script = Path(sys.executable).parent / "complaint-gateway"
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, str(ROOT / "gateway.py"), "serve"]
