"""WeChat Official Account messages → complaint records.

Every message a customer sends the account (text, voice, image, video,
location, link) is taken as a complaint contact; the customer's words are the
text, the voice recognition result, or a link's title and description. Menu
clicks whose key starts with one of ``complaint_click_prefixes`` (default
``COMPLAINT``) become records too: the customer pressed "投诉" and is waiting
for an agent. Other events (subscribe, scan, location reports, template
delivery reports...) are genuine but not complaints.

Media a customer sent is named by its MediaId as ``wechat-media:<MediaId>``,
fetchable for three days through WeChat's temporary-media API.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from connectors.errors import MalformedPayload
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent

CHANNEL_DETAIL = "官方公众号消息"

_MEDIA_TYPES = {"voice": "audio/amr", "video": "video/mp4", "shortvideo": "video/mp4"}


def _media(message: dict[str, Any], kind: str) -> dict[str, Any]:
    media_id = message.get("MediaId") or ""
    media_type = _MEDIA_TYPES.get(kind)
    if kind == "voice" and message.get("Format"):
        media_type = f"audio/{str(message['Format']).lower()}"
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
        msg_type = str(message["MsgType"])
        openid = str(message["FromUserName"])
        try:
            occurred_at = datetime.fromtimestamp(int(message["CreateTime"]), UTC)
        except (TypeError, ValueError, OverflowError):
            raise MalformedPayload("CreateTime is not Unix seconds", "invalid_field") from None

        detail = CHANNEL_DETAIL
        description = ""
        attachments: list[dict[str, Any]] = []
        if msg_type == "text":
            description = str(message.get("Content") or "")
        elif msg_type == "voice":
            description = str(message.get("Recognition") or "")
            attachments.append(_media(message, "voice"))
            detail = f"{CHANNEL_DETAIL}（语音）"
        elif msg_type == "image":
            attachments.append(
                {
                    "url": message.get("PicUrl") or f"wechat-media:{message.get('MediaId', '')}",
                    "media_type": "image/jpeg",
                    "name": f"image-{message.get('MediaId', '')}",
                }
            )
            detail = f"{CHANNEL_DETAIL}（图片）"
        elif msg_type in ("video", "shortvideo"):
            attachments.append(_media(message, msg_type))
            detail = f"{CHANNEL_DETAIL}（视频）"
        elif msg_type == "link":
            description = "\n".join(
                str(message[k]) for k in ("Title", "Description") if message.get(k)
            )
            if message.get("Url"):
                attachments.append(
                    {"url": message["Url"], "media_type": "text/html", "name": message.get("Title")}
                )
            detail = f"{CHANNEL_DETAIL}（链接）"
        elif msg_type == "location":
            description = str(message.get("Label") or "")
            detail = (
                f"{CHANNEL_DETAIL}（位置 {message.get('Location_X')},{message.get('Location_Y')}）"
            )
        elif msg_type == "event":
            event_name = str(message.get("Event") or "")
            key = str(message.get("EventKey") or "")
            if event_name.upper() != "CLICK" or not key.startswith(self.complaint_click_prefixes):
                return NotAComplaint(reason=f"event:{event_name.lower() or 'unknown'}")
            detail = f"官方公众号菜单（{key}）"
        else:
            # A message type WeChat added after this was written: keep it as a contact
            # rather than lose it; the raw payload is in the outbox.
            description = str(message.get("Content") or "")
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
