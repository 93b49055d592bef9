"""Douyin shop (抖店) message push: ``/webhooks/douyin_shop``.

The platform POSTs a JSON array of messages, each
``{"tag": "200", "msg_id": "…", "data": "<a JSON object, as a string>"}``, with two headers:

* ``app-id``: the app's App Key; another app's push is refused (403, ``app_id_mismatch``);
* ``event-sign``: lower-case hex ``MD5(app_key + raw body + app_secret)``, or with
  ``sign_method = "hmac-sha256"`` ``HMAC-SHA256(key=app_secret, app_key + body + app_secret)``
  (the variant implementations support; the platform's confirmation was not found).
  Missing: 401; wrong: 403. The configured method is the only one accepted, so a
  sender cannot pick the weaker one; a ``sign-method`` header is not read.

The push carries no timestamp and no nonce, so there is no replay window to
check: the signature covers the whole body, so a captured request can only be
sent again verbatim, which is a redelivery the platform makes itself (it
retries a push not answered ``{"code":0,"msg":"success"}`` within 5 s), and
``msg_id`` dedupe absorbs it.

Every message becomes one :class:`RawEvent` keyed by its ``msg_id``, so the
server counts what is not a complaint. The connector classifies each message
into the payload's ``kind``: ``verification`` (tag 0, the platform's check of
the URL), ``complaint`` (a tag in ``complaint_tags``: by default the after-sale
messages the buyer starts) or ``ignored`` (everything else: orders, shipping,
the seller's own after-sale steps). Only a complaint's ``data`` is decoded
(with the bounded parser), so a push of order messages with odd data is never
refused because of them. The event payload is
``{"tag", "msg_id", "kind", "data": {…}}``; its body is the push itself when it
holds one message, else that message alone as a one-element array.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, SecretStr

from connectors._json import parse_json_object, parse_json_value
from connectors.base import (
    ConnectorSettings,
    Outcome,
    WebhookAnswer,
    WebhookConnector,
    WebhookRequest,
)
from connectors.errors import InvalidSignature, MalformedPayload
from schemas import RawEvent

APP_ID_HEADER = "app-id"
SIGN_HEADER = "event-sign"
VERIFICATION_TAG = "0"
#: After-sale messages the buyer starts (tags from the platform's message docs as
#: mirrored by SDKs; the list is UNCONFIRMED, hence a setting): 200 买家发起售后申请,
#: 208 买家修改售后申请, 212 买家发起客服仲裁.
DEFAULT_COMPLAINT_TAGS = ("200", "208", "212")
SUCCESS = b'{"code":0,"msg":"success"}'

SignMethod = Literal["md5", "hmac-sha256"]
_HEX_SIGN = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}", re.ASCII)
_MSG_ID = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


class DouyinShopSettings(ConnectorSettings):
    app_key: str = Field(
        min_length=1, description="The app's App Key; every push names it in the app-id header."
    )
    app_secret: SecretStr = Field(description="The app's App Secret, which signs every push.")
    sign_method: SignMethod = Field(
        "md5",
        description="How event-sign is computed: md5 (the documented push signature) or "
        "hmac-sha256 (keyed with the App Secret). Only this one is accepted.",
    )
    complaint_tags: tuple[str, ...] = Field(
        DEFAULT_COMPLAINT_TAGS,
        description="Message tags that become complaint records (default: 200 buyer opens "
        "an after-sale, 208 buyer changes it, 212 buyer asks for platform arbitration); "
        "other tags are acknowledged and counted as ignored.",
    )


def event_sign(app_key: str, app_secret: str, body: bytes, method: SignMethod) -> str:
    """The ``event-sign`` the platform sends for ``body`` (lower-case hex)."""
    signed = app_key.encode() + body + app_secret.encode()
    if method == "md5":
        return hashlib.md5(signed).hexdigest()
    return hmac.new(app_secret.encode(), signed, hashlib.sha256).hexdigest()


def _parse_array(body: bytes) -> list[Any]:
    """The body as a JSON array, with :mod:`connectors._json`'s caps on depth and numbers."""
    value = parse_json_value(body)
    if not isinstance(value, list):
        raise MalformedPayload("a Douyin push is a JSON array of messages", "invalid_json")
    return value


