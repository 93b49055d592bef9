"""A stand-in for PDD's open-platform router, as far as ``pdd.refund.list.increment.get`` goes.

It checks each form POST as PDD documents it (the order of the checks is
ours): the path, ``client_id``,
``sign`` (:func:`pdd_sign` over everything sent but ``sign``), ``timestamp``
(Unix seconds, within ±10 minutes of the injected clock), ``access_token``,
``type``; then the business parameters (a window of at most 30 minutes, pages
of at most 100). It answers ``{"refund_increment_get_response": {"total_count",
"refund_list"}}`` with the after-sales whose ``updated_time`` lies in the
window (both ends inclusive, sorted by update time then id), or PDD's
``{"error_response": {...}}`` envelope.

The error codes and messages are our reading of PDD's (10001 公共参数错误 is in
PDD's own example, 10019 access_token已过期 in captured answers; the others are
UNCONFIRMED), the same reading the connector classifies. Failure modes are
settable: :attr:`FakePinduoduo.failure` (``"rate_limited"``, ``"busy"``,
``"token_expired"``, ``"bad_request"``) answers that envelope to every
request, :attr:`FakePinduoduo.http_status` answers a bare HTTP error.

Times are written as Unix seconds in text (``"1763864100"``, the current API
page) or, with ``time_style="datetime"``, as ``yyyy-MM-dd HH:mm:ss`` GMT+8 (the
2018 page); ``refund_amount`` as yuan text (``"59.90"``).
"""

from __future__ import annotations

import hmac
import random
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
from pydantic import SecretStr

from connectors._marketplace_signing import GMT8, pdd_sign
from service.fake_platforms import Clock, real_clock

API_TYPE = "pdd.refund.list.increment.get"
ROUTER_PATH = "/api/router"
MAX_SKEW_SECONDS = 600
MAX_WINDOW_SECONDS = 1800
Failure = Literal["rate_limited", "busy", "token_expired", "bad_request"]
TimeStyle = Literal["unix", "datetime"]

_FAILURES: dict[str, tuple[int, str, str]] = {
    "rate_limited": (70031, "调用过于频繁", "当前接口调用已被限流，请稍后重试"),
    "busy": (50001, "服务繁忙", "服务繁忙，请稍后重试"),
    "token_expired": (10019, "access_token已过期", "access_token已过期"),
    "bad_request": (10000, "参数错误", "page_size 超出范围"),
}
_REASONS = (
    "不想要了",
    "质量问题",
    "商品破损/少件",
    "与商品描述不符",
    "快递一直未送达",
    "尺码拍错了，想换大一码",
    "收到的是旧货，包装被拆过😡",
    "少发了一件，客服不回复",
    "颜色和图片差太多",
    "到货就坏了，开不了机",
    "发错货了，要求换货",
    "商家虚假发货，物流一直不动",
)
_GOODS = (
    ("【百亿补贴】无线蓝牙耳机 降噪 超长续航", "39.90"),
    ("加厚保暖羽绒服 男女同款 冬季外套", "159.00"),
    ("家用不粘锅炒锅 28cm 电磁炉通用", "49.90"),
    ("儿童益智积木 1000颗粒 🧱", "29.90"),
    ("纯棉四件套 床单被套 1.8m床", "89.00"),
    ("新鲜脐橙 10斤装 产地直发🍊", "25.80"),
    ("手机壳 适用苹果15 防摔透明", "9.90"),
    ("电热水壶 1.7L 304不锈钢", "59.00"),
)


