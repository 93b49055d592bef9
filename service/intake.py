"""Taking events in: normalize, drop redeliveries, write durably to the outbox.

:meth:`Intake.accept` returns only once every new record is committed to the
outbox; the webhook is answered after that. Dedupe state is written after the
outbox commit, so a crash between the two can only make a redelivery be
checked again (and absorbed by the outbox's unique record_id), never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

from connectors.base import Outcome
from connectors.errors import MalformedPayload, StateUnavailable
from connectors.polling import PollResult
from dedupe.state import DedupeStore
from normalizer.base import Normalizer, NotAComplaint
from outbox.sqlite import NewEntry, NewQuarantine, SQLiteOutbox
from schemas import ComplaintRecord, RawEvent
from service.logs import mask_id
from service.metrics import GatewayMetrics

log = logging.getLogger(__name__)

#: A poll's events are normalized this many at a time, the event loop free in between.
_POLLED_SLICE = 100


class Intake:
    def __init__(
        self,
        normalizers: Mapping[str, Normalizer],
        dedupe: DedupeStore,
        outbox: SQLiteOutbox,
        metrics: GatewayMetrics,
        on_accepted: Callable[[], None] = lambda: None,
        on_ignored: Callable[[NotAComplaint], Awaitable[None]] | None = None,
        stage: Callable[[ComplaintRecord], ComplaintRecord] | None = None,
        link: Callable[[ComplaintRecord], Awaitable[ComplaintRecord]] | None = None,
    ) -> None:
        self._normalizers = normalizers
        self._dedupe = dedupe
        self._outbox = outbox
        self._metrics = metrics
        self._on_accepted = on_accepted
        #: awaited before the event is acknowledged (a WeChat unsubscribe becomes an opt-out)
        self._on_ignored = on_ignored
        #: labels a new record (triage) before it is stored; duplicates skip it
        self._stage = stage
        #: after the stage: identity and same-incident linking (may raise StateUnavailable)
        self._link = link

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        normalizer = self._normalizers[event.connector]
        try:
            return normalizer.normalize(event)
        except MalformedPayload:
            raise
        except Exception as exc:  # a normalizer bug must not lose the payload
            log.exception("normalizer for %s failed", event.connector)
            raise MalformedPayload(
                f"cannot map this {event.connector} message ({type(exc).__name__})",
                "normalizer_error",
            ) from exc

    def _triage(self, record: ComplaintRecord) -> ComplaintRecord:
        """The staged record; a stage that fails keeps the record as normalized, never loses it."""
        if self._stage is None:
            return record
        try:
            return self._stage(record)
        except Exception:
            log.exception("triage failed for %s; stored as normalized", record.record_id)
            return record

    async def _linked(self, record: ComplaintRecord) -> ComplaintRecord:
        """The linked record: unreachable shared state refuses it (503), a bug keeps it unlinked."""
        if self._link is None:
            return record
        try:
            return await self._link(record)
        except StateUnavailable:
            raise
        except Exception:
            log.exception("linking failed for %s; stored unlinked", record.record_id)
            return record

    async def accept(self, events: Sequence[RawEvent]) -> list[Outcome]:
        """Take a webhook's events in, all or nothing.

        Raises MalformedPayload (nothing written: the server quarantines the
        request's body) or OutboxUnavailable.
        """
        return await self._take([(event, self.normalize(event)) for event in events])

    async def accept_polled(
        self, connector: str, result: PollResult, at: datetime
    ) -> list[Outcome]:
        """Take a poll's events in, and commit its cursor in the same transaction.

        Unlike a webhook, one unreadable message must not hold the others (or
        the cursor) back: it is quarantined in that transaction too, and the
        cursor moves past it. Raises OutboxUnavailable (nothing written).
        """
        mapped: list[tuple[RawEvent, ComplaintRecord | NotAComplaint]] = []
        quarantine = [
            NewQuarantine(connector, r.error.reason, str(r.error), _key(r.source_key), r.body, at)
            for r in result.rejected
        ]
        for number, event in enumerate(result.events, 1):
            if number % _POLLED_SLICE == 0:
                await asyncio.sleep(0)  # a big poll must not hold the loop the webhooks run on
            try:
                mapped.append((event, self.normalize(event)))
            except MalformedPayload as exc:
                quarantine.append(
                    NewQuarantine(
                        connector, exc.reason, str(exc), _key(event.source_key), event.body, at
                    )
                )
        cursor = (connector, result.cursor) if result.cursor is not None else None
        outcomes = await self._take(mapped, cursor=cursor, quarantine=quarantine, at=at)
        for item in quarantine:
            reason = self._metrics.reason(item.reason)
            self._metrics.quarantined.labels(connector, reason).inc()
            log.warning("quarantined a %s message: %s", connector, item.detail)
        return outcomes

    async def _take(
        self,
        mapped: Sequence[tuple[RawEvent, ComplaintRecord | NotAComplaint]],
        *,
        cursor: tuple[str, str] | None = None,
        quarantine: Sequence[NewQuarantine] = (),
        at: datetime | None = None,
    ) -> list[Outcome]:
        outcomes: list[Outcome | None] = []
        fresh: list[tuple[int, str, RawEvent, ComplaintRecord]] = []
        claimed: list[tuple[str, str]] = []
        try:
            for number, (event, result) in enumerate(mapped, 1):
                if number % _POLLED_SLICE == 0:
                    # triage and linking cost about a millisecond a record: a poll of
                    # thousands must let the webhooks and /metrics run in between
                    await asyncio.sleep(0)
                if isinstance(result, NotAComplaint):
                    self._metrics.ignored.labels(
                        event.connector, self._metrics.reason(result.reason)
                    ).inc()
                    if result.handle is not None and self._on_ignored is not None:
                        await self._on_ignored(result)
                    outcomes.append(Outcome("ignored", reason=result.reason))
                    continue
                key = event.dedupe_key
                first = await self._dedupe.claim(key, result.record_id)
                if first is not None:
                    self._metrics.duplicates.labels(event.connector).inc()
                    outcomes.append(Outcome("duplicate", record_id=first))
                    continue
                claimed.append((key, result.record_id))
                record = await self._linked(self._triage(result))
                fresh.append((len(outcomes), key, event, record))
                outcomes.append(None)

            if fresh or cursor is not None or quarantine:
                added = await self._outbox.append(
                    [
                        NewEntry(
                            record, event.source_key, event.body, event.media_type, event.dedupe_key
                        )
                        for _, _, event, record in fresh
                    ],
                    cursor=cursor,
                    quarantine=quarantine,
                    at=at,
                )
            else:
                added = []
        except BaseException:
            for key, record_id in claimed:  # not taken in: a redelivery must be taken in then
                try:
                    await self._dedupe.release(key, record_id)
                except StateUnavailable:
                    log.warning("could not release a dedupe claim; it expires by itself")
            raise
        for (index, key, event, record), is_new in zip(fresh, added, strict=True):
            await self._dedupe.remember(key, record.record_id, record.received_at)
            if is_new:
                self._metrics.accepted.labels(event.connector).inc()
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "accepted %s record %s from %s",
                        event.connector,
                        record.record_id,
                        mask_id(record.customer.id),
                    )
            else:
                self._metrics.duplicates.labels(event.connector).inc()
            outcomes[index] = Outcome(
                "accepted" if is_new else "duplicate", record_id=record.record_id
            )
        if any(added):
            self._on_accepted()
        return [o for o in outcomes if o is not None]


def _key(source_key: str | None) -> dict[str, str]:
    return {"source_key": source_key} if source_key else {}
