"""Taobao (TOP) refunds and ratings: the poller against the shared fake TOP router, and the normalizer.

The fake (:class:`service.fake_platforms.top.FakeTop`, its clock the tests'
frozen ``NOW``) checks every request's ``sign``, app key, seller session and
GMT+8 timestamp, filters refunds by the ``modified`` window and ratings by
``created`` and ``result``, pages them (``page_no``, ``has_next``) and answers
in TOP's JSON shapes or its ``error_response`` envelope. Every request the
poller sends is also checked here: our app key, our clock's time, JSON, v2.0.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import respx

from connectors._marketplace_signing import GMT8
from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
    MalformedPayload,
)
from connectors.polling import PollingConnector
from connectors.taobao import (
    RATES_METHOD,
    REFUND_METHOD,
    REFUNDS_METHOD,
    TaobaoConnector,
    TaobaoSettings,
    classify_error,
)
from normalizer.base import NotAComplaint
from normalizer.taobao import EMPTY_RATING, ESCALATION_MARKER, TaobaoNormalizer
from schemas import ComplaintRecord
from service.fake_platforms.top import FakeTop
from service.registry import Registry
from tests.fakes import FrozenClock
from tests.test_polling_contract import NOW, PollingConnectorContract
from tests.window_poller_contract import WindowPollerContract

API = "https://top.fake.test/router/rest"
APP_KEY = "12345678"
APP_SECRET = "top-app-secret-7c1e"
SESSION = "6100e23657fb0b2d0c78570b8d1b7e6c5a3b"
NOW_GMT8 = NOW.astimezone(GMT8)


def top_time(seconds_before_now: float) -> str:
    return (NOW_GMT8 - timedelta(seconds=seconds_before_now)).strftime("%Y-%m-%d %H:%M:%S")


def new_fake() -> FakeTop:
    return FakeTop(APP_KEY, APP_SECRET, SESSION, clock=lambda: NOW)


def sent(fake: FakeTop, method: str) -> list[dict[str, str]]:
    """The requests of one TOP method, in order."""
    return [r for r in fake.requests if r["method"] == method]


def checked(fake: FakeTop) -> Callable[[httpx.Request], httpx.Response]:
    """``fake.handle``, and every request carries our app key, our clock's time, JSON, v2.0."""

    def handle(request: httpx.Request) -> httpx.Response:
        answer = fake.handle(request)
        params = fake.requests[-1]
        assert params["app_key"] == APP_KEY
        assert params["method"] in (REFUNDS_METHOD, REFUND_METHOD, RATES_METHOD)
        assert params["timestamp"] == NOW_GMT8.strftime("%Y-%m-%d %H:%M:%S")
        assert params["format"] == "json" and params["v"] == "2.0"
        return answer

    return handle


def make_connector(fake: FakeTop, **overrides: Any) -> TaobaoConnector:
    router = respx.MockRouter(assert_all_called=False)
    router.post(API).mock(side_effect=checked(fake))
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    section = {
        "app_key": APP_KEY,
        "app_secret": APP_SECRET,
        "session": SESSION,
        "api_base": API,
    } | overrides
    settings = TaobaoSettings.model_validate(section)
    return TaobaoConnector(settings, FrozenClock(NOW), http)


class TestTaobaoContract(PollingConnectorContract):
    name = "taobao"
    secret_values = (APP_SECRET, SESSION)

    @pytest.fixture(autouse=True)
    def _fake(self) -> None:
        self.fake = new_fake()
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


async def test_refunds_are_paged_until_the_total_is_read() -> None:
    fake = new_fake()
    for n in range(5):
        fake.add(desc=f"第{n}单", modified=top_time(100 - n))
    result = await make_connector(fake, page_size=2).poll(None)
    assert [r["page_no"] for r in sent(fake, REFUNDS_METHOD)] == ["1", "2", "3"]
    # counted, not has_next: a walk must notice a refund leaving the window
    assert {r["use_has_next"] for r in sent(fake, REFUNDS_METHOD)} == {"false"}
    assert [e.payload["desc"] for e in result.events] == [f"第{n}单" for n in range(5)]
    assert json.loads(result.cursor or "")["refunds"]["modified"] == top_time(96)


