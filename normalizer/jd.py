"""JD (京东 JOS) after-sale services (``jingdong.asc.query.list`` items) → complaint records.

The field names below are our reading of the JOS after-sale list, UNCONFIRMED
against JD's own documents (see :mod:`connectors.jd`); they are all in this
table and :mod:`connectors.jd`'s constants, so a correction is made once. The
code tables (``customerExpect``, ``serviceStatus``) are as JD's public client
code describes them, also UNCONFIRMED. Every field is kept as it arrived and
nothing is invented:

* customer ``jd:<customerPin>`` (the buyer's JD account, verbatim: spaces,
  symbols, emoji); ``jd:order:<orderId>`` when JD names no buyer or masks
  the pin (``jd_1***5``, shared by many buyers), and
  ``jd:service:<serviceId>`` when it names no order either.
  ``contacts.buyer_nick`` is the pin. ``customerTel`` goes into
  ``contacts.phone`` only when it is a whole number (E.164); JD usually masks
  it (``138****5678``), and a masked number is left out, never guessed. The
  buyer's real name (``customerName``) is not copied into the record;
* product: ``orderId``, ``skuId``, ``wareName``, and ``actualPayPrice`` as
  exact yuan, whether JD sends ``"59.90"`` or ``59.9``; a value that is not a
  yuan amount with at most two decimals is refused, never rounded.
  ``applyRefundSum`` is not read: other JD APIs give it in fen and which unit
  this one uses is UNCONFIRMED;
* description: the reason the buyer picked and the buyer's own words
  (``questionDesc``) verbatim, one per line, masked phone numbers and all;
* ``occurred_at``: ``applyTime`` (else ``updateTime``), JD's GMT+8 wall clock;
* ``channel_detail``: ``京东售后（<state>）``, the state from
  :data:`STATUS_LABELS`, else JD's own ``serviceStatusName``;
* expectations from ``customerExpect`` (:data:`EXPECTATIONS`; by the words of
  ``customerExpectName`` when the code is unknown): 退货 → refund and return,
  仅退款 → refund, 换货 → exchange, 维修 → repair, 优鲜赔 → compensation;
* ``source.thread_id``: ``serviceId``, shared by every state of one service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.errors import MalformedPayload
from connectors.jd import SERVICE_ID, STATUS, UPDATE_TIME, parse_jd_time
from normalizer._contacts import phone_to_e164
from normalizer._fields import identifier, optional_text, unmasked
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent

# -- where each fact sits in one service (our reading; see the module docstring) ----------
BUYER_PIN = "customerPin"
BUYER_PHONE = "customerTel"
ORDER_ID = "orderId"
SKU_ID = "skuId"
WARE_NAME = "wareName"
PAID = "actualPayPrice"
REASON = "applyReason"
WORDS = "questionDesc"
EXPECT = "customerExpect"
EXPECT_NAME = "customerExpectName"
STATUS_NAME = "serviceStatusName"
APPLY_TIME = "applyTime"

#: ``serviceStatus`` codes as JD's public client code lists them.
STATUS_LABELS = {
    10001: "待审核",
    10002: "待客户反馈",
    10004: "审核关闭",
    10005: "待收货",
    10007: "待处理",
    10009: "待用户确认",
    10010: "完成",
    10011: "取消",
    10012: "客户已反馈",
}
#: ``customerExpect``: what the buyer asked for.
EXPECTATIONS: dict[int, tuple[str, ...]] = {
    1: ("refund",),  # 售前退款
    10: ("refund", "return"),  # 退货
    11: ("refund",),  # 仅退款
    20: ("exchange",),  # 换货
    30: ("repair",),  # 维修
    70: ("repair",),  # 上门维修
    90: ("compensation",),  # 优鲜赔
}
_EXPECTATION_WORDS = (
    ("退货", ("refund", "return")),
    ("换货", ("exchange",)),
    ("维修", ("repair",)),
    ("退款", ("refund",)),
)
_YUAN = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?", re.ASCII)
_STATE_NAME = re.compile(r"[^\x00-\x1f\x7f（）()]{1,20}")


def _identifier(data: Mapping[str, Any], name: str) -> str | None:
    return identifier(data, name, where="service", longest=64)


def _text(data: Mapping[str, Any], name: str) -> str | None:
    return optional_text(data, name, where="service")


def _small_int(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def yuan(data: Mapping[str, Any], name: str) -> Decimal | None:
    """An amount in yuan as JD sends it, a string (``"59.90"``) or a JSON number, exactly."""
    value = data.get(name)
    if value is None or value == "":
        return None
    text = str(value) if isinstance(value, int | Decimal) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _YUAN.fullmatch(text):
        raise MalformedPayload(f"service.{name} is not an amount in yuan", "invalid_field")
    return Decimal(text).quantize(Decimal("0.01"))


def _time(data: Mapping[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_jd_time(value)
    except ValueError:
        raise MalformedPayload(f"service.{name} is not a JD time", "invalid_field") from None


def state(data: Mapping[str, Any]) -> str:
    """The service's state in words: our label for a known code, else JD's own name."""
    code = _small_int(data, STATUS)
    if code in STATUS_LABELS:
        return STATUS_LABELS[code]
    name = data.get(STATUS_NAME)
    if isinstance(name, str) and _STATE_NAME.fullmatch(name.strip()):
        return name.strip()
    return f"状态{code}" if code is not None else "售后申请"


def expectations(data: Mapping[str, Any]) -> tuple[str, ...]:
    code = _small_int(data, EXPECT)
    if code in EXPECTATIONS:
        return EXPECTATIONS[code]
    name = data.get(EXPECT_NAME)
    if isinstance(name, str):
        for word, wanted in _EXPECTATION_WORDS:
            if word in name:
                return wanted
    return ()


class JdNormalizer(Normalizer):
    channel = "jd"

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        service = event.payload
        service_id = _identifier(service, SERVICE_ID)
        if service_id is None:
            raise MalformedPayload(f"a service has no {SERVICE_ID}", "missing_field")
        order_id = _identifier(service, ORDER_ID)
        pin = unmasked(_text(service, BUYER_PIN))
        if pin is not None:
            customer_id = f"jd:{pin}"
        elif order_id is not None:
            customer_id = f"jd:order:{order_id}"
        else:
            customer_id = f"jd:service:{service_id}"
        phone = service.get(BUYER_PHONE)
        words = [t for t in (_text(service, REASON), _text(service, WORDS)) if t]
        return build_record(
            event,
            customer={
                "id": customer_id,
                "contacts": {
                    "buyer_nick": pin,
                    "phone": phone_to_e164(phone) if isinstance(phone, str) else None,
                },
            },
            description="\n".join(words) or "（京东售后未附买家文字）",
            channel_detail=f"京东售后（{state(service)}）",
            occurred_at=_time(service, APPLY_TIME) or _time(service, UPDATE_TIME),
            product={
                "order_id": order_id,
                "sku": _identifier(service, SKU_ID),
                "name": _text(service, WARE_NAME),
                "amount_cny": yuan(service, PAID),
            },
            expectations=expectations(service),
            thread_id=service_id,
        )
