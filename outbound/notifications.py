"""Status updates in, notifications queued: the one path for Kafka, HTTP and the timers.

:meth:`Notifications.accept` resolves the record in the directory, plans
the notifications and applies them to the store in one transaction; it
returns only once they are durable, which is when the HTTP answer is 202
and when the Kafka offset may be committed. It raises
:class:`~outbound.planner.StatusRejected`: 400 bad variables, 404 a record
the gateway never took in (unless the update names a ``recipient``), 409 a
node that goes backwards (unless it ``reopens``).

:meth:`Notifications.fire_timers` sends what the ticket system did not ask
for but the gateway promised: ``overdue_warning`` when no ``in_progress``
came within the priority's first-response time, ``survey`` a few minutes
after ``resolved``. Timers live in the store, so they fire after a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import ValidationError

from normalizer.base import NotAComplaint
from outbound.directory import Directory
from outbound.outcomes import outcome_json
from outbound.planner import Planner, StatusRejected
from outbound.settings import NotificationSettings
from outbound.state import Applied, NotificationStore, TimerKind
from outbox.sqlite import OutboxEntry
from schemas.status import StatusUpdate
from service.clock import Clock

if TYPE_CHECKING:
    from outbox.sinks import Sink

log = logging.getLogger(__name__)

#: Why an update from the stream was not acted on, by HTTP status.
STREAM_REASONS = {400: "invalid_status_update", 404: "unknown_record", 409: "node_backwards"}

#: (handle scheme, ignored event) → (opted out, opt-out source) for follow and unfollow events.
_FOLLOW_EVENTS: dict[tuple[str, str], tuple[bool, str]] = {
    ("wechat", "event:unsubscribe"): (True, "wechat_unsubscribe"),
    ("wechat", "event:subscribe"): (False, "wechat_unsubscribe"),
    ("weibo", "event:unfollow"): (True, "weibo_unfollow"),
    ("weibo", "event:follow"): (False, "weibo_unfollow"),
}


class Notifications:
    def __init__(
        self,
        settings: NotificationSettings,
        planner: Planner,
        store: NotificationStore,
        directory: Directory,
        clock: Clock,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.planner = planner
        self.store = store
        self.directory = directory
        self.clock = clock
        self.wake = wake
        #: told when a complaint is resolved (the linker closes the incident)
        self.on_resolved: Callable[[str, datetime], Awaitable[None]] | None = None

    async def accept(self, update: StatusUpdate) -> Applied:
        contact = await self.store.contact(update.record_id)
        if contact is None:
            await self.directory.catch_up()
            contact = await self.store.contact(update.record_id)
        if contact is None and update.recipient is None:
            raise StatusRejected(
                404,
                [
                    f"record_id: the gateway never took in {update.record_id!r}; "
                    "name a recipient for a ticket opened by hand"
                ],
            )
        now = self.clock.now()
        change = await self.planner.plan(update, contact, self.store, now=now)
        applied = await self.store.apply(change, now=now)
        if applied.backwards_from is not None:
            raise StatusRejected(
                409,
                [
                    f"node: {update.node!r} comes before {applied.backwards_from!r}, which this "
                    "complaint already reached; set reopens = true if it was reopened"
                ],
            )
        if applied.added:
            self.wake()
        if update.node == "resolved" and self.on_resolved is not None:
            await self.on_resolved(update.record_id, update.occurred_at)
        return applied

    async def accept_from_stream(self, value: bytes) -> None:
        """One message of the status topic: acted on, or an outcome saying why not.

        Returns once either is durable; raises only if the store is unavailable
        (then the offset is not committed and the message comes again).
        """
        try:
            update = StatusUpdate.model_validate_json(value)
        except ValidationError as exc:
            log.warning("refused a status update from the stream: %d problem(s)", exc.error_count())
            await self._refused(
                _record_id_of(value), "", "", 400, f"{exc.error_count()} problem(s)"
            )
            return
        try:
            await self.accept(update)
        except StatusRejected as exc:
            log.info("status %s of %s not acted on: %s", update.node, update.record_id, exc)
            await self._refused(
                update.record_id, update.ticket_no, update.node, exc.status, str(exc)
            )

    async def _refused(
        self, record_id: str, ticket_no: str, node: str, status: int, detail: str
    ) -> None:
        await self.store.record_outcome(
            record_id,
            outcome_json(
                record_id=record_id,
                ticket_no=ticket_no,
                node=node,
                channel="",
                recipient="",
                status="skipped",
                reason=STREAM_REASONS.get(status, "refused"),
                at=self.clock.now(),
                detail=detail[:500],
            ),
        )

    async def follow(self, event: NotAComplaint) -> None:
        """An unfollow opts the customer out of that channel's messages (WeChat
        ``unsubscribe``, Weibo ``unfollow``: Weibo refuses to message them anyway);
        following again undoes it."""
        if event.handle is None:
            return
        change = _FOLLOW_EVENTS.get((event.handle.partition(":")[0], event.reason))
        if change is not None:
            opted_out, source = change
            await self.store.set_opt_out(
                event.handle, opted_out, source=source, at=self.clock.now()
            )

    # -- timers ----------------------------------------------------------------------------

    async def fire_timers(self, limit: int = 200) -> int:
        fired = 0
        for record_id, kind in await self.store.due_timers(self.clock.now(), limit):
            update = await self._timer_update(record_id, kind)
            try:
                await self.accept(update)
                fired += 1
            except StatusRejected as exc:  # resolved meanwhile, or forgotten: nothing to send
                log.info("%s timer of %s not sent: %s", kind, record_id, exc)
            await self.store.cancel_timer(record_id, kind)
        return fired

    async def _timer_update(self, record_id: str, kind: TimerKind) -> StatusUpdate:
        progress = await self.store.progress(record_id)
        # Before the ticket system reported anything there is no ticket number: the
        # customer gets a short reference to the record (SMS variables are short).
        ticket_no = progress.ticket_no if progress else reference_of(record_id)
        variables = {}
        if kind == "survey" and self.settings.survey_url:
            variables["survey_url"] = self.settings.survey_url.replace("{ticket_no}", ticket_no)
        return StatusUpdate(
            record_id=record_id,
            node="overdue_warning" if kind == "sla" else "survey",
            occurred_at=self.clock.now(),
            ticket_no=ticket_no[:64],
            variables=variables,
        )

    async def run_timers(self, interval: float = 1.0) -> None:
        while True:
            try:
                await self.fire_timers()
            except Exception:
                log.exception("timers could not fire; trying again")
            await asyncio.sleep(interval)

    async def run_upkeep(
        self,
        report: Callable[[dict[str, int]], None] = lambda counts: None,
        interval: float = 15.0,
    ) -> None:
        """Every ``interval``: report the jobs by state; hourly, forget what is past retention."""
        last_prune = None
        while True:
            try:
                now = self.clock.now()
                if last_prune is None or now - last_prune >= timedelta(hours=1):
                    pruned = await self.store.prune(
                        now - timedelta(days=self.settings.retention_days)
                    )
                    last_prune = now
                    if pruned:
                        log.info("forgot %d record(s) past the retention", pruned)
                report({str(state): n for state, n in (await self.store.counts()).items()})
            except Exception:
                log.exception("notification upkeep failed; trying again")
            await asyncio.sleep(interval)


class OutcomePublisher:
    """Drains the outcome rows to ``complaint-notifications.v1`` (or a JSON Lines file).

    The sink is the stream's own (:class:`outbox.kafka.KafkaSink`), given each
    outcome as an entry keyed by ``record_id``. Delivery is at least once:
    a crash between the broker's acknowledgement and the mark republishes a
    batch, whose rows carry the same ``key`` and ``at``.
    """

    def __init__(self, store: NotificationStore, sink: Sink, clock: Clock) -> None:
        self.store = store
        self.sink = sink
        self.clock = clock
        #: one drain at a time: the loop's and a last one at shutdown would publish a batch twice
        self._draining = asyncio.Lock()

    async def drain(self, batch_size: int = 500) -> int:
        total = 0
        async with self._draining:
            while outcomes := await self.store.unpublished(batch_size):
                await self.sink.publish(
                    [OutboxEntry(o.seq, o.record_id, "", o.record_id, "", o.body) for o in outcomes]
                )
                await self.store.mark_published([o.seq for o in outcomes], self.clock.now())
                total += len(outcomes)
        return total

    async def run(self, interval: float = 0.5) -> None:
        while True:
            try:
                await self.drain()
            except Exception as exc:
                log.warning("outcomes not published yet: %s", exc)
            await asyncio.sleep(interval)


def reference_of(record_id: str) -> str:
    """A short reference to a record for a customer to quote: ``2D913988-1FEB``."""
    return record_id.rpartition(":")[2][:13].upper()


def _record_id_of(value: bytes) -> str:
    try:
        record_id = json.loads(value).get("record_id")
    except (ValueError, AttributeError):
        return ""
    return record_id[:64] if isinstance(record_id, str) else ""
