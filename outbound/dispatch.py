"""The dispatcher: takes due jobs from the durable queue and sends each once.

Exactly once per (record, node, channel, recipient) rests on three writes:
the job is inserted once under its key (:mod:`outbound.state`), claimed
(``queued`` → ``sending``, committed) before the provider is called, and
its result recorded after. A job leaves ``sending`` only through its result
or, if the process died in between, through the lease: then it is
``in_doubt`` and waits for an operator, because resending might message the
customer twice. So the window that remains is the lost answer: a send whose
result was never recorded is not retried by itself (see the note on
provider idempotency in :mod:`outbound.base`).

Per attempt: opt-outs are checked again, SMS waits out the quiet hours,
the provider's rate limit is taken, then one call. What the provider
answered decides the rest (the error tree is in :mod:`outbound.base`):

* transient (unavailable, rate limited): the next provider of the channel
  is tried at once; after a whole round the job is due again after the
  retry policy's wait; after ``max_attempts`` rounds it is a dead letter and
  the next channel of its fallback gets its own job;
* refused for good or credentials refused: that provider is not tried
  again for this job; when none is left, a dead letter, and the fallback;
* recipient unreachable: the next channel of the fallback at once;
* in doubt: ``in_doubt``, never resent by itself.

Every result writes an outcome row, published by :class:`OutcomePublisher`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.errors import (
    ChannelAuthError,
    ChannelRateLimited,
    ChannelUnavailable,
    DeliveryInDoubt,
    DeliveryRefused,
    RecipientUnreachable,
)
from outbound.base import Message, Notifier, Receipt
from outbound.outcomes import Status, outcome_json
from outbound.planner import Planner, follow_up
from outbound.policy import RateLimit, next_wait, quiet_until, retry_policy
from outbound.settings import NotificationSettings
from outbound.state import Finish, Job, JobState, NotificationStore
from service.clock import Clock
from service.logs import mask_recipient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Result:
    """One attempt's result as the metrics see it."""

    channel: str
    provider: str
    status: Status
    reason: str


