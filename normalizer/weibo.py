"""Weibo private messages (fans-service push) → complaint records.

Every message a user sends the brand account (``text``, ``image``, ``voice``,
``position``) is taken as a complaint contact from ``weibo:<sender_id>``; the
description is the push's ``text`` verbatim. For image and voice the push
carries no recognition text, only Weibo's default copy (e.g. "发了一个语音消息"),
which is kept as sent; the media itself becomes an attachment named
``weibo-media:<tovfid>``, fetchable with the account's token through Weibo's
message-media API. A position keeps its text ("我在这里: http://t.cn/…") and
adds the coordinates to ``channel_detail`` and as a ``geo:`` attachment.

Events (follow, subscribe, QR scans, menu clicks, @mentions) are genuine but
not complaints: ``event:<subtype>`` for the subtypes Weibo documents,
``event:other`` for the rest; a message type Weibo adds later is ``type:other``.
Weibo asks receivers to ignore what they do not know, and the labels stay a
closed set so a sender cannot invent metric labels.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors._json import parse_json_object
from connectors.errors import MalformedPayload
from connectors.weibo_dm import parse_created_at, weibo_uid
from normalizer._fields import text as read_text
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent

CHANNEL_DETAIL = "微博私信"

#: Event subtypes Weibo documents (follow and subscribe confirmed; the rest seen in
#: its wiki's event page); others count as ``event:other``.
KNOWN_EVENTS = frozenset(
    {
        "follow",
        "unfollow",
        "subscribe",
        "unsubscribe",
        "scan",
        "scan_follow",
        "click",
        "view",
        "mention",
    }
)
#: Events after which the user can (follow) or cannot (unfollow) be messaged.
_FOLLOW_EVENTS = frozenset({"follow", "unfollow"})
_DETAIL_SUFFIX = {"image": "（图片）", "voice": "（语音）"}
_COORDINATE = re.compile(r"-?[0-9]{1,3}(?:\.[0-9]{1,15})?", re.ASCII)


def _text(message: dict[str, Any], name: str, *, required: bool = False) -> str:
    return read_text(message, name, what="Weibo message", required=required)


def _data(message: dict[str, Any]) -> dict[str, Any]:
    """``data``: an object; the field table calls it a string, so JSON text is read too."""
    data = message.get("data")
    if data is None or data == "":
        return {}
    if isinstance(data, str):
        data = parse_json_object(data.encode("utf-8", "surrogatepass"))
    if not isinstance(data, dict):
        raise MalformedPayload("data is not an object", "invalid_field")
    return data


def _media(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The attachment of an image or voice message, if the push names its file."""
    for name in ("tovfid", "vfid"):
        if data.get(name) in (None, ""):
            continue
        try:
            fid = weibo_uid(data[name], name)
        except MalformedPayload:
            continue
        return [{"url": f"weibo-media:{fid}", "name": f"{kind}-{fid}"}]
    return []


def _coordinate(value: Any, limit: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        return None
    text = str(value)
    if not _COORDINATE.fullmatch(text):
        return None
    try:
        return text if abs(Decimal(text)) <= limit else None
    except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
        return None


class WeiboDmNormalizer(Normalizer):
    channel = "weibo"

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        message = dict(event.payload)
        # the connector checked type, sender_id and created_at
        msg_type = _text(message, "type", required=True)
        uid = weibo_uid(message.get("sender_id"), "sender_id")
        occurred_at = parse_created_at(_text(message, "created_at", required=True))
        data = _data(message)

        detail = CHANNEL_DETAIL
        attachments: list[dict[str, Any]] = []
        if msg_type == "text":
            description = _text(message, "text", required=True)
        elif msg_type in ("image", "voice"):
            description = _text(message, "text")
            attachments = _media(data, msg_type)
            detail += _DETAIL_SUFFIX[msg_type]
        elif msg_type == "position":
            description = _text(message, "text")
            latitude = _coordinate(data.get("latitude"), 90)
            longitude = _coordinate(data.get("longitude"), 180)
            if latitude is not None and longitude is not None:
                detail += f"（位置 纬度{latitude}，经度{longitude}）"
                attachments = [{"url": f"geo:{latitude},{longitude}", "name": "位置"}]
            else:
                detail += "（位置）"
        elif msg_type == "event":
            subtype = data.get("subtype")
            label = subtype if isinstance(subtype, str) and subtype in KNOWN_EVENTS else "other"
            handle = f"weibo:{uid}" if label in _FOLLOW_EVENTS else None
            return NotAComplaint(f"event:{label}", handle)
        else:
            return NotAComplaint("type:other")

        return build_record(
            event,
            customer={"id": f"weibo:{uid}", "contacts": {"weibo_uid": uid}},
            description=description,
            channel_detail=detail,
            occurred_at=occurred_at,
            attachments=attachments,
            thread_id=uid,
        )
