"""What call-centre systems that push to us share: HTTP Basic authentication and
the list of complaint lines.

FreeSWITCH's ``mod_json_cdr`` and Tencent Cloud Contact Center sign nothing:
they send ``Authorization: Basic`` (checked in constant time by
:func:`connectors._signing.verify_basic_auth`) over HTTPS. A redelivered push
is the same call record, which dedupe absorbs; there is no timestamp to check.
Which calls are complaints is the deployment's ``complaint_numbers``, read
once here and marked on each call for the phone normalizer.
"""

from __future__ import annotations

import httpx
from pydantic import Field, SecretStr

from connectors._signing import verify_basic_auth
from connectors.base import ConnectorSettings, WebhookAnswer, WebhookConnector, WebhookRequest
from normalizer.phone import complaint_numbers
from service.clock import Clock


class CallCentreSettings(ConnectorSettings):
    username: str = Field(description="User name of the push's HTTP Basic authentication.")
    password: SecretStr = Field(description="Password of the push's HTTP Basic authentication.")
    complaint_numbers: list[str] = Field(
        default_factory=list,
        description="Called numbers or queues that are complaint lines; empty: every call.",
    )


class CallCentrePush(WebhookConnector):
    settings: CallCentreSettings

    def __init__(
        self, settings: CallCentreSettings, clock: Clock, http: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(settings, clock, http)
        self._numbers = complaint_numbers(settings.complaint_numbers)

    async def authenticate(self, request: WebhookRequest) -> WebhookAnswer | None:
        verify_basic_auth(
            request.headers.get("authorization"),
            self.settings.username,
            [self.settings.password.get_secret_value()],
        )
        return None