class Dispatcher:
    def __init__(
        self,
        store: NotificationStore,
        planner: Planner,
        settings: NotificationSettings,
        clock: Clock,
        *,
        sole_owner: bool,
        poll_seconds: float = 0.2,
        drain_seconds: float = 5.0,
        on_result: Callable[[Result], None] | None = None,
    ) -> None:
        self.store = store
        self.planner = planner
        self.settings = settings
        self.clock = clock
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._sole_owner = sole_owner
        self._poll_seconds = poll_seconds
        self._drain_seconds = drain_seconds
        self._on_result = on_result
        self._policy = retry_policy(settings)
        self._limits = {
            n.name: RateLimit(n.settings.rate_per_second, n.settings.burst)
            for chain in planner.providers.values()
            for n in chain
        }
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Jobs were queued: look now rather than at the next poll."""
        self._wake.set()

    async def recover(self) -> list[Job]:
        """At start, when this process is the store's only sender: any job still
        ``sending`` was claimed by a run that died mid-send, so it is in doubt."""
        if not self._sole_owner:
            return []  # another replica may be sending it right now: the lease decides
        now = self.clock.now()
        return await self.store.abandon(now, self._in_doubt_outcome, at=now)

    async def run(self) -> None:
        lease = timedelta(seconds=self.settings.lease_seconds)
        await self.recover()
        next_sweep = self.clock.now() + lease / 4
        try:
            while True:
                now = self.clock.now()
                if now >= next_sweep:
                    await self.store.abandon(now - lease, self._in_doubt_outcome, at=now)
                    next_sweep = now + lease / 4
                free = self.settings.workers - len(self._inflight)
                jobs = await self.store.claim(now, free, self.owner) if free > 0 else []
                for job in jobs:
                    task = asyncio.create_task(self.attempt(job), name=f"notify:{job.key[:8]}")
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
                if len(jobs) < free:
                    self._wake.clear()
                    # not asyncio.wait_for: on Python 3.11 it drops a cancel that arrives
                    # in the tick the wake-up does (cpython#86296), and the stop is lost
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll_seconds):
                            await self._wake.wait()
                elif free <= 0:
                    await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Sends on the wire get a few seconds to finish; one cancelled mid-call stays
            # ``sending`` and becomes in doubt (never sent twice), one still waiting for
            # its rate limit goes back to the queue.
            if self._inflight:
                await asyncio.wait(list(self._inflight), timeout=self._drain_seconds)
            for task in list(self._inflight):
                task.cancel()
            if self._inflight:  # bounded: an attempt that ignores its cancel is left, logged
                _, stuck = await asyncio.wait(list(self._inflight), timeout=self._drain_seconds)
                for task in stuck:
                    log.error("notification attempt %s did not stop in time", task.get_name())

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("notification attempt crashed", exc_info=task.exception())

    # -- one attempt -----------------------------------------------------------------------

    async def attempt(self, job: Job) -> None:
        content = dict(job.content)
        now = self.clock.now()
        refused = list(content.get("refused", ()))
        chain = [n for n in self.planner.providers.get(job.channel, ()) if n.name not in refused]
        if not chain:
            await self._finish(job, "dead", "failed", "no_provider", now=now, fallback=True)
            return
        if job.node not in self.settings.mandatory_nodes and await self.store.opted_out(
            [f"{job.channel}:{job.recipient}"]
        ):
            await self._finish(job, "skipped", "skipped", "opted_out", now=now, fallback=True)
            return
        quiet = self.settings.quiet_hours
        if (
            job.channel == "sms"
            and content.get("priority") not in quiet.exempt_priorities
            and job.node not in quiet.exempt_nodes
        ):
            until = quiet_until(now, quiet)
            if until is not None:
                await self.store.reschedule(
                    job.key,
                    until,
                    attempts=job.attempts,
                    error="quiet hours",
                    content=content,
                    at=now,
                )
                return
        notifier = chain[job.attempts % len(chain)]
        try:
            await self._limits[notifier.name].acquire()
        except asyncio.CancelledError:  # stopping before the call: back to the queue, not in doubt
            await asyncio.shield(
                self.store.reschedule(
                    job.key, now, attempts=job.attempts, error="", content=content, at=now
                )
            )
            raise
        try:
            receipt = await notifier.send(self._message(job))
        except RecipientUnreachable as exc:
            await self._finish(
                job,
                "skipped",
                "skipped",
                exc.reason,
                notifier,
                now=self.clock.now(),
                fallback=True,
                error=str(exc),
            )
        except (DeliveryRefused, ChannelAuthError) as exc:
            reason = exc.reason if isinstance(exc, DeliveryRefused) else "provider_auth"
            await self._refused(job, content, notifier, chain, reason, str(exc))
        except (ChannelUnavailable, ChannelRateLimited) as exc:
            await self._transient(job, content, notifier, chain, exc)
        except DeliveryInDoubt as exc:
            await self._finish(
                job,
                "in_doubt",
                "unknown",
                "no_answer",
                notifier,
                now=self.clock.now(),
                error=str(exc),
            )
        except Exception as exc:  # a notifier's bug: a dead letter, not a crashed dispatcher
            log.exception("notifier %s failed unexpectedly", notifier.name)
            await self._finish(
                job,
                "dead",
                "failed",
                "notifier_error",
                notifier,
                now=self.clock.now(),
                fallback=True,
                error=type(exc).__name__,
            )
        else:
            await self._sent(job, notifier, receipt)

    def _message(self, job: Job) -> Message:
        content = job.content
        return Message(
            key=job.key,
            record_id=job.record_id,
            node=job.node,
            recipient=job.recipient,
            ticket_no=str(content.get("ticket_no", "")),
            text=str(content.get("text", "")),
            subject=str(content.get("subject", "")),
            params=dict(content.get("params", {})),
            reply_window_open=bool(content.get("window_open")),
        )

    async def _sent(self, job: Job, notifier: Notifier, receipt: Receipt) -> None:
        now = self.clock.now()
        log.info(
            "sent %s of %s to %s via %s (%s)",
            job.node,
            job.record_id,
            mask_recipient(job.channel, job.recipient),
            notifier.name,
            receipt.detail or job.channel,
        )
        await self._finish(
            job,
            "sent",
            "sent",
            "",
            notifier,
            now=now,
            message_id=receipt.message_id,
            detail=receipt.detail,
        )

    async def _refused(
        self,
        job: Job,
        content: dict[str, Any],
        notifier: Notifier,
        chain: list[Notifier],
        reason: str,
        error: str,
    ) -> None:
        now = self.clock.now()
        if len(chain) > 1:  # another provider of this channel may take it
            content["refused"] = [*content.get("refused", ()), notifier.name]
            log.warning(
                "%s refused %s (%s); trying the next provider", notifier.name, job.key, reason
            )
            await self.store.reschedule(
                job.key, now, attempts=0, error=f"{notifier.name}: {error}", content=content, at=now
            )
            return
        await self._finish(
            job, "dead", "failed", reason, notifier, now=now, fallback=True, error=error
        )

    async def _transient(
        self,
        job: Job,
        content: dict[str, Any],
        notifier: Notifier,
        chain: list[Notifier],
        exc: ChannelUnavailable | ChannelRateLimited,
    ) -> None:
        now = self.clock.now()
        attempts = job.attempts + 1
        error = f"{notifier.name}: {exc}"
        if attempts % len(chain):  # the next provider of this round, at once
            await self.store.reschedule(
                job.key, now, attempts=attempts, error=error, content=content, at=now
            )
            return
        wait = next_wait(self._policy, attempts // len(chain), exc)
        if wait is None:
            reason = "rate_limited" if isinstance(exc, ChannelRateLimited) else "unavailable"
            await self._finish(
                job,
                "dead",
                "failed",
                reason,
                notifier,
                now=now,
                fallback=True,
                error=error,
                attempts_done=attempts,
            )
            return
        log.warning("%s: %s; retrying %s in %.1fs", notifier.name, exc, job.key[:8], wait)
        await self.store.reschedule(
            job.key,
            now + timedelta(seconds=wait),
            attempts=attempts,
            error=error,
            content=content,
            at=now,
        )

    async def _finish(
        self,
        job: Job,
        state: JobState,
        status: Status,
        reason: str,
        notifier: Notifier | None = None,
        *,
        now: datetime,
        fallback: bool = False,
        error: str = "",
        message_id: str = "",
        detail: str = "",
        attempts_done: int | None = None,
    ) -> None:
        following = follow_up(job, now) if fallback else None
        provider = notifier.name if notifier else ""
        body = outcome_json(
            record_id=job.record_id,
            ticket_no=str(job.content.get("ticket_no", "")),
            node=job.node,
            channel=job.channel,
            recipient=job.recipient,
            status=status,
            reason=reason,
            provider=provider,
            provider_message_id=message_id,
            attempts=(attempts_done if attempts_done is not None else job.attempts) + 1,
            key=job.key,
            at=now,
            detail=detail or (f"next: {following.channel}" if following else ""),
        )
        await self.store.finish(
            job.key,
            Finish(
                state=state,
                outcome=body,
                at=now,
                provider=provider,
                message_id=message_id,
                error=error,
                detail=detail,
                follow_up=(following,) if following else (),
            ),
        )
        if following is not None:
            self.wake()
        if self._on_result is not None:
            self._on_result(Result(job.channel, provider, status, reason))

    def _in_doubt_outcome(self, job: Job) -> bytes:
        return outcome_json(
            record_id=job.record_id,
            ticket_no=str(job.content.get("ticket_no", "")),
            node=job.node,
            channel=job.channel,
            recipient=job.recipient,
            status="unknown",
            reason="interrupted",
            attempts=job.attempts + 1,
            key=job.key,
            at=self.clock.now(),
            detail="the gateway stopped while sending; resend with "
            "`complaint-gateway notifications --resend KEY` if the customer did not get it",
        )