async def test_paging_that_never_ends_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("connectors.taobao.MAX_PAGES", 2)
    fake = new_fake()
    for n in range(5):
        fake.add(modified=top_time(100 - n))
    with pytest.raises(ChannelError, match="after 2 pages"):
        await make_connector(fake, page_size=1).poll(None)


async def test_the_window_overlaps_the_last_modified_time_in_gmt8() -> None:
    fake = new_fake()
    fake.add(modified=top_time(50))
    connector = make_connector(fake, overlap_seconds=120)
    first = await connector.poll(None)
    await connector.poll(first.cursor)
    window = sent(fake, REFUNDS_METHOD)[-1]
    assert window["start_modified"] == top_time(50 + 120)
    assert window["end_modified"] == top_time(0)


async def test_an_escalation_is_a_new_event_linked_by_refund_and_order() -> None:
    fake = new_fake()
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
    fake = new_fake()
    fake.add()
    result = await make_connector(fake, sign_method=sign_method).poll(None)
    assert len(result.events) == 1
    assert fake.requests[0]["sign_method"] == sign_method


async def test_a_wrong_app_secret_is_an_auth_error_without_the_secret() -> None:
    fake = new_fake()
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
    fake = new_fake()
    fake.error = envelope | {"request_id": "zt9req"}
    with pytest.raises(error) as caught:
        await make_connector(fake).poll(None)
    assert "zt9req" in str(caught.value)
    if error is ChannelRateLimited:
        assert caught.value.retry_after == 3.0  # type: ignore[attr-defined]


async def test_a_bad_request_is_logged_with_the_request_id_and_the_poll_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = new_fake()
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
    fake = new_fake()
    fake.status = status
    with pytest.raises(error):
        await make_connector(fake).poll(None)


async def test_an_answer_that_is_not_json_is_unavailable() -> None:
    router = respx.MockRouter()
    router.post(API).mock(return_value=httpx.Response(200, text="<error_response/>"))
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    settings = TaobaoSettings(app_key=APP_KEY, app_secret=APP_SECRET, session=SESSION, api_base=API)
    with pytest.raises(ChannelUnavailable):
        await TaobaoConnector(settings, FrozenClock(NOW), http).poll(None)


async def test_a_refund_without_an_id_is_rejected_and_the_rest_taken() -> None:
    fake = new_fake()
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
    fake = new_fake()
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


# -- refund detail ------------------------------------------------------------------------


async def test_a_listed_refund_without_words_gets_them_from_its_detail() -> None:
    fake = new_fake()
    fake.list_leaves_out = {"reason", "desc", "cs_status"}
    fake.add(refund_id="6601", reason="商品与描述不符", desc="实物颜色偏黄", cs_status=2)
    fake.add(refund_id="6602", modified=top_time(50))  # no words anywhere: none invented
    connector = make_connector(fake)
    result = await connector.poll(None)
    records = [TaobaoNormalizer().normalize(e) for e in result.events]
    assert [r.description for r in records if isinstance(r, ComplaintRecord)] == [
        "商品与描述不符\n实物颜色偏黄",
        "（淘宝退款未附买家文字）",
    ]
    assert [r["refund_id"] for r in sent(fake, REFUND_METHOD)] == ["6601", "6602"]
    # the detail's escalation shows, and the source key stays the listing's
    first = records[0]
    assert isinstance(first, ComplaintRecord)
    assert first.channel_detail.startswith(ESCALATION_MARKER)
    assert result.events[0].source_key.endswith(":-")
    # a refund already published is not asked for again in the overlap
    await connector.poll(result.cursor)
    assert len(sent(fake, REFUND_METHOD)) == 2


async def test_a_refund_with_words_in_the_list_needs_no_detail_call() -> None:
    fake = new_fake()
    fake.add(reason="质量问题")
    fake.add(desc="屏幕坏点")
    result = await make_connector(fake).poll(None)
    assert len(result.events) == 2 and sent(fake, REFUND_METHOD) == []


