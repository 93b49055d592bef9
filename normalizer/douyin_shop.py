"""Douyin shop (抖店) after-sale messages → complaint records.

The connector has classified each message (``kind``) and decoded a complaint's
``data``. What the data holds, per the message structs the SDKs mirror from the
platform's docs (UNCONFIRMED against the docs themselves): ``aftersale_id``,
``aftersale_type``, ``aftersale_status``, ``p_id`` (the order), ``s_id`` (the
sub-order), ``shop_id``, ``reason_code``, ``refund_amount`` and
``refund_post_amount`` (fen, integers), and ``apply_time`` / ``modify_time``
(Unix seconds; ``update_time`` may be a date-time, read as GMT+8 without a
zone). Ids exceed 2^53: they are kept as the exact digits that came.

The push names no buyer and carries none of the buyer's words. When a message
does carry them (``doudian_open_id``, ``buyer_nick``, ``product_name``,
``sku_id``, ``description``/``reason``: our reading of the platform's field
names, UNCONFIRMED in a push) they are used verbatim; otherwise nothing is
invented: the customer is the order (``douyin_shop:order:<p_id>``, so the
after-sales of one order stay together and no two orders share a customer),
and the description says in the gateway's words that the push held no text.

Amounts arrive in fen, as integers or digit strings, and become yuan exactly;
a fraction of a fen, a sign or a decimal point is refused, never rounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from connectors.errors import MalformedPayload
from normalizer._fields import identifier, optional_text
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent

#: ``aftersale_type`` as the SDKs describe it (UNCONFIRMED beyond 0–3).
AFTERSALE_TYPES = {0: "退货退款", 1: "已发货仅退款", 2: "未发货仅退款", 3: "换货"}
_EXPECTATIONS = {0: ("return", "refund"), 1: ("refund",), 2: ("refund",), 3: ("exchange",)}
#: What the buyer did, by tag; the tag's own message is the buyer's first request.
TAG_EVENTS = {"200": "", "208": "买家修改申请", "212": "买家申请平台仲裁"}
_TIME_FIELDS = ("apply_time", "modify_time", "update_time")
_DIGITS = re.compile(r"[0-9]{1,15}", re.ASCII)
_TAG_LABEL = re.compile(r"[0-9]{1,6}", re.ASCII)
_GMT8 = timezone(timedelta(hours=8))
#: Unix seconds a platform time may hold (1970 to 2100).
_MAX_SECONDS = 4_102_444_800


def _identifier(data: Mapping[str, Any], name: str) -> str | None:
    return identifier(data, name, where="data", longest=64)


def _text(data: Mapping[str, Any], name: str) -> str | None:
    return optional_text(data, name, where="data")


def _small_int(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**15:
        return value
    raise MalformedPayload(f"data.{name} must be a whole number", "invalid_field")


def fen_to_yuan(data: Mapping[str, Any], name: str) -> Decimal | None:
    """An amount in fen (integer or digit string) as exact yuan."""
    fen = _small_int(data, name)
    return None if fen is None else Decimal(fen).scaleb(-2)


def _occurred_at(data: Mapping[str, Any]) -> datetime | None:
    for name in _TIME_FIELDS:
        value = data.get(name)
        if value is None or value == "" or value == 0:
            continue
        if isinstance(value, str) and not _DIGITS.fullmatch(value):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise MalformedPayload(f"data.{name} is not a time", "invalid_field") from None
            # the marketplaces' wall clock is China Standard Time
            return moment if moment.tzinfo else moment.replace(tzinfo=_GMT8)
        seconds = _small_int(data, name)
        if seconds is None or seconds >= _MAX_SECONDS:
            raise MalformedPayload(f"data.{name} is not Unix seconds", "invalid_field")
        return datetime.fromtimestamp(seconds, UTC)
    return None


def _channel_detail(tag: str, aftersale_type: int | None) -> str:
    if aftersale_type is None:
        kind = "售后"
    else:
        kind = AFTERSALE_TYPES.get(aftersale_type, f"类型{aftersale_type}")
    event = TAG_EVENTS.get(tag, f"消息{tag}")
    return f"抖店售后（{kind}，{event}）" if event else f"抖店售后（{kind}）"


def _no_text(reason_code: int | None) -> str:
    if reason_code is None:
        return "（抖店售后推送不含买家文字）"
    return f"（抖店售后推送不含买家文字，售后原因码 {reason_code}）"


class DouyinShopNormalizer(Normalizer):
    channel = "douyin_shop"

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        payload = event.payload
        tag = str(payload.get("tag", ""))
        kind = payload.get("kind")
        if kind == "verification":
            return NotAComplaint("verification")
        if kind != "complaint":
            return NotAComplaint(f"tag:{tag}" if _TAG_LABEL.fullmatch(tag) else "tag:other")
        data = payload.get("data")
        if not isinstance(data, Mapping):
            raise MalformedPayload("an after-sale message has no data", "missing_field")

        order_id = _identifier(data, "p_id")
        aftersale_id = _identifier(data, "aftersale_id")
        buyer = _identifier(data, "doudian_open_id")
        if buyer is not None:
            customer_id = f"douyin_shop:{buyer}"
        elif order_id is not None:
            customer_id = f"douyin_shop:order:{order_id}"
        elif aftersale_id is not None:
            customer_id = f"douyin_shop:aftersale:{aftersale_id}"
        else:
            raise MalformedPayload(
                "an after-sale message names no buyer, order or after-sale", "missing_field"
            )
        aftersale_type = _small_int(data, "aftersale_type")
        description = _text(data, "description") or _text(data, "reason")
        return build_record(
            event,
            customer={"id": customer_id, "contacts": {"buyer_nick": _text(data, "buyer_nick")}},
            description=description or _no_text(_small_int(data, "reason_code")),
            channel_detail=_channel_detail(tag, aftersale_type),
            occurred_at=_occurred_at(data),
            product={
                "order_id": order_id,
                "sku": _identifier(data, "sku_id"),
                "name": _text(data, "product_name"),
                "amount_cny": fen_to_yuan(data, "refund_amount"),
            },
            expectations=_EXPECTATIONS.get(-1 if aftersale_type is None else aftersale_type, ()),
            thread_id=aftersale_id,
        )
