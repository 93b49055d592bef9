"""The notifier contract: one provider that delivers status notifications.

A notifier is registered under ``complaint_gateway.notifiers`` by its
``name`` (``aliyun_sms``), which is also its settings section
(``[notifiers.aliyun_sms]``) and its metrics label. ``channel`` is the
delivery channel it serves (``sms``, ``wechat``, ``email``); a channel may
have several notifiers (two SMS providers), tried in the configured order.

The dispatcher (:mod:`outbound.dispatch`) calls :meth:`Notifier.send` once
per attempt, after the idempotency ledger recorded that the attempt starts,
and owns everything around the call: rate limits, quiet hours, retries,
failover and the ledger. A notifier makes one request (two for WeChat when
its access token must be refreshed) and answers with a :class:`Receipt` or
one of these errors (:mod:`connectors.errors`):

* :class:`ChannelUnavailable`, :class:`ChannelRateLimited`: transient (5xx,
  connection refused, the provider's flow control); retried later, and
  another provider of the channel may be tried first.
* :class:`ChannelAuthError`: our credentials were refused; another provider
  may be tried, this one not again for this message.
* :class:`DeliveryRefused`: the provider refused this message for good
  (template or signature not approved, parameter rejected).
* :class:`RecipientUnreachable`: the recipient cannot be reached on this
  channel (invalid number, not following, refused, outside the reply window):
  the next channel of the route is tried, no other provider of this one.
* :class:`DeliveryInDoubt`: the request went out and no answer came back;
  never retried by itself.

Errors carry no secret and no unmasked recipient.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from schemas.status import Node
from service.clock import Clock


class NotifierSettings(BaseModel):
    """Settings every notifier has; a notifier adds its credentials and template ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Set false to keep the section but send nothing.")
    rate_per_second: float = Field(
        50.0, gt=0, description="Calls per second this gateway makes to the provider at most."
    )
    burst: int = Field(10, ge=1, description="Calls allowed at once before the rate applies.")
    timeout_seconds: float = Field(10.0, gt=0, description="Per-request timeout.")


@dataclass(frozen=True, slots=True)
class Message:
    """One notification to one recipient on one channel.

    ``key`` is the idempotency key of (record, node, channel, recipient);
    providers that echo a caller's id get it (Aliyun ``OutId``, Tencent
    ``SessionContext``, WeChat ``client_msg_id``) so their receipts can be
    matched. ``params`` are the template's variables in the order the text
    first uses them (Tencent's ``TemplateParamSet`` is positional).
    """

    key: str
    record_id: str
    node: Node
    recipient: str
    ticket_no: str
    text: str
    subject: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    #: The customer wrote to us on this channel recently enough for a free-form
    #: reply (WeChat's 48-hour customer-service window).
    reply_window_open: bool = False


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the provider answered: its message id, and how it was sent."""

    provider: str
    message_id: str
    detail: str = ""


class Notifier(ABC):
    """One provider of one delivery channel; built with settings, the HTTP client, a clock."""

    name: ClassVar[str]
    channel: ClassVar[str]
    settings_model: ClassVar[type[NotifierSettings]] = NotifierSettings

    def __init__(self, settings: Any, http: httpx.AsyncClient, clock: Clock) -> None:
        self.settings = settings
        self.http = http
        self.clock = clock

    def __repr__(self) -> str:  # settings hold credentials
        return f"{type(self).__name__}()"

    def problems(self, texts: Mapping[Node, str]) -> list[str]:
        """What keeps this notifier from sending the nodes of ``texts`` (checked at start).

        ``texts`` are the channel's template texts per node (``{ticket_no}``
        placeholders). A notifier reports nodes it has no provider template
        for, placeholders its provider cannot take, and the like; the
        gateway refuses to start while any is left.
        """
        return []

    def unreachable_reason(self, node: Node, *, reply_window_open: bool) -> str | None:
        """Why this notifier cannot send ``node`` right now (None if it can).

        WeChat, for one, can only send a free-form message inside the reply
        window and needs a template for the node outside it.
        """
        return None

    def value_problems(self, params: Mapping[str, str]) -> list[str]:
        """What the provider would refuse in these values (checked when a status arrives)."""
        return []

    @abstractmethod
    async def send(self, message: Message) -> Receipt:
        """Deliver one notification; see the module docstring for the errors."""

    async def aclose(self) -> None:  # noqa: B027 - most notifiers hold nothing of their own
        """Release what the notifier holds (the HTTP client is not its own)."""
