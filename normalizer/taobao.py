"""Taobao/Tmall refunds (``taobao.refunds.receive.get`` items) → complaint records.

Every field is kept as it arrived and nothing is invented:

* customer ``taobao:<buyer_open_uid>`` (or ``buyer_nick`` when TOP sends no open
  uid; ``taobao:order:<tid>`` when it sends neither), ``contacts.buyer_nick``
  verbatim (spaces, symbols, emoji);
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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.errors import MalformedPayload
from connectors.taobao import parse_top_time
from normalizer._fields import identifier, optional_text
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent

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


def yuan(data: Mapping[str, Any], name: str) -> Decimal | None:
    """An amount TOP sends as a yuan string (``"12.5"``, ``"128.00"``), exactly."""
    value = data.get(name)
    if value is None or value == "":
        return None
    text = str(value) if isinstance(value, int | Decimal) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _YUAN.fullmatch(text):
        raise MalformedPayload(f"refund.{name} is not an amount in yuan", "invalid_field")
    return Decimal(text).quantize(Decimal("0.01"))


def _time(data: Mapping[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_top_time(str(value))
    except ValueError:
        raise MalformedPayload(f"refund.{name} is not a TOP time", "invalid_field") from None


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
        refund = event.payload
        refund_id = _identifier(refund, "refund_id")
        if refund_id is None:
            raise MalformedPayload("a refund has no refund_id", "missing_field")
        order_id = _identifier(refund, "tid") or _identifier(refund, "oid")
        buyer = _identifier(refund, "buyer_open_uid") or _text(refund, "buyer_nick")
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
