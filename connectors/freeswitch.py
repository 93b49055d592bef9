"""FreeSWITCH ``mod_json_cdr``: one call record POSTed per leg, ``/webhooks/freeswitch``.

``json_cdr.conf.xml`` points ``url`` here with ``auth-scheme`` basic and
``cred`` ``username:password``. The body is the CDR document as JSON, or a
form with the document in ``cdr`` (``encode=true``/``base64``); with
``encode-values`` (FreeSWITCH's default) each variable is URL-encoded
(:func:`normalizer._cdr.parse_freeswitch_cdr` reads all of them). The
complaint text is the channel variable ``text_variable`` (default
``complaint_summary``, set by the IVR or the agent's desktop), the call's key
its ``uuid``: FreeSWITCH resends a CDR it got no 2xx for (``retries``), and
the resend is answered 200 without a second record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import Field

from connectors._call_centre import CallCentrePush, CallCentreSettings
from connectors.base import ConnectorSettings, WebhookRequest
from normalizer._cdr import parse_freeswitch_cdr
from normalizer.phone import call_payload, complaint_numbers, is_complaint_line
from schemas import RawEvent


class FreeSwitchSettings(CallCentreSettings):
    text_variable: str = Field(
        "complaint_summary", description="Channel variable holding the complaint text."
    )
    recording_variable: str = Field(
        "complaint_recording_url", description="Channel variable holding the recording's URL."
    )
    encoded_values: bool = Field(
        True, description="json_cdr's encode-values: variables arrive URL-encoded."
    )


def _epoch(value: str | None) -> datetime | None:
    if not value or not value.isascii() or not value.isdigit() or value == "0":
        return None
    return datetime.fromtimestamp(min(int(value), 32_503_680_000), UTC)


def cdr_event(
    body: bytes,
    content_type: str,
    received_at: datetime,
    settings: FreeSwitchSettings | None = None,
    numbers: frozenset[str] = frozenset(),
) -> RawEvent:
    """A mod_json_cdr POST as a call event (pure)."""
    text_variable = settings.text_variable if settings else "complaint_summary"
    recording_variable = settings.recording_variable if settings else "complaint_recording_url"
    encoded = settings.encoded_values if settings else True
    document = parse_freeswitch_cdr(body, content_type, encoded_values=encoded)
    variables = document["variables"]
    uuid = variables["uuid"]
    billsec = variables.get("billsec", "")
    answered = bool(_epoch(variables.get("answer_epoch"))) or (billsec.isdigit() and billsec != "0")
    payload = call_payload(
        call_id=uuid,
        caller=variables.get("caller_id_number") or None,
        callee=variables.get("destination_number") or None,
        started_at=_epoch(variables.get("start_epoch")),
        answered=answered,
        talk_seconds=int(billsec) if billsec.isascii() and billsec.isdigit() else None,
        text=variables.get(text_variable, ""),
        recording_url=variables.get(recording_variable) or None,
        agent=variables.get("cc_agent") or None,
        thread_id=variables.get("bridge_uuid") or variables.get("originating_leg_uuid") or None,
        complaint_line=is_complaint_line(
            variables.get("destination_number"), variables.get("cc_queue"), numbers
        ),
    )
    return RawEvent(
        channel="phone",
        connector=FreeSwitchConnector.name,
        source_key=uuid,
        received_at=received_at,
        payload=payload,
        body=body,
        media_type=content_type or "application/json",
        message_id=uuid,
    )


class FreeSwitchConnector(CallCentrePush):
    name = "freeswitch"
    channel = "phone"
    settings_model = FreeSwitchSettings
    settings: FreeSwitchSettings

    def read(self, request: WebhookRequest) -> Sequence[RawEvent]:
        content_type = request.headers.get("content-type", "")
        return [
            cdr_event(request.body, content_type, request.received_at, self.settings, self._numbers)
        ]

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        if not isinstance(settings, FreeSwitchSettings):
            return [cdr_event(body, "application/json", received_at)]
        numbers = complaint_numbers(settings.complaint_numbers)
        return [cdr_event(body, "application/json", received_at, settings, numbers)]
