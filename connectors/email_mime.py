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

from connectors._signing import verify_timestamped_hmac
from connectors.base import (
    ConnectorSettings,
    SignedWebhookSettings,
    WebhookAnswer,
    WebhookConnector,
    WebhookRequest,
)
from normalizer.email import mail_event
from schemas import RawEvent

TIMESTAMP_HEADER = "x-mail-timestamp"
SIGNATURE_HEADER = "x-mail-signature"


class EmailMimeSettings(SignedWebhookSettings):
    secret: SecretStr = Field(description="Shared HMAC-SHA256 secret of the mail relay.")
    previous_secret: SecretStr | None = Field(
        None, description="The secret before the last rotation, still accepted while set."
    )


class EmailMimeConnector(WebhookConnector):
    name = "email_mime"
    channel = "email"
    settings_model = EmailMimeSettings
    settings: EmailMimeSettings

    async def authenticate(self, request: WebhookRequest) -> WebhookAnswer | None:
        secrets = [self.settings.secret, self.settings.previous_secret]
        verify_timestamped_hmac(
            request.headers,
            request.body,
            timestamp_header=TIMESTAMP_HEADER,
            signature_header=SIGNATURE_HEADER,
            secrets=[s.get_secret_value().encode() for s in secrets if s is not None],
            now=self.clock.now(),
            max_skew_seconds=self.settings.max_skew_seconds,
        )
        return None

    def read(self, request: WebhookRequest) -> Sequence[RawEvent]:
        return self.parse(request.body, request.received_at)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        return [mail_event(body, received_at, EmailMimeConnector.name)]
