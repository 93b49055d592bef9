"""Taobao (TOP) refunds: the poller against a respx fake of the TOP router, and the normalizer.

The fake checks every request's ``sign`` with :func:`verify_top_sign`, the seller
session and the GMT+8 timestamp, filters refunds by the ``modified`` window,
pages them (``page_no``, ``has_next``) and answers in TOP's JSON shapes,
``refunds_receive_get_response`` or an ``error_response`` envelope.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from pydantic import SecretStr

from connectors._marketplace_signing import GMT8, verify_top_sign
from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
    InvalidSignature,
)
from connectors.polling import PollingConnector
from connectors.taobao import TaobaoConnector, TaobaoSettings, classify_error
from normalizer.taobao import ESCALATION_MARKER, TaobaoNormalizer
from schemas import ComplaintRecord
from service.registry import Registry
from tests.fakes import FrozenClock
from tests.test_polling_contract import NOW, PollingConnectorContract

API = "https://top.fake.test/router/rest"
APP_KEY = "12345678"
APP_SECRET = "top-app-secret-7c1e"
SESSION = "6100e23657fb0b2d0c78570b8d1b7e6c5a3b"
NOW_GMT8 = NOW.astimezone(GMT8)


def top_time(seconds_before_now: float) -> str:
    return (NOW_GMT8 - timedelta(seconds=seconds_before_now)).strftime("%Y-%m-%d %H:%M:%S")


class FakeTop:
    """The TOP router as far as ``taobao.refunds.receive.get`` goes."""

    def __init__(self) -> None:
        self.refunds: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.error: dict[str, Any] | None = None
        self.status = 200

    def add(self, **fields: Any) -> dict[str, Any]:
        refund = {
            "refund_id": str(70000000000000 + len(self.refunds)),
            "tid": str(3900000000000000 + len(self.refunds)),
            "oid": str(3900000000000100 + len(self.refunds)),
            "buyer_nick": "t**1",
            "status": "WAIT_SELLER_AGREE",
            "refund_fee": "59.90",
            "payment": "59.90",
            "has_good_return": False,
            "created": top_time(600),
            "modified": top_time(60),
        } | fields
        self.refunds.append(refund)
        return refund

    @staticmethod
    def _error(code: int, msg: str, sub_code: str = "", sub_msg: str = "") -> httpx.Response:
        body: dict[str, Any] = {"code": code, "msg": msg, "request_id": "zt0ab12cd34"}
        if sub_code:
            body |= {"sub_code": sub_code, "sub_msg": sub_msg}
        return httpx.Response(200, json={"error_response": body})

    def handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.content.decode("utf-8"), keep_blank_values=True))
        self.requests.append(params)
        if self.status != 200:
            return httpx.Response(self.status, text="<html>502 Bad Gateway</html>")
        try:
            verify_top_sign(params, SecretStr(APP_SECRET))
        except InvalidSignature:
            return self._error(25, "Invalid signature")
        if params.get("session") != SESSION:
            return self._error(27, "Invalid session", "invalid-sessionkey", "SessionKey非法")
        assert params["app_key"] == APP_KEY and params["method"] == "taobao.refunds.receive.get"
        assert params["timestamp"] == NOW_GMT8.strftime("%Y-%m-%d %H:%M:%S")
        assert params["format"] == "json" and params["v"] == "2.0"
        if self.error is not None:
            return httpx.Response(200, json={"error_response": self.error})
        start, end = params["start_modified"], params["end_modified"]
        found = sorted(
            (r for r in self.refunds if start <= r["modified"] <= end),
            key=lambda r: (r["modified"], r["refund_id"]),
        )
        page, size = int(params["page_no"]), int(params["page_size"])
        chunk = found[(page - 1) * size : page * size]
        body: dict[str, Any] = {
            "total_results": len(found),
            "has_next": page * size < len(found),
            "request_id": "zt0ab12cd35",
        }
        if chunk:
            body["refunds"] = {"refund": chunk}
        return httpx.Response(200, json={"refunds_receive_get_response": body})


def make_connector(fake: FakeTop, **overrides: Any) -> TaobaoConnector:
    router = respx.MockRouter(assert_all_called=False)
    router.post(API).mock(side_effect=fake.handle)
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    section = {
        "app_key": APP_KEY,
        "app_secret": APP_SECRET,
        "session": SESSION,
        "api_base": API,
    } | overrides
    return TaobaoConnector(TaobaoSettings.model_validate(section), FrozenClock(NOW), http)


class TestTaobaoContract(PollingConnectorContract):
    name = "taobao"
    secret_values = (APP_SECRET, SESSION)

    @pytest.fixture(autouse=True)
    def _fake(self) -> None:
        self.fake = FakeTop()
        self.added = 0

    def settings_section(self, tmp_path: Path) -> dict[str, Any]:
        return {"app_key": APP_KEY, "app_secret": APP_SECRET, "session": SESSION, "api_base": API}

    def connector(self, tmp_path: Path, **overrides: Any) -> PollingConnector:
        klass = Registry.from_entry_points().connectors[self.name]
        assert klass is TaobaoConnector
        return make_connector(self.fake, **overrides)

    def add_messages(self, tmp_path: Path, texts: Sequence[str]) -> None:
        for text in texts:
            self.added += 1
            self.fake.add(desc=text, modified=top_time(300 - self.added))

    def break_platform(self, tmp_path: Path, how: str) -> dict[str, Any] | None:
        if how == "credentials":
            return {"session": "expired-session"}
        self.fake.status = 502
        return {}


# -- the poller -------------------------------------------------------------------------


async def test_pages_until_has_next_is_false() -> None:
    fake = FakeTop()
    for n in range(5):
        fake.add(desc=f"第{n}单", modified=top_time(100 - n))
    result = await make_connector(fake, page_size=2).poll(None)
    assert [r["page_no"] for r in fake.requests] == ["1", "2", "3"]
    assert {r["use_has_next"] for r in fake.requests} == {"true"}
    assert [e.payload["desc"] for e in result.events] == [f"第{n}单" for n in range(5)]
    assert json.loads(result.cursor or "")["modified"] == top_time(96)


async def test_paging_that_never_ends_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("connectors.taobao.MAX_PAGES", 2)
    fake = FakeTop()
    for n in range(5):
        fake.add(modified=top_time(100 - n))
    with pytest.raises(ChannelError, match="after 2 pages"):
        await make_connector(fake, page_size=1).poll(None)


async def test_the_window_overlaps_the_last_modified_time_in_gmt8() -> None:
    fake = FakeTop()
    fake.add(modified=top_time(50))
    connector = make_connector(fake, overlap_seconds=120)
    first = await connector.poll(None)
    await connector.poll(first.cursor)
    window = fake.requests[-1]
    assert window["start_modified"] == top_time(50 + 120)
    assert window["end_modified"] == top_time(0)


async def test_a_refund_modified_in_the_boundary_second_is_neither_missed_nor_repeated() -> None:
    fake = FakeTop()
    fake.add(refund_id="801", desc="先到", modified=top_time(30))
    connector = make_connector(fake)
    first = await connector.poll(None)
    assert [e.message_id for e in first.events] == ["801"]
    # TOP indexes a second refund of the very same second only after our poll
    fake.add(refund_id="802", desc="同一秒", modified=top_time(30))
    second = await connector.poll(first.cursor)
    assert [e.message_id for e in second.events] == ["802"]
    again = await connector.poll(first.cursor)  # a crash before the commit repeats it
    assert [e.source_key for e in again.events] == [e.source_key for e in second.events]
    third = await connector.poll(second.cursor)
    assert third.events == [] and third.cursor == second.cursor


async def test_old_seen_keys_leave_the_cursor_once_out_of_the_overlap() -> None:
    fake = FakeTop()
    fake.add(refund_id="901", modified=top_time(1000))
    connector = make_connector(fake, overlap_seconds=60)
    first = await connector.poll(None)
    fake.add(refund_id="902", modified=top_time(10))
    second = await connector.poll(first.cursor)
    seen = json.loads(second.cursor or "")["seen"]
    assert [key.split(":")[0] for key in seen] == ["902"]


async def test_an_escalation_is_a_new_event_linked_by_refund_and_order() -> None:
    fake = FakeTop()
    refund = fake.add(refund_id="5501", desc="质量问题", modified=top_time(200))
    connector = make_connector(fake)
    first = await connector.poll(None)
    refund |= {"cs_status": 2, "status": "SELLER_REFUSE_BUYER", "modified": top_time(20)}
    fake.refunds[0] = refund
    second = await connector.poll(first.cursor)
    assert len(second.events) == 1
    assert second.events[0].source_key != first.events[0].source_key
    normalizer = TaobaoNormalizer()
    before = normalizer.normalize(first.events[0])
    after = normalizer.normalize(second.events[0])
    assert isinstance(before, ComplaintRecord) and isinstance(after, ComplaintRecord)
    assert before.record_id != after.record_id
    assert before.source.thread_id == after.source.thread_id == "5501"
    assert before.product.order_id == after.product.order_id
    assert before.channel_detail == "淘宝退款（买家申请退款）"
    assert after.channel_detail == f"{ESCALATION_MARKER}淘宝退款（卖家拒绝退款，客服介入）"


@pytest.mark.parametrize("sign_method", ["md5", "hmac", "hmac-sha256"])
async def test_every_sign_method_is_accepted_by_top(sign_method: str) -> None:
    fake = FakeTop()
    fake.add()
    result = await make_connector(fake, sign_method=sign_method).poll(None)
    assert len(result.events) == 1
    assert fake.requests[0]["sign_method"] == sign_method


async def test_a_wrong_app_secret_is_an_auth_error_without_the_secret() -> None:
    fake = FakeTop()
    with pytest.raises(ChannelAuthError) as caught:
        await make_connector(fake, app_secret="not-the-secret").poll(None)
    assert "not-the-secret" not in str(caught.value) and "25" in str(caught.value)


@pytest.mark.parametrize(
    ("envelope", "error"),
    [
        (
            {
                "code": 7,
                "msg": "App Call Limited",
                "sub_code": "accesscontrol.limited-by-api-access-count",
                "sub_msg": "This ban will last for 3 more seconds",
            },
            ChannelRateLimited,
        ),
        (
            {"code": 15, "msg": "Remote service error", "sub_code": "isp.remote-service-timeout"},
            ChannelUnavailable,
        ),
        ({"code": 10, "msg": "Service Currently Unavailable"}, ChannelUnavailable),
        (
            {"code": 27, "msg": "Invalid session", "sub_code": "invalid-sessionkey"},
            ChannelAuthError,
        ),
        ({"code": 53, "msg": "Session expired"}, ChannelAuthError),
    ],
)
async def test_top_errors_are_classified(envelope: dict[str, Any], error: type[Exception]) -> None:
    fake = FakeTop()
    fake.error = envelope | {"request_id": "zt9req"}
    with pytest.raises(error) as caught:
        await make_connector(fake).poll(None)
    assert "zt9req" in str(caught.value)
    if error is ChannelRateLimited:
        assert caught.value.retry_after == 3.0  # type: ignore[attr-defined]


async def test_a_bad_request_is_logged_with_the_request_id_and_the_poll_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeTop()
    fake.add()
    fake.error = {
        "code": 41,
        "msg": "Invalid arguments",
        "sub_code": "isv.invalid-parameter",
        "request_id": "zt41req",
    }
    with pytest.raises(ChannelError) as caught:
        await make_connector(fake).poll(None)
    assert type(caught.value) is ChannelError  # not retried as transient, not an auth stop
    assert "zt41req" in caplog.text and "isv.invalid-parameter" in caplog.text


@pytest.mark.parametrize(
    ("status", "error"), [(502, ChannelUnavailable), (429, ChannelRateLimited)]
)
async def test_http_failures_are_classified(status: int, error: type[Exception]) -> None:
    fake = FakeTop()
    fake.status = status
    with pytest.raises(error):
        await make_connector(fake).poll(None)


async def test_an_answer_that_is_not_json_is_unavailable() -> None:
    router = respx.MockRouter()
    router.post(API).mock(return_value=httpx.Response(200, text="<error_response/>"))
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    settings = TaobaoSettings(app_key=APP_KEY, app_secret=APP_SECRET, session=SESSION, api_base=API)  # type: ignore[arg-type]
    with pytest.raises(ChannelUnavailable):
        await TaobaoConnector(settings, FrozenClock(NOW), http).poll(None)


async def test_a_refund_without_an_id_is_rejected_and_the_rest_taken() -> None:
    fake = FakeTop()
    fake.add(refund_id="", desc="没有编号", modified=top_time(90))
    fake.add(refund_id="777", desc="正常", modified=top_time(80))
    result = await make_connector(fake).poll(None)
    assert [e.message_id for e in result.events] == ["777"]
    assert [r.error.reason for r in result.rejected] == ["missing_field"]


def test_unknown_codes_are_bad_requests(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    error = classify_error({"code": "43", "msg": "Parameter Error", "request_id": "r1"})
    assert type(error) is ChannelError and "r1" in caplog.text


# -- the normalizer -----------------------------------------------------------------------


def normalize(**fields: Any) -> ComplaintRecord:
    fake = FakeTop()
    event = TaobaoConnector.parse(json.dumps(fake.add(**fields)).encode(), NOW)[0]
    record = TaobaoNormalizer().normalize(event)
    assert isinstance(record, ComplaintRecord)
    return record


def test_amounts_are_exact_yuan_from_strings() -> None:
    assert str(normalize(refund_fee="0.1").product.amount_cny) == "0.10"
    assert str(normalize(refund_fee="", payment="1288.00").product.amount_cny) == "1288.00"


@pytest.mark.parametrize("amount", ["12.345", "-1.00", "1e3", "十元"])
def test_amounts_that_are_not_yuan_are_refused(amount: str) -> None:
    with pytest.raises(Exception, match="amount") as caught:
        normalize(refund_fee=amount)
    assert getattr(caught.value, "reason", None) == "invalid_field"


def test_the_customer_is_what_top_sent_and_never_invented() -> None:
    assert normalize(buyer_open_uid="AAF3x_9k").customer.id == "taobao:AAF3x_9k"
    assert normalize(buyer_nick="小 明♥").customer.id == "taobao:小 明♥"
    anonymous = normalize(buyer_nick=None, tid="42")
    assert anonymous.customer.id == "taobao:order:42"
    assert anonymous.customer.contacts.buyer_nick is None


def test_reason_and_description_are_kept_verbatim_with_return_expected() -> None:
    record = normalize(reason="质量问题", desc="  屏幕有坏点 😡 ", has_good_return=True)
    assert record.description == "质量问题\n  屏幕有坏点 😡 "
    assert record.expectations == ("refund", "return")
    assert record.occurred_at == NOW - timedelta(seconds=600)  # created, read as GMT+8


def test_a_refund_escalated_to_the_platform_reaches_the_stream_at_least_p2() -> None:
    from service.triage_stage import TriageStage
    from triage.engine import Triage
    from triage.ruleset import load_ruleset

    stage = TriageStage(Triage(load_ruleset(None)))
    calm = stage.apply(normalize(reason="不想要了", cs_status="1"))
    escalated = stage.apply(normalize(reason="不想要了", cs_status="2"))
    assert calm.priority in ("P3", "P4")
    assert escalated.priority == "P2"
    assert escalated.channel_detail.startswith(ESCALATION_MARKER)
    assert escalated.triage is not None and any("P2" in r for r in escalated.triage.reasons)
