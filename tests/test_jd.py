"""JD (JOS) after-sale services: the poller against :class:`FakeJd` through respx, and the normalizer.

The fake checks every request's ``sign`` with :func:`jd_sign` (``360buy_param_json``
and ``access_token`` included), the app key, the token and the timestamp
against its clock (±6 minutes), filters services by ``updateTime``, pages
them and answers in JOS's shapes: ``jingdong_asc_query_list_responce`` or an
``error_response`` envelope.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
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
)
from connectors.jd import JdConnector, JdSettings, classify_error
from connectors.polling import PollingConnector
from normalizer.jd import JdNormalizer
from schemas import ComplaintRecord
from service.fake_platforms.jd import FAILURES, FakeJd
from service.registry import Registry
from tests.fakes import FrozenClock
from tests.test_polling_contract import NOW, PollingConnectorContract
from tests.window_poller_contract import WindowPollerContract

API = "https://jos.fake.test/routerjson"
APP_KEY = "A1B2C3D4E5F60718293A4B5C6D7E8F90"
APP_SECRET = "jos-app-secret-9d4b"
ACCESS_TOKEN = "f4e1c0b2a9d84e6b9c7a1d2e3f405162ztok"


def ago(seconds: float) -> str:
    return (NOW.astimezone(GMT8) - timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def new_fake() -> FakeJd:
    return FakeJd(
        app_key=APP_KEY, app_secret=APP_SECRET, access_token=ACCESS_TOKEN, clock=lambda: NOW
    )


def make_connector(fake: FakeJd, clock: FrozenClock | None = None, **overrides: Any) -> JdConnector:
    router = respx.MockRouter(assert_all_called=False)
    router.post(API).mock(side_effect=fake.handle)
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    section = {
        "app_key": APP_KEY,
        "app_secret": APP_SECRET,
        "access_token": ACCESS_TOKEN,
        "api_base": API,
    } | overrides
    return JdConnector(JdSettings.model_validate(section), clock or FrozenClock(NOW), http)


def business(request: dict[str, str]) -> dict[str, Any]:
    return dict(json.loads(request["360buy_param_json"]))


class TestJdContract(PollingConnectorContract):
    name = "jd"
    secret_values = (APP_SECRET, ACCESS_TOKEN)

    @pytest.fixture(autouse=True)
    def _fake(self) -> None:
        self.fake = new_fake()
        self.added = 0

    def settings_section(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "access_token": ACCESS_TOKEN,
            "api_base": API,
        }

    def connector(self, tmp_path: Path, **overrides: Any) -> PollingConnector:
        klass = Registry.from_entry_points().connectors[self.name]
        assert klass is JdConnector
        return make_connector(self.fake, **overrides)

    def add_messages(self, tmp_path: Path, texts: Sequence[str]) -> None:
        for text in texts:
            self.added += 1
            self.fake.add(questionDesc=text, applyReason=None, updateTime=ago(300 - self.added))

    def break_platform(self, tmp_path: Path, how: str) -> dict[str, Any] | None:
        if how == "credentials":
            return {"access_token": "expired-token"}
        self.fake.fail_with = 502
        return {}


# -- the poller -------------------------------------------------------------------------


async def test_pages_until_the_total_count_is_reached() -> None:
    fake = new_fake()
    for n in range(5):
        fake.add(questionDesc=f"第{n}单", updateTime=ago(100 - n))
    result = await make_connector(fake, page_size=2).poll(None)
    # JOS answers the last page again past the end: paging stops on totalCount
    assert [business(r)["pageNumber"] for r in fake.requests] == [1, 2, 3]
    assert {business(r)["pageSize"] for r in fake.requests} == {2}
    assert [e.payload["questionDesc"] for e in result.events] == [f"第{n}单" for n in range(5)]
    assert json.loads(result.cursor or "")["modified"] == ago(96)


async def test_paging_that_never_ends_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("connectors.jd.MAX_PAGES", 2)
    fake = new_fake()
    for n in range(5):
        fake.add(updateTime=ago(100 - n))
    with pytest.raises(ChannelError, match="after 2 pages"):
        await make_connector(fake, page_size=1).poll(None)


async def test_the_window_overlaps_the_last_update_time_in_gmt8() -> None:
    fake = new_fake()
    fake.add(updateTime=ago(50))
    connector = make_connector(fake, overlap_seconds=120, initial_lookback_seconds=3600)
    first = await connector.poll(None)
    assert business(fake.requests[0])["updateTimeBegin"] == ago(3600)
    await connector.poll(first.cursor)
    window = business(fake.requests[-1])
    assert window["updateTimeBegin"] == ago(50 + 120)
    assert window["updateTimeEnd"] == ago(0)


async def test_a_state_change_is_a_new_event_linked_by_service_and_order() -> None:
    fake = new_fake()
    fake.add(serviceId=5501, orderId=88001, questionDesc="屏幕碎了", updateTime=ago(200))
    connector = make_connector(fake)
    first = await connector.poll(None)
    fake.update(5501, serviceStatus=10005, serviceStatusName="待收货", updateTime=ago(20))
    second = await connector.poll(first.cursor)
    assert len(second.events) == 1
    assert second.events[0].source_key != first.events[0].source_key
    normalizer = JdNormalizer()
    before = normalizer.normalize(first.events[0])
    after = normalizer.normalize(second.events[0])
    assert isinstance(before, ComplaintRecord) and isinstance(after, ComplaintRecord)
    assert before.record_id != after.record_id
    assert before.source.thread_id == after.source.thread_id == "5501"
    assert before.product.order_id == after.product.order_id == "88001"
    assert before.channel_detail == "京东售后（待审核）"
    assert after.channel_detail == "京东售后（待收货）"


async def test_ids_beyond_two_to_the_53_keep_every_digit() -> None:
    fake = new_fake()
    fake.add(serviceId=2**53 + 1, orderId=2**63 - 1, skuId=2**53 + 3, updateTime=ago(5))
    result = await make_connector(fake).poll(None)
    (event,) = result.events
    assert event.message_id == "9007199254740993"
    record = JdNormalizer().normalize(event)
    assert isinstance(record, ComplaintRecord)
    assert record.source.thread_id == "9007199254740993"
    assert record.product.order_id == "9223372036854775807"
    assert record.product.sku == "9007199254740995"


async def test_an_update_time_in_epoch_milliseconds_gives_the_same_key_form() -> None:
    fake = new_fake()
    millis = int((NOW - timedelta(seconds=40)).timestamp() * 1000) + 250
    fake.add(serviceId=4242, serviceStatus=10001, updateTime=millis)
    result = await make_connector(fake).poll(None)
    assert [e.source_key for e in result.events] == [f"4242:{ago(40)}:10001"]
    assert json.loads(result.cursor or "")["modified"] == ago(40)


async def test_unreadable_services_are_rejected_and_the_rest_taken() -> None:
    fake = new_fake()
    fake.add(serviceId="", questionDesc="没有服务单号", updateTime=ago(90))
    fake.add(serviceId={"id": 1}, questionDesc="编号不是编号", updateTime=ago(85))
    fake.add(serviceId=777, questionDesc="正常", updateTime=ago(80))
    result = await make_connector(fake).poll(None)
    assert [e.message_id for e in result.events] == ["777"]
    assert [r.error.reason for r in result.rejected] == ["missing_field", "invalid_field"]
    assert "没有服务单号" in result.rejected[0].body.decode()


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ("rate_limit", ChannelRateLimited),
        ("busy", ChannelUnavailable),
        ("unavailable", ChannelUnavailable),
        ("token_expired", ChannelAuthError),
        ("token_invalid", ChannelAuthError),
        ("bad_app_key", ChannelAuthError),
        ("bad_sign", ChannelAuthError),
    ],
)
async def test_jos_errors_are_classified(failure: str, error: type[Exception]) -> None:
    fake = new_fake()
    fake.fail_with = failure
    with pytest.raises(error) as caught:
        await make_connector(fake).poll(None)
    assert f"JOS error {FAILURES[failure]['code']} " in str(caught.value)


def test_error_words_classify_a_code_we_do_not_know() -> None:
    assert isinstance(classify_error({"code": "9001", "zh_desc": "系统繁忙"}), ChannelUnavailable)
    assert isinstance(
        classify_error({"code": "9002", "en_desc": "Api Call Limit"}), ChannelRateLimited
    )
    assert isinstance(
        classify_error({"code": "9003", "zh_desc": "access_token无效"}), ChannelAuthError
    )


async def test_a_bad_request_is_logged_with_the_request_id_and_the_poll_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    fake = new_fake()
    fake.add()
    fake.fail_with = "bad_request"
    with pytest.raises(ChannelError) as caught:
        await make_connector(fake).poll(None)
    assert type(caught.value) is ChannelError  # not retried as transient, not an auth stop
    assert "code 43" in caplog.text
    error = classify_error({"code": "43", "en_desc": "Invalid Parameter", "request_id": "jos9r1"})
    assert type(error) is ChannelError and "jos9r1" in caplog.text and "jos9r1" in str(error)


async def test_a_failed_success_envelope_is_classified_too() -> None:
    router = respx.MockRouter()
    answer = {"jingdong_asc_query_list_responce": {"code": "19", "zh_desc": "token过期"}}
    router.post(API).mock(return_value=httpx.Response(200, json=answer))
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    settings = JdSettings.model_validate(
        {
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "access_token": ACCESS_TOKEN,
            "api_base": API,
        }
    )
    with pytest.raises(ChannelAuthError):
        await JdConnector(settings, FrozenClock(NOW), http).poll(None)


async def test_a_wrong_app_secret_is_an_auth_error_without_the_secret() -> None:
    fake = new_fake()
    with pytest.raises(ChannelAuthError) as caught:
        await make_connector(fake, app_secret="not-the-secret").poll(None)
    assert "not-the-secret" not in str(caught.value) and "JOS error 12 " in str(caught.value)


async def test_a_clock_more_than_six_minutes_off_is_refused_and_five_is_not() -> None:
    fake = new_fake()
    fake.add(updateTime=ago(400))
    late = make_connector(fake, clock=FrozenClock(NOW + timedelta(minutes=7)))
    with pytest.raises(ChannelError) as caught:
        await late.poll(None)
    assert type(caught.value) is ChannelError and "JOS error 8 " in str(caught.value)
    early = make_connector(fake, clock=FrozenClock(NOW - timedelta(minutes=5)))
    assert len((await early.poll(None)).events) == 1


@pytest.mark.parametrize(("style", "ending"), [("seconds", ":00"), ("millis", ".000+0800")])
async def test_both_timestamp_forms_are_signed_and_accepted(style: str, ending: str) -> None:
    fake = new_fake()
    fake.add()
    result = await make_connector(fake, timestamp_style=style).poll(None)
    assert len(result.events) == 1
    assert fake.requests[0]["timestamp"].endswith(ending)
    assert fake.requests[0]["method"] == "jingdong.asc.query.list"


async def test_bu_id_and_operator_are_sent_only_when_set() -> None:
    fake = new_fake()
    await make_connector(fake).poll(None)
    await make_connector(fake, bu_id="10086", operate_pin="kefu01").poll(None)
    assert "buId" not in business(fake.requests[0])
    assert business(fake.requests[1])["buId"] == "10086"
    assert business(fake.requests[1])["operatePin"] == "kefu01"


@pytest.mark.parametrize(
    ("status", "error"), [(502, ChannelUnavailable), (429, ChannelRateLimited)]
)
async def test_http_failures_are_classified(status: int, error: type[Exception]) -> None:
    fake = new_fake()
    fake.fail_with = status
    with pytest.raises(error):
        await make_connector(fake).poll(None)


async def test_an_answer_that_is_not_json_is_unavailable() -> None:
    router = respx.MockRouter()
    router.post(API).mock(return_value=httpx.Response(200, text="<error_response/>"))
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    settings = JdSettings.model_validate(
        {
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "access_token": ACCESS_TOKEN,
            "api_base": API,
        }
    )
    with pytest.raises(ChannelUnavailable):
        await JdConnector(settings, FrozenClock(NOW), http).poll(None)


async def test_the_token_never_shows_in_errors_logs_or_reprs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = new_fake()
    fake.add(questionDesc="看看日志")
    connector = make_connector(fake)
    shown = [repr(connector), repr(connector.settings), str(connector.settings.model_dump())]
    result = await connector.poll(None)
    shown.append(result.cursor or "")
    shown += [e.body.decode() for e in result.events]
    for failure in ("bad_request", "token_expired", "rate_limit", 503):
        fake.fail_with = failure
        with pytest.raises(ChannelError) as caught:
            await connector.poll(None)
        shown.append(str(caught.value))
    shown.append(caplog.text)
    assert fake.requests[0]["access_token"] == ACCESS_TOKEN  # it was sent, where it belongs
    for secret in (ACCESS_TOKEN, APP_SECRET):
        assert not any(secret in text for text in shown)


def test_a_backlog_holds_distinct_services() -> None:
    fake = new_fake()
    backlog = fake.add_backlog(200)
    assert len({s["serviceId"] for s in backlog}) == 200
    assert len({s["questionDesc"] for s in backlog}) == 200
    assert len({s["updateTime"] for s in backlog}) > 100


async def test_a_backlog_is_polled_completely_once() -> None:
    fake = new_fake()
    fake.add_backlog(120, spread_seconds=3600)
    connector = make_connector(fake, page_size=50, initial_lookback_seconds=7200)
    result = await connector.poll(None)
    assert len({e.source_key for e in result.events}) == 120
    assert (await connector.poll(result.cursor)).events == []


# -- the normalizer -----------------------------------------------------------------------


def normalize(**fields: Any) -> ComplaintRecord:
    service = new_fake().add(**fields)
    event = JdConnector.parse(json.dumps(service, ensure_ascii=False).encode(), NOW)[0]
    record = JdNormalizer().normalize(event)
    assert isinstance(record, ComplaintRecord)
    return record


def test_amounts_are_exact_yuan_from_strings_and_numbers() -> None:
    assert str(normalize(actualPayPrice="0.1").product.amount_cny) == "0.10"
    assert str(normalize(actualPayPrice=1288).product.amount_cny) == "1288.00"
    parsed = JdConnector.parse(
        b'{"serviceId":1,"updateTime":"2026-11-23 10:00:00","actualPayPrice":59.9}', NOW
    )[0]
    record = JdNormalizer().normalize(parsed)
    assert isinstance(record, ComplaintRecord) and str(record.product.amount_cny) == "59.90"
    assert normalize(actualPayPrice=None).product.amount_cny is None


@pytest.mark.parametrize("amount", ["12.345", "-1.00", "1e3", "十元", True])
def test_amounts_that_are_not_yuan_are_refused(amount: object) -> None:
    with pytest.raises(Exception, match="amount") as caught:
        normalize(actualPayPrice=amount)
    assert getattr(caught.value, "reason", None) == "invalid_field"


def test_the_customer_is_what_jd_sent_and_never_invented() -> None:
    named = normalize(customerPin="小 明♥_JD~ (PLUS)")
    assert named.customer.id == "jd:小 明♥_JD~ (PLUS)"
    assert named.customer.contacts.buyer_nick == "小 明♥_JD~ (PLUS)"
    by_order = normalize(customerPin=None, orderId=42)
    assert by_order.customer.id == "jd:order:42" and by_order.customer.contacts.buyer_nick is None
    assert normalize(customerPin="  ", orderId=None, serviceId=7).customer.id == "jd:service:7"


def test_a_masked_phone_stays_in_the_text_and_out_of_the_contacts() -> None:
    record = normalize(customerTel="138****5678", questionDesc="打 138****5678 没人接")
    assert record.customer.contacts.phone is None
    assert "138****5678" in record.description
    assert normalize(customerTel="13812345678").customer.contacts.phone == "+8613812345678"


@pytest.mark.parametrize(
    ("fields", "wanted"),
    [
        ({"customerExpect": 10}, ("refund", "return")),
        ({"customerExpect": "20"}, ("exchange",)),
        ({"customerExpect": 30}, ("repair",)),
        ({"customerExpect": 11}, ("refund",)),
        ({"customerExpect": 40, "customerExpectName": "大家电安装"}, ()),
        ({"customerExpect": None, "customerExpectName": "换货"}, ("exchange",)),
    ],
)
def test_expectations_follow_the_service_type(
    fields: dict[str, Any], wanted: tuple[str, ...]
) -> None:
    assert normalize(**fields).expectations == wanted


def test_the_state_label_comes_from_the_code_or_jds_own_name() -> None:
    assert (
        normalize(serviceStatus=10010, serviceStatusName="x").channel_detail == "京东售后（完成）"
    )
    assert (
        normalize(serviceStatus=13000, serviceStatusName="未收货，待收款").channel_detail
        == "京东售后（未收货，待收款）"
    )
    assert (
        normalize(serviceStatus=12345, serviceStatusName=None).channel_detail
        == "京东售后（状态12345）"
    )
    assert (
        normalize(serviceStatus=None, serviceStatusName=None).channel_detail
        == "京东售后（售后申请）"
    )


def test_the_buyers_words_are_kept_verbatim_and_dated_in_gmt8() -> None:
    record = normalize(applyReason="质量问题", questionDesc="  左耳没声音😭 \n换了也一样 ")
    assert record.description == "质量问题\n  左耳没声音😭 \n换了也一样 "
    assert record.occurred_at == NOW - timedelta(minutes=10)  # applyTime, read as GMT+8
    wordless = normalize(applyReason=None, questionDesc="")
    assert wordless.description == "（京东售后未附买家文字）"


class TestJdWindow(WindowPollerContract):
    two_a_page: ClassVar[dict[str, Any]] = {"page_size": 2}

    def platform(self) -> FakeJd:
        return new_fake()

    def poller(self, platform: FakeJd, **overrides: Any) -> PollingConnector:
        return make_connector(platform, **overrides)

    def add(self, platform: FakeJd, ident: int, text: str, seconds_ago: float) -> None:
        platform.add(serviceId=ident, questionDesc=text, updateTime=ago(seconds_ago))

    def change(self, platform: FakeJd, ident: int, seconds_ago: float) -> None:
        platform.update(ident, updateTime=ago(seconds_ago), serviceStatus=10005)

    def seen(self, cursor: str | None) -> list[str]:
        return list(json.loads(cursor or "{}").get("seen", []))
