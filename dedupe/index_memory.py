"""The embedded link index: the window's entries in this process's memory.

It is rebuilt at start-up from the outbox, which keeps every record of the
window (each with its ``duplicate_of`` and ``batch``), so a restart forgets
nothing the linker needs; resolved incidents are kept in the embedded state
file (:mod:`dedupe.identity_sqlite`) through ``on_close``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from dedupe.state import WEAK, WEAK_PER_LOOKUP, Entry


class MemoryLinkIndex:
    def __init__(
        self,
        window_seconds: float,
        per_lookup: int = 64,
        *,
        weak_per_lookup: int = WEAK_PER_LOOKUP,
        on_close: Callable[[str, datetime], None] | None = None,
        closed: Iterable[str] = (),
    ) -> None:
        self._window = window_seconds
        self._per_lookup = per_lookup
        self._weak_per_lookup = weak_per_lookup
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        #: lookup → record ids, oldest first (lists: most lookups hold one id, and a
        #: deque's first block alone is ten times a one-item list)
        self._postings: dict[str, list[str]] = {}
        self._closed = set(closed)
        self._on_close = on_close

    async def candidates(self, lookups: Sequence[str], since: float) -> list[Entry]:
        self._expire(since)
        seen: dict[str, Entry] = {}
        for lookup in lookups:
            for record_id in self._postings.get(lookup, ()):
                entry = self._entries.get(record_id)
                if entry is not None and entry.at >= since:
                    seen[record_id] = entry
        return sorted(seen.values(), key=lambda e: e.at, reverse=True)

    async def add(self, entry: Entry) -> None:
        self.put(entry)

    def put(self, entry: Entry) -> None:
        self._entries[entry.record_id] = entry
        for lookup in entry.lookups:
            posting = self._postings.get(lookup)
            if posting is None:
                self._postings[lookup] = [entry.record_id]
                continue
            if entry.record_id in posting:
                continue
            posting.append(entry.record_id)
            limit = self._weak_per_lookup if lookup.startswith(WEAK) else self._per_lookup
            if len(posting) > limit:
                del posting[0]

    async def close(self, record_id: str, at: datetime) -> None:
        if record_id not in self._closed:
            self._closed.add(record_id)
            if self._on_close is not None:
                self._on_close(record_id, at)

    async def closed(self, roots: Sequence[str]) -> set[str]:
        return {root for root in roots if root in self._closed}

    def _expire(self, since: float) -> None:
        """Drop entries older than the window (they arrive in time order, oldest first)."""
        horizon = since - 60  # a little slack: records of one poll may carry older times
        while self._entries:
            record_id, entry = next(iter(self._entries.items()))
            if entry.at >= horizon:
                break
            del self._entries[record_id]
            for lookup in entry.lookups:
                posting = self._postings.get(lookup)
                if posting is None:
                    continue
                try:
                    posting.remove(record_id)
                except ValueError:
                    pass
                if not posting:
                    del self._postings[lookup]

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
