"""Exact-duplicate memory: which source messages were already taken in.

The pipeline asks :meth:`DedupeStore.claim` before writing a record to the
outbox and calls :meth:`DedupeStore.remember` only after the outbox write is
durable, so a crash in between can cause a redelivery to be checked again
(the outbox's unique ``record_id`` then absorbs it), never a loss. The
contract is in :mod:`dedupe.state`; the shared (Redis) store is
:mod:`dedupe.redis_state`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta

from dedupe.state import DedupeStore
from service.clock import Clock

__all__ = ["DedupeStore", "MemoryDedupeStore"]


class MemoryDedupeStore:
    """The embedded store: an in-process map with a time window.

    It is warmed at start-up from the outbox (which keeps every record's key
    and time durably), so after a restart redeliveries are still recognised
    without a second database. ``max_keys`` bounds memory under a flood.
    """

    def __init__(self, clock: Clock, window: timedelta, max_keys: int = 1_000_000) -> None:
        self._clock = clock
        self._window = window
        self._max_keys = max_keys
        self._keys: OrderedDict[str, tuple[str, datetime]] = OrderedDict()

    def warm(self, entries: Iterable[tuple[str, str, datetime]]) -> int:
        count = 0
        for key, record_id, at in entries:
            self._put(key, record_id, at)
            count += 1
        return count

    def _put(self, key: str, record_id: str, at: datetime) -> None:
        self._keys[key] = (record_id, at)
        self._keys.move_to_end(key)
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)

    def _expire(self) -> None:
        horizon = self._clock.now() - self._window
        while self._keys:
            _, (_, at) = next(iter(self._keys.items()))
            if at >= horizon:
                break
            self._keys.popitem(last=False)

    async def seen(self, key: str) -> str | None:
        """The record_id first taken in under ``key`` within the window, else None."""
        self._expire()
        hit = self._keys.get(key)
        return hit[0] if hit else None

    async def claim(self, key: str, record_id: str) -> str | None:
        # one process: two requests racing on one message both reach the
        # outbox, whose unique record_id keeps one
        return await self.seen(key)

    async def release(self, key: str, record_id: str) -> None:
        return None

    async def remember(self, key: str, record_id: str, at: datetime) -> None:
        self._put(key, record_id, at)

    def __len__(self) -> int:
        return len(self._keys)
