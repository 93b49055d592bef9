"""WeChat Official Account messages → complaint records.

Every message a customer sends the account (text, voice, image, video,
location, link) is taken as a complaint contact; the customer's words are the
text, the voice recognition result, or a link's title and description. Menu
clicks whose key starts with one of ``complaint_click_prefixes`` (default
``COMPLAINT``) become records too: the customer pressed "投诉" and is waiting
for an agent. Other events (subscribe, scan, location reports, template
delivery reports...) are genuine but not complaints; they are counted as
``event:<name>`` for the events WeChat documents and ``event:other`` for the
rest, so a sender cannot invent metric labels.

Every field read must be text (:func:`text_field`): a nested or repeated
``Content`` is a malformed message, never the text of a Python structure.

Media a customer sent is named by its MediaId as ``wechat-media:<MediaId>``,
fetchable for three days through WeChat's temporary-media API.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from connectors._xml import text_field
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent

CHANNEL_DETAIL = "官方公众号消息"

#: Events WeChat documents for an Official Account (lower case); others count as ``other``.
KNOWN_EVENTS = frozenset(
    {
        "subscribe",
        "unsubscribe",
        "scan",
        "location",
        "click",
        "view",
        "view_miniprogram",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "location_select",
        "templatesendjobfinish",
        "masssendjobfinish",
        "subscribe_msg_popup_event",
        "subscribe_msg_change_event",
        "subscribe_msg_sent_event",
        "kf_create_session",
        "kf_close_session",
        "kf_switch_session",
        "qualification_verify_success",
        "qualification_verify_fail",
        "naming_verify_success",
        "naming_verify_fail",
        "annual_renew",
        "verify_expired",
    }
)

_MEDIA_TYPES = {"voice": "audio/amr", "video": "video/mp4", "shortvideo": "video/mp4"}


def _media(message: dict[str, Any], kind: str) -> dict[str, Any]:
    media_id = text_field(message, "MediaId") or ""
    media_type = _MEDIA_TYPES.get(kind)
    voice_format = text_field(message, "Format")
    if kind == "voice" and voice_format:
        media_type = f"audio/{voice_format.lower()}"
    return {
        "url": f"wechat-media:{media_id}",
        "media_type": media_type,
        "name": f"{kind}-{media_id}",
    }


class WeChatNormalizer(Normalizer):
    channel = "wechat"

    def __init__(self, complaint_click_prefixes: Iterable[str] = ("COMPLAINT",)) -> None:
        self.complaint_click_prefixes = tuple(complaint_click_prefixes)

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        message = dict(event.payload)

        def text(name: str) -> str:
            return text_field(message, name) or ""

        msg_type = text("MsgType")
        openid = text("FromUserName")
        # the connector checked CreateTime is at most ten ASCII digits
        occurred_at = datetime.fromtimestamp(int(text("CreateTime")), UTC)

        detail = CHANNEL_DETAIL
        description = ""
        attachments: list[dict[str, Any]] = []
        if msg_type == "text":
            description = text("Content")
        elif msg_type == "voice":
            description = text("Recognition")
            attachments.append(_media(message, "voice"))
            detail = f"{CHANNEL_DETAIL}（语音）"
        elif msg_type == "image":
            media_id = text("MediaId")
            attachments.append(
                {
                    "url": text("PicUrl") or f"wechat-media:{media_id}",
                    "media_type": "image/jpeg",
                    "name": f"image-{media_id}",
                }
            )
            detail = f"{CHANNEL_DETAIL}（图片）"
        elif msg_type in ("video", "shortvideo"):
            attachments.append(_media(message, msg_type))
            detail = f"{CHANNEL_DETAIL}（视频）"
        elif msg_type == "link":
            description = "\n".join(text(k) for k in ("Title", "Description") if text(k))
            if text("Url"):
                attachments.append(
                    {"url": text("Url"), "media_type": "text/html", "name": text("Title") or None}
                )
            detail = f"{CHANNEL_DETAIL}（链接）"
        elif msg_type == "location":
            description = text("Label")
            detail = f"{CHANNEL_DETAIL}（位置 {text('Location_X')},{text('Location_Y')}）"
        elif msg_type == "event":
            event_name = text("Event").lower()
            key = text("EventKey")
            if event_name != "click" or not key.startswith(self.complaint_click_prefixes):
                label = event_name if event_name in KNOWN_EVENTS else "other"
                follows = label in ("subscribe", "unsubscribe") and openid
                return NotAComplaint(f"event:{label}", f"wechat:{openid}" if follows else None)
            detail = f"官方公众号菜单（{key}）"
        else:
            # A message type WeChat added after this was written: keep it as a contact
            # rather than lose it; the raw payload is in the outbox.
            description = text("Content")
            detail = f"{CHANNEL_DETAIL}（{msg_type}）"

        return build_record(
            event,
            customer={"id": f"wechat:{openid}", "contacts": {"wechat_openid": openid}},
            description=description,
            channel_detail=detail,
            occurred_at=occurred_at,
            attachments=attachments,
            thread_id=openid,
        )
