"""The notification state port: directory, progress, timers, queue and ledger, outcomes.

One store holds everything that must survive a restart, so that each status
update is turned into notifications exactly once:

* the **directory**: each record's customer contacts and reply handles
  (OpenID, phone, e-mail...), its channel, priority and arrival, kept for
  ``retention`` (180 days by default, much longer than the outbox);
* **progress**: the furthest node each complaint reached, and its two
  timers (the SLA deadline for a first ``in_progress``, the survey due after
  ``resolved``);
* **jobs**: the queue and the idempotency ledger in one table, keyed by
  :func:`notification_key` of (record, node, channel, recipient). A key is
  inserted once; redelivered status updates find it and add nothing. A job
  is ``queued`` (possibly not before ``due_at``), ``sending`` (claimed: the
  provider may be being called right now), then ``sent``, ``skipped``,
  ``dead`` (failed for good or out of retries) or ``in_doubt`` (its claim
  outlived the lease: the process died between the call and the record of
  its result, so whether the customer got it is unknown). Only ``queued``
  jobs are ever sent, and a job leaves ``sending`` only by its result or the
  lease, so no job is sent twice without an operator's ``--resend``;
* **outcomes**: one row per result, published to ``complaint-notifications.v1``;
* **opt-outs**: handles (``sms:+86...``, ``wechat:o...``) not to message.

Two implementations: :mod:`outbound.state_sqlite` (embedded, one process)
and :mod:`outbound.state_postgres` (several replicas share one database;
claims use ``FOR UPDATE SKIP LOCKED``). ``tests/test_notification_state.py``
runs the same contract against both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from schemas.status import Node

JobState = Literal["queued", "sending", "sent", "skipped", "dead", "in_doubt"]
TimerKind = Literal["sla", "survey"]


def stamp(moment: datetime) -> str:
    """A fixed-width UTC text form, so text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def notification_key(record_id: str, node: str, channel: str, recipient: str) -> str:
    """The idempotency key of one notification: the same inputs always give the same key."""
    digest = hashlib.sha256(f"{record_id}\x1f{node}\x1f{channel}\x1f{recipient}".encode())
    return digest.hexdigest()[:32]


#: The complaint channels whose messages open a reply window, and the contact that
#: identifies the customer there (a column of the directory).
WINDOW_HANDLES = {"wechat": "wechat_openid", "weibo_dm": "weibo_uid"}


@dataclass(frozen=True, slots=True)
class Contact:
    """What the directory keeps of one record: who to notify and how."""

    record_id: str
    channel: str
    customer_id: str
    priority: str
    received_at: datetime
    phone: str | None = None
    email: str | None = None
    wechat_openid: str | None = None
    weibo_uid: str | None = None
    buyer_nick: str | None = None
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    record_id: str
    node: Node
    rank: int
    ticket_no: str


@dataclass(frozen=True, slots=True)
class Job:
    """One notification to send (or sent): the queue entry and its ledger line.

    ``content`` holds what is sent (text, subject, params, ticket number,
    priority) and ``fallback``: the next channels to try, each with its own
    content, if this one cannot reach the customer.
    """

    key: str
    record_id: str
    node: Node
    channel: str
    recipient: str
    content: Mapping[str, Any]
    due_at: datetime
    state: JobState = "queued"
    attempts: int = 0
    provider: str = ""
    message_id: str = ""
    error: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One result as published to ``complaint-notifications.v1`` (``body`` is its JSON)."""

    seq: int
    record_id: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`NotificationStore.apply` did: jobs it added and how many it already had."""

    added: int
    already_queued: int
    backwards_from: Node | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status update as the store applies it, with the jobs and skips it planned."""

    record_id: str
    node: Node
    rank: int
    ticket_no: str
    reopens: bool
    jobs: Sequence[Job]
    outcomes: Sequence[bytes] = ()
    #: set the survey timer (after ``resolved``), None to leave it
    survey_due_at: datetime | None = None
    #: cancel the SLA timer (a first ``in_progress`` or later arrived)
    clear_sla: bool = False
    #: cancel the survey timer (the survey was sent or asked for)
    clear_survey: bool = False
    #: ``overdue_warning`` can come at any point: it does not move progress
    advances: bool = True


@dataclass(frozen=True, slots=True)
class Finish:
    """The result of one attempt: the job's new state and what follows from it."""

    state: JobState
    outcome: bytes
    at: datetime
    provider: str = ""
    message_id: str = ""
    error: str = ""
    detail: str = ""
    #: the next channel's job when this one could not reach the customer
    follow_up: Sequence[Job] = field(default_factory=tuple)


