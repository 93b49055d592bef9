"""Both ends of the gateway's notification path: the SMS provider and the ticket system.

    python -m bench._providers --port P      # the fake provider, as a child process

The provider is :class:`service.fake_providers.FakeProviders` (Aliyun ``SendSms`` with its
RPC signature checked, WeChat's token and message APIs) under uvicorn with
uvloop and httptools, configured with the credentials and templates of
:mod:`tests.provider_server`, which :func:`notifier_env` hands the gateway
too. A process of its own keeps its CPU out of the gateway's and the
orchestrator's, and it is measured on its own (:attr:`ProviderProcess.pid`).

Besides the fake's own routes it serves ``GET /_count?requests=I&messages=J``:
what arrived from the I-th SendSms request and the J-th message taken on,
as counts, distinct ``OutId``\\ s and recipients, and a SHA-256 over the
sorted distinct ``OutId``\\ s, so the orchestrator can compare them with the
notification keys without fetching ``/_messages`` (thousands of texts).

The ticket system's side is Kafka: it reads the complaints it opens tickets
for (:func:`store_complaints`), sends ``StatusUpdate``\\ s (:func:`status_update`,
:func:`produce`, a plain aiokafka producer) and reads the outcomes back
(:func:`outcomes`). Topics are read from the start by explicit assignment,
as :mod:`bench._broker` does (:func:`read_topic`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._child import ROOT
from bench._gateway import HOST, free_port, stop_process, wait_http


def digest(keys: Iterable[str]) -> str:
    """SHA-256 over the sorted distinct ``keys``, one per line."""
    return hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest()


#: The notifier's ``rate_per_second`` and ``burst``: far above what one gateway can send.
SMS_RATE, SMS_BURST = 100_000.0, 1_000


def gateway_env(
    provider: str, status_topic: str, outcomes_topic: str, *, workers: int
) -> dict[str, str]:
    """``GATEWAY_*`` variables connecting a gateway to both ends: the ``aliyun_sms`` notifier
    at the fake provider on ``provider`` (:data:`SMS_RATE`, :data:`SMS_BURST`), the ticket
    system's topics, ``workers`` sends at once, and quiet hours off (start = end), so a run
    works at any hour."""
    from tests.provider_server import notifier_env

    return {
        "GATEWAY_NOTIFICATIONS__API_TOKEN": "bench-status-token-3e9a",
        "GATEWAY_NOTIFICATIONS__STATUS_TOPIC": status_topic,
        "GATEWAY_NOTIFICATIONS__OUTCOMES_TOPIC": outcomes_topic,
        "GATEWAY_NOTIFICATIONS__CONSUMER_GROUP": f"bench-{status_topic}",
        "GATEWAY_NOTIFICATIONS__QUIET_HOURS": '{"start": "00:00", "end": "00:00"}',
        "GATEWAY_NOTIFICATIONS__WORKERS": str(workers),
        **notifier_env(provider),
        "GATEWAY_NOTIFIERS__ALIYUN_SMS__RATE_PER_SECOND": f"{SMS_RATE:g}",
        "GATEWAY_NOTIFIERS__ALIYUN_SMS__BURST": str(SMS_BURST),
    }


class ProviderProcess:
    """``python -m bench._providers`` on a free loopback port; :meth:`stop` ends it."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        return self._process.pid if self._process else 0

    def start(self, ready_timeout: float = 20) -> None:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "bench._providers", "--port", str(self.port)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_http(self.port, "/_count", ready_timeout)

    def count(self, requests: int = 0, messages: int = 0) -> dict[str, Any]:
        """``GET /_count`` from the given positions (see the module docstring)."""
        import urllib.request

        url = f"{self.base_url}/_count?requests={requests}&messages={messages}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            return dict(json.loads(answer.read()))

    def stop(self) -> None:
        stop_process(self._process)


def status_update(record_id: str, ticket_no: str, node: str = "accepted") -> tuple[bytes, bytes]:
    """(key, value) of a ``StatusUpdate`` v1 for the status topic, keyed by record id."""
    update = {
        "record_id": record_id,
        "node": node,
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "ticket_no": ticket_no,
    }
    return record_id.encode(), json.dumps(update).encode()


async def produce(
    bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]
) -> tuple[float, float]:
    """Send ``messages`` and wait for every acknowledgement: the ``perf_counter`` of the first
    send, and the seconds from it until the last acknowledgement."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5)
    await asyncio.wait_for(producer.start(), 15)
    try:
        t0 = time.perf_counter()
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.wait_for(asyncio.gather(*futures), 60)
        return t0, time.perf_counter() - t0
    finally:
        await producer.stop()


def read_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    keep: Callable[[dict[str, bytes], bytes], None],
    done: Callable[[], bool],
    timeout: float = 90,
    quiet_polls: int = 12,
) -> None:
    """Read ``topic`` from the start, ``keep(headers, value)`` each message, until ``done()``
    and two empty polls (or ``quiet_polls`` empty polls without it, or ``timeout`` seconds)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await asyncio.wait_for(consumer.start(), 15)
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
            deadline, empty = time.monotonic() + timeout, 0
            while time.monotonic() < deadline and empty < (2 if done() else quiet_polls):
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                empty = 0 if batches else empty + 1
                for messages in batches.values():
                    for m in messages:
                        keep(dict(m.headers or ()), m.value or b"")
        finally:
            await asyncio.wait_for(consumer.stop(), 15)

    asyncio.run(read())


