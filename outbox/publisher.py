"""The publisher: drains the outbox to the sink, in order, until stopped.

It takes the oldest unsent records, publishes them as one batch, and marks
them sent only after the sink acknowledged the whole batch. If the sink
fails, the same batch is retried with backoff (``RETRY_SINK``) while webhooks
keep being accepted into the outbox. A crash between the sink's
acknowledgement and ``mark_sent`` republishes that batch once more, with the
same record ids: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from connectors.errors import SinkUnavailable
from outbox.sinks import Sink
from outbox.sqlite import OutboxEntry, SQLiteOutbox
from service.clock import Clock

log = logging.getLogger(__name__)

#: Retry a sink that is down forever, backing off from 0.2 s to 30 s between tries.
RETRY_SINK = AsyncRetrying(
    retry=retry_if_exception_type(SinkUnavailable),
    wait=wait_exponential_jitter(multiplier=0.2, max=30, jitter=0.2),
    reraise=True,
)

Observer = Callable[[list[OutboxEntry], datetime], None]


class Publisher:
    def __init__(
        self,
        outbox: SQLiteOutbox,
        sink: Sink,
        clock: Clock,
        *,
        batch_size: int = 500,
        idle_seconds: float = 1.0,
        retention: timedelta = timedelta(days=7),
        on_published: Observer | None = None,
        on_failure: Callable[[SinkUnavailable], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._outbox = outbox
        self._sink = sink
        self._clock = clock
        self._batch_size = batch_size
        self._idle_seconds = idle_seconds
        self._retention = retention
        self._on_published = on_published
        self._on_failure = on_failure
        self._sleep = sleep
        self._retry = RETRY_SINK.copy(sleep=sleep, before_sleep=self._log_retry)
        self._wake = asyncio.Event()
        self.healthy = True

    def notify(self) -> None:
        """New records are in the outbox: drain now rather than at the next idle tick."""
        self._wake.set()

    def _log_retry(self, state: object) -> None:
        outcome = getattr(state, "outcome", None)
        exc = outcome.exception() if outcome is not None else None
        self.healthy = False
        if isinstance(exc, SinkUnavailable) and self._on_failure is not None:
            self._on_failure(exc)
        log.warning("sink %s unavailable, retrying: %s", self._sink.name, exc)

    async def _publish(self, batch: list[OutboxEntry]) -> None:
        await self._retry(self._sink.publish, batch)
        self.healthy = True

    async def drain(self) -> int:
        """Publish every record that is pending now; returns how many."""
        total = 0
        while batch := await self._outbox.pending_batch(self._batch_size):
            await self._publish(batch)
            now = self._clock.now()
            await self._outbox.mark_sent([entry.seq for entry in batch], now)
            if self._on_published is not None:
                self._on_published(batch, now)
            total += len(batch)
        return total

    async def run(self) -> None:
        """Drain, wait for new records or the idle tick, prune now and then; until cancelled.

        An unexpected error (a sink bug, a disk error in the outbox) is logged and
        the loop goes on after the idle tick: the records stay in the outbox.
        """
        last_prune = self._clock.now()
        while True:
            self._wake.clear()
            try:
                await self.drain()
                now = self._clock.now()
                if now - last_prune > timedelta(hours=1):
                    pruned = await self._outbox.prune(now - self._retention)
                    log.info("pruned %d sent records older than %s", pruned, self._retention)
                    last_prune = now
            except Exception:
                self.healthy = False
                log.exception("publisher failed; records stay in the outbox, retrying")
                await self._sleep(self._idle_seconds)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that coincides with the wake-up, and stop would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._idle_seconds):
                    await self._wake.wait()