def _token(message: Mapping[str, Any], name: str) -> str | None:
    """A tag or msg_id: text, or an integer as the platform may send it; None when absent."""
    value = message.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and _MSG_ID.fullmatch(value):
        return value
    raise MalformedPayload(f"{name} must be printable text or a number", "invalid_field")


def _data(message: Mapping[str, Any]) -> dict[str, Any]:
    data = message.get("data")
    if isinstance(data, str):
        return parse_json_object(data.encode("utf-8", "surrogatepass"))
    if isinstance(data, dict):  # not what the platform sends, but unambiguous
        return data
    raise MalformedPayload("a message's data must be a JSON object in a string", "missing_field")


def message_events(
    body: bytes, received_at: datetime, settings: DouyinShopSettings | None = None
) -> list[RawEvent]:
    """Wrap each message of an authenticated push in a :class:`RawEvent` (pure)."""
    complaint_tags = frozenset(settings.complaint_tags if settings else DEFAULT_COMPLAINT_TAGS)
    messages = _parse_array(body)
    events = []
    for message in messages:
        if not isinstance(message, dict):
            raise MalformedPayload("each message must be a JSON object", "invalid_json")
        tag = _token(message, "tag")
        if tag is None:
            raise MalformedPayload("a message has no tag", "missing_field")
        msg_id = _token(message, "msg_id")
        payload: dict[str, Any] = {"tag": tag, "msg_id": msg_id}
        if tag == VERIFICATION_TAG:
            payload["kind"] = "verification"
        elif tag in complaint_tags:
            if msg_id is None:
                raise MalformedPayload("an after-sale message has no msg_id", "missing_field")
            payload |= {"kind": "complaint", "data": _data(message)}
        else:
            payload["kind"] = "ignored"
        if len(messages) == 1:
            raw = body
        else:
            kept = {k: message[k] for k in ("tag", "msg_id", "data") if k in message}
            raw = json.dumps([kept], ensure_ascii=False, default=str).encode("utf-8")
        events.append(
            RawEvent(
                channel=DouyinShopConnector.channel,
                source_key=msg_id or f"tag:{tag}",
                received_at=received_at,
                payload=payload,
                body=raw,
                media_type="application/json",
                message_id=msg_id,
            )
        )
    return events


class DouyinShopConnector(WebhookConnector):
    name = "douyin_shop"
    channel = "douyin_shop"
    settings_model = DouyinShopSettings
    settings: DouyinShopSettings

    async def authenticate(self, request: WebhookRequest) -> WebhookAnswer | None:
        presented = request.headers.get(SIGN_HEADER)
        app_id = request.headers.get(APP_ID_HEADER)
        if not presented or not app_id:
            raise InvalidSignature(
                "app-id and event-sign headers are required", "missing_signature", missing=True
            )
        app_key = self.settings.app_key
        if not hmac.compare_digest(app_id.encode("utf-8", "replace"), app_key.encode()):
            raise InvalidSignature("the push is for another app", "app_id_mismatch")
        if not _HEX_SIGN.fullmatch(presented):
            raise InvalidSignature("event-sign is not a hex digest", "bad_signature")
        expected = event_sign(
            app_key,
            self.settings.app_secret.get_secret_value(),
            request.body,
            self.settings.sign_method,
        )
        if not hmac.compare_digest(expected.encode(), presented.lower().encode()):
            raise InvalidSignature("event-sign does not match", "bad_signature")
        return None

    def read(self, request: WebhookRequest) -> list[RawEvent]:
        return self.parse(request.body, request.received_at, self.settings)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> list[RawEvent]:
        douyin = settings if isinstance(settings, DouyinShopSettings) else None
        return message_events(body, received_at, douyin)

    def acknowledge(self, outcomes: Sequence[Outcome]) -> WebhookAnswer:
        return WebhookAnswer(status=200, body=SUCCESS, media_type="application/json")
