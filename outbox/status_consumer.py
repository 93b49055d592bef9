"""The status topic's consumer: a ticket system's updates, read in a consumer group.

Offsets are committed by hand, per partition, only after every message up
to them was handled, and a message is handled once its notifications are
durably queued (or the reason it was not acted on is recorded). If the
store fails, the partition is rewound to the first unhandled message and
tried again after a pause: nothing is skipped. After a crash or a
rebalance, messages since the last commit come again; the idempotency
ledger makes them queue nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

log = logging.getLogger(__name__)

Handler = Callable[[bytes], Awaitable[None]]


class StatusConsumer:
    def __init__(
        self,
        topic: str,
        group_id: str,
        options: dict[str, Any],
        handle: Handler,
        *,
        retry_seconds: float = 2.0,
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self._options = options
        self._handle = handle
        self._retry_seconds = retry_seconds
        self.handled = 0

    def __repr__(self) -> str:  # options may hold SASL credentials
        return f"StatusConsumer(topic={self.topic!r}, group_id={self.group_id!r})"

    async def run(self) -> None:
        """Consume until cancelled, reconnecting after broker failures."""
        while True:
            consumer = AIOKafkaConsumer(
                self.topic,
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # a status topic created after the gateway started is found within 30 s
                metadata_max_age_ms=30_000,
                **self._options,
            )
            try:
                await consumer.start()
                await self._consume(consumer)
            except KafkaError as exc:
                log.warning("status topic unavailable (%s); reconnecting", type(exc).__name__)
            finally:
                try:
                    await consumer.stop()
                except Exception:  # stopping a half-started consumer
                    pass
            await asyncio.sleep(self._retry_seconds)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            for partition, messages in batch.items():
                done = await self._handle_all(consumer, partition, messages)
                if done is None:
                    continue
                try:
                    await consumer.commit({partition: done})
                except CommitFailedError:  # rebalanced away: the new owner redoes them, once
                    log.info("offsets of %s not committed after a rebalance", partition)

    async def _handle_all(
        self, consumer: AIOKafkaConsumer, partition: TopicPartition, messages: list[Any]
    ) -> int | None:
        """Handle in order; the offset to commit, or None if nothing was handled."""
        done: int | None = None
        for message in messages:
            try:
                await self._handle(message.value or b"")
            except Exception:
                log.exception(
                    "status update at %s@%d not queued; retrying", partition, message.offset
                )
                consumer.seek(partition, message.offset)
                await asyncio.sleep(self._retry_seconds)
                break
            done = message.offset + 1
            self.handled += 1
        return done