async def test_a_failing_detail_call_fails_the_poll_and_loses_nothing() -> None:
    fake = new_fake()
    fake.add(refund_id="7701", desc="先到的", modified=top_time(200))
    connector = make_connector(fake)
    first = await connector.poll(None)
    fake.list_leaves_out = {"reason", "desc"}
    fake.add(refund_id="7702", reason="未按约定时间发货", modified=top_time(100))
    fake.errors[REFUND_METHOD] = {
        "code": 15,
        "msg": "Remote service error",
        "sub_code": "isp.remote-service-timeout",
        "request_id": "zt77",
    }
    with pytest.raises(ChannelUnavailable, match="zt77"):
        await connector.poll(first.cursor)
    del fake.errors[REFUND_METHOD]
    retried = await connector.poll(first.cursor)  # the runner kept the cursor
    assert [e.message_id for e in retried.events] == ["7702"]
    assert retried.events[0].payload["reason"] == "未按约定时间发货"


# -- ratings --------------------------------------------------------------------------------


def rate_records(events: Sequence[Any]) -> list[ComplaintRecord | NotAComplaint]:
    normalizer = TaobaoNormalizer()
    return [normalizer.normalize(e) for e in events if e.payload.get("kind") == "rate"]


async def test_bad_and_neutral_ratings_become_complaints_and_good_ones_are_not_asked_for() -> None:
    fake = new_fake()
    fake.add_rate(tid="501", result="bad", content="假货，和专柜的不一样", created=top_time(30))
    fake.add_rate(tid="502", result="neutral", content="一般般吧", created=top_time(20))
    fake.add_rate(tid="503", result="good", content="很好", created=top_time(10))
    result = await make_connector(fake).poll(None)
    records = rate_records(result.events)
    assert [(r.product.order_id, r.channel_detail, r.description) for r in records] == [  # type: ignore[union-attr]
        ("501", "淘宝评价（差评）", "假货，和专柜的不一样"),
        ("502", "淘宝评价（中评）", "一般般吧"),
    ]
    asked = sent(fake, RATES_METHOD)
    assert [r["result"] for r in asked] == ["bad", "neutral"]
    for request in asked:
        assert (request["rate_type"], request["role"], request["use_has_next"]) == (
            "get",
            "buyer",
            "true",
        )
        assert request["start_date"] == top_time(86_400)
        assert request["end_date"] == top_time(0)


async def test_a_good_rating_top_returns_anyway_is_not_a_complaint() -> None:
    fake = new_fake()
    fake.honour_result = False
    fake.add_rate(tid="601", result="good", content="好评！")
    result = await make_connector(fake).poll(None)
    assert len(result.events) == 1  # found by both the bad and the neutral call, published once
    assert rate_records(result.events) == [NotAComplaint("good_rating")]


async def test_ratings_are_paged_until_has_next_is_false() -> None:
    fake = new_fake()
    for n in range(5):
        fake.add_rate(tid=f"70{n}", result="bad", content=f"差评{n}", created=top_time(100 - n))
    result = await make_connector(fake, rates_page_size=2).poll(None)
    bad = [r for r in sent(fake, RATES_METHOD) if r["result"] == "bad"]
    assert [(r["page_no"], r["page_size"]) for r in bad] == [("1", "2"), ("2", "2"), ("3", "2")]
    assert sorted(e.payload["rate"]["content"] for e in result.events) == [
        f"差评{n}" for n in range(5)
    ]
    assert json.loads(result.cursor or "")["rates"]["created"] == top_time(96)


async def test_ratings_past_tops_200_pages_fail_the_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("connectors.taobao.MAX_RATE_PAGES", 2)
    fake = new_fake()
    for n in range(3):
        fake.add_rate(tid=f"71{n}", created=top_time(100 - n))
    with pytest.raises(ChannelError, match="after 2 pages"):
        await make_connector(fake, rates_page_size=1).poll(None)


