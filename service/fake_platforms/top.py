"""A fake TOP router (Taobao Open Platform) for refunds and ratings.

It answers form-encoded POSTs to ``/router/rest`` the way TOP does
(channels.md §4.1) for three methods:

* ``taobao.refunds.receive.get``: refunds by ``start_modified``/``end_modified``
  (inclusive), oldest ``modified`` first, paged by ``page_no``/``page_size``
  (at most 100) with ``has_next`` when ``use_has_next`` is true;
* ``taobao.refund.get``: one refund by ``refund_id``, with its detail fields
  (``reason``, ``desc``, ``cs_status``, ``dispute_type``, ``refund_phase``…);
* ``taobao.traderates.get``: the ratings buyers gave the shop
  (``rate_type=get``, ``role=buyer``), filtered by ``created`` within
  ``start_date``/``end_date`` (inclusive), by ``result`` and by TOP's 180 days,
  newest first, ``page_no`` at most 200 and ``page_size`` at most 150.

Every answer holds only the ``fields`` asked for. Before any of that each
request is checked as TOP checks it, and refused with TOP's ``error_response``
envelope (``code``, ``msg``, ``sub_code``, ``sub_msg``, ``request_id``): the
``sign`` (code 25), the app key (29), the seller's session (27), the timestamp
within ±10 minutes of the fake's clock in GMT+8 (31), the call limit when one
is set (code 7, "This ban will last for N more seconds"), and
:attr:`FakeTop.unavailable` (code 15, ``isp.remote-service-unavailable``).

The codes are TOP's commonly documented ones; the reference gives the envelope
but no code table, so they are UNCONFIRMED, as is the page order of both lists.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
from pydantic import SecretStr

from connectors._marketplace_signing import GMT8, verify_top_sign
from connectors.errors import InvalidSignature
from service.fake_platforms import Clock, real_clock

REFUNDS_METHOD = "taobao.refunds.receive.get"
REFUND_METHOD = "taobao.refund.get"
RATES_METHOD = "taobao.traderates.get"
TOP_TIME = "%Y-%m-%d %H:%M:%S"
TIMESTAMP_TOLERANCE = timedelta(minutes=10)
RATES_HISTORY = timedelta(days=180)

_REASONS = (
    "质量问题",
    "商品与描述不符",
    "未按约定时间发货",
    "少件/漏发",
    "收到商品破损",
    "七天无理由退换货",
    "尺码不合适",
    "卖家发错货",
)
_DESCS = (
    "衣服洗了一次就起球了",
    "颜色和图片差别太大，实物偏黄",
    "下单五天了还没发货，催了也没人回",
    "买了两件只收到一件",
    "快递箱压扁了，杯子碎了两个😭",
    "不想要了，包装完好未拆封",
    "平时穿M码，这件M码小了一圈",
    "拍的黑色，寄来的是藏青色",
    "",
)


class FakeTop:
    """TOP's router with refunds and ratings in memory; see the module docstring.

    Tests and the demo add data with :meth:`add`, :meth:`add_rate` and
    :meth:`add_backlog`, read what was asked in :attr:`requests`, and break it
    with :attr:`status` (an HTTP error page), :attr:`unavailable`,
    :attr:`error` (this envelope answers every valid call), :attr:`errors`
    (per method) or :attr:`calls_per_minute`.
    """

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        session: str,
        clock: Clock = real_clock,
    ) -> None:
        self.app_key = app_key
        self._secret = SecretStr(app_secret)
        self._session = session
        self.clock = clock
        self.refunds: list[dict[str, Any]] = []
        self.rates: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.status = 200
        self.unavailable = False
        self.error: dict[str, Any] | None = None
        self.errors: dict[str, dict[str, Any]] = {}
        #: Fields the refund list leaves out even when asked (``taobao.refund.get`` has them).
        self.list_leaves_out: set[str] = set()
        #: False: ``result`` is ignored, good ratings come back too (a misbehaving platform).
        self.honour_result = True
        self.calls_per_minute: int | None = None
        self._calls: list[datetime] = []
        self._request_ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"FakeTop({self.app_key!r}, {len(self.refunds)} refunds, {len(self.rates)} rates)"

    # -- data ------------------------------------------------------------------------

    def top_time(self, seconds_before_now: float = 0) -> str:
        """The fake's clock minus ``seconds_before_now``, as TOP writes times (GMT+8)."""
        moment = self.clock() - timedelta(seconds=seconds_before_now)
        return moment.astimezone(GMT8).strftime(TOP_TIME)

    def add(self, **fields: Any) -> dict[str, Any]:
        """A refund received by the shop; ``fields`` replace the defaults."""
        n = len(self.refunds)
        refund = {
            "refund_id": str(70000000000000 + n),
            "tid": str(3900000000000000 + n),
            "oid": str(3900000000000100 + n),
            "buyer_nick": "t**1",
            "status": "WAIT_SELLER_AGREE",
            "refund_fee": "59.90",
            "payment": "59.90",
            "has_good_return": False,
            "created": self.top_time(600),
            "modified": self.top_time(60),
        } | fields
        self.refunds.append(refund)
        return refund

    def add_rate(self, **fields: Any) -> dict[str, Any]:
        """A rating a buyer gave the shop; ``fields`` replace the defaults."""
        n = len(self.rates)
        rate = {
            "tid": str(4100000000000000 + n),
            "oid": str(4100000000000100 + n),
            "role": "buyer",
            "nick": "t**1",
            "result": "bad",
            "created": self.top_time(300),
            "item_title": "纯棉短袖T恤 男",
            "item_price": "59.90",
            "content": "洗了一次就变形了",
            "reply": "",
            "num_iid": 620000000000 + n,
        } | fields
        self.rates.append(rate)
        return rate

    def add_backlog(self, n: int) -> list[dict[str, Any]]:
        """``n`` distinct refunds modified within the clock's last hour (a benchmark's load)."""
        added = []
        for i in range(n):
            seconds = 3600 * (n - i) / (n + 1)
            added.append(
                self.add(
                    buyer_nick=f"tb_{(i * 7919) % 100000:05d}",
                    status=("WAIT_SELLER_AGREE", "SELLER_REFUSE_BUYER", "WAIT_BUYER_RETURN_GOODS")[
                        i % 3
                    ],
                    reason=_REASONS[i % len(_REASONS)],
                    desc=_DESCS[(i * 5) % len(_DESCS)],
                    refund_fee=f"{19 + (i * 37) % 2000}.{(i * 13) % 100:02d}",
                    has_good_return=i % 4 == 0,
                    created=self.top_time(seconds + 1800),
                    modified=self.top_time(seconds),
                )
            )
        return added

    # -- the router ------------------------------------------------------------------

    def error_response(
        self, code: int, msg: str, sub_code: str = "", sub_msg: str = ""
    ) -> httpx.Response:
        """TOP's error envelope (HTTP 200, as TOP sends it)."""
        body: dict[str, Any] = {"code": code, "msg": msg}
        if sub_code:
            body |= {"sub_code": sub_code, "sub_msg": sub_msg}
        body["request_id"] = self._request_id()
        return httpx.Response(200, json={"error_response": body})

    def handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.content.decode("utf-8"), keep_blank_values=True))
        self.requests.append(params)
        if self.status != 200:
            return httpx.Response(self.status, text=f"<html>{self.status} Bad Gateway</html>")
        refused = self._check(params)
        if refused is not None:
            return refused
        method = params["method"]
        error = self.errors.get(method) or self.error
        if error is not None:
            return httpx.Response(200, json={"error_response": dict(error)})
        if method == REFUNDS_METHOD:
            return self._refunds(params)
        if method == REFUND_METHOD:
            return self._refund(params)
        return self._rates(params)

    def _check(self, params: Mapping[str, str]) -> httpx.Response | None:
        try:
            verify_top_sign(params, self._secret)
        except InvalidSignature:
            return self.error_response(25, "Invalid signature")
        if params.get("app_key") != self.app_key:
            return self.error_response(29, "Invalid app Key")
        if params.get("session") != self._session:
            return self.error_response(
                27, "Invalid session", "invalid-sessionkey", "SessionKey非法"
            )
        now = self.clock()
        try:
            sent = datetime.strptime(params.get("timestamp", ""), TOP_TIME).replace(tzinfo=GMT8)
        except ValueError:
            sent = None
        if sent is None or abs(sent - now) > TIMESTAMP_TOLERANCE:
            return self.error_response(
                31, "Invalid timestamp", "isv.invalid-timestamp", "时间戳与服务器时间相差超过10分钟"
            )
        if params.get("method") not in (REFUNDS_METHOD, REFUND_METHOD, RATES_METHOD):
            return self.error_response(22, "Invalid method")
        if self.unavailable:
            return self.error_response(
                15, "Remote service error", "isp.remote-service-unavailable", "服务暂不可用"
            )
        if self.calls_per_minute is not None:
            self._calls = [t for t in self._calls if now - t < timedelta(minutes=1)]
            if len(self._calls) >= self.calls_per_minute:
                ban = 60 - int((now - self._calls[0]).total_seconds())
                return self.error_response(
                    7,
                    "App Call Limited",
                    "accesscontrol.limited-by-app-access-count",
                    f"This ban will last for {max(ban, 1)} more seconds",
                )
            self._calls.append(now)
        return None

    def _request_id(self) -> str:
        return f"zt{next(self._request_ids):010x}"

    @staticmethod
    def _only(item: Mapping[str, Any], fields: str) -> dict[str, Any]:
        wanted = {name.strip() for name in fields.split(",")}
        return {name: value for name, value in item.items() if name in wanted}

    def _page(self, params: Mapping[str, str], most: int, last_page: int) -> tuple[int, int] | None:
        try:
            page, size = int(params.get("page_no", "1")), int(params.get("page_size", "40"))
        except ValueError:
            return None
        if not 1 <= page <= last_page or not 1 <= size <= most:
            return None
        return page, size

    def _answer(
        self,
        name: str,
        found: list[dict[str, Any]],
        params: Mapping[str, str],
        page: int,
        size: int,
        wrap: tuple[str, str],
        project: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> httpx.Response:
        """One page of ``found``; only its items are shaped (``project``) as TOP lists them."""
        chunk = [project(item) for item in found[(page - 1) * size : page * size]]
        body: dict[str, Any] = {"request_id": self._request_id()}
        if params.get("use_has_next") == "true":
            body["has_next"] = page * size < len(found)
        else:
            body["total_results"] = len(found)
        if chunk:
            body[wrap[0]] = {wrap[1]: chunk}
        return httpx.Response(200, json={name: body})

    def _refunds(self, params: Mapping[str, str]) -> httpx.Response:
        paging = self._page(params, 100, 10_000)
        if paging is None or "fields" not in params:
            return self.error_response(41, "Invalid arguments", "isv.invalid-parameter")
        start = params.get("start_modified", "0000")
        end = params.get("end_modified", "9999")
        listed = [
            refund
            for refund in sorted(self.refunds, key=lambda r: (r["modified"], r["refund_id"]))
            if start <= refund["modified"] <= end
        ]

        def project(refund: dict[str, Any]) -> dict[str, Any]:
            shown = self._only(refund, params["fields"])
            return {k: v for k, v in shown.items() if k not in self.list_leaves_out}

        return self._answer(
            "refunds_receive_get_response", listed, params, *paging, ("refunds", "refund"), project
        )

    def _refund(self, params: Mapping[str, str]) -> httpx.Response:
        if "fields" not in params or "refund_id" not in params:
            return self.error_response(40, "Missing required arguments", "isv.missing-parameter")
        for refund in self.refunds:
            if str(refund["refund_id"]) == params["refund_id"]:
                body = {
                    "refund": self._only(refund, params["fields"]),
                    "request_id": self._request_id(),
                }
                return httpx.Response(200, json={"refund_get_response": body})
        return self.error_response(
            15, "Remote service error", "isv.refund-not-exist", "退款单不存在"
        )

    def _rates(self, params: Mapping[str, str]) -> httpx.Response:
        if not all(params.get(name) for name in ("fields", "rate_type", "role")):
            return self.error_response(40, "Missing required arguments", "isv.missing-parameter")
        result = params.get("result")
        paging = self._page(params, 150, 200)
        if paging is None or result not in (None, "good", "neutral", "bad"):
            return self.error_response(41, "Invalid arguments", "isv.invalid-parameter")
        oldest = (self.clock() - RATES_HISTORY).astimezone(GMT8).strftime(TOP_TIME)
        start = max(params.get("start_date", oldest), oldest)
        end = params.get("end_date", "9999")
        received = params["rate_type"] == "get" and params["role"] == "buyer"
        found = [
            rate
            for rate in sorted(self.rates, key=lambda r: (r["created"], r["tid"]), reverse=True)
            if received
            and start <= rate["created"] <= end
            and (result is None or not self.honour_result or rate["result"] == result)
        ]
        return self._answer(
            "traderates_get_response",
            found,
            params,
            *paging,
            ("trade_rates", "trade_rate"),
            lambda rate: self._only(rate, params["fields"]),
        )
