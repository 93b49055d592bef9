"""Calls to the complaint hotline → complaint records (``channel = "phone"``).

Three connectors feed this channel (``asterisk_csv``, ``freeswitch``,
``tccc``); each turns its own CDR format into the one call shape below
(:func:`call_payload`), so what a call means is decided once, here:

* a call to a number or queue that is not a complaint line (the connector's
  ``complaint_numbers``) is not a complaint: ``NotAComplaint("call:other_line")``;
  nor is a call we made (an agent's call-back): ``NotAComplaint("call:outbound")``;
* every other call is a record, words or not: an unanswered or unsummarised
  complaint call needs a call-back, so ``description`` says so in Chinese and
  the recording, if any, is an attachment; ``channel_detail`` says answered
  or missed;
* the caller is ``tel:<E.164>``; a caller with no usable number (anonymous,
  an internal extension) is ``call:<connector>:<call id>``, a customer of one call;
* a recording that arrives after its call (TCCC pushes recordings apart)
  becomes a record of its own whose ``dedupe.duplicate_of`` is the call's
  record id (deterministic, so no lookup): an attachment event for the
  call's complaint, not a second complaint.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.errors import MalformedPayload
from normalizer._contacts import call_party_to_e164
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent, record_id_for

CHANNEL = "phone"
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "gsm": "audio/gsm"}


def call_payload(
    *,
    call_id: str,
    caller: str | None,
    callee: str | None,
    started_at: datetime | None,
    answered: bool,
    talk_seconds: int | None = None,
    text: str = "",
    recording_url: str | None = None,
    agent: str | None = None,
    thread_id: str | None = None,
    complaint_line: bool = True,
    recording_of: str | None = None,
    outbound: bool = False,
) -> dict[str, Any]:
    """The call shape every phone connector hands the normalizer (JSON-safe values)."""
    return {
        "call_id": call_id,
        "caller": caller,
        "callee": callee,
        "started_at": started_at.astimezone(UTC).isoformat() if started_at else None,
        "answered": answered,
        "talk_seconds": talk_seconds,
        "text": text,
        "recording_url": recording_url,
        "agent": agent,
        "thread_id": thread_id,
        "complaint_line": complaint_line,
        "recording_of": recording_of,
        "outbound": outbound,
    }


def is_complaint_line(callee: str | None, queue: str | None, numbers: frozenset[str]) -> bool:
    """Whether a call went to a complaint line; no configured numbers means every call did."""
    if not numbers:
        return True
    candidates = {value.strip() for value in (callee, queue) if value}
    for value in list(candidates):
        e164, _ = call_party_to_e164(value)
        if e164:
            candidates.add(e164)
    return bool(candidates & numbers)


def complaint_numbers(configured: list[str]) -> frozenset[str]:
    """The configured hotline numbers and queues, with each number also in E.164."""
    numbers = {value.strip() for value in configured if value.strip()}
    for value in list(numbers):
        e164, _ = call_party_to_e164(value)
        if e164:
            numbers.add(e164)
    return frozenset(numbers)


def _recording(url: str) -> dict[str, Any]:
    extension = url.rsplit(".", 1)[-1].lower() if "." in url.rsplit("/", 1)[-1] else ""
    return {
        "url": url,
        "media_type": _AUDIO_TYPES.get(extension, "audio/*"),
        "name": url.rsplit("/", 1)[-1] or "recording",
    }


def _text(payload: Mapping[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedPayload(f"call field {name} must be text", "invalid_field")
    return value


class PhoneNormalizer(Normalizer):
    channel = CHANNEL

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        call = event.payload
        if call.get("outbound"):
            return NotAComplaint("call:outbound")
        if not call.get("complaint_line", True):
            return NotAComplaint("call:other_line")
        call_id = _text(call, "call_id") or event.source_key
        caller, extension = call_party_to_e164(_text(call, "caller"))
        customer: dict[str, Any] = (
            {"id": f"tel:{caller}", "contacts": {"phone": caller}}
            if caller
            else {"id": f"call:{event.connector}:{call_id}"}
        )
        started = _text(call, "started_at")
        occurred_at = datetime.fromisoformat(started) if started else None
        recording = _text(call, "recording_url")
        attachments = [_recording(recording)] if recording else []
        callee = _text(call, "callee") or "?"
        recording_of = _text(call, "recording_of")
        if recording_of:
            if not caller:  # the recording names an agent, not the caller: the call's customer
                customer = {"id": f"call:{event.connector}:{recording_of}"}
            return build_record(
                event,
                customer=customer,
                description="",
                channel_detail=f"电话录音（补充通话 {recording_of}）",
                occurred_at=occurred_at,
                attachments=attachments,
                thread_id=recording_of,
                duplicate_of=record_id_for(event.scope, recording_of),
            )
        answered = bool(call.get("answered"))
        talk = call.get("talk_seconds")
        words = (_text(call, "text") or "").strip()
        if words:
            description = _text(call, "text") or ""
        elif answered:
            description = f"（来电已接通，通话{talk or 0}秒，无文字记录，请听录音或回电）"
        else:
            description = "（未接来电，无文字记录，请尽快回电）"
        state = "已接通" if answered else "未接"
        detail = f"客服热线来电（{state}，拨打 {callee}）"
        if extension:
            detail += f"，分机 {extension}"
        return build_record(
            event,
            customer=customer,
            description=description,
            channel_detail=detail,
            received_by=_text(call, "agent"),
            occurred_at=occurred_at,
            attachments=attachments,
            thread_id=_text(call, "thread_id") or call_id,
        )
