"""The gateway's own push scheme, for systems we give a shared secret: stores, mail relays.

A request carries ``X-<Prefix>-Timestamp`` (Unix seconds, within
``max_skew_seconds``) and ``X-<Prefix>-Signature``: ``sha256=`` + hex
HMAC-SHA256, keyed with ``secret``, of ``<timestamp>.<raw body>``. The
previous secret is accepted too while it is set, so a secret can be rotated
without a moment where one side refuses the other
(:func:`connectors._signing.verify_timestamped_hmac` does the checking).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from connectors._signing import verify_timestamped_hmac
from connectors.base import (
    SignedWebhookSettings,
    WebhookAnswer,
    WebhookConnector,
    WebhookRequest,
)


class HmacPushSettings(SignedWebhookSettings):
    secret: SecretStr = Field(description="Shared HMAC-SHA256 secret of the sending system.")
    previous_secret: SecretStr | None = Field(
        None, description="The secret before the last rotation, still accepted while set."
    )


class HmacPushConnector(WebhookConnector):
    """A webhook authenticated with the scheme above; subclasses name their header prefix."""

    timestamp_header: ClassVar[str]
    signature_header: ClassVar[str]
    settings: HmacPushSettings

    async def authenticate(self, request: WebhookRequest) -> WebhookAnswer | None:
        secrets = [self.settings.secret, self.settings.previous_secret]
        verify_timestamped_hmac(
            request.headers,
            request.body,
            timestamp_header=self.timestamp_header,
            signature_header=self.signature_header,
            secrets=[s.get_secret_value().encode() for s in secrets if s is not None],
            now=self.clock.now(),
            max_skew_seconds=self.settings.max_skew_seconds,
        )
        return None