async def test_the_ratings_window_overlaps_the_last_created_time() -> None:
    fake = new_fake()
    fake.add_rate(tid="801", created=top_time(500))
    connector = make_connector(fake, overlap_seconds=60)
    first = await connector.poll(None)
    fake.requests.clear()
    await connector.poll(first.cursor)
    assert {(r["start_date"], r["end_date"]) for r in sent(fake, RATES_METHOD)} == {
        (top_time(560), top_time(0))
    }


async def test_a_rating_of_the_boundary_second_is_neither_missed_nor_repeated() -> None:
    fake = new_fake()
    fake.add_rate(tid="901", oid="9011", content="先到", created=top_time(30))
    connector = make_connector(fake)
    first = await connector.poll(None)
    fake.add_rate(tid="902", oid="9021", content="同一秒", created=top_time(30))
    second = await connector.poll(first.cursor)
    assert [e.source_key for e in second.events] == [f"rate:902:9021:{top_time(30)}"]
    third = await connector.poll(second.cursor)
    assert third.events == [] and third.cursor == second.cursor


async def test_a_reply_added_later_is_not_a_new_complaint() -> None:
    fake = new_fake()
    rate = fake.add_rate(tid="911", content="发货太慢", created=top_time(40))
    connector = make_connector(fake)
    first = await connector.poll(None)
    rate["reply"] = "亲，已为您催促快递"
    again = await connector.poll(None)  # even a poll from scratch
    later = await connector.poll(first.cursor)
    assert [e.source_key for e in again.events] == [e.source_key for e in first.events]
    assert later.events == []


async def test_ratings_are_fetched_for_180_days_at_most() -> None:
    fake = new_fake()
    old = (NOW_GMT8 - timedelta(days=200)).strftime("%Y-%m-%d %H:%M:%S")
    cursor = json.dumps({"rates": {"created": old, "seen": []}})
    await make_connector(fake).poll(cursor)
    assert {r["start_date"] for r in sent(fake, RATES_METHOD)} == {top_time(180 * 86_400)}


async def test_a_rating_without_a_tid_is_rejected_and_the_rest_taken() -> None:
    fake = new_fake()
    fake.add_rate(tid="", content="没有订单号", created=top_time(90))
    fake.add_rate(tid="921", content="正常", created=top_time(80))
    result = await make_connector(fake).poll(None)
    assert [e.payload["rate"]["tid"] for e in result.events] == ["921"]
    assert [r.error.reason for r in result.rejected] == ["missing_field"]


async def test_an_old_refunds_only_cursor_is_read_as_the_refunds_part() -> None:
    fake = new_fake()
    fake.add(refund_id="1001", modified=top_time(100))
    fake.add(refund_id="1002", modified=top_time(50))
    key = f"1001:{top_time(100)}:WAIT_SELLER_AGREE:-"
    old = json.dumps({"modified": top_time(100), "seen": [key]})
    connector = make_connector(fake, overlap_seconds=120)
    result = await connector.poll(old)
    assert [e.message_id for e in result.events] == ["1002"]
    assert sent(fake, REFUNDS_METHOD)[0]["start_modified"] == top_time(220)
    assert json.loads(result.cursor or "") == {
        "refunds": {
            "modified": top_time(50),
            "seen": sorted([key, f"1002:{top_time(50)}:WAIT_SELLER_AGREE:-"]),
        }
    }


async def test_ratings_can_be_turned_off_and_keep_their_position() -> None:
    fake = new_fake()
    fake.add(refund_id="1101", desc="退款", modified=top_time(30))
    fake.add_rate(tid="1102", created=top_time(20))
    rates = {"created": top_time(3600), "seen": []}
    cursor = json.dumps({"rates": rates})
    result = await make_connector(fake, ratings=False).poll(cursor)
    assert [e.message_id for e in result.events] == ["1101"]
    assert sent(fake, RATES_METHOD) == []
    assert json.loads(result.cursor or "")["rates"] == rates


