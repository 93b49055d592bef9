"""The Kafka sink: one ``complaints.v1`` topic, keyed by customer.

Each record is sent with key ``customer.id`` (one customer's complaints land
on one partition, in order), the record JSON as value, and the headers
``record_id``, ``channel``, ``schema_version`` and ``content-type``.

The producer is created lazily inside the running loop and recreated after a
failure, so the gateway starts and keeps accepting webhooks while Kafka is
down. Idempotence is on by default (real Kafka); brokers that lack
InitProducerId (Tansu) need ``enable_idempotence = false``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from connectors.errors import SinkUnavailable
from outbox.sqlite import OutboxEntry
from schemas import SCHEMA_VERSION

log = logging.getLogger(__name__)


def kafka_message(entry: OutboxEntry) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of one record: the stream's wire contract."""
    headers = [
        ("record_id", entry.record_id.encode()),
        ("channel", entry.channel.encode()),
        ("schema_version", SCHEMA_VERSION.encode()),
        ("content-type", b"application/json"),
    ]
    return entry.customer_id.encode("utf-8"), entry.record_json, headers


class KafkaSink:
    name = "kafka"

    def __init__(self, topic: str, producer_options: dict[str, Any], timeout: float) -> None:
        self.topic = topic
        self._options = producer_options
        self._timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        # The publisher and readiness probes ask for the producer concurrently: without
        # the lock each would start its own and all but the last would leak, connected.
        self._starting = asyncio.Lock()

    def __repr__(self) -> str:  # producer options may hold SASL credentials
        return f"KafkaSink(topic={self.topic!r})"

    async def _ensure_producer(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(**self._options)
                try:
                    async with asyncio.timeout(self._timeout):
                        await producer.start()
                except (KafkaError, OSError, TimeoutError) as exc:
                    await _quietly_stop(producer)
                    raise SinkUnavailable(f"cannot connect to Kafka: {type(exc).__name__}") from exc
                self._producer = producer
            return self._producer

    async def _reset(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await _quietly_stop(producer)

    async def publish(self, batch: Sequence[OutboxEntry]) -> None:
        producer = await self._ensure_producer()
        try:
            pending = []
            for entry in batch:
                key, value, headers = kafka_message(entry)
                pending.append(
                    await producer.send(self.topic, value=value, key=key, headers=headers)
                )
            async with asyncio.timeout(self._timeout):
                await asyncio.gather(*pending)
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._reset()
            raise SinkUnavailable(f"Kafka did not acknowledge: {type(exc).__name__}") from exc

    async def ping(self) -> None:
        producer = await self._ensure_producer()
        try:
            async with asyncio.timeout(self._timeout):
                await producer.client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError) as exc:
            raise SinkUnavailable(f"Kafka is not reachable: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self._reset()


async def _quietly_stop(producer: AIOKafkaProducer) -> None:
    try:
        async with asyncio.timeout(5):
            await producer.stop()
    except Exception as exc:  # stopping a broken producer may fail in many ways
        log.debug("producer stop failed: %s", type(exc).__name__)
