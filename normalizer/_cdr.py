"""Reading call-detail records (CDRs) from call-centre systems into plain values.

Three formats, described in channels.md §6:

* **Asterisk ``cdr_csv``** — one ``Master.csv`` line per call leg, no header.
  Strings are quoted with inner quotes doubled, integers unquoted, an unset
  date (no answer) an empty unquoted field. The columns depend on ``[csv]`` in
  ``cdr.conf``, so the caller passes them: :data:`ASTERISK_COLUMNS` with
  ``loguniqueid`` and ``loguserfield``, :data:`ASTERISK_NEW_COLUMNS` with
  ``newcdrcolumns`` as well. Asterisk writes bytes as the channel gave them:
  UTF-8 normally, GB18030 (a superset of GBK) from older Chinese PBX gateways.
* **FreeSWITCH ``mod_json_cdr``** — one JSON document per leg, POSTed as
  ``application/json`` (``encode=false``, the default), or as a form with the
  document in field ``cdr``: URL-encoded with ``Content-Type:
  application/x-www-form-urlencoded`` (``encode=true``), or raw base64 (``+``
  and ``/`` unescaped) with ``Content-Type: application/x-www-form-base64-encoded``
  (``encode=base64``). Independently, ``encode-values`` (default true) has each
  value in ``variables`` escaped with ``switch_url_encode``, and only those:
  ``channel_data``, ``callflow`` and ``app_log`` are raw.
* **TCCC data push** — a JSON object per call record (``?action=cdr``) or per
  recording (``?action=record``); the connector knows which from the query.

These functions only read and check shapes; what a call means (a complaint, a
missed call, a call to another number) is for the channel's normalizer.
Whatever cannot be read is a :class:`MalformedPayload`, so the raw body is
quarantined. Messages name fields and counts, never values: those are
customers' numbers and words.
"""

from __future__ import annotations

import base64
import binascii
import csv
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_to_bytes

from connectors._json import parse_json_object
from connectors.errors import MalformedPayload

#: ``cdr_csv`` with ``loguniqueid=yes`` and ``loguserfield=yes``, in ``build_csv_record()`` order.
ASTERISK_COLUMNS: tuple[str, ...] = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "uniqueid",
    "userfield",
)
#: The same with ``newcdrcolumns=yes``.
ASTERISK_NEW_COLUMNS: tuple[str, ...] = (*ASTERISK_COLUMNS, "peeraccount", "linkedid", "sequence")


def parse_asterisk_row(line: bytes, columns: Sequence[str]) -> dict[str, str]:
    """One ``Master.csv`` line (with or without its newline) as ``{column: text}``.

    The field count must equal ``len(columns)``: fewer is ``missing_field``,
    more ``invalid_field``; either usually means ``cdr.conf`` and the
    configured columns disagree. Dates and integers stay text, an unset date ``""``.
    """
    if len(set(columns)) != len(columns):
        raise ValueError("the column names must be distinct")
    text = _decode_text(line.rstrip(b"\r\n"), "the CDR line").removeprefix("\ufeff")
    try:
        rows = list(csv.reader([text], strict=True, skipinitialspace=True))
    except csv.Error as exc:
        raise MalformedPayload(f"the CDR line is not one CSV row: {exc}", "invalid_field") from None
    fields = rows[0] if len(rows) == 1 else []
    if len(fields) != len(columns):
        reason = "missing_field" if len(fields) < len(columns) else "invalid_field"
        raise MalformedPayload(
            f"the CDR line has {len(fields)} fields where {len(columns)} columns are configured "
            "(check [csv] in cdr.conf)",
            reason,
        )
    return dict(zip(columns, fields, strict=True))


_FORM_MEDIA_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "application/x-www-form-base64-encoded"}
)


def parse_freeswitch_cdr(
    body: bytes, content_type: str, *, encoded_values: bool = True
) -> dict[str, Any]:
    """A ``mod_json_cdr`` POST body as its JSON document, ``variables`` decoded.

    The body is read by its content type, and by its first bytes when the type
    is neither JSON nor a form (a proxy may have dropped it). ``variables``
    must be an object of strings (numbers are turned into text) with a
    non-empty ``uuid``, the leg's id and the key to dedupe redeliveries on.

    With ``encoded_values`` (FreeSWITCH's ``encode-values``, default true) each
    variable is percent-decoded to bytes and read as UTF-8 (GB18030 if it is
    not). ``+`` is left alone: ``switch_url_encode`` writes a space as ``%20``
    and a plus as ``%2B``, so a bare ``+`` is a plus, as in ``+8613812345678``.
    """
    document = parse_json_object(_freeswitch_document(body, content_type))
    variables = document.get("variables")
    if variables is None:
        raise MalformedPayload("the CDR has no variables object", "missing_field")
    if not isinstance(variables, dict):
        raise MalformedPayload("the CDR's variables is not an object", "invalid_field")
    decoded: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            raise MalformedPayload(
                f"the CDR variable {name[:40]!r} is not text or a number", "invalid_field"
            )
        text = value if isinstance(value, str) else str(value)
        if encoded_values:
            text = _decode_text(unquote_to_bytes(text), f"the CDR variable {name[:40]!r}")
        decoded[name] = text
    if not decoded.get("uuid"):
        raise MalformedPayload("the CDR has no variables.uuid", "missing_field")
    document["variables"] = decoded
    return document


def _freeswitch_document(body: bytes, content_type: str) -> bytes:
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type in _FORM_MEDIA_TYPES:
        return _form_cdr_field(body, required=True)
    if media_type == "application/json" or body.lstrip()[:1] == b"{":
        return body
    return _form_cdr_field(body, required=False)


