"""The polling connector contract.

The poll runner (``service/polling.py``) calls :meth:`PollingConnector.poll`
with the connector's last committed cursor and gets back the events found
after it and the cursor to commit with them. The runner writes the records,
the payloads that could not be read, and the new cursor to the outbox in one
transaction, so a crash between fetching and committing repeats a poll and
never skips one (the repeat maps onto the same ``record_id``s).

A connector never loops, sleeps or retries: the runner owns the schedule
(``interval_seconds`` with jitter), the per-poll timeout and the retries.
``poll`` raises:

* :class:`ChannelUnavailable` (down, timed out) and :class:`ChannelRateLimited`
  (with ``retry_after``): retried by the runner with backoff;
* :class:`ChannelAuthError` (credentials refused, a mailbox that does not
  exist): the runner stops polling this connector and reports it, the rest
  of the gateway runs on;
* anything else is a bug: reported and retried at the next interval.

A message the platform returned but the connector cannot read is not an
exception: it goes into :attr:`PollResult.rejected`, so one bad message is
quarantined instead of blocking the cursor forever.

Cursors are text (whatever the connector needs: ``dev:inode:offset``, a JSON
object of mailbox UIDs...), opaque to the runner and shown as-is in
``GET /channels``; they never contain secrets.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import Field

from connectors.base import Connector, ConnectorSettings
from connectors.errors import PayloadError
from schemas import RawEvent


class PollingSettings(ConnectorSettings):
    """Settings every polling connector has."""

    interval_seconds: float = Field(
        30, gt=0, le=86_400, description="Time between polls (jittered by up to 10%)."
    )
    timeout_seconds: float = Field(
        60, gt=0, le=3_600, description="A poll that takes longer is abandoned and retried."
    )


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message the platform returned that cannot be read: quarantined, then skipped."""

    body: bytes
    error: PayloadError
    source_key: str | None = None


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll found after the given cursor.

    ``cursor`` is the position after everything in ``events`` and
    ``rejected`` (None: unchanged). ``more`` says that the connector stopped
    early (a batch limit) and the runner should poll again at once.
    """

    events: Sequence[RawEvent] = ()
    cursor: str | None = None
    rejected: Sequence[Rejected] = field(default_factory=tuple)
    more: bool = False


class PollingConnector(Connector):
    """A system we fetch from: a mailbox, a CDR file, a platform API."""

    kind: ClassVar[str] = "poller"
    settings: PollingSettings

    @abstractmethod
    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch what came after ``cursor`` (None: from the start); see the module docstring."""

    async def aclose(self) -> None:
        """Release connections; the runner calls it once when the gateway stops."""
        return None
