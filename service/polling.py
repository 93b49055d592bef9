"""The poll runner: one supervised task per enabled polling connector.

Each runner loads its connector's last committed cursor once, then loops:
poll (each attempt under the connector's ``timeout_seconds``, transient
failures retried with ``RETRY_TRANSIENT``), commit the events, the rejected
messages and the new cursor in one outbox transaction, and wait
``interval_seconds`` (±10% jitter, so pollers started together drift apart)
— or poll again at once when the connector said there is more.

A failing poll is reported (``GET /channels``, ``gateway_poll_*``) and tried
again at the next interval, backing off up to ten intervals while failures
go on. :class:`ChannelAuthError` stops this runner only: the credentials
will not fix themselves, and the webhooks and other pollers go on. Runners
share nothing but the outbox, so a slow or failing one never delays another.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from connectors.errors import ChannelAuthError, ChannelError, ChannelUnavailable
from connectors.polling import PollingConnector, PollResult
from connectors.retry import RETRY_TRANSIENT
from outbox.sqlite import SQLiteOutbox
from service.board import ConnectorState
from service.clock import Clock
from service.intake import Intake
from service.metrics import GatewayMetrics

log = logging.getLogger(__name__)


class PollRunner:
    def __init__(
        self,
        connector: PollingConnector,
        intake: Intake,
        outbox: SQLiteOutbox,
        state: ConnectorState,
        metrics: GatewayMetrics,
        clock: Clock,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.connector = connector
        self._intake = intake
        self._outbox = outbox
        self._state = state
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._retry = RETRY_TRANSIENT.copy(sleep=sleep, before_sleep=self._log_retry)
        self._cursor: str | None = None

    @property
    def name(self) -> str:
        return self.connector.name

    def _log_retry(self, retry_state: object) -> None:
        outcome = getattr(retry_state, "outcome", None)
        error = outcome.exception() if outcome is not None else None
        log.warning("%s poll failed, retrying: %s", self.name, error)

    def _interval(self) -> float:
        base = self.connector.settings.interval_seconds
        failures = self._state.consecutive_failures
        backoff = min(2**failures, 10) if failures else 1
        return base * backoff * (0.9 + 0.2 * self._jitter())

    async def _attempt(self) -> PollResult:
        try:
            async with asyncio.timeout(self.connector.settings.timeout_seconds):
                return await self.connector.poll(self._cursor)
        except TimeoutError:
            raise ChannelUnavailable(
                f"poll took longer than {self.connector.settings.timeout_seconds:g}s"
            ) from None

    async def poll_once(self) -> PollResult:
        """One poll and its commit; raises what the poll raised after the retries."""
        started = time.perf_counter()
        try:
            result: PollResult = await self._retry(self._attempt)
            outcomes = await self._intake.accept_polled(self.name, result, self._clock.now())
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._metrics.polls.labels(self.name, "failure").inc()
                self._state.failed(self._clock.now(), exc)
                self._metrics.poll_failures_in_a_row.labels(self.name).set(
                    self._state.consecutive_failures
                )
            raise
        finally:
            self._metrics.poll_duration.labels(self.name).observe(time.perf_counter() - started)
        if result.cursor is not None:
            self._cursor = result.cursor
        taken = sum(1 for o in outcomes if o.kind == "accepted")
        now = self._clock.now()
        self._state.succeeded(now, taken, self._cursor)
        self._metrics.polls.labels(self.name, "success").inc()
        self._metrics.poll_failures_in_a_row.labels(self.name).set(0)
        self._metrics.poll_last_success.labels(self.name).set(now.timestamp())
        return result

    async def _load_cursor(self) -> None:
        """The committed cursor; an outbox that cannot answer yet is waited for, not fatal."""
        while True:
            try:
                self._cursor = await self._outbox.cursor(self.name)
            except Exception as exc:
                self._state.failed(self._clock.now(), exc)
                log.warning("%s cannot read its cursor yet: %s", self.name, exc)
                await self._sleep(self._interval())
                continue
            self._state.cursor = self._cursor
            return

    async def run(self) -> None:
        """Poll until cancelled (or until the platform refuses our credentials)."""
        await self._load_cursor()
        while True:
            try:
                result = await self.poll_once()
            except ChannelAuthError as exc:
                self._state.stopped = f"credentials refused: {exc}"[:300]
                log.error("%s stopped polling, credentials refused: %s", self.name, exc)
                return
            except ChannelError as exc:
                log.warning("%s poll failed: %s: %s", self.name, type(exc).__name__, exc)
            except Exception:
                log.exception("%s poll failed unexpectedly; trying again later", self.name)
            else:
                if result.more:
                    continue
            await self._sleep(self._interval())