class FakePinduoduo:
    """PDD's router for one shop; ``handle`` is the whole protocol (see the module docstring)."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        access_token: str,
        *,
        clock: Clock = real_clock,
        time_style: TimeStyle = "unix",
    ) -> None:
        self.client_id = client_id
        self._secret = SecretStr(client_secret)
        self._access_token = access_token
        self.clock = clock
        self.time_style = time_style
        self.refunds: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.failure: Failure | None = None
        self.http_status = 200
        self._updated: dict[int, int] = {}  # index in refunds -> updated_time in Unix seconds
        self._requests_answered = 0

    # -- data -------------------------------------------------------------------------------

    def pdd_time(self, moment: datetime) -> str:
        if self.time_style == "datetime":
            return moment.astimezone(GMT8).strftime("%Y-%m-%d %H:%M:%S")
        return str(int(moment.timestamp()))

    def add(self, *, updated: datetime | None = None, **fields: Any) -> dict[str, Any]:
        """One after-sale, updated at ``updated`` (default: the clock); ``fields`` override."""
        n = len(self.refunds)
        at = updated or self.clock()
        refund: dict[str, Any] = {
            "id": 301851299 + n,
            "order_sn": f"261123-{416081954561509 + n:015d}",
            "after_sales_type": 2,
            "after_sales_status": 2,
            "after_sale_reason": "不想要了",
            "goods_id": 863369485,
            "sku_id": "13182332985",
            "goods_name": "【百亿补贴】无线蓝牙耳机 降噪 超长续航",
            "goods_number": "1",
            "goods_price": "59.90",
            "order_amount": "59.90",
            "refund_amount": "59.90",
            "dispute_refund_status": 0,
            "confirm_time": self.pdd_time(at - timedelta(days=2)),
            "created_time": self.pdd_time(at - timedelta(minutes=10)),
            "updated_time": self.pdd_time(at),
        } | fields
        self.refunds.append(refund)
        self._updated[n] = int(at.timestamp())
        return refund

    def change(
        self, after_sales_id: int, *, updated: datetime | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A new state of an after-sale already there (``after_sales_status=…``): a new update."""
        for n, refund in enumerate(self.refunds):
            if refund.get("id") == after_sales_id:
                at = updated or self.clock()
                refund |= fields | {"updated_time": self.pdd_time(at)}
                self._updated[n] = int(at.timestamp())
                return refund
        raise KeyError(after_sales_id)

    def add_backlog(self, n: int, *, span_seconds: int = 86_400, seed: int = 7) -> None:
        """``n`` distinct after-sales updated over the last ``span_seconds``, for a benchmark.

        Ids, order numbers and (mostly) times differ; reasons, goods, types,
        states and amounts vary. Deterministic for one ``seed``.
        """
        rng = random.Random(seed)
        now = self.clock()
        base = len(self.refunds)
        for k in range(n):
            goods, price = _GOODS[rng.randrange(len(_GOODS))]
            kind = rng.choice((2, 2, 2, 3, 3, 4))
            status = rng.choice((2, 3, 4, 6, 7, 8, 10) if kind != 4 else (14, 15, 16))
            updated = now - timedelta(seconds=rng.uniform(0, span_seconds))
            self.add(
                updated=updated,
                id=400000000 + base + k,
                order_sn=f"{updated.astimezone(GMT8):%y%m%d}-{rng.randrange(10**14, 10**15):015d}",
                after_sales_type=kind,
                after_sales_status=status,
                after_sale_reason=_REASONS[rng.randrange(len(_REASONS))],
                goods_id=800000000 + rng.randrange(10**6),
                sku_id=str(1300000000 + rng.randrange(10**8)),
                goods_name=goods,
                goods_price=price,
                order_amount=price,
                refund_amount=price,
                dispute_refund_status=1 if status == 8 else 0,
                created_time=self.pdd_time(updated - timedelta(minutes=rng.randrange(1, 600))),
            )

    # -- the router -------------------------------------------------------------------------

    def _error(self, code: int, msg: str, sub_msg: str = "") -> httpx.Response:
        self._requests_answered += 1
        body = {
            "error_code": code,
            "error_msg": msg,
            "sub_code": str(code),
            "sub_msg": sub_msg,
            "request_id": f"17638641{self._requests_answered:08d}",
        }
        return httpx.Response(200, json={"error_response": body})

    def handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.content.decode("utf-8"), keep_blank_values=True))
        self.requests.append(params)
        if request.url.path != ROUTER_PATH:
            return httpx.Response(404, text="Not Found")
        if request.method != "POST":
            return httpx.Response(405, text="Method Not Allowed")
        if self.http_status != 200:
            return httpx.Response(self.http_status, text="<html>502 Bad Gateway</html>")
        if params.get("client_id") != self.client_id:
            return self._error(10012, "client_id不存在", "client_id 不合法")
        presented = params.get("sign", "")
        expected = pdd_sign(params, self._secret)
        if not hmac.compare_digest(presented.upper().encode(), expected.encode()):
            return self._error(10016, "签名错误", "sign 校验失败")
        stamp = params.get("timestamp", "")
        now = int(self.clock().timestamp())
        if not stamp.isdigit() or abs(int(stamp) - now) > MAX_SKEW_SECONDS:
            return self._error(10001, "公共参数错误:timestamp", "时间戳与服务器时间相差超过10分钟")
        if not hmac.compare_digest(
            params.get("access_token", "").encode(), self._access_token.encode()
        ):
            return self._error(10019, "access_token已过期", "access_token已过期")
        if params.get("type") != API_TYPE or params.get("data_type", "JSON") != "JSON":
            return self._error(10001, "公共参数错误:type")
        if self.failure is not None:
            code, msg, sub_msg = _FAILURES[self.failure]
            return self._error(code, msg, sub_msg)
        return self._answer(params)

    def _answer(self, params: dict[str, str]) -> httpx.Response:
        try:
            start, end = int(params["start_updated_at"]), int(params["end_updated_at"])
            page, size = int(params.get("page", "1")), int(params.get("page_size", "100"))
            int(params["after_sales_status"]), int(params["after_sales_type"])
        except (KeyError, ValueError):
            return self._error(10000, "参数错误", "缺少或错误的业务参数")
        if not 0 <= end - start <= MAX_WINDOW_SECONDS:
            return self._error(10000, "参数错误", "开始时间结束时间间距不超过 30 分钟")
        if not (1 <= size <= 100 and page >= 1):
            return self._error(10000, "参数错误", "page/page_size 超出范围")
        kind, status = int(params["after_sales_type"]), int(params["after_sales_status"])
        found = sorted(
            (
                (self._updated[n], refund)
                for n, refund in enumerate(self.refunds)
                if start <= self._updated[n] <= end
                and kind in (1, refund.get("after_sales_type"))
                and status in (1, refund.get("after_sales_status"))
            ),
            key=lambda pair: (pair[0], str(pair[1].get("id"))),
        )
        chunk = [refund for _, refund in found[(page - 1) * size : page * size]]
        self._requests_answered += 1
        body = {"total_count": len(found), "refund_list": chunk}
        return httpx.Response(200, json={"refund_increment_get_response": body})
