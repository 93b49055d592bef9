"""Raw e-mail POSTed by a mail relay or an inbound-mail service: ``/webhooks/email_mime``.

The body is the message exactly as received (RFC 5322 bytes, ``message/rfc822``).
Authentication is the gateway's own push scheme, as for stores
(``connectors._signing.verify_timestamped_hmac``): ``X-Mail-Timestamp`` (Unix
seconds, within ``max_skew_seconds``) and ``X-Mail-Signature``: ``sha256=`` +
hex HMAC-SHA256, keyed with ``secret``, of ``<timestamp>.<raw message>``.

It shares the e-mail normalizer and its key scope with ``imap``: a message
that arrives both ways is one record (same ``Message-ID``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import Field, SecretStr

from connectors._hmac_push import HmacPushConnector, HmacPushSettings
from connectors.base import ConnectorSettings, WebhookRequest
from normalizer.email import mail_event
from schemas import RawEvent

TIMESTAMP_HEADER = "x-mail-timestamp"
SIGNATURE_HEADER = "x-mail-signature"


class EmailMimeSettings(HmacPushSettings):
    secret: SecretStr = Field(description="Shared HMAC-SHA256 secret of the mail relay.")


class EmailMimeConnector(HmacPushConnector):
    name = "email_mime"
    channel = "email"
    settings_model = EmailMimeSettings
    timestamp_header = TIMESTAMP_HEADER
    signature_header = SIGNATURE_HEADER

    def read(self, request: WebhookRequest) -> Sequence[RawEvent]:
        return self.parse(request.body, request.received_at)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        return [mail_event(body, received_at, EmailMimeConnector.name)]