class NotificationStore(Protocol):
    async def remember(
        self, contacts: Sequence[Contact], *, cursor: int, sla_due: Mapping[str, datetime]
    ) -> None:
        """Upsert contacts, start their SLA timers (``record_id`` → deadline), save the cursor."""
        ...

    async def directory_cursor(self) -> int:
        """The last outbox ``seq`` whose record is in the directory (0 before any)."""
        ...

    async def contact(self, record_id: str) -> Contact | None: ...

    async def progress(self, record_id: str) -> Progress | None: ...

    async def apply(self, change: StatusChange, *, now: datetime) -> Applied:
        """Check the node's order and queue its jobs, all or nothing.

        A node ranked below the furthest one reached is refused
        (``backwards_from`` set, nothing written) unless ``reopens``. Jobs
        whose key is already in the ledger are not added again.
        """
        ...

    async def record_outcome(self, record_id: str, outcome: bytes) -> None:
        """Keep an outcome that changes nothing else (an update refused from the stream)."""
        ...

    async def claim(self, now: datetime, limit: int, owner: str) -> list[Job]:
        """Mark up to ``limit`` due queued jobs ``sending`` and return them (oldest due first)."""
        ...

    async def finish(self, key: str, result: Finish) -> None:
        """Record an attempt's result, its outcome row and any follow-up jobs, at once."""
        ...

    async def reschedule(
        self,
        key: str,
        due_at: datetime,
        *,
        attempts: int,
        error: str,
        content: Mapping[str, Any],
        at: datetime,
    ) -> None:
        """Put a claimed job back in the queue, not before ``due_at``."""
        ...

    async def abandon(
        self, claimed_before: datetime, outcome: Callable[[Job], bytes], *, at: datetime
    ) -> list[Job]:
        """Jobs still ``sending`` since ``claimed_before`` or earlier become ``in_doubt``.

        ``outcome(job) -> bytes`` gives each one's outcome row.
        """
        ...

    async def due_timers(self, now: datetime, limit: int) -> list[tuple[str, TimerKind]]: ...

    async def cancel_timer(self, record_id: str, kind: TimerKind) -> None: ...

    async def reply_window(
        self, handle: str, since: datetime, *, channel: str = "wechat"
    ) -> tuple[datetime | None, int]:
        """When the customer last wrote on ``channel`` (if after ``since``), and the
        customer-service messages sent to them since then.

        ``channel`` is a complaint channel whose messages open a reply window,
        one of :data:`WINDOW_HANDLES`: ``wechat`` (``handle`` is the OpenID) or
        ``weibo_dm``, a Weibo private message (``handle`` is the uid)."""
        ...

    async def opted_out(self, handles: Sequence[str]) -> set[str]: ...

    async def set_opt_out(self, handle: str, opted_out: bool, *, source: str, at: datetime) -> None:
        """Opt a handle out (or in again). ``source`` is ``operator`` or what the customer
        did (``wechat_unsubscribe``): an operator's opt-out is only undone by an operator,
        and a customer's opt-in undoes only the opt-out of the same source."""
        ...

    async def unpublished(self, limit: int) -> list[Outcome]: ...

    async def mark_published(self, seqs: Sequence[int], at: datetime) -> None: ...

    async def jobs(
        self, *, states: Sequence[JobState] = (), record_id: str | None = None, limit: int = 100
    ) -> list[Job]: ...

    async def resend(self, key: str, now: datetime) -> Job | None:
        """Queue a ``dead`` or ``in_doubt`` job again (an operator's decision).

        Returns None when there is no such job in either state."""
        ...

    async def counts(self) -> dict[JobState, int]: ...

    async def prune(self, before: datetime) -> int:
        """Forget contacts, progress and finished jobs of records received before ``before``."""
        ...

    async def aclose(self) -> None: ...
