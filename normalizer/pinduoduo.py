"""Pinduoduo after-sales (``pdd.refund.list.increment.get`` items) → complaint records.

Every field is kept as it arrived and nothing is invented:

* customer ``pinduoduo:<buyer_id>`` when PDD sends a buyer id (the list as
  documented sends none, and PDD masks or encrypts buyer data: an encrypted id
  is kept as it came, a masked one with ``*`` is shared by many buyers and not
  used); otherwise ``pinduoduo:order:<order_sn>``:
  the after-sales of one order stay together and no two orders share a
  customer; ``contacts.buyer_nick`` only when a ``buyer_nick`` arrives. A
  masked phone (``138****5678``) in the buyer's text stays in the text; it is
  never put in ``contacts.phone``;
* product: ``order_sn``, ``sku_id``, ``goods_name``, and ``refund_amount`` as
  exact yuan (see :func:`refund_yuan`);
* description: ``after_sale_reason`` (PDD's spelling, per copies of its API
  page), verbatim; a placeholder in the gateway's words when there is none;
* ``occurred_at``: ``created_time`` (else ``updated_time``), Unix seconds or
  GMT+8 wall clock (:func:`connectors.pinduoduo.parse_pdd_time`);
* ``channel_detail``: ``拼多多售后（<type>，<state>）``, the labels of
  ``after_sales_type`` and ``after_sales_status`` from copies of PDD's page
  (UNCONFIRMED); an unknown code shows as ``类型<n>`` / ``状态<n>``, an absent
  type is left out. When the
  platform is involved (``dispute_refund_status`` 1 纠纷退款, or states 5/8/9
  平台…) it starts with :data:`ESCALATION_MARKER` (the marker Taobao uses) and
  the record is at least P2;
* expectations by type: 仅退款 refund, 退货退款 refund + return, 换货 exchange;
  缺货补寄 (the shop sends what was missing) and unknown types none;
* ``source.thread_id``: the after-sales ``id``, shared by all its states.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.errors import MalformedPayload
from connectors.pinduoduo import parse_pdd_time
from normalizer._fields import identifier, optional_text, unmasked
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent

#: Put first in ``channel_detail`` when the platform is involved; Taobao's marker, on purpose.
ESCALATION_MARKER = "【平台介入】"
NO_TEXT = "（拼多多售后未附买家文字）"
#: ``after_sales_type`` (copies of PDD's page; UNCONFIRMED).
TYPE_LABELS = {2: "仅退款", 3: "退货退款", 4: "换货", 5: "缺货补寄"}
_EXPECTATIONS: dict[int, tuple[str, ...]] = {
    2: ("refund",),
    3: ("refund", "return"),
    4: ("exchange",),
}
#: ``after_sales_status`` (copies of PDD's page; UNCONFIRMED).
STATUS_LABELS = {
    0: "无售后",
    2: "买家申请退款，待商家处理",
    3: "退货退款，待商家处理",
    4: "商家同意退款，退款中",
    5: "平台同意退款，退款中",
    6: "驳回退款，待买家处理",
    7: "已同意退货退款，待用户发货",
    8: "平台处理中",
    9: "平台拒绝退款，退款关闭",
    10: "退款成功",
    11: "买家撤销",
    12: "买家逾期未处理，退款失败",
    13: "买家逾期，超过有效期",
    14: "换货补寄待商家处理",
    15: "换货补寄待用户处理",
    16: "换货补寄成功",
    17: "换货补寄失败",
    18: "换货补寄待用户确认完成",
    21: "待商家同意维修",
    22: "待用户确认发货",
    24: "维修关闭",
    25: "维修成功",
    27: "待用户确认收货",
    31: "已同意拒收退款，待用户拒收",
    32: "补寄待商家发货",
}
#: States in which the platform itself has stepped in.
PLATFORM_STATES = frozenset({5, 8, 9})
_YUAN = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?", re.ASCII)
_FEN = re.compile(r"[0-9]{1,14}", re.ASCII)
_CENT = Decimal("0.01")


def _identifier(data: Mapping[str, Any], name: str) -> str | None:
    return identifier(data, name, where="refund")


def _text(data: Mapping[str, Any], name: str) -> str | None:
    return optional_text(data, name, where="refund")


def _code(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 4:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10_000:
        return value
    raise MalformedPayload(f"refund.{name} is not a PDD code", "invalid_field")


def refund_yuan(data: Mapping[str, Any], unit: str = "yuan") -> Decimal | None:
    """``refund_amount`` in yuan, exactly; a value that is not an amount is refused, never rounded.

    Text with a decimal point (``"8.00"``, at most two places) is yuan. A whole
    number (JSON integer or digits) is read in ``unit``: ``yuan`` as copies of
    PDD's page say, or ``fen`` (divided by 100). Signs, exponents, a fraction of
    a fen and a bool are refused.
    """
    value = data.get("refund_amount")
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, Decimal) and value.is_finite():
        text = format(value, "f")
    elif isinstance(value, str):
        text = value
    else:
        raise MalformedPayload("refund.refund_amount is not an amount", "invalid_field")
    if _FEN.fullmatch(text):
        whole = Decimal(text)
        return (whole / 100 if unit == "fen" else whole).quantize(_CENT)
    if _YUAN.fullmatch(text):
        return Decimal(text).quantize(_CENT)
    raise MalformedPayload("refund.refund_amount is not an amount in yuan", "invalid_field")


def _time(data: Mapping[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_pdd_time(value)
    except ValueError:
        raise MalformedPayload(f"refund.{name} is not a PDD time", "invalid_field") from None


def escalated(data: Mapping[str, Any]) -> bool:
    """A dispute refund (``dispute_refund_status`` 1) or a state the platform decides."""
    return _code(data, "dispute_refund_status") == 1 or (
        _code(data, "after_sales_status") in PLATFORM_STATES
    )


def channel_detail(data: Mapping[str, Any]) -> str:
    kind = _code(data, "after_sales_type")
    status = _code(data, "after_sales_status")
    labels = [
        *([] if kind is None else [TYPE_LABELS.get(kind, f"类型{kind}")]),
        "状态未知" if status is None else STATUS_LABELS.get(status, f"状态{status}"),
    ]
    detail = f"拼多多售后（{'，'.join(labels)}）"
    return ESCALATION_MARKER + detail if escalated(data) else detail


class PinduoduoNormalizer(Normalizer):
    channel = "pinduoduo"

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        refund = event.payload
        after_sales_id = _identifier(refund, "id")
        if after_sales_id is None:
            raise MalformedPayload("an after-sale has no id", "missing_field")
        order_sn = _identifier(refund, "order_sn")
        buyer = unmasked(_identifier(refund, "buyer_id"))
        if buyer is not None:
            customer_id = f"pinduoduo:{buyer}"
        elif order_sn is not None:
            customer_id = f"pinduoduo:order:{order_sn}"
        else:
            customer_id = f"pinduoduo:after_sales:{after_sales_id}"
        kind = _code(refund, "after_sales_type")
        return build_record(
            event,
            customer={"id": customer_id, "contacts": {"buyer_nick": _text(refund, "buyer_nick")}},
            description=_text(refund, "after_sale_reason") or NO_TEXT,
            channel_detail=channel_detail(refund),
            occurred_at=_time(refund, "created_time") or _time(refund, "updated_time"),
            product={
                "order_id": order_sn,
                "sku": _identifier(refund, "sku_id"),
                "name": _text(refund, "goods_name"),
                "amount_cny": refund_yuan(refund, event.headers.get("amount_unit", "yuan")),
            },
            expectations=_EXPECTATIONS.get(kind, ()) if kind is not None else (),
            # the platform stepped in: the desk has less time (triage keeps the higher
            # of this and its own verdict, as for Taobao's escalations)
            priority="P2" if escalated(refund) else None,
            thread_id=after_sales_id,
        )