def _form_cdr_field(body: bytes, *, required: bool) -> bytes:
    """The JSON text in form field ``cdr``: URL-encoded (``encode=true``) or base64."""
    for pair in body.split(b"&"):
        name, _, value = pair.partition(b"=")
        if unquote_to_bytes(name.replace(b"+", b" ")) == b"cdr":
            break
    else:
        if required:
            raise MalformedPayload("the form has no cdr field", "missing_field")
        raise MalformedPayload(
            "the body is neither JSON nor a form with a cdr field", "invalid_json"
        )
    value = value.strip()
    if value[:1] == b"{" or value[:3].upper() == b"%7B":
        return unquote_to_bytes(value.replace(b"+", b" "))
    # base64 from switch_b64_encode is sent raw: here '+' is a base64 digit, not a space
    digits = unquote_to_bytes(value)
    try:
        return base64.b64decode(digits + b"=" * (-len(digits) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedPayload(
            "the cdr field is neither URL-encoded JSON nor base64", "invalid_json"
        ) from None


# TCCC field types. One table serves the record, its SeatUser and each of its
# ServeParticipants, which reuse the same names. Absent and null are both "not given".
_TCCC_INTEGERS = frozenset(
    {
        "SdkAppId",
        "Direction",
        "CallType",
        "Duration",
        "IVRDuration",
        "RingTimestamp",
        "StartTimestamp",
        "AcceptTimestamp",
        "EndedTimestamp",
        "QueuedTimestamp",
        "Timestamp",
        "EndStatus",
        "SkillGroupId",
        "QueuedSkillGroupId",
        "Sequence",
    }
)
_TCCC_STRINGS = frozenset(
    {
        "SessionId",
        "EndStatusString",
        "HungUpSide",
        "CallerLocation",
        "RecordURL",
        "CustomRecordURL",
        "AsrURL",
        "QueuedSkillGroupName",
        "SkillGroupName",
        "Remark",
        "UUI",
        "Mail",
        "Name",
        "Nick",
        "StaffNumber",
        "UserId",
        "Type",
    }
)
# Documented as strings, but samples send some as numbers ("EndpointUser": 13123456789
# in the voicemail push): numbers are accepted and turned into text.
_TCCC_IDENTIFIERS = frozenset({"Caller", "Callee", "EndpointUser", "Phone", "RecordId"})


def parse_tccc_push(body: bytes) -> dict[str, Any]:
    """A TCCC CDR or recording push as its JSON object, field types checked.

    ``SessionId`` (non-empty text) and ``SdkAppId`` (an integer, for the
    connector to compare with its own) are required; every other known field
    may be absent or null, and if given must have its type: timestamps and
    durations non-negative integers (UNIX seconds), ``SeatUser`` an object,
    ``ServeParticipants`` a list of objects. ``Caller``, ``Callee``,
    ``EndpointUser``, ``Phone`` and ``RecordId`` come back as text even when
    sent as numbers. Unknown fields are kept as they are.
    """
    document = _checked_tccc_object(parse_json_object(body), "the push")
    session = document.get("SessionId")
    if not session:
        raise MalformedPayload("the push has no SessionId", "missing_field")
    if document.get("SdkAppId") is None:
        raise MalformedPayload("the push has no SdkAppId", "missing_field")
    seat = document.get("SeatUser")
    if seat is not None:
        if not isinstance(seat, dict):
            raise MalformedPayload("SeatUser is not an object", "invalid_field")
        document["SeatUser"] = _checked_tccc_object(seat, "SeatUser")
    participants = document.get("ServeParticipants")
    if participants is not None:
        if not isinstance(participants, list) or not all(isinstance(p, dict) for p in participants):
            raise MalformedPayload("ServeParticipants is not a list of objects", "invalid_field")
        document["ServeParticipants"] = [
            _checked_tccc_object(participant, "a ServeParticipants item")
            for participant in participants
        ]
    keys = document.get("IVRKeyPressed")
    if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise MalformedPayload("IVRKeyPressed is not a list of text", "invalid_field")
    for name in ("IVRKeyPressedEx", "PostIVRKeyPressed"):
        pressed = document.get(name)
        if pressed is not None and not (
            isinstance(pressed, list) and all(isinstance(p, dict) for p in pressed)
        ):
            raise MalformedPayload(f"{name} is not a list of objects", "invalid_field")
    return document


def _checked_tccc_object(value: dict[str, Any], where: str) -> dict[str, Any]:
    checked = dict(value)
    for name, field in value.items():
        if field is None:
            continue
        if name in _TCCC_INTEGERS:
            if isinstance(field, bool) or not isinstance(field, int) or field < 0:
                raise MalformedPayload(
                    f"{name} in {where} is not a non-negative integer", "invalid_field"
                )
        elif name in _TCCC_STRINGS:
            if not isinstance(field, str):
                raise MalformedPayload(f"{name} in {where} is not text", "invalid_field")
        elif name in _TCCC_IDENTIFIERS:
            if isinstance(field, int) and not isinstance(field, bool) and field >= 0:
                checked[name] = str(field)
            elif not isinstance(field, str):
                raise MalformedPayload(f"{name} in {where} is not text", "invalid_field")
    return checked


def _decode_text(raw: bytes, what: str) -> str:
    """UTF-8, else GB18030 (which GBK and GB2312 are subsets of), else refused."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        raise MalformedPayload(f"{what} is neither UTF-8 nor GB18030", "invalid_field") from None
