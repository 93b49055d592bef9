"""A fake JD JOS ``routerjson`` gateway, as far as the after-sale list goes.

:class:`FakeJd` answers :data:`connectors.jd.AFTER_SALE_METHOD` the way we
read JOS (:mod:`connectors.jd` says which parts are UNCONFIRMED). It reads the
parameters from the query string and the form body, as JOS takes either, and
refuses a request the way the platform does, with an ``error_response``:

* a ``sign`` that is not :func:`jd_sign` of every other parameter sent
  (``360buy_param_json`` and ``access_token`` included) → code 12;
* an ``app_key`` other than its own → 16; an ``access_token`` other than its
  own → 19 (expired);
* a ``timestamp`` in neither of JOS's forms, or more than six minutes from the
  fake's clock (JOS's documented tolerance) → 8;
* another ``method`` → 15.

It then filters its services by ``updateTime`` within
``updateTimeBegin``/``updateTimeEnd`` (both inclusive), sorts them by update
time and id, and answers one page in the success envelope, named after the
method with JOS's spelling ``responce``. A ``pageNumber`` past the last page
answers the last page again, as JOS documents for a sibling after-sale API.

Set :attr:`FakeJd.fail_with` to make it fail: an HTTP status (``502``) answers
that status with an HTML body; a name from :data:`FAILURES` (``"rate_limit"``,
``"busy"``, ``"token_expired"``, ``"bad_request"``...) answers that JOS error
envelope. Change services through :meth:`FakeJd.add` and :meth:`FakeJd.update`
so the fake's time index stays right.
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
from pydantic import SecretStr

from connectors._marketplace_signing import GMT8, jd_sign
from connectors.jd import AFTER_SALE_METHOD, ANSWER_KEY, jd_time, parse_jd_time
from service.fake_platforms import Clock, real_clock

MAX_SKEW = timedelta(minutes=6)

#: Failure modes by name: the ``error_response`` each answers (codes as in :mod:`connectors.jd`).
FAILURES: dict[str, dict[str, str]] = {
    "rate_limit": {"code": "2", "zh_desc": "限制时间内调用失败次数", "en_desc": "App Call Limited"},
    "busy": {"code": "66", "zh_desc": "系统繁忙，请稍后重试", "en_desc": "System busy"},
    "unavailable": {
        "code": "1",
        "zh_desc": "服务不可用",
        "en_desc": "Service Currently Unavailable",
    },
    "bad_sign": {"code": "12", "zh_desc": "无效签名", "en_desc": "Invalid Signature"},
    "bad_app_key": {"code": "16", "zh_desc": "无效的app_key", "en_desc": "Invalid App Key"},
    "token_invalid": {
        "code": "18",
        "zh_desc": "无效access_token",
        "en_desc": "Invalid access_token",
    },
    "token_expired": {
        "code": "19",
        "zh_desc": "access_token已过期",
        "en_desc": "access_token expired",
    },
    "bad_timestamp": {"code": "8", "zh_desc": "非法的时间戳参数", "en_desc": "Invalid Timestamp"},
    "bad_method": {"code": "15", "zh_desc": "不存在的方法名", "en_desc": "Invalid Method"},
    "bad_request": {"code": "43", "zh_desc": "参数错误", "en_desc": "Invalid Parameter"},
}

_WARES = (
    ("100012043978", "【京东自营】智能扫地机器人 X20 Pro", "2999.00"),
    ("100038812277", "无线蓝牙降噪耳机 🎧 旗舰款", "899.00"),
    ("100020315456", "全自动滚筒洗衣机 10公斤", "3299.00"),
    ("100009974401", "有机纯牛奶 250ml×24盒", "69.90"),
    ("100045118233", "儿童保温杯 500ml", "128.50"),
    ("100051172309", "65英寸 4K 智能电视", "4599.00"),
)
_PROBLEMS = (
    "收到就是坏的，开机没反应",
    "快递把外包装压烂了，里面也有裂痕😡",
    "用了三天就漏水，客服一直不回",
    "和页面描述的颜色完全不一样",
    "少发了一件配件，说明书也没有",
    "牛奶胀包了，已经过期还发给我！！",
    "安装师傅约了两次都没来，电话 139****2046 打不通",
    "屏幕有一条竖线，申请换新",
)
_EXPECTS = ((10, "退货"), (20, "换货"), (30, "维修"), (11, "仅退款"))
_REASONS = ("质量问题", "商品与描述不符", "物流损坏", "少件/漏发", "其他")


class FakeJd:
    """JOS ``routerjson`` holding after-sale services; see the module docstring."""

    def __init__(
        self,
        *,
        app_key: str = "fake-jd-app-key",
        app_secret: str = "fake-jd-app-secret",
        access_token: str = "fake-jd-access-token",
        clock: Clock = real_clock,
    ) -> None:
        self.app_key = app_key
        self.app_secret = SecretStr(app_secret)
        self.access_token = access_token
        self.clock = clock
        self.services: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.fail_with: int | str | None = None
        self._ids = itertools.count(1)
        self._version = 0
        self._index: list[tuple[datetime, str, int]] = []
        self._indexed = -1

    # -- the data -------------------------------------------------------------------------

    def add(self, **fields: Any) -> dict[str, Any]:
        """A service awaiting review, updated a minute ago; ``fields`` override any of it."""
        n = next(self._ids)
        now = self.clock()
        sku, ware, paid = _WARES[n % len(_WARES)]
        expect, expect_name = _EXPECTS[n % len(_EXPECTS)]
        service: dict[str, Any] = {
            "serviceId": 1_700_000_000 + n,
            "orderId": 300_000_000_000 + n,
            "skuId": int(sku),
            "wareName": ware,
            "customerPin": f"jd_{n:04d}买家",
            "customerName": "张**",
            "customerTel": "138****5678",
            "customerExpect": expect,
            "customerExpectName": expect_name,
            "serviceStatus": 10001,
            "serviceStatusName": "待审核",
            "applyReason": _REASONS[n % len(_REASONS)],
            "questionDesc": _PROBLEMS[n % len(_PROBLEMS)],
            "actualPayPrice": paid,
            "applyTime": jd_time(now - timedelta(minutes=10)),
            "updateTime": jd_time(now - timedelta(minutes=1)),
        } | fields
        self.services.append(service)
        self._version += 1
        return service

    def update(self, service_id: int | str, **fields: Any) -> dict[str, Any]:
        """Change a service (a new state, a later ``updateTime``) and return it."""
        for service in self.services:
            if str(service.get("serviceId")) == str(service_id):
                service.update(fields)
                self._version += 1
                return service
        raise KeyError(service_id)

    def add_backlog(self, n: int, *, spread_seconds: int = 6 * 3600) -> list[dict[str, Any]]:
        """``n`` distinct services updated over the last ``spread_seconds`` (for benchmarks).

        Texts vary by combining products, problems and requests; ids are unique;
        the same ``n`` on a fresh fake gives the same services.
        """
        now = self.clock()
        added = []
        for k in range(n):
            updated = now - timedelta(seconds=spread_seconds * (n - k) / max(n, 1))
            problem = _PROBLEMS[k % len(_PROBLEMS)]
            expect, expect_name = _EXPECTS[(k // len(_PROBLEMS)) % len(_EXPECTS)]
            added.append(
                self.add(
                    customerPin=f"jd_bench_{k:07d}",
                    questionDesc=f"{problem}（第{k + 1}单，{expect_name}）",
                    customerExpect=expect,
                    customerExpectName=expect_name,
                    applyTime=jd_time(updated - timedelta(minutes=5)),
                    updateTime=jd_time(updated),
                )
            )
        return added

    # -- the gateway ----------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.url.query.decode("utf-8"), keep_blank_values=True))
        if request.method == "POST":
            form = request.content.decode("utf-8", errors="replace")
            params |= dict(parse_qsl(form, keep_blank_values=True))
        self.requests.append(params)
        if isinstance(self.fail_with, int):
            return httpx.Response(self.fail_with, text=f"<html>{self.fail_with}</html>")
        refused = self._refusal(params)
        if refused is not None:
            return self._error(refused)
        if isinstance(self.fail_with, str):
            return self._error(self.fail_with)
        try:
            business = json.loads(params.get("360buy_param_json", "{}"))
            start = parse_jd_time(business["updateTimeBegin"])
            end = parse_jd_time(business["updateTimeEnd"])
            page = int(business.get("pageNumber", 1))
            size = int(business.get("pageSize", 10))
        except (ValueError, TypeError, KeyError):
            return self._error("bad_request")
        if page < 1 or not 1 <= size <= 50:
            return self._error("bad_request")
        found = self._between(start, end)
        last_page = max(1, -(-len(found) // size))
        page = min(page, last_page)
        chunk = found[(page - 1) * size : page * size]
        result = {
            "code": "0",
            "pageResult": {
                "pageNumber": page,
                "pageSize": size,
                "totalCount": len(found),
                "data": chunk,
            },
        }
        return httpx.Response(200, json={ANSWER_KEY: result})

    def _refusal(self, params: Mapping[str, str]) -> str | None:
        """The failure a request earns before any data is read, checked in JOS's order."""
        if params.get("sign", "").upper() != jd_sign(params, self.app_secret):
            return "bad_sign"
        if params.get("app_key") != self.app_key:
            return "bad_app_key"
        if params.get("access_token") != self.access_token:
            return "token_expired"
        try:
            stamp = _parse_timestamp(params.get("timestamp", ""))
        except ValueError:
            return "bad_timestamp"
        if abs(stamp - self.clock()) > MAX_SKEW:
            return "bad_timestamp"
        if params.get("method") != AFTER_SALE_METHOD or params.get("v") != "2.0":
            return "bad_method"
        return None

    def _between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        index = self._time_index()
        low = bisect.bisect_left(index, (start, "", -1))
        high = bisect.bisect_right(index, (end + timedelta(microseconds=1), "", -1))
        return [self.services[position] for _, _, position in index[low:high]]

    def _time_index(self) -> list[tuple[datetime, str, int]]:
        if self._indexed != self._version:
            entries = []
            for position, service in enumerate(self.services):
                try:
                    updated = parse_jd_time(service.get("updateTime"))
                except ValueError:
                    continue  # JOS would not list what it cannot date either
                entries.append((updated, f"{service.get('serviceId')!s:>40}", position))
            self._index = sorted(entries)
            self._indexed = self._version
        return self._index

    @staticmethod
    def _error(name: str) -> httpx.Response:
        body = FAILURES.get(name, FAILURES["bad_request"])
        return httpx.Response(200, json={"error_response": dict(body)})


def _parse_timestamp(text: str) -> datetime:
    """JOS's ``timestamp``: ``yyyy-MM-dd HH:mm:ss`` or ``… HH:mm:ss.SSS+0800``."""
    if text.endswith("+0800"):
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f%z")
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=GMT8)