@pytest.mark.parametrize(
    ("envelope", "error"),
    [
        (
            {
                "code": 7,
                "msg": "App Call Limited",
                "sub_code": "accesscontrol.limited-by-api-access-count",
                "sub_msg": "This ban will last for 12 more seconds",
            },
            ChannelRateLimited,
        ),
        (
            {"code": 15, "msg": "Remote service error", "sub_code": "isp.unknown"},
            ChannelUnavailable,
        ),
        ({"code": 11, "msg": "Insufficient isv permissions"}, ChannelAuthError),
        (
            {"code": 41, "msg": "Invalid arguments", "sub_code": "isv.invalid-parameter"},
            ChannelError,
        ),
    ],
)
async def test_errors_on_the_ratings_call_are_classified_and_keep_the_refunds(
    envelope: dict[str, Any], error: type[Exception]
) -> None:
    fake = new_fake()
    fake.add(refund_id="1201", desc="等退款", modified=top_time(30))
    fake.errors[RATES_METHOD] = envelope | {"request_id": "zt12rates"}
    connector = make_connector(fake)
    with pytest.raises(error, match="zt12rates") as caught:
        await connector.poll(None)
    assert type(caught.value) is error
    if error is ChannelRateLimited:
        assert caught.value.retry_after == 12.0  # type: ignore[attr-defined]
    del fake.errors[RATES_METHOD]
    result = await connector.poll(None)  # the cursor never moved: the refund comes again
    assert [e.message_id for e in result.events] == ["1201"]


async def test_secrets_never_show_in_logs_or_errors_of_any_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = new_fake()
    fake.list_leaves_out = {"reason", "desc"}
    fake.add(reason="质量问题")
    fake.add_rate()
    connector = make_connector(fake)
    result = await connector.poll(None)
    assert len(sent(fake, REFUND_METHOD)) == 1 and len(result.events) == 2
    fake.errors[RATES_METHOD] = {"code": 41, "msg": "Invalid arguments", "request_id": "r"}
    with pytest.raises(ChannelError) as caught:
        await connector.poll(result.cursor)
    shown = caplog.text + str(caught.value) + (result.cursor or "")
    shown += "".join(e.body.decode() for e in result.events)
    assert APP_SECRET not in shown and SESSION not in shown


def normalize_rate(**fields: Any) -> ComplaintRecord | NotAComplaint:
    body = {"traderates_get_response": {"trade_rates": {"trade_rate": [fields]}}}
    (event,) = TaobaoConnector.parse(json.dumps(body, ensure_ascii=False).encode(), NOW)
    return TaobaoNormalizer().normalize(event)


def rating(**fields: Any) -> ComplaintRecord:
    record = normalize_rate(**({"tid": "42", "result": "bad", "created": top_time(60)} | fields))
    assert isinstance(record, ComplaintRecord)
    return record


@pytest.mark.parametrize("result", ["bad", "neutral"])
@pytest.mark.parametrize("content", [None, "", "   "])
def test_a_rating_without_words_says_so_and_invents_none(result: str, content: str | None) -> None:
    record = rating(result=result, content=content)
    assert record.description == EMPTY_RATING[result]
    assert ("差评" if result == "bad" else "中评") in record.description