def store_complaints(bootstrap: str, topic: str, partitions: int, seen: set[str]) -> dict[str, str]:
    """Record id → phone number of the store complaints in ``topic`` not in ``seen``."""
    found: dict[str, str] = {}

    def keep(headers: dict[str, bytes], value: bytes) -> None:
        record_id = headers.get("record_id", b"").decode()
        if headers.get("channel") != b"wechat" and record_id not in seen:
            record = json.loads(value)
            if (record.get("source") or {}).get("connector") == "store":
                found[record_id] = record["customer"]["contacts"].get("phone") or ""

    read_topic(bootstrap, topic, partitions, keep, lambda: False, quiet_polls=2)
    return found


def outcomes(bootstrap: str, topic: str, partitions: int, record_ids: set[str]) -> dict[str, Any]:
    """The outcomes of ``record_ids`` in ``topic``, waiting (bounded) for a ``sent`` one each:
    counts by status, the records they name, and the ``sent`` ones' keys (and their digest)."""
    statuses: dict[str, int] = {}
    sent_keys: list[str] = []
    records: set[str] = set()

    def keep(headers: dict[str, bytes], value: bytes) -> None:
        outcome = json.loads(value)
        if outcome.get("record_id") in record_ids:
            statuses[outcome["status"]] = statuses.get(outcome["status"], 0) + 1
            records.add(outcome["record_id"])
            if outcome["status"] == "sent":
                sent_keys.append(outcome["key"])

    read_topic(bootstrap, topic, partitions, keep, lambda: len(sent_keys) >= len(record_ids))
    return {
        "statuses": statuses,
        "sent": len(sent_keys),
        "distinct_keys": len(set(sent_keys)),
        "keys_digest": digest(sent_keys),
        "records": len(records),
    }


def check_ends(n: int, provider: dict[str, Any], outcomes: dict[str, Any]) -> list[str]:
    """What disagrees with ``n`` notifications sent once each, as both ends saw them.

    ``provider`` is a :meth:`ProviderProcess.count`, ``outcomes`` an :func:`outcomes`: the
    provider must have got ``n`` SendSms with distinct OutIds and taken each, the outcomes
    topic must hold ``n`` ``sent`` outcomes (and nothing else) whose keys are those OutIds.
    """
    p, o, found = provider, outcomes, []
    if not p["requests"] == p["distinct_out_ids"] == p["messages"] == n:
        found.append(
            f"the provider got {p['requests']} SendSms, {p['distinct_out_ids']} distinct "
            f"OutIds, took {p['messages']}; {n} expected"
        )
    if not o["sent"] == o["distinct_keys"] == o["records"] == n or len(o["statuses"]) != 1:
        found.append(
            f"outcomes: {o['statuses']}, {o['distinct_keys']} distinct keys, "
            f"{o['records']} records; {n} sent expected"
        )
    if o["keys_digest"] != p["out_ids_digest"]:
        found.append("the outcomes' keys are not the OutIds the provider got")
    return found


def _serve(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from service.fake_providers import FakeProviders
    from tests.provider_server import (
        ALIYUN_KEY_ID,
        ALIYUN_SECRET,
        SMS_TEMPLATES,
        WECHAT_APP_ID,
        WECHAT_SECRET,
    )

    fake = FakeProviders(ALIYUN_KEY_ID, ALIYUN_SECRET, WECHAT_APP_ID, WECHAT_SECRET, SMS_TEMPLATES)

    async def count(request: Request) -> Response:
        started = time.perf_counter()
        requests = fake.requests[int(request.query_params.get("requests", 0)) :]
        messages = fake.messages[int(request.query_params.get("messages", 0)) :]
        out_ids = [out_id for out_id, _ in requests]
        return JSONResponse(
            {
                "requests_total": len(fake.requests),
                "messages_total": len(fake.messages),
                "requests": len(requests),
                "distinct_out_ids": len(set(out_ids)),
                "out_ids_digest": digest(out_ids),
                "modes_met": sorted({mode for _, mode in requests}),
                "messages": len(messages),
                "distinct_message_out_ids": len({m.get("out_id") for m in messages}),
                "distinct_recipients": len({m["recipient"] for m in messages}),
                "count_ms": (time.perf_counter() - started) * 1000,
            }
        )

    app = Starlette(routes=[*fake.app().routes, Route("/_count", count, methods=["GET"])])
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run()


def main() -> None:
    parser = argparse.ArgumentParser(description="fake SMS provider child (bench/_providers.py)")
    parser.add_argument("--port", type=int, required=True)
    _serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
