"""The webhook connector contract.

The HTTP server calls :meth:`WebhookConnector.handle` once per request to
``/webhooks/{channel}``. ``handle`` is the same for every connector and runs
the two steps a connector supplies, in an order no connector can change:

1. :meth:`WebhookConnector.authenticate` decides from the query, the headers
   and (where the scheme signs it) the raw body bytes whether the request
   comes from the platform, and answers handshakes. It parses nothing: the
   sender may be anyone. Whatever it raises, a bug included, becomes a
   :class:`RequestRefused`, and the server keeps nothing of the request.
2. :meth:`WebhookConnector.read` turns the authenticated request into the
   platform messages it holds, as :class:`RawEvent` values.
   :class:`MalformedPayload` / :class:`UnsupportedMessage` mean authenticated
   but unreadable: the server answers 4xx and quarantines the body. Any other
   exception is a bug, and the server quarantines the body just the same.

The server then normalizes the events, drops redeliveries, writes them
durably to the outbox and only then calls :meth:`WebhookConnector.acknowledge`
to build the 2xx answer the platform expects.

A request whose method is not in ``methods`` is refused (405) before either step.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import PayloadError, RequestRefused
from schemas import RawEvent
from service.clock import Clock

log = logging.getLogger(__name__)


class ConnectorSettings(BaseModel):
    """Base of every connector's settings section (``[connectors.<channel>]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Set false to keep the section but refuse traffic.")


class SignedWebhookSettings(ConnectorSettings):
    """Settings every signed webhook channel has."""

    max_skew_seconds: int = Field(
        300,
        ge=1,
        le=86_400,
        description="How far a request's signed timestamp may be from our clock; older or "
        "newer requests are refused as stale, and replays are remembered this long.",
    )


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


class Connector(ABC):
    """What every connector has, pushed to (:class:`WebhookConnector`) or polling
    (:class:`connectors.polling.PollingConnector`).

    A connector is named by the system it talks to (``name``: the registry key,
    the webhook path, the ``[connectors.<name>]`` section, the metrics label)
    and feeds one record ``channel``; several connectors may feed one channel
    (``asterisk_csv``, ``freeswitch`` and ``tccc`` all feed ``phone``).
    """

    name: ClassVar[str]
    channel: ClassVar[str]
    settings_model: ClassVar[type[ConnectorSettings]]
    #: Webhook or poller, for ``GET /channels``.
    kind: ClassVar[str]

    def __init__(
        self,
        settings: ConnectorSettings,
        clock: Clock,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.http = http

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class WebhookConnector(Connector):
    """A system that pushes to us over HTTP, at ``/webhooks/<name>``."""

    kind = "webhook"
    #: HTTP methods the platform uses; others are refused with 405, nothing kept.
    methods: ClassVar[frozenset[str]] = frozenset({"POST"})
    #: Query parameters that are credentials (signatures, nonces, timestamps):
    #: never kept with a quarantined body, so no reusable signed triple is stored.
    credential_params: ClassVar[frozenset[str]] = frozenset(
        {"signature", "msg_signature", "timestamp", "nonce", "echostr", "sign", "access_token"}
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "handle" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides handle(); implement authenticate() and read() instead, "
                "so every request is authenticated before its body is parsed"
            )

    async def handle(self, request: WebhookRequest) -> WebhookReply:
        """Authenticate, then read one request; see the module docstring for errors."""
        if request.method not in self.methods:
            allowed = " or ".join(sorted(self.methods))
            raise RequestRefused(f"{self.name} uses {allowed}", "bad_method", status=405)
        try:
            answer = await self.authenticate(request)
        except RequestRefused:
            raise
        except Exception as exc:  # a stranger's request must never reach the quarantine
            if isinstance(exc, PayloadError):
                reason = exc.reason
            else:
                log.exception("%s authentication failed unexpectedly", self.name)
                reason = "auth_error"
            raise RequestRefused(
                f"request could not be authenticated ({type(exc).__name__})", reason, status=403
            ) from None
        if answer is not None:
            return WebhookReply(answer=answer)
        return WebhookReply(events=self.read(request))

    @abstractmethod
    async def authenticate(self, request: WebhookRequest) -> WebhookAnswer | None:
        """Check that the request comes from the platform, before anything parses its body.

        Returns the answer to a handshake (a URL check), or None for a push to
        :meth:`read`. Raises :class:`InvalidSignature` (401/403) or another
        :class:`RequestRefused`; nothing of a refused request is kept.
        """

    @abstractmethod
    def read(self, request: WebhookRequest) -> Sequence[RawEvent]:
        """The events of an authenticated request (decrypting it where the channel encrypts).

        Raises :class:`MalformedPayload` or :class:`UnsupportedMessage` when the
        body cannot be read; the server quarantines it.
        """

    @staticmethod
    @abstractmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        """The events in an authenticated (and decrypted) body; pure.

        ``settings`` (default: the model's defaults) is for what a format leaves
        to configuration, such as which called numbers are complaint lines.

        Raises :class:`MalformedPayload` when the body cannot be read. ``handle``
        calls it after authentication; golden-file tests call it directly.
        """

    def acknowledge(self, outcomes: Sequence[Outcome]) -> WebhookAnswer:
        """The 2xx answer once every event is durably taken in (or known as a repeat)."""
        return WebhookAnswer()