def test_a_rating_keeps_content_and_nick_verbatim_and_never_invents_a_customer() -> None:
    record = rating(content="  质量差 😡\n再也不买 ", nick="t**1", oid=4243, item_price=88)
    assert record.description == "  质量差 😡\n再也不买 "
    # a masked nick is shared by many buyers: kept as the contact, never as the customer
    assert record.customer.id == "taobao:order:42" and record.customer.contacts.buyer_nick == "t**1"
    assert rating(nick="小鱼 🐟 爱吃猫").customer.id == "taobao:小鱼 🐟 爱吃猫"
    assert record.source.thread_id == "rate:42:4243"
    assert str(record.product.amount_cny) == "88.00"
    assert str(rating(item_price=59.9).product.amount_cny) == "59.90"  # a JSON number, exactly
    assert record.occurred_at == NOW - timedelta(seconds=60)
    anonymous = rating(nick="")
    assert anonymous.customer.id == "taobao:order:42"
    assert anonymous.customer.contacts.buyer_nick is None
    assert anonymous.source.thread_id == "rate:42:-"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"result": "terrible"}, "invalid_field"),
        ({"result": None}, "invalid_field"),
        ({"item_price": "59.999"}, "invalid_field"),
        ({"created": "2026/11/23"}, "invalid_field"),
        ({"created": None}, "missing_field"),
    ],
)
def test_a_rating_that_cannot_be_read_is_refused(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        rating(**fields)
    assert caught.value.reason == reason


def test_a_rating_event_without_its_rating_is_refused() -> None:
    event = TaobaoConnector.parse(json.dumps(new_fake().add()).encode(), NOW)[0]
    broken = dataclasses.replace(event, payload={"kind": "rate"})
    with pytest.raises(MalformedPayload, match="no rating") as caught:
        TaobaoNormalizer().normalize(broken)
    assert caught.value.reason == "missing_field"


# -- the shared fake ----------------------------------------------------------------------


async def test_top_refuses_a_timestamp_more_than_ten_minutes_off() -> None:
    fake = new_fake()
    router = respx.MockRouter()
    router.post(API).mock(side_effect=fake.handle)
    section = {"app_key": APP_KEY, "app_secret": APP_SECRET, "session": SESSION, "api_base": API}

    async def poll_at(skew_minutes: float) -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
        clock = FrozenClock(NOW + timedelta(minutes=skew_minutes))
        await TaobaoConnector(TaobaoSettings.model_validate(section), clock, http).poll(None)

    await poll_at(-9)
    with pytest.raises(ChannelError, match="31") as caught:
        await poll_at(11)
    assert type(caught.value) is ChannelError  # a clock to fix, not a session to renew


async def test_top_limits_calls_with_a_ban_in_seconds() -> None:
    fake = new_fake()
    fake.calls_per_minute = 1
    fake.add(desc="一条")
    with pytest.raises(ChannelRateLimited) as caught:
        await make_connector(fake).poll(None)  # the refunds page, then the ratings call
    assert caught.value.retry_after == 60.0


async def test_top_unavailable_answers_isp_errors() -> None:
    fake = new_fake()
    fake.unavailable = True
    with pytest.raises(ChannelUnavailable, match=r"isp\.remote-service-unavailable"):
        await make_connector(fake).poll(None)


async def test_a_backlog_is_distinct_realistic_refunds_of_the_last_hour() -> None:
    fake = new_fake()
    fake.add_backlog(250)
    result = await make_connector(fake).poll(None)
    records = [TaobaoNormalizer().normalize(e) for e in result.events]
    assert len({e.source_key for e in result.events}) == 250
    assert all(isinstance(r, ComplaintRecord) for r in records)
    assert len({r.description for r in records if isinstance(r, ComplaintRecord)}) >= 8
    times = [e.payload["modified"] for e in result.events]
    assert top_time(3600) <= min(times) and max(times) <= top_time(0)


class TestTaobaoWindow(WindowPollerContract):
    two_a_page: ClassVar[dict[str, Any]] = {"page_size": 2}

    def platform(self) -> FakeTop:
        return new_fake()

    def poller(self, platform: FakeTop, **overrides: Any) -> PollingConnector:
        return make_connector(platform, ratings=False, **overrides)

    def add(self, platform: FakeTop, ident: int, text: str, seconds_ago: float) -> None:
        platform.add(refund_id=str(ident), desc=text, modified=top_time(seconds_ago))

    def change(self, platform: FakeTop, ident: int, seconds_ago: float) -> None:
        [refund] = [r for r in platform.refunds if r["refund_id"] == str(ident)]
        refund |= {"modified": top_time(seconds_ago), "status": "SELLER_REFUSE_BUYER"}

    def seen(self, cursor: str | None) -> list[str]:
        return list(json.loads(cursor or "{}").get("refunds", {}).get("seen", []))
