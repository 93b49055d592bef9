"""Status notifications end to end on the real Kafka-protocol broker (Tansu).

A complaint comes in over a webhook; the ticket system's status update goes
to ``complaint-status.v1``; the customer's message arrives at the fake SMS
provider (a real HTTP server that checks Aliyun's signature); the outcome
is read back from ``complaint-notifications.v1`` by an independent client
(confluent-kafka). Then the hard cases: the same update twice, a provider
outage, a kill -9 while a send is on the wire, an SLA timer due while the
gateway was down, and two replicas sharing one PostgreSQL store in one
consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway import Gateway, running_gateway
from service.fake_providers import FakeProviders
from service.registry import Registry
from service.senders import StoreSender
from service.settings import GatewaySettingsBase
from tests.brokers import Tansu
from tests.conftest import STORE_SECRET
from tests.fakes import MemorySink
from tests.postgres_server import postgres_dsn_and_schema
from tests.process import GatewayProcess, make_gateway_process, wait_until
from tests.provider_server import (
    API_TOKEN,
    notifier_env,
    notifier_settings,
    providers_in_a_thread,
)
from tests.test_kafka import Message, consume, tansu

__all__ = ["make_gateway_process", "tansu"]  # fixtures used below

pytestmark = pytest.mark.kafka

STORE = StoreSender(STORE_SECRET)
NO_QUIET_HOURS = {"start": "00:00", "end": "00:00"}


@pytest.fixture
def providers() -> Iterator[tuple[FakeProviders, str]]:
    with providers_in_a_thread() as running:
        yield running


@pytest.fixture
def topics() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "complaints": f"complaints.{suffix}",
        "status": f"complaint-status.{suffix}",
        "outcomes": f"complaint-notifications.{suffix}",
    }


def kafka_settings(tansu: Tansu, topics: dict[str, str], **notifications: Any) -> dict[str, Any]:
    return {
        "kafka": {
            "bootstrap_servers": tansu.bootstrap,
            "enable_idempotence": False,
            "topic": topics["complaints"],
            "request_timeout_ms": 3000,
        },
        "notifications": {
            "api_token": API_TOKEN,
            "status_topic": topics["status"],
            "outcomes_topic": topics["outcomes"],
            "consumer_group": f"notify-{topics['status']}",
            "quiet_hours": NO_QUIET_HOURS,  # these tests run on the wall clock
            **notifications,
        },
    }


async def create_topic(tansu: Tansu, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=tansu.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def produce(tansu: Tansu, topic: str, updates: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for item in updates:
            await producer.send_and_wait(
                topic, json.dumps(item).encode(), key=item["record_id"].encode()
            )
    finally:
        await producer.stop()


def store_body(number: int, priority: str | None = None) -> bytes:
    submission: dict[str, Any] = {
        "submission_id": f"SUB-{number}",
        "store_id": "SH0012",
        "customer": {"phone": f"1380013{number:04d}"},
        "text": "水壶漏水，要求换新",
    }
    if priority:
        submission["priority"] = priority
    return STORE.body(submission)


async def take_in(client: httpx.AsyncClient, number: int, priority: str | None = None) -> str:
    body = store_body(number, priority)
    answer = await client.post(
        "/webhooks/store", content=body, headers=STORE.sign(body, int(time.time()))
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["record_id"])


def update(record_id: str, node: str = "accepted") -> dict[str, Any]:
    return {
        "record_id": record_id,
        "node": node,
        "occurred_at": "2026-11-30T02:20:00Z",
        "ticket_no": f"TS{abs(hash(record_id)) % 10**8:08d}",
    }


def outcomes_of(messages: list[Message]) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in messages]


def has_outcome(**wanted: Any) -> Callable[[list[Message]], bool]:
    return lambda messages: any(
        all(o.get(k) == v for k, v in wanted.items()) for o in outcomes_of(messages)
    )


@contextlib.asynccontextmanager
async def gateway_on(
    make_settings: Callable[..., GatewaySettingsBase],
    registry: Registry,
    overrides: dict[str, Any],
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    settings = make_settings(**overrides)
    async with running_gateway(settings, registry, sink=MemorySink()) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://g.test") as client:
            yield gw, client


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


# -- in one process --------------------------------------------------------------------------


async def test_a_status_event_becomes_one_sms_and_one_outcome_on_the_stream(
    tansu: Tansu,
    topics: dict[str, str],
    providers: tuple[FakeProviders, str],
    make_settings: Callable[..., GatewaySettingsBase],
    registry: Registry,
) -> None:
    fake, base = providers
    await create_topic(tansu, topics["status"], 2)
    overrides = kafka_settings(tansu, topics) | {"notifiers": notifier_settings(base)}
    async with gateway_on(make_settings, registry, overrides) as (gw, client):
        record_id = await take_in(client, 1)
        await produce(tansu, topics["status"], [update(record_id), update(record_id)])
        assert gw.notifications is not None and gw.notifications.consumer is not None
        consumer = gw.notifications.consumer
        await until(lambda: consumer.handled == 2 and len(fake.messages) >= 1)
        await asyncio.sleep(0.5)  # time for a second message, if one were coming
        assert [m["recipient"] for m in fake.messages] == ["13800130001"]

    messages = await asyncio.to_thread(
        consume, tansu.bootstrap, topics["outcomes"], has_outcome(status="sent")
    )
    [sent] = [o for o in outcomes_of(messages) if o["status"] == "sent"]
    assert sent["record_id"] == record_id and sent["channel"] == "sms"
    assert sent["provider_message_id"] == fake.messages[0]["message_id"]
    assert {m.key for m in messages} == {record_id.encode()}


async def test_a_provider_outage_is_waited_out_and_then_sent(
    tansu: Tansu,
    topics: dict[str, str],
    providers: tuple[FakeProviders, str],
    make_settings: Callable[..., GatewaySettingsBase],
    registry: Registry,
) -> None:
    fake, base = providers
    fake.modes["aliyun"] = "down"
    await create_topic(tansu, topics["status"], 1)
    overrides = kafka_settings(tansu, topics, retry_initial_seconds=0.2, retry_max_seconds=0.5)
    overrides["notifiers"] = notifier_settings(base)
    async with gateway_on(make_settings, registry, overrides) as (_gw, client):
        record_id = await take_in(client, 2)
        await produce(tansu, topics["status"], [update(record_id)])
        await until(lambda: len(fake.requests) >= 3)  # refused, refused, refused...
        assert fake.messages == []
        fake.modes["aliyun"] = "ok"
        await until(lambda: len(fake.messages) == 1)
    messages = await asyncio.to_thread(
        consume, tansu.bootstrap, topics["outcomes"], has_outcome(status="sent")
    )
    [sent] = [o for o in outcomes_of(messages) if o["status"] == "sent"]
    assert sent["attempts"] >= 4


async def test_two_replicas_in_one_group_send_each_notification_once(
    tansu: Tansu,
    topics: dict[str, str],
    providers: tuple[FakeProviders, str],
    make_settings: Callable[..., GatewaySettingsBase],
    registry: Registry,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    fake, base = providers
    await create_topic(tansu, topics["status"], 4)
    async with postgres_dsn_and_schema(request) as (dsn, schema):
        shared = kafka_settings(
            tansu, topics, store="postgresql", postgres_dsn=dsn, postgres_schema=schema
        )
        shared["notifiers"] = notifier_settings(base)
        first_overrides = shared | {"data_dir": tmp_path / "a"}
        second_overrides = shared | {"data_dir": tmp_path / "b"}
        async with gateway_on(make_settings, registry, first_overrides) as (_first, client):
            record_ids = [await take_in(client, n) for n in range(100, 140)]
            async with gateway_on(make_settings, registry, second_overrides) as (_second, _):
                await produce(tansu, topics["status"], [update(r) for r in record_ids[:20]])
                await until(lambda: len(fake.messages) >= 10, timeout=40)
            # the second replica left mid-stream: the group rebalances onto the first
            # (a bound, not a speed check: on a loaded 2-core machine the rejoin can take
            # most of a minute)
            await produce(tansu, topics["status"], [update(r) for r in record_ids])
            await until(lambda: len(fake.messages) >= 40, timeout=150)
            await asyncio.sleep(1.0)
    out_ids = [out_id for out_id, _ in fake.requests]
    assert len(fake.messages) == 40
    assert len(out_ids) == len(set(out_ids)) == 40


# -- whole processes -------------------------------------------------------------------------


def process_env(tansu: Tansu, topics: dict[str, str], base: str) -> dict[str, str]:
    return {
        "GATEWAY_KAFKA__BOOTSTRAP_SERVERS": tansu.bootstrap,
        "GATEWAY_KAFKA__ENABLE_IDEMPOTENCE": "false",
        "GATEWAY_KAFKA__TOPIC": topics["complaints"],
        "GATEWAY_NOTIFICATIONS__API_TOKEN": API_TOKEN,
        "GATEWAY_NOTIFICATIONS__STATUS_TOPIC": topics["status"],
        "GATEWAY_NOTIFICATIONS__OUTCOMES_TOPIC": topics["outcomes"],
        "GATEWAY_NOTIFICATIONS__CONSUMER_GROUP": f"notify-{topics['status']}",
        "GATEWAY_NOTIFICATIONS__QUIET_HOURS": json.dumps(NO_QUIET_HOURS),
        **notifier_env(base),
    }


def post_store(process: GatewayProcess, number: int, priority: str | None = None) -> str:
    body = store_body(number, priority)
    answer = httpx.post(
        f"{process.base_url}/webhooks/store",
        content=body,
        headers=STORE.sign(body, int(time.time())),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["record_id"])


@pytest.mark.process
def test_a_kill_during_a_send_never_sends_twice(
    tansu: Tansu,
    topics: dict[str, str],
    providers: tuple[FakeProviders, str],
    make_gateway_process: Callable[..., GatewayProcess],
) -> None:
    fake, base = providers
    fake.modes["aliyun"] = "hang"
    process = make_gateway_process(**process_env(tansu, topics, base))
    record_id = post_store(process, 7)
    asyncio.run(produce(tansu, topics["status"], [update(record_id)]))
    wait_until(lambda: len(fake.requests) == 1, 30, "the SMS request is on the wire")
    process.kill()  # between the provider taking it and the gateway recording the answer
    fake.modes["aliyun"] = "ok"
    process.start()
    messages = consume(tansu.bootstrap, topics["outcomes"], has_outcome(status="unknown"))
    [doubt] = [o for o in outcomes_of(messages) if o["status"] == "unknown"]
    time.sleep(1.5)
    assert len(fake.requests) == 1  # not resent by itself
    listing = process.cli("notifications", "--dlq")
    assert doubt["key"] in listing.stdout and "in_doubt" in listing.stdout
    assert "13800130007" not in listing.stdout  # the number is masked
    resent = process.cli("notifications", "--resend", doubt["key"])
    assert resent.returncode == 0, resent.stderr
    wait_until(lambda: len(fake.messages) == 1, 30, "the operator's resend is sent")
    assert [out_id for out_id, _ in fake.requests] == [doubt["key"], doubt["key"]]


@pytest.mark.process
def test_an_sla_timer_due_while_the_gateway_was_down_fires_after_the_restart(
    tansu: Tansu,
    topics: dict[str, str],
    providers: tuple[FakeProviders, str],
    make_gateway_process: Callable[..., GatewayProcess],
) -> None:
    fake, base = providers
    env = process_env(tansu, topics, base) | {
        "GATEWAY_NOTIFICATIONS__SLA__FIRST_RESPONSE_MINUTES": json.dumps({"P2": 0.25}),
    }
    process = make_gateway_process(**env)
    urgent = post_store(process, 8, priority="P2")
    handled = post_store(process, 9, priority="P2")
    asyncio.run(produce(tansu, topics["status"], [update(handled, "in_progress")]))
    wait_until(lambda: len(fake.messages) == 1, 30, "in_progress is sent")
    process.kill()
    outbox = sqlite3.connect(process.outbox_path)
    [(received,)] = outbox.execute(
        "SELECT received_at FROM outbox WHERE record_id = ?", (urgent,)
    ).fetchall()
    outbox.close()
    due = datetime.fromisoformat(received.replace("Z", "+00:00")) + timedelta(seconds=15)
    assert datetime.now(UTC) < due, "the deadline passed before the kill: the test is too slow"
    time.sleep((due - datetime.now(UTC)).total_seconds() + 0.5)  # due while nothing runs
    process.start()
    wait_until(lambda: len(fake.messages) == 2, 30, "the overdue warning is sent")
    time.sleep(1.5)
    warning = fake.messages[1]
    assert warning["recipient"] == "13800130008" and "非常抱歉让您久等了" in warning["text"]
    assert (
        f"编号：{urgent[:13].upper()}" in warning["text"]
    )  # no ticket yet: the record's reference
    assert len(fake.messages) == 2  # the handled complaint got no warning
