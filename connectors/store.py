"""Offline store / POS complaints: ``/webhooks/store``.

A clerk's app or a store form posts one JSON complaint (see
``docs/store-webhook.md`` for the body). Authentication:

* ``X-Store-Timestamp``: Unix seconds when the request was signed; refused
  outside ``max_skew_seconds`` of our clock, so a captured request cannot be replayed later;
* ``X-Store-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with the shared
  secret, of ``<timestamp> "." <raw body bytes>``.

The store's own ``submission_id`` identifies the submission: a resend after a
lost answer carries the same id and is answered 200 without a second record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import Field, SecretStr

from connectors._signing import check_timestamp, verify_hmac_sha256
from connectors.base import (
    ConnectorSettings,
    Outcome,
    WebhookAnswer,
    WebhookConnector,
    WebhookReply,
    WebhookRequest,
)
from connectors.errors import InvalidSignature, MalformedPayload, UnsupportedMessage
from schemas import RawEvent

TIMESTAMP_HEADER = "x-store-timestamp"
SIGNATURE_HEADER = "x-store-signature"


class StoreSettings(ConnectorSettings):
    secret: SecretStr = Field(description="Shared HMAC-SHA256 secret of the store apps.")
    previous_secret: SecretStr | None = Field(
        None, description="The secret before the last rotation, still accepted while set."
    )
    max_skew_seconds: int = Field(
        300, ge=1, le=86_400, description="How far a request's timestamp may be from our clock."
    )


def parse_submission(body: bytes, received_at: datetime) -> RawEvent:
    """Wrap one store submission in a :class:`RawEvent` (pure); the normalizer checks fields."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayload(f"body is not JSON: {exc}", "invalid_json") from None
    if not isinstance(payload, dict):
        raise MalformedPayload("body must be a JSON object", "invalid_json")
    submission_id = payload.get("submission_id")
    if not isinstance(submission_id, str) or not submission_id.strip():
        raise MalformedPayload("submission_id (a non-empty string) is required", "missing_field")
    return RawEvent(
        channel=StoreConnector.channel,
        source_key=submission_id,
        received_at=received_at,
        payload=payload,
        body=body,
        media_type="application/json",
        message_id=submission_id,
    )


class StoreConnector(WebhookConnector):
    channel = "store"
    settings_model = StoreSettings
    settings: StoreSettings

    async def handle(self, request: WebhookRequest) -> WebhookReply:
        if request.method != "POST":
            raise UnsupportedMessage("store complaints are sent with POST", "bad_method")
        stamp = check_timestamp(
            request.headers.get(TIMESTAMP_HEADER),
            self.clock.now(),
            self.settings.max_skew_seconds,
        )
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise InvalidSignature(
                f"{SIGNATURE_HEADER} header is missing", "missing_signature", missing=True
            )
        secrets = [self.settings.secret, self.settings.previous_secret]
        verify_hmac_sha256(
            (s.get_secret_value().encode() for s in secrets if s is not None),
            f"{stamp}.".encode() + request.body,
            signature,
        )
        return WebhookReply(events=self.parse(request.body, request.received_at))

    @staticmethod
    def parse(body: bytes, received_at: datetime) -> list[RawEvent]:
        return [parse_submission(body, received_at)]

    def acknowledge(self, outcomes: Sequence[Outcome]) -> WebhookAnswer:
        outcome = outcomes[0]
        body = {"status": outcome.kind, "record_id": outcome.record_id}
        return WebhookAnswer(
            status=200,
            body=json.dumps(body).encode(),
            media_type="application/json",
        )
