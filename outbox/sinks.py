"""Where the stream goes: the sink port and the embedded JSON Lines sink.

A sink receives batches of stored records in arrival order.
:meth:`Sink.publish` returns once every record of the batch is acknowledged
(Kafka: acks from the brokers; file: written and fsynced) and raises
:class:`SinkUnavailable` otherwise, in which case the publisher retries the
whole batch later. So delivery is at least once, and every copy carries the
same ``record_id``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from connectors.errors import SinkUnavailable
from outbox.sqlite import OutboxEntry


class Sink(Protocol):
    name: str

    async def publish(self, batch: Sequence[OutboxEntry]) -> None:
        """Deliver the batch or raise :class:`SinkUnavailable`."""
        ...

    async def ping(self) -> None:
        """Raise :class:`SinkUnavailable` unless the sink can take records now."""
        ...

    async def aclose(self) -> None: ...


class JsonLinesSink:
    """Appends each record as one line of JSON to a file; the default without Kafka."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path

    def _write(self, batch: Sequence[OutboxEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(b"".join(entry.record_json + b"\n" for entry in batch))
            handle.flush()
            os.fsync(handle.fileno())

    async def publish(self, batch: Sequence[OutboxEntry]) -> None:
        try:
            await asyncio.to_thread(self._write, batch)
        except OSError as exc:
            raise SinkUnavailable(f"cannot write {self.path}: {exc.strerror}") from exc

    async def ping(self) -> None:
        if not os.access(self.path.parent, os.W_OK):
            raise SinkUnavailable(f"{self.path.parent} is not writable")

    async def aclose(self) -> None:
        return None
