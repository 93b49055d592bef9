"""Where a time-window poller stands: the latest change taken, and the keys taken near it.

TOP and JOS list changes by a modified-time window whose bounds may or may
not be inclusive, and index a change a little late. A poll's window therefore
starts ``overlap_seconds`` before the latest time taken, and the source keys
already taken inside that overlap are remembered (``seen``), so a change in
the boundary second is neither missed nor published twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class WindowPosition:
    last: datetime | None = None
    seen: frozenset[str] = frozenset()

    @classmethod
    def load(cls, part: Any, name: str, parse: Callable[[str], datetime]) -> WindowPosition:
        """From ``{name: <time>, "seen": [keys]}`` (None: no position yet)."""
        if part is None:
            return cls()
        return cls(parse(str(part[name])), frozenset(str(k) for k in part.get("seen", [])))

    def dump(self, name: str, write: Callable[[datetime], str]) -> dict[str, Any] | None:
        if self.last is None:
            return None
        return {name: write(self.last), "seen": sorted(self.seen)}

    def start(self, now: datetime, overlap_seconds: int, initial_lookback_seconds: int) -> datetime:
        """Where the next window starts: the overlap before the last time, or the lookback."""
        if self.last is None:
            return now - timedelta(seconds=initial_lookback_seconds)
        return self.last - timedelta(seconds=overlap_seconds)

    def after(
        self,
        taken: Mapping[str, datetime],
        overlap_seconds: int,
        key_time: Callable[[str], datetime | None],
    ) -> WindowPosition:
        """The position once ``taken`` (key → time) is published; keys that left the
        overlap (``key_time`` reads a key's time back) are forgotten."""
        if not taken:
            return self
        newest = max([*taken.values(), *([self.last] if self.last else [])])
        floor = newest - timedelta(seconds=overlap_seconds)
        keep = frozenset(
            k for k in self.seen | set(taken) if (key_time(k) or floor - _SECOND) >= floor
        )
        return WindowPosition(newest, keep)
