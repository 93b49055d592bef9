"""Fakes that satisfy the same protocols as the real parts (clock, sink)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.errors import SinkUnavailable
from outbox.sqlite import OutboxEntry


class FrozenClock:
    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime(2026, 11, 23, 2, 15, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class MemorySink:
    """An in-memory sink; ``down = True`` makes it refuse batches like a dead broker."""

    name = "memory"

    def __init__(self) -> None:
        self.entries: list[OutboxEntry] = []
        self.down = False
        self.attempts = 0
        self.published = asyncio.Event()

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(e.record_json) for e in self.entries]

    async def publish(self, batch: Sequence[OutboxEntry]) -> None:
        self.attempts += 1
        if self.down:
            raise SinkUnavailable("memory sink is down")
        self.entries.extend(batch)
        self.published.set()

    async def ping(self) -> None:
        if self.down:
            raise SinkUnavailable("memory sink is down")

    async def aclose(self) -> None:
        return None

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async def until() -> None:
            while len(self.entries) < count:
                self.published.clear()
                await self.published.wait()

        await asyncio.wait_for(until(), timeout)
