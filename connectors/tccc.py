"""Tencent Cloud Contact Center (腾讯云联络中心) data push: ``/webhooks/tccc``.

Configured in the TCCC console (功能配置 → 数据推送) with this URL and HTTP
Basic authentication. ``?action=cdr`` pushes a call record,
``?action=record`` a recording; the answer is ``{"ErrCode":0,"ErrMsg":""}``,
anything else makes TCCC retry up to three times.

A call is keyed by its ``SessionId``, so a retried push (same
``X-TCCC-PUSH-UUID``, same session) and a second CDR push of the same
session are one record; the push UUID is kept as ``source.message_id``. A
recording push becomes an attachment event for the session's complaint
(``normalizer/phone.py``): keyed ``<SessionId>:record:<RecordId>`` and
pointing at the session's record with ``dedupe.duplicate_of``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from connectors._call_centre import CallCentrePush, CallCentreSettings
from connectors.base import (
    ConnectorSettings,
    Outcome,
    WebhookAnswer,
    WebhookRequest,
)
from connectors.errors import InvalidSignature, UnsupportedMessage
from normalizer._cdr import parse_tccc_push
from normalizer.phone import call_payload, complaint_numbers, is_complaint_line
from schemas import RawEvent

PUSH_UUID_HEADER = "x-tccc-push-uuid"
#: EndStatus 1 is a call that was answered and ended normally (TCCC's 正常结束).
_ANSWERED_END_STATUS = 1
_ACCEPTED = json.dumps({"ErrCode": 0, "ErrMsg": ""}).encode()


class TcccSettings(CallCentreSettings):
    sdk_app_id: int | None = Field(
        None, description="Our TCCC application id; pushes for another are refused."
    )


def _time(value: Any) -> datetime | None:
    if isinstance(value, int) and 0 < value < 32_503_680_000:
        return datetime.fromtimestamp(value, UTC)
    return None


def push_event(
    body: bytes,
    action: str,
    received_at: datetime,
    push_uuid: str | None = None,
    numbers: frozenset[str] = frozenset(),
    sdk_app_id: int | None = None,
) -> RawEvent:
    """A TCCC push as a call event (pure); one for another ``sdk_app_id`` is refused."""
    push = parse_tccc_push(body)
    if sdk_app_id is not None and push["SdkAppId"] != sdk_app_id:
        # another tenant's call data: refused like a WeChat message for another AppID, not kept
        raise InvalidSignature("the push is for another SdkAppId", "app_id_mismatch")
    session = str(push["SessionId"])
    if action == "record":
        record_id = str(push.get("RecordId") or push.get("Timestamp") or "")
        payload = call_payload(
            call_id=f"{session}:record:{record_id}",
            caller=push.get("EndpointUser"),
            callee=None,
            started_at=_time(push.get("Timestamp")),
            answered=True,
            recording_url=push.get("RecordURL") or push.get("CustomRecordURL"),
            recording_of=session,
        )
        source_key = payload["call_id"]
    elif action == "cdr":
        seat = push.get("SeatUser") or {}
        answered = _time(push.get("AcceptTimestamp")) is not None or (
            push.get("EndStatus") == _ANSWERED_END_STATUS and bool(push.get("Duration"))
        )
        started = _time(push.get("StartTimestamp")) or _time(push.get("RingTimestamp"))
        accepted, ended = push.get("AcceptTimestamp"), push.get("EndedTimestamp")
        talk = ended - accepted if isinstance(accepted, int) and isinstance(ended, int) else None
        inbound = push.get("Direction") in (None, 0)  # absent or null: TCCC's default, inbound
        payload = call_payload(
            call_id=session,
            caller=push.get("Caller") if inbound else push.get("Callee"),
            callee=push.get("Callee") if inbound else push.get("Caller"),
            started_at=started,
            answered=answered,
            talk_seconds=talk if talk is None or talk >= 0 else None,
            text=str(push.get("Remark") or ""),
            recording_url=push.get("RecordURL") or None,
            agent=seat.get("StaffNumber") or seat.get("UserId") or seat.get("Mail") or None,
            outbound=not inbound,
            complaint_line=is_complaint_line(
                push.get("Callee") if inbound else push.get("Caller"),
                push.get("SkillGroupName"),
                numbers,
            ),
        )
        source_key = session
    else:
        raise UnsupportedMessage("TCCC pushes action=cdr or action=record", "invalid_field")
    return RawEvent(
        channel="phone",
        connector=TcccConnector.name,
        source_key=source_key,
        received_at=received_at,
        payload=payload,
        body=body,
        media_type="application/json",
        message_id=push_uuid or None,
    )


class TcccConnector(CallCentrePush):
    name = "tccc"
    channel = "phone"
    settings_model = TcccSettings
    settings: TcccSettings

    def read(self, request: WebhookRequest) -> Sequence[RawEvent]:
        event = push_event(
            request.body,
            request.query.get("action", ""),
            request.received_at,
            request.headers.get(PUSH_UUID_HEADER),
            self._numbers,
            self.settings.sdk_app_id,
        )
        return [event]

    def acknowledge(self, outcomes: Sequence[Outcome]) -> WebhookAnswer:
        return WebhookAnswer(body=_ACCEPTED, media_type="application/json")

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        """Golden-file entry: a recording push names no caller, a CDR does."""
        action = "cdr" if b'"Caller"' in body or b'"Callee"' in body else "record"
        numbers = (
            complaint_numbers(settings.complaint_numbers)
            if isinstance(settings, TcccSettings)
            else frozenset()
        )
        return [push_event(body, action, received_at, numbers=numbers)]
