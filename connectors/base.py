"""The webhook connector contract.

The HTTP server calls :meth:`WebhookConnector.handle` once per request to
``/webhooks/{channel}``. The connector authenticates the request, answers
handshakes itself, and returns the platform messages it found as
:class:`RawEvent` values. The server then normalizes them, drops redeliveries,
writes them durably to the outbox and only then calls
:meth:`WebhookConnector.acknowledge` to build the 2xx answer the platform expects.

``handle`` raises:

* :class:`InvalidSignature` when the request is not from the platform: the
  server answers 401/403 and keeps nothing;
* :class:`MalformedPayload` / :class:`UnsupportedMessage` when it is
  authenticated but unreadable: the server answers 4xx and quarantines the body.

Any other exception is a bug; the server treats it as a malformed payload, so
the body is still kept.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas import RawEvent
from service.clock import Clock


class ConnectorSettings(BaseModel):
    """Base of every connector's settings section (``[connectors.<channel>]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Set false to keep the section but refuse traffic.")


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """An HTTP request as a connector sees it: already size-limited and fully read."""

    method: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """What the server sends back to the platform."""

    status: int = 200
    body: bytes = b"success"
    media_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class WebhookReply:
    """The result of :meth:`WebhookConnector.handle`.

    ``answer`` set means "answer this now" (a handshake); otherwise the server
    takes ``events`` in and calls :meth:`WebhookConnector.acknowledge`.
    """

    events: Sequence[RawEvent] = ()
    answer: WebhookAnswer | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one :class:`RawEvent` once taken in."""

    kind: Literal["accepted", "duplicate", "ignored"]
    record_id: str | None = None
    reason: str | None = None


class WebhookConnector(ABC):
    """A channel that pushes to us over HTTP."""

    channel: ClassVar[str]
    settings_model: ClassVar[type[ConnectorSettings]]

    def __init__(self, settings: ConnectorSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock

    @abstractmethod
    async def handle(self, request: WebhookRequest) -> WebhookReply:
        """Authenticate and parse one request; see the module docstring for errors."""

    @staticmethod
    @abstractmethod
    def parse(body: bytes, received_at: datetime) -> Sequence[RawEvent]:
        """The events in an authenticated (and decrypted) body; pure.

        Raises :class:`MalformedPayload` when the body cannot be read. ``handle``
        calls it after authentication; golden-file tests call it directly.
        """

    def acknowledge(self, outcomes: Sequence[Outcome]) -> WebhookAnswer:
        """The 2xx answer once every event is durably taken in (or known as a repeat)."""
        return WebhookAnswer()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channel={self.channel!r})"
