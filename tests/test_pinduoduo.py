"""Pinduoduo after-sales: the poller against :class:`FakePinduoduo` through respx, and the normalizer.

The fake checks every request's ``sign`` with :func:`pdd_sign`, the client id,
the access token and the Unix timestamp (±10 minutes), refuses windows longer
than 30 minutes, filters by ``updated_time``, pages, and answers in PDD's JSON
shapes: ``refund_increment_get_response`` or an ``error_response`` envelope.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import respx
from pydantic import ValidationError

from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
    MalformedPayload,
)
from connectors.pinduoduo import (
    PinduoduoConnector,
    PinduoduoSettings,
    classify_error,
    parse_pdd_time,
)
from connectors.polling import PollingConnector
from normalizer.pinduoduo import ESCALATION_MARKER, NO_TEXT, PinduoduoNormalizer
from schemas import ComplaintRecord, RawEvent
from service.fake_platforms.pinduoduo import FakePinduoduo
from service.registry import Registry
from tests.fakes import FrozenClock
from tests.test_polling_contract import NOW, PollingConnectorContract
from tests.window_poller_contract import WindowPollerContract

API = "https://pdd.fake.test/api/router"
CLIENT_ID = "8f2c1e0b9a7d4c3b"
CLIENT_SECRET = "pdd-client-secret-0d9e8f7a6b5c"
ACCESS_TOKEN = "5c1f0e2d3b4a49687a6b5c4d3e2f1a0b9c8d7e6f"
SECRETS = (CLIENT_SECRET, ACCESS_TOKEN)


def ago(seconds: float) -> Any:
    return NOW - timedelta(seconds=seconds)


def make_fake(**kwargs: Any) -> FakePinduoduo:
    return FakePinduoduo(CLIENT_ID, CLIENT_SECRET, ACCESS_TOKEN, clock=lambda: NOW, **kwargs)


def make_connector(fake: FakePinduoduo, **overrides: Any) -> PinduoduoConnector:
    router = respx.MockRouter(assert_all_called=False)
    router.post(API).mock(side_effect=fake.handle)
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    section = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "access_token": ACCESS_TOKEN,
        "api_base": API,
    } | overrides
    return PinduoduoConnector(PinduoduoSettings.model_validate(section), FrozenClock(NOW), http)


def record_of(event: RawEvent) -> ComplaintRecord:
    record = PinduoduoNormalizer().normalize(event)
    assert isinstance(record, ComplaintRecord)
    return record


class TestPinduoduoContract(PollingConnectorContract):
    name = "pinduoduo"
    secret_values = SECRETS

    @pytest.fixture(autouse=True)
    def _fake(self) -> None:
        self.fake = make_fake()
        self.added = 0

    def settings_section(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "access_token": ACCESS_TOKEN,
            "api_base": API,
        }

    def connector(self, tmp_path: Path, **overrides: Any) -> PollingConnector:
        klass = Registry.from_entry_points().connectors[self.name]
        assert klass is PinduoduoConnector
        return make_connector(self.fake, **overrides)

    def add_messages(self, tmp_path: Path, texts: Sequence[str]) -> None:
        for text in texts:
            self.added += 1
            self.fake.add(after_sale_reason=text, updated=ago(100 - self.added))

    def break_platform(self, tmp_path: Path, how: str) -> dict[str, Any] | None:
        if how == "credentials":
            return {"access_token": "expired-access-token"}
        self.fake.http_status = 502
        return {}


# -- windows, pages and the cursor ------------------------------------------------------------


async def test_pages_until_a_short_page() -> None:
    fake = make_fake()
    for n in range(5):
        fake.add(after_sale_reason=f"第{n}单", updated=ago(100 - n))
    result = await make_connector(fake, page_size=2, initial_lookback_seconds=600).poll(None)
    assert [r["page"] for r in fake.requests] == ["1", "2", "3"]
    assert [e.payload["after_sale_reason"] for e in result.events] == [f"第{n}单" for n in range(5)]


async def test_paging_stops_when_total_count_is_reached() -> None:
    fake = make_fake()
    for n in range(4):
        fake.add(updated=ago(100 - n))
    result = await make_connector(fake, page_size=2, initial_lookback_seconds=600).poll(None)
    assert [r["page"] for r in fake.requests] == ["1", "2"]  # no call for an empty page 3
    assert len(result.events) == 4


async def test_paging_that_never_ends_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("connectors.pinduoduo.MAX_PAGES", 2)
    fake = make_fake()
    for n in range(5):
        fake.add(updated=ago(100 - n))
    with pytest.raises(ChannelError, match="after 2 pages"):
        await make_connector(fake, page_size=1).poll(None)


async def test_a_backlog_is_walked_in_windows_pdd_accepts_and_taken_once() -> None:
    fake = make_fake()
    fake.add_backlog(120, span_seconds=3 * 3600)
    connector = make_connector(fake, initial_lookback_seconds=3 * 3600 + 60, max_windows_per_poll=3)
    first = await connector.poll(None)
    assert first.more  # three windows of 30 minutes do not reach now
    found = list(first.events)
    cursor = first.cursor
    for _ in range(10):
        result = await connector.poll(cursor)
        found += result.events
        cursor = result.cursor
        if not result.more:
            break
    assert not result.more
    spans = [int(r["end_updated_at"]) - int(r["start_updated_at"]) for r in fake.requests]
    assert max(spans) <= 1800
    assert sorted(str(e.message_id) for e in found) == sorted(str(r["id"]) for r in fake.refunds)
    assert len({e.source_key for e in found}) == 120


async def test_consecutive_windows_leave_no_gap() -> None:
    fake = make_fake()
    connector = make_connector(fake, initial_lookback_seconds=5000, max_window_seconds=1800)
    await connector.poll(None)
    windows = [(int(r["start_updated_at"]), int(r["end_updated_at"])) for r in fake.requests]
    now = int(NOW.timestamp())
    assert windows[0][0] == now - 5000 and windows[-1][1] == now
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start <= end


async def test_the_next_poll_starts_overlap_seconds_before_the_last_window() -> None:
    fake = make_fake()
    fake.add(updated=ago(50))
    connector = make_connector(fake, overlap_seconds=120)
    first = await connector.poll(None)
    await connector.poll(first.cursor)
    now = int(NOW.timestamp())
    assert fake.requests[-1]["start_updated_at"] == str(now - 120)
    assert fake.requests[-1]["end_updated_at"] == str(now)


async def test_an_unreadable_cursor_starts_from_the_lookback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = make_fake()
    fake.add(updated=ago(10))
    result = await make_connector(fake).poll("{not json")
    assert len(result.events) == 1 and "cursor unreadable" in caplog.text


async def test_a_new_state_is_a_new_event_linked_by_after_sale_and_order() -> None:
    fake = make_fake()
    fake.add(id=5501, after_sale_reason="质量问题", updated=ago(200))
    connector = make_connector(fake)
    first = await connector.poll(None)
    fake.change(5501, updated=ago(20), after_sales_status=8, dispute_refund_status=1)
    second = await connector.poll(first.cursor)
    assert len(second.events) == 1
    before, after = record_of(first.events[0]), record_of(second.events[0])
    assert before.record_id != after.record_id
    assert before.source.thread_id == after.source.thread_id == "5501"
    assert before.product.order_id == after.product.order_id
    assert before.channel_detail == "拼多多售后（仅退款，买家申请退款，待商家处理）"
    assert after.channel_detail == f"{ESCALATION_MARKER}拼多多售后（仅退款，平台处理中）"
    assert (before.priority, after.priority) == ("P3", "P2")


async def test_both_pdd_time_formats_give_the_same_keys() -> None:
    keys = []
    for style in ("unix", "datetime"):
        fake = make_fake(time_style=style)
        fake.add(id=42, updated=ago(70))
        result = await make_connector(fake).poll(None)
        keys.append([e.source_key for e in result.events])
    assert keys[0] == keys[1] == [f"42:{int(NOW.timestamp()) - 70}:2"]


async def test_an_unreadable_after_sale_is_rejected_and_the_rest_taken() -> None:
    fake = make_fake()
    fake.add(id="", after_sale_reason="没有编号", updated=ago(90))
    fake.add(id=776, updated=ago(85)).update(updated_time="明天")
    fake.add(id=-5, updated=ago(84))
    fake.add(id=777, after_sale_reason="正常", updated=ago(80))
    result = await make_connector(fake).poll(None)
    assert [e.message_id for e in result.events] == ["777"]
    reasons = sorted(r.error.reason for r in result.rejected)
    assert reasons == ["invalid_field", "invalid_field", "missing_field"]
    assert any("没有编号".encode() in r.body for r in result.rejected)  # quarantined as it came


async def test_masked_buyer_data_is_kept_as_it_came() -> None:
    fake = make_fake()
    fake.add(
        buyer_id="~AgAAAAFqLk8BDx4nNgBnGvHxq3Pn0Zm2Yk5c0D0=~0~",
        buyer_nick="拼**户",
        after_sale_reason="打我电话 138****5678",
        updated=ago(30),
    )
    record = record_of((await make_connector(fake).poll(None)).events[0])
    assert record.customer.id == "pinduoduo:~AgAAAAFqLk8BDx4nNgBnGvHxq3Pn0Zm2Yk5c0D0=~0~"
    assert record.customer.contacts.buyer_nick == "拼**户"
    assert record.customer.contacts.phone is None
    assert record.description == "打我电话 138****5678"


async def test_whole_number_amounts_follow_the_unit_setting() -> None:
    fake = make_fake()
    fake.add(refund_amount=5990, updated=ago(30))
    fake.add(refund_amount="59.90", updated=ago(20))
    events = (await make_connector(fake, refund_amount_unit="fen").poll(None)).events
    assert [record_of(e).product.amount_cny for e in events] == [Decimal("59.90")] * 2
    events = (await make_connector(fake).poll(None)).events
    assert record_of(events[0]).product.amount_cny == Decimal("5990.00")


async def test_the_fake_serves_a_gateway_over_platforms_app() -> None:
    from service.fake_platforms import platforms_app

    fake = make_fake()
    fake.add(id=1201, after_sale_reason="服务端也一样", updated=ago(30))
    transport = httpx.ASGITransport(app=platforms_app({"pdd": fake}))
    settings = PinduoduoSettings.model_validate(
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "access_token": ACCESS_TOKEN}
        | {"api_base": "http://127.0.0.1:9/pdd/api/router"}
    )
    async with httpx.AsyncClient(transport=transport) as http:
        result = await PinduoduoConnector(settings, FrozenClock(NOW), http).poll(None)
    assert [record_of(e).description for e in result.events] == ["服务端也一样"]


# -- errors and secrets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ("rate_limited", ChannelRateLimited),
        ("busy", ChannelUnavailable),
        ("token_expired", ChannelAuthError),
    ],
)
async def test_pdd_error_envelopes_are_classified(failure: Any, error: type[Exception]) -> None:
    fake = make_fake()
    fake.failure = failure
    with pytest.raises(error) as caught:
        await make_connector(fake).poll(None)
    assert type(caught.value) is error
    assert "request_id 1763864100000001" in str(caught.value)
    assert not any(secret in str(caught.value) for secret in SECRETS)


@pytest.mark.parametrize(
    "overrides",
    [{"client_secret": "not-the-secret-9f"}, {"client_id": "0000not0an0app"}],
    ids=["wrong-secret-bad-sign", "unknown-client-id"],
)
async def test_refused_credentials_stop_polling_without_showing_them(
    overrides: dict[str, str],
) -> None:
    with pytest.raises(ChannelAuthError) as caught:
        await make_connector(make_fake(), **overrides).poll(None)
    assert not any(v in str(caught.value) for v in (*SECRETS, *overrides.values()))


async def test_a_bad_request_is_logged_with_the_request_id_and_the_poll_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = make_fake()
    fake.add(updated=ago(10))
    fake.failure = "bad_request"
    with pytest.raises(ChannelError) as caught:
        await make_connector(fake).poll(None)
    assert type(caught.value) is ChannelError  # not retried as transient, not an auth stop
    assert "1763864100000001" in caplog.text and "10000" in caplog.text
    assert not any(secret in caplog.text for secret in SECRETS)


async def test_a_clock_more_than_ten_minutes_off_is_refused_by_pdd() -> None:
    fake = FakePinduoduo(
        CLIENT_ID, CLIENT_SECRET, ACCESS_TOKEN, clock=lambda: NOW + timedelta(minutes=11)
    )
    with pytest.raises(ChannelError) as caught:
        await make_connector(fake).poll(None)
    assert type(caught.value) is ChannelError and "10001" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "error"),
    [(502, ChannelUnavailable), (503, ChannelUnavailable), (429, ChannelRateLimited)],
)
async def test_http_failures_are_classified(status: int, error: type[Exception]) -> None:
    fake = make_fake()
    fake.http_status = status
    with pytest.raises(error):
        await make_connector(fake).poll(None)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<error_response/>"),
        httpx.Response(200, json={"something_else": {}}),
    ],
)
async def test_an_answer_pdd_would_not_give_is_unavailable(answer: httpx.Response) -> None:
    router = respx.MockRouter()
    router.post(API).mock(return_value=answer)
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    settings = PinduoduoSettings.model_validate(
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "access_token": ACCESS_TOKEN}
        | {"api_base": API}
    )
    with pytest.raises(ChannelUnavailable):
        await PinduoduoConnector(settings, FrozenClock(NOW), http).poll(None)


async def test_the_request_is_what_pdd_documents() -> None:
    fake = make_fake()
    await make_connector(fake).poll(None)
    sent = fake.requests[0]
    assert sent["type"] == "pdd.refund.list.increment.get" and sent["data_type"] == "JSON"
    assert sent["timestamp"] == str(int(NOW.timestamp()))
    assert (sent["after_sales_status"], sent["after_sales_type"], sent["page_size"]) == (
        "1",
        "1",
        "100",
    )


@pytest.mark.parametrize(
    ("envelope", "error"),
    [
        ({"error_code": 99999, "error_msg": "接口调用过于频繁，已被限流"}, ChannelRateLimited),
        ({"error_code": "50000", "error_msg": "系统错误"}, ChannelUnavailable),
        ({"error_code": 10099, "error_msg": "access_token无效"}, ChannelAuthError),
        ({"error_code": 10001, "error_msg": "公共参数错误:type"}, ChannelError),
    ],
)
def test_unknown_codes_are_classified_by_their_words(
    envelope: dict[str, Any], error: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    found = classify_error(envelope | {"request_id": "r1"})
    assert type(found) is error
    assert ("r1" in caplog.text) == (error is ChannelError)


def test_an_overlap_as_long_as_a_window_is_refused() -> None:
    section = {"client_id": CLIENT_ID, "client_secret": "x", "access_token": "y"}
    with pytest.raises(ValidationError, match="overlap_seconds"):
        PinduoduoSettings.model_validate(
            section | {"overlap_seconds": 600, "max_window_seconds": 600}
        )


# -- the normalizer -----------------------------------------------------------------------------


def normalize(**fields: Any) -> ComplaintRecord:
    refund = make_fake().add(updated=ago(60), **fields)
    return record_of(PinduoduoConnector.parse(json.dumps(refund).encode(), NOW)[0])


@pytest.mark.parametrize(
    ("amount", "yuan"),
    [("0.1", "0.10"), ("8", "8.00"), (25, "25.00"), ("1288.00", "1288.00"), ("", None)],
)
def test_amounts_are_exact_yuan(amount: Any, yuan: str | None) -> None:
    found = normalize(refund_amount=amount).product.amount_cny
    assert (str(found) if found is not None else None) == yuan


@pytest.mark.parametrize("amount", ["12.345", "-1.00", -5, "1e3", "十元", True, "8.", ".5"])
def test_amounts_that_are_not_amounts_are_refused(amount: Any) -> None:
    with pytest.raises(MalformedPayload, match="amount") as caught:
        normalize(refund_amount=amount)
    assert caught.value.reason == "invalid_field"


@pytest.mark.parametrize(
    ("kind", "expectations", "label"),
    [
        (2, ("refund",), "仅退款"),
        (3, ("refund", "return"), "退货退款"),
        (4, ("exchange",), "换货"),
        (5, (), "缺货补寄"),
        (9, (), "类型9"),
    ],
)
def test_expectations_and_detail_follow_the_after_sales_type(
    kind: int, expectations: tuple[str, ...], label: str
) -> None:
    record = normalize(after_sales_type=kind, after_sales_status=99)
    assert record.expectations == expectations
    assert record.channel_detail == f"拼多多售后（{label}，状态99）"


def test_the_customer_is_never_invented() -> None:
    assert normalize(order_sn="261123-000000000000042").customer.id == (
        "pinduoduo:order:261123-000000000000042"
    )
    assert normalize(order_sn=None, id=7).customer.id == "pinduoduo:after_sales:7"
    record = normalize(buyer_id="b_123")
    assert record.customer.id == "pinduoduo:b_123" and record.customer.contacts.buyer_nick is None


def test_the_buyer_text_is_verbatim_or_a_placeholder() -> None:
    assert normalize(after_sale_reason="  屏幕有坏点 😡 ").description == "  屏幕有坏点 😡 "
    assert normalize(after_sale_reason="   ").description == NO_TEXT
    assert normalize(after_sale_reason=None).description == NO_TEXT


def test_occurred_at_is_the_creation_time_else_the_update() -> None:
    assert normalize(created_time="2026-11-23 09:00:00").occurred_at == NOW - timedelta(minutes=75)
    assert normalize(created_time=None).occurred_at == NOW - timedelta(seconds=60)


@pytest.mark.parametrize("value", ["1795399265", 1795399265, "2026-11-23 10:01:05"])
def test_pdd_times_are_unix_seconds_or_beijing_wall_clock(value: Any) -> None:
    assert parse_pdd_time(value) == NOW - timedelta(minutes=13, seconds=55)


@pytest.mark.parametrize("value", ["2026/11/23", True, 12, "99999999999", 1.5e9, None])
def test_other_times_are_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_pdd_time(value)


def test_a_dispute_reaches_the_stream_at_least_p2() -> None:
    from service.triage_stage import TriageStage
    from triage.engine import Triage
    from triage.ruleset import load_ruleset

    stage = TriageStage(Triage(load_ruleset(None)))
    calm = stage.apply(normalize(after_sale_reason="不想要了"))
    disputed = stage.apply(normalize(after_sale_reason="不想要了", dispute_refund_status=1))
    assert calm.priority in ("P3", "P4")
    assert disputed.priority == "P2"
    assert disputed.channel_detail.startswith(ESCALATION_MARKER)


class TestPinduoduoWindow(WindowPollerContract):
    two_a_page: ClassVar[dict[str, Any]] = {"page_size": 2, "initial_lookback_seconds": 600}

    def platform(self) -> FakePinduoduo:
        return make_fake()

    def poller(self, platform: FakePinduoduo, **overrides: Any) -> PollingConnector:
        return make_connector(platform, **overrides)

    def add(self, platform: FakePinduoduo, ident: int, text: str, seconds_ago: float) -> None:
        platform.add(id=ident, after_sale_reason=text, updated=ago(seconds_ago))

    def change(self, platform: FakePinduoduo, ident: int, seconds_ago: float) -> None:
        platform.change(ident, updated=ago(seconds_ago), after_sales_status=11)

    def seen(self, cursor: str | None) -> list[str]:
        return list(json.loads(cursor or "{}").get("seen", []))
