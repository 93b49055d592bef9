"""Weibo fans-service platform (粉丝服务平台) private-message push: ``/webhooks/weibo_dm``.

The account's developer mode registers our URL and an APPKEY; that app's
secret signs every request. ``signature`` is the SHA-1 of the sorted
``[app_secret, timestamp, nonce]`` joined with nothing (WeChat's shape, with
the app secret instead of a token; TV-WB-1), and ``timestamp`` is in
**milliseconds**.

* ``GET`` with ``echostr`` is the URL check: answered with ``echostr``
  verbatim once the signature holds.
* ``POST`` is a message: the same three query parameters are required on
  every push (the platform documents them for the URL check only; by analogy
  with WeChat we require them, and refuse unsigned pushes). The timestamp must
  be within ``max_skew_seconds`` of our clock, and a signature seen before
  with another body is a replay (:mod:`connectors._replay`): the signature
  does not cover the body, so this is what stops a captured URL from carrying
  other messages.

The body is one JSON object (``type``, ``sender_id``, ``receiver_id``,
``created_at``, ``text``, ``data``). Ids are int64 and exceed 2^53: JSON
numbers are read as Python integers, never floats, and kept as strings.
Weibo has no message id ("目前微博消息暂时不支持消息ID") and resends a push it got
no answer to within 5 s, three times in all; its advice is to dedupe on
``sender_id`` + ``created_at``. ``created_at`` has one-second resolution, so
the ``source_key`` adds the type and a digest of ``text`` and ``data``: a
resend maps onto the first record, two messages in one second do not.

Every push is answered with an empty body, which also tells Weibo not to retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from pydantic import Field, SecretStr

from connectors._json import parse_json_object
from connectors._replay import ReplayGuard
from connectors.base import (
    ConnectorSettings,
    Outcome,
    SignedWebhookSettings,
    WebhookAnswer,
    WebhookConnector,
    WebhookRequest,
)
from connectors.errors import InvalidSignature, MalformedPayload
from schemas import RawEvent
from service.clock import Clock

#: Unix milliseconds: ASCII digits only, at most 13 (up to the year 2286).
_UNIX_MILLIS = re.compile(r"[0-9]{1,13}", re.ASCII)
_SHA1_HEX = re.compile(r"[0-9a-fA-F]{40}", re.ASCII)
#: A user id as text: Weibo's are digits; any short token safe in a key is kept.
_UID = re.compile(r"[0-9A-Za-z_-]{1,64}", re.ASCII)
_MAX_UID = 2**64
#: A message type that may appear in the key as it is.
_TYPE_LABEL = re.compile(r"[a-z_]{1,32}", re.ASCII)
#: Weibo's time format, "Mon Jul 16 18:09:20 +0800 2012" (English names whatever the locale).
_WEIBO_TIME = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{2}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2}) ([0-9]{4})",
    re.ASCII,
)
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


class WeiboDmSettings(SignedWebhookSettings):
    app_secret: SecretStr = Field(
        description="App secret of the APPKEY registered in the fans-service developer mode "
        "(开发模式); it signs every request."
    )


def _signature(app_secret: str, timestamp: str, nonce: str) -> str:
    """SHA-1 hex of ``[app_secret, timestamp, nonce]`` sorted and joined (TV-WB-1)."""
    return hashlib.sha1("".join(sorted((app_secret, timestamp, nonce))).encode("utf-8")).hexdigest()


def weibo_uid(value: Any, name: str) -> str:
    """An id from the push as text: a JSON integer or a string, never a float.

    Raises :class:`MalformedPayload` when it is missing or of another shape.
    """
    if value is None or value == "":
        raise MalformedPayload(f"Weibo message has no {name}", "missing_field")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_UID:
        return str(value)
    if isinstance(value, str) and _UID.fullmatch(value):
        return value
    raise MalformedPayload(f"{name} is not a Weibo id", "invalid_field")


def parse_created_at(value: str) -> datetime:
    """Weibo's ``created_at`` ("Mon Jul 16 18:09:20 +0800 2012") as an aware datetime.

    Raises :class:`MalformedPayload` for anything else.
    """
    match = _WEIBO_TIME.fullmatch(value)
    if match is None:
        raise MalformedPayload("created_at is not in Weibo's time format", "invalid_field")
    month, day, hour, minute, second, sign, off_h, off_m, year = match.groups()
    offset = timedelta(hours=int(off_h), minutes=int(off_m))
    try:
        return datetime(
            int(year),
            _MONTHS.index(month) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone(-offset if sign == "-" else offset),
        )
    except ValueError:  # Feb 30, hour 25, an offset of a day or more
        raise MalformedPayload("created_at is not a real time", "invalid_field") from None


def _content_digest(message_type: str, message: Mapping[str, Any]) -> str:
    """A digest of what the message says, stable across resends of the same push."""
    content = {"type": message_type, "text": message.get("text"), "data": message.get("data")}
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.blake2b(canonical.encode("ascii"), digest_size=10).hexdigest()


def message_event(message: dict[str, Any], body: bytes, received_at: datetime) -> RawEvent:
    """Wrap one Weibo push in a :class:`RawEvent` (pure); see the module docstring for the key."""
    message_type = message.get("type")
    if not message_type:
        raise MalformedPayload("Weibo message has no type", "missing_field")
    if not isinstance(message_type, str):
        raise MalformedPayload("type is not text", "invalid_field")
    sender = weibo_uid(message.get("sender_id"), "sender_id")
    created_at = message.get("created_at")
    if not created_at:
        raise MalformedPayload("Weibo message has no created_at", "missing_field")
    if not isinstance(created_at, str):
        raise MalformedPayload("created_at is not text", "invalid_field")
    parse_created_at(created_at)
    label = message_type if _TYPE_LABEL.fullmatch(message_type) else "other"
    return RawEvent(
        channel=WeiboDmConnector.channel,
        connector=WeiboDmConnector.name,
        source_key=f"{sender}:{created_at}:{label}:{_content_digest(message_type, message)}",
        received_at=received_at,
        payload=message,
        body=body,
        media_type="application/json",
    )


class WeiboDmConnector(WebhookConnector):
    name = "weibo_dm"
    channel = "weibo"
    settings_model = WeiboDmSettings
    settings: WeiboDmSettings
    methods = frozenset({"GET", "POST"})

    def __init__(
        self, settings: WeiboDmSettings, clock: Clock, http: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(settings, clock, http)
        self._app_secret = settings.app_secret.get_secret_value()
        self._replays = ReplayGuard(clock, timedelta(seconds=settings.max_skew_seconds))

    def _check_signature(self, query: Mapping[str, str]) -> str:
        """The request's signature, once present, in the window and matching."""
        signature, timestamp, nonce = (query.get(k) for k in ("signature", "timestamp", "nonce"))
        if not (signature and timestamp and nonce):
            raise InvalidSignature(
                "signature, timestamp and nonce are required", "missing_signature", missing=True
            )
        if not _UNIX_MILLIS.fullmatch(timestamp):
            raise InvalidSignature("timestamp is not Unix milliseconds", "bad_timestamp")
        skew = abs(self.clock.now().timestamp() - int(timestamp) / 1000)
        if skew > self.settings.max_skew_seconds:
            raise InvalidSignature(
                f"timestamp is more than {self.settings.max_skew_seconds}s away from our clock",
                "stale_timestamp",
            )
        if not _SHA1_HEX.fullmatch(signature):
            raise InvalidSignature("signature is not a SHA-1 hex digest", "bad_signature")
        expected = _signature(self._app_secret, timestamp, nonce)
        if not hmac.compare_digest(expected.encode("ascii"), signature.lower().encode("ascii")):
            raise InvalidSignature("signature does not match", "bad_signature")
        return signature.lower()

    async def authenticate(self, request: WebhookRequest) -> WebhookAnswer | None:
        if request.method == "GET":
            echostr = request.query.get("echostr")
            if not echostr:
                raise InvalidSignature("echostr is required", "missing_signature", missing=True)
            self._check_signature(request.query)
            return WebhookAnswer(body=echostr.encode("utf-8"))
        signature = self._check_signature(request.query)
        self._replays.check(signature, request.body)
        return None

    def read(self, request: WebhookRequest) -> list[RawEvent]:
        return self.parse(request.body, request.received_at)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> list[RawEvent]:
        return [message_event(parse_json_object(body), body, received_at)]

    def acknowledge(self, outcomes: Sequence[Outcome]) -> WebhookAnswer:
        """An empty body: Weibo takes it as received and does not retry."""
        return WebhookAnswer(body=b"")
