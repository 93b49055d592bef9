"""Taobao/Tmall refunds (``taobao.refunds.receive.get`` items) → complaint records.

Every field is kept as it arrived and nothing is invented:

* customer ``taobao:<buyer_open_uid>`` (or ``buyer_nick`` when TOP sends no open
  uid; ``taobao:order:<tid>`` when it sends neither), ``contacts.buyer_nick``
  verbatim (spaces, symbols, emoji). A nick TOP masked (``t**1``, any ``*``) is
  shared by many buyers, so it is never a customer id: the order is;
* product: ``tid`` as the order (``oid``, the sub-order, when there is no ``tid``),
  ``sku``, ``title``, and ``refund_fee`` (else ``payment``) as exact yuan: TOP
  sends amounts as strings (``"128.50"``); a value that is not a yuan amount
  with at most two decimals is refused, never rounded;
* description: the buyer's ``reason`` and ``desc`` verbatim, one per line;
* ``occurred_at``: ``created`` (else ``modified``), TOP's GMT+8 wall clock;
* ``channel_detail``: ``淘宝退款（<state>）``; when the buyer has escalated to
  the platform (``cs_status`` 2 or more: 需要客服介入, 客服已经介入…, meanings
  UNCONFIRMED in the reference) it reads ``淘宝退款（<state>，客服介入）`` and
  starts with :data:`ESCALATION_MARKER`, so rules and people reading the
  detail see the escalation;
* expectations: refund, plus return when ``has_good_return`` is true;
* ``source.thread_id``: ``refund_id``, shared by every state of one refund.

A rating (payload ``{"kind": "rate", "rate": {…}}``, an item of
``taobao.traderates.get``) becomes a record when it is ``bad`` or ``neutral``;
a ``good`` one is :class:`NotAComplaint` (``good_rating``):

* ``channel_detail`` ``淘宝评价（差评）`` or ``淘宝评价（中评）``;
* description: ``content`` verbatim; a rating without text reads
  :data:`EMPTY_RATING` for its result, never invented words; the seller's
  ``reply`` is not the complaint and is left out;
* customer ``taobao:<nick>``, else (no nick, or a masked one such as ``t**1``)
  ``taobao:order:<tid>``; ``contacts.buyer_nick`` the nick as sent;
* product: ``tid`` as the order, ``item_title``, ``item_price`` as exact yuan;
* ``occurred_at``: ``created``; ``source.thread_id``: ``rate:<tid>:<oid>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.errors import MalformedPayload
from connectors.taobao import parse_top_time
from normalizer._fields import identifier, optional_text, unmasked
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent

#: ``result`` of the ratings that are complaints, and how ``channel_detail`` names them.
RATE_LABELS = {"bad": "差评", "neutral": "中评"}
#: The description of a bad or neutral rating the buyer wrote no words for.
EMPTY_RATING = {
    "bad": "（买家给出差评，未填写评价内容）",
    "neutral": "（买家给出中评，未填写评价内容）",
}
#: Put first in ``channel_detail`` when the platform's customer service is involved.
ESCALATION_MARKER = "【平台介入】"
STATUS_LABELS = {
    "WAIT_SELLER_AGREE": "买家申请退款",
    "WAIT_BUYER_RETURN_GOODS": "等待买家退货",
    "WAIT_SELLER_CONFIRM_GOODS": "买家已退货",
    "SELLER_REFUSE_BUYER": "卖家拒绝退款",
    "CLOSED": "退款关闭",
    "SUCCESS": "退款成功",
}
_YUAN = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?", re.ASCII)
_STATUS = re.compile(r"[A-Z_]{1,40}", re.ASCII)


def _identifier(data: Mapping[str, Any], name: str) -> str | None:
    return identifier(data, name, where="refund")


def _text(data: Mapping[str, Any], name: str) -> str | None:
    return optional_text(data, name, where="refund")


def yuan(data: Mapping[str, Any], name: str, where: str = "refund") -> Decimal | None:
    """An amount TOP sends as a yuan string (``"12.5"``, ``"128.00"``), exactly."""
    value = data.get(name)
    if value is None or value == "":
        return None
    text = str(value) if isinstance(value, int | Decimal) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _YUAN.fullmatch(text):
        raise MalformedPayload(f"{where}.{name} is not an amount in yuan", "invalid_field")
    return Decimal(text).quantize(Decimal("0.01"))


def _time(data: Mapping[str, Any], name: str, where: str = "refund") -> datetime | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_top_time(str(value))
    except ValueError:
        raise MalformedPayload(f"{where}.{name} is not a TOP time", "invalid_field") from None


def escalated(data: Mapping[str, Any]) -> bool:
    """``cs_status`` 2 and above: the buyer asked for, or got, the platform's customer service."""
    value = data.get("cs_status")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 2


