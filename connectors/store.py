"""Offline store / POS complaints: ``/webhooks/store``.

A clerk's app or a store form posts one JSON complaint (see
``docs/store-webhook.md`` for the body). Authentication:

* ``X-Store-Timestamp``: Unix seconds when the request was signed; refused
  outside ``max_skew_seconds`` of our clock, so a captured request cannot be replayed later;
* ``X-Store-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with the shared
  secret, of ``<timestamp> "." <raw body bytes>``.

A submission is identified by its store and the store's own ``submission_id``
(each store numbers its own): a resend after a lost answer carries the same
pair and is answered 200 without a second record, while another store's
``0007`` is another complaint. The source key is ``<store_id>:<submission_id>``,
so a ``store_id`` may not contain ``:``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime

from pydantic import Field, SecretStr

from connectors._hmac_push import HmacPushConnector, HmacPushSettings
from connectors._json import parse_json_object
from connectors.base import (
    ConnectorSettings,
    Outcome,
    WebhookAnswer,
    WebhookRequest,
)
from connectors.errors import MalformedPayload
from schemas import RawEvent

TIMESTAMP_HEADER = "x-store-timestamp"
SIGNATURE_HEADER = "x-store-signature"


#: A store id or submission id: printable, no control characters, of a sane length.
_ID = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


class StoreSettings(HmacPushSettings):
    secret: SecretStr = Field(description="Shared HMAC-SHA256 secret of the store apps.")


def _identifier(payload: dict[str, object], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MalformedPayload(f"{name} (a non-empty string) is required", "missing_field")
    if not _ID.fullmatch(value):
        raise MalformedPayload(
            f"{name} must be printable text of 1 to 128 characters", "invalid_field"
        )
    return value


def parse_submission(body: bytes, received_at: datetime) -> RawEvent:
    """Wrap one store submission in a :class:`RawEvent` (pure); the normalizer checks fields."""
    payload = parse_json_object(body)
    store_id = _identifier(payload, "store_id")
    submission_id = _identifier(payload, "submission_id")
    if ":" in store_id:
        raise MalformedPayload("store_id may not contain ':'", "invalid_field")
    return RawEvent(
        channel=StoreConnector.channel,
        source_key=f"{store_id}:{submission_id}",
        received_at=received_at,
        payload=payload,
        body=body,
        media_type="application/json",
        message_id=submission_id,
    )


class StoreConnector(HmacPushConnector):
    name = "store"
    channel = "store"
    settings_model = StoreSettings
    settings: StoreSettings
    timestamp_header = TIMESTAMP_HEADER
    signature_header = SIGNATURE_HEADER

    def read(self, request: WebhookRequest) -> list[RawEvent]:
        return self.parse(request.body, request.received_at)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> list[RawEvent]:
        return [parse_submission(body, received_at)]

    def acknowledge(self, outcomes: Sequence[Outcome]) -> WebhookAnswer:
        outcome = outcomes[0]
        body = {"status": outcome.kind, "record_id": outcome.record_id}
        return WebhookAnswer(
            status=200,
            body=json.dumps(body).encode(),
            media_type="application/json",
        )