def channel_detail(data: Mapping[str, Any]) -> str:
    status = data.get("status")
    if isinstance(status, str) and status in STATUS_LABELS:
        state = STATUS_LABELS[status]
    elif isinstance(status, str) and _STATUS.fullmatch(status):
        state = status
    else:
        state = "退款申请"
    if escalated(data):
        return f"{ESCALATION_MARKER}淘宝退款（{state}，客服介入）"
    return f"淘宝退款（{state}）"


class TaobaoNormalizer(Normalizer):
    channel = "taobao"

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        if event.payload.get("kind") == "rate":
            rate = event.payload.get("rate")
            if not isinstance(rate, Mapping):
                raise MalformedPayload("a rating event holds no rating", "missing_field")
            return normalize_rate(event, rate)
        refund = event.payload
        refund_id = _identifier(refund, "refund_id")
        if refund_id is None:
            raise MalformedPayload("a refund has no refund_id", "missing_field")
        order_id = _identifier(refund, "tid") or _identifier(refund, "oid")
        buyer = _identifier(refund, "buyer_open_uid") or unmasked(_text(refund, "buyer_nick"))
        if buyer is not None:
            customer_id = f"taobao:{buyer}"
        elif order_id is not None:
            customer_id = f"taobao:order:{order_id}"
        else:
            customer_id = f"taobao:refund:{refund_id}"
        words = [t for t in (_text(refund, "reason"), _text(refund, "desc")) if t]
        amount = yuan(refund, "refund_fee")
        if amount is None:
            amount = yuan(refund, "payment")
        expectations = ["refund"]
        if refund.get("has_good_return") in (True, "true"):
            expectations.append("return")
        return build_record(
            event,
            customer={"id": customer_id, "contacts": {"buyer_nick": _text(refund, "buyer_nick")}},
            description="\n".join(words) or "（淘宝退款未附买家文字）",
            channel_detail=channel_detail(refund),
            occurred_at=_time(refund, "created") or _time(refund, "modified"),
            product={
                "order_id": order_id,
                "sku": _identifier(refund, "sku"),
                "name": _text(refund, "title"),
                "amount_cny": amount,
            },
            expectations=expectations,
            # the buyer took the dispute to the platform: the desk has less time (triage
            # keeps the higher of this and its own verdict, with the reason 渠道标注 P2)
            priority="P2" if escalated(refund) else None,
            thread_id=refund_id,
        )


def normalize_rate(event: RawEvent, rate: Mapping[str, Any]) -> ComplaintRecord | NotAComplaint:
    """A bad or neutral rating as a record; see the module docstring."""
    result = rate.get("result")
    if result == "good":
        return NotAComplaint("good_rating")
    if not isinstance(result, str) or result not in RATE_LABELS:
        raise MalformedPayload("rate.result is not good, neutral or bad", "invalid_field")
    tid = identifier(rate, "tid", where="rate")
    if tid is None:
        raise MalformedPayload("a rating has no tid", "missing_field")
    oid = identifier(rate, "oid", where="rate")
    nick = optional_text(rate, "nick", where="rate")
    buyer = unmasked(nick)
    return build_record(
        event,
        customer={
            "id": f"taobao:{buyer}" if buyer is not None else f"taobao:order:{tid}",
            "contacts": {"buyer_nick": nick},
        },
        description=optional_text(rate, "content", where="rate") or EMPTY_RATING[result],
        channel_detail=f"淘宝评价（{RATE_LABELS[result]}）",
        occurred_at=_time(rate, "created", where="rate"),
        product={
            "order_id": tid,
            "name": optional_text(rate, "item_title", where="rate"),
            "amount_cny": yuan(rate, "item_price", where="rate"),
        },
        thread_id=f"rate:{tid}:{oid or '-'}",
    )
