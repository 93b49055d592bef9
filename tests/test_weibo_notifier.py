"""The Weibo fans-service notifier against the shared fake Weibo (respx, strict), and the
routing that decides when a customer is answered on Weibo at all."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote

import httpx
import pytest
import respx

from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
    DeliveryInDoubt,
    DeliveryRefused,
    RecipientUnreachable,
)
from normalizer.base import NotAComplaint
from outbound.base import NotifierSettings
from outbound.planner import Planner
from outbound.settings import NotificationSettings
from outbound.state_sqlite import SQLiteNotificationStore
from outbound.templates import DEFAULT_TEXTS
from outbound.weibo import WeiboNotifier, WeiboNotifierSettings
from outbox.sqlite import SQLiteOutbox
from schemas import ComplaintRecord
from schemas.status import NODES, StatusUpdate
from service.fake_platforms import platforms_app
from service.fake_platforms.weibo import REPLY, FakeWeibo, error_envelope
from tests.fakes import FrozenClock
from tests.notifications_kit import DAYTIME, EMAIL, PHONE, Desk, open_desk, provider_class
from tests.notifier_contract import Condition, NotifierContract, sample_message
from tests.test_settings import clean_env, run_cli

BASE_URL = "https://m.weibo.test/2"
TOKEN = "2.00fansSERVICEtokenQx7Rk2mVb9Lw"
UID = "1902538057"
#: A uid above 2^53: a float would make it 9007199254740992.
BIG_UID = str(2**53 + 1)
ACCEPTED_TEXT = DEFAULT_TEXTS["accepted"].format(ticket_no="TS20240520")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(DAYTIME)


class WeiboProvider:
    """The contract's provider: the shared fake, plus a network that can lose an answer."""

    def __init__(self, fake: FakeWeibo, recipient: str) -> None:
        self.fake = fake
        self.recipient = recipient
        self.lose_answers = False
        self.forms: list[dict[str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.forms.append(dict(parse_qsl(request.content.decode("ascii"))))
        if self.lose_answers:
            raise httpx.ReadTimeout("timed out", request=request)
        return self.fake.handle(request)

    def arrange(self, condition: Condition) -> None:
        self.fake.failure = None
        self.lose_answers = False
        if condition == "ok":
            self.fake.message_from(self.recipient)
        elif condition == "unavailable":
            self.fake.failure = httpx.Response(503, text="<html>503 Service Unavailable</html>")
        elif condition == "rate_limited":
            self.fake.failure = error_envelope(
                10023, "User requests out of rate limit!", REPLY, status=403
            )
        elif condition == "in_doubt":
            self.lose_answers = True
        elif condition == "unreachable":
            pass  # the customer never wrote: Weibo has no quota for them
        elif condition == "refused":
            self.fake.failure = error_envelope(10017, "parameter (data)'s value invalid", REPLY)
        elif condition == "auth":
            self.fake.expire(TOKEN)

    def accepted(self) -> int:
        return len(self.fake.replies)


@pytest.fixture
def weibo(clock: FrozenClock) -> Iterator[WeiboProvider]:
    provider = WeiboProvider(FakeWeibo(TOKEN, clock=clock.now), UID)
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{BASE_URL}/messages/reply.json").mock(side_effect=provider.handle)
        yield provider


def weibo_notifier(clock: FrozenClock, **overrides: Any) -> WeiboNotifier:
    settings = WeiboNotifierSettings.model_validate(
        {"access_token": TOKEN, "base_url": BASE_URL} | overrides
    )
    return WeiboNotifier(settings, httpx.AsyncClient(), clock)


class TestWeiboNotifier(NotifierContract):
    notifier_class = WeiboNotifier
    secrets: ClassVar[tuple[str, ...]] = (TOKEN,)
    recipient: ClassVar[str] = UID

    @pytest.fixture
    def notifier(self, clock: FrozenClock) -> WeiboNotifier:
        return weibo_notifier(clock)

    @pytest.fixture
    def provider(self, weibo: WeiboProvider) -> WeiboProvider:
        return weibo


# -- what the customer receives ----------------------------------------------------------------


async def test_the_customer_receives_the_rendered_text_as_a_fans_service_reply(
    weibo: WeiboProvider, clock: FrozenClock
) -> None:
    weibo.fake.message_from(UID)
    receipt = await weibo_notifier(clock).send(sample_message(UID))
    assert weibo.fake.received(UID) == [ACCEPTED_TEXT]
    [reply] = weibo.fake.replies
    assert receipt.message_id == reply.message_id and reply.save_sender_box
    [form] = weibo.forms
    assert form["type"] == "text" and form["receiver_id"] == UID
    assert form["save_sender_box"] == "1"
    assert json.loads(unquote(form["data"])) == {"text": ACCEPTED_TEXT}


async def test_replies_can_stay_out_of_the_account_s_message_box(
    weibo: WeiboProvider, clock: FrozenClock
) -> None:
    weibo.fake.message_from(UID)
    await weibo_notifier(clock, save_sender_box=False).send(sample_message(UID))
    assert weibo.forms[0]["save_sender_box"] == "0"
    assert not weibo.fake.replies[0].save_sender_box


async def test_a_uid_beyond_2_53_reaches_exactly_that_user(
    weibo: WeiboProvider, clock: FrozenClock
) -> None:
    weibo.fake.message_from(BIG_UID)
    await weibo_notifier(clock).send(sample_message(BIG_UID))
    assert weibo.forms[0]["receiver_id"] == "9007199254740993"
    assert weibo.fake.received(BIG_UID) == [ACCEPTED_TEXT]


async def test_a_text_too_long_for_weibo_is_refused_before_the_call(
    weibo: WeiboProvider, clock: FrozenClock
) -> None:
    weibo.fake.message_from(UID)
    notifier = weibo_notifier(clock)
    with pytest.raises(DeliveryRefused) as caught:
        await notifier.send(replace(sample_message(UID), text="很" * 300))
    assert caught.value.reason == "weibo_text_too_long"
    assert "300" in str(caught.value)
    assert weibo.forms == [] and weibo.fake.replies == []
    await notifier.send(replace(sample_message(UID), text="很" * 299))  # just under: sent whole
    assert weibo.fake.received(UID) == ["很" * 299]


def test_outside_the_reply_window_weibo_cannot_send_any_node(clock: FrozenClock) -> None:
    notifier = weibo_notifier(clock)
    for node in NODES:
        assert notifier.unreachable_reason(node, reply_window_open=False) == "outside_reply_window"
        assert notifier.unreachable_reason(node, reply_window_open=True) is None


def test_a_node_text_that_can_never_fit_is_reported_at_start(clock: FrozenClock) -> None:
    texts = dict(DEFAULT_TEXTS) | {"resolved": "已处理完成（编号：{ticket_no}）" + "。" * 300}
    [problem] = weibo_notifier(clock).problems(texts)
    assert "resolved" in problem and "too long" in problem
    settings = NotificationSettings(texts={"weibo": {"resolved": texts["resolved"]}})
    planner = Planner(settings, {"weibo": weibo_notifier(clock)})
    assert any("notifiers.weibo" in p and "resolved" in p for p in planner.problems())


# -- what Weibo refuses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "expected", "reason"),
    [
        (21315, "expired_token", ChannelAuthError, None),
        (21327, "expired_token", ChannelAuthError, None),
        (21332, "invalid_access_token", ChannelAuthError, None),
        (10014, "Insufficient app permissions!", ChannelAuthError, None),
        (10022, "IP requests out of rate limit!", ChannelRateLimited, None),
        (10023, "User requests out of rate limit!", ChannelRateLimited, None),
        (10024, "User requests for (messages/reply) out of rate limit!", ChannelRateLimited, None),
        (10001, "system error", ChannelUnavailable, None),
        (10002, "service unavailable", ChannelUnavailable, None),
        (10009, "too many pending tasks, system is busy", ChannelUnavailable, None),
        (20003, "User does not exists!", RecipientUnreachable, "weibo_no_such_user"),
        (20522, "Not followed!", RecipientUnreachable, "weibo_not_following"),
        (20609, "no message quota", RecipientUnreachable, "weibo_out_of_window"),
        (20999, "receiver has no message quota", RecipientUnreachable, "weibo_out_of_window"),
        (10017, "parameter (data)'s value invalid", DeliveryRefused, "weibo_bad_parameter"),
        (20019, "repeat content!", DeliveryRefused, "weibo_error"),
    ],
)
async def test_weibo_error_envelopes_map_to_the_gateway_errors(
    weibo: WeiboProvider,
    clock: FrozenClock,
    code: int,
    error: str,
    expected: type[ChannelError],
    reason: str | None,
) -> None:
    weibo.fake.failure = error_envelope(code, error, REPLY, status=400)
    with pytest.raises(ChannelError) as caught:
        await weibo_notifier(clock).send(sample_message(UID))
    assert type(caught.value) is expected
    if reason is not None:
        assert getattr(caught.value, "reason", None) == reason
    assert str(code) in str(caught.value)
    assert TOKEN not in str(caught.value) and UID not in str(caught.value)


async def test_a_customer_who_unfollowed_is_unreachable_on_weibo(
    weibo: WeiboProvider, clock: FrozenClock
) -> None:
    weibo.fake.message_from(UID)
    weibo.fake.unfollow(UID)
    with pytest.raises(RecipientUnreachable) as caught:
        await weibo_notifier(clock).send(sample_message(UID))
    assert caught.value.reason == "weibo_not_following"


async def test_an_at_mention_allows_one_reply_and_the_window_closes_after_48_hours(
    weibo: WeiboProvider, clock: FrozenClock
) -> None:
    notifier = weibo_notifier(clock)
    weibo.fake.mention_from(UID)
    await notifier.send(sample_message(UID))
    with pytest.raises(RecipientUnreachable) as caught:
        await notifier.send(sample_message(UID))
    assert caught.value.reason == "weibo_out_of_window"
    weibo.fake.message_from(BIG_UID)
    clock.advance(49 * 3600)
    with pytest.raises(RecipientUnreachable):
        await notifier.send(sample_message(BIG_UID))
    assert weibo.fake.received(UID) == [ACCEPTED_TEXT] and weibo.fake.received(BIG_UID) == []


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ReadTimeout("timed out"), DeliveryInDoubt),
        (httpx.RemoteProtocolError("peer closed"), DeliveryInDoubt),
        (httpx.ConnectError("refused"), ChannelUnavailable),
        (httpx.Response(200, text="<html>ok</html>"), DeliveryInDoubt),
        (httpx.Response(429, headers={"Retry-After": "30"}), ChannelRateLimited),
        (httpx.Response(401, text=""), ChannelAuthError),
    ],
)
async def test_transport_failures_say_whether_the_reply_may_have_gone(
    clock: FrozenClock, failure: Exception | httpx.Response, expected: type[ChannelError]
) -> None:
    with respx.mock() as router:
        route = router.post(f"{BASE_URL}/messages/reply.json")
        if isinstance(failure, httpx.Response):
            route.mock(return_value=failure)
        else:
            route.mock(side_effect=failure)
        with pytest.raises(expected) as caught:
            await weibo_notifier(clock).send(sample_message(UID))
    if isinstance(caught.value, ChannelRateLimited):
        assert caught.value.retry_after == 30


async def test_the_token_and_the_uid_never_show_in_logs_errors_or_reprs(
    weibo: WeiboProvider, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = weibo_notifier(clock)
    shown = [repr(notifier), repr(notifier.settings), str(notifier.settings)]
    for condition in ("unreachable", "refused", "rate_limited", "in_doubt", "ok", "auth"):
        weibo.arrange(condition)
        try:
            await notifier.send(sample_message(UID))
        except ChannelError as exc:
            shown += [str(exc), repr(exc)]
    text = " ".join(shown) + caplog.text
    assert weibo.fake.replies  # the ok one went out
    assert TOKEN not in text and UID not in text


def test_settings_need_the_token_and_an_http_base_url() -> None:
    with pytest.raises(ValueError, match="access_token"):
        WeiboNotifierSettings.model_validate({})
    with pytest.raises(ValueError, match="base_url"):
        WeiboNotifierSettings.model_validate({"access_token": TOKEN, "base_url": "ftp://x"})
    defaults = WeiboNotifierSettings.model_validate({"access_token": TOKEN})
    assert defaults.base_url == "https://m.api.weibo.com/2" and defaults.save_sender_box


def test_check_config_lists_a_weibo_section_without_its_token(tmp_path: Path) -> None:
    config = tmp_path / "weibo.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "d"}"\n[connectors.store]\nsecret = "s"\n'
        "[notifiers.weibo]\nsave_sender_box = false\ntimeout_seconds = 0\n"
    )
    result = run_cli("check-config", "--config", str(config), env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert "notifiers.weibo.access_token" in result.stderr
    assert "notifiers.weibo.timeout_seconds" in result.stderr

    config.write_text(
        f'data_dir = "{tmp_path / "d"}"\n[connectors.store]\nsecret = "s"\n[notifiers.weibo]\n'
    )
    env = clean_env(GATEWAY_NOTIFIERS__WEIBO__ACCESS_TOKEN=TOKEN)
    result = run_cli("check-config", "--config", str(config), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "notifications by weibo" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


# -- routing -----------------------------------------------------------------------------------


def weibo_record(
    connector: str,
    *,
    number: int = 1,
    received_at: datetime = DAYTIME,
    **contacts: str,
) -> ComplaintRecord:
    """A Weibo record: ``weibo_dm`` a private message, ``weibo`` a comment or @mention
    (both are record channel ``weibo``, as their connectors make them)."""
    return ComplaintRecord.model_validate(
        {
            "record_id": f"weibo:{connector}{number:012x}",
            "received_at": received_at,
            "channel": "weibo",
            "channel_detail": "微博私信" if connector == "weibo_dm" else "微博评论",
            "customer": {"id": f"weibo:{contacts.get('weibo_uid', number)}", "contacts": contacts},
            "description": "买的空气炸锅用了三天就坏了",
            "priority": "P3",
            "received_by": f"gateway/{connector}",
            "source": {"connector": connector},
            "dedupe": {"fingerprint": f"w{connector}{number}"},
        }
    )


def marketplace_record(channel: str, **contacts: str) -> ComplaintRecord:
    return ComplaintRecord.model_validate(
        {
            "record_id": f"{channel}:000000000000aa01",
            "received_at": DAYTIME,
            "channel": channel,
            "channel_detail": "退款申请",
            "customer": {"id": f"{channel}:buyer1", "contacts": contacts},
            "description": "商品与描述不符，申请退款",
            "priority": "P3",
            "received_by": f"gateway/{channel}",
            "source": {"connector": channel},
            "dedupe": {"fingerprint": f"m{channel}"},
        }
    )


def status(record_id: str, node: str = "accepted") -> StatusUpdate:
    return StatusUpdate.model_validate(
        {"record_id": record_id, "node": node, "occurred_at": DAYTIME, "ticket_no": "TS20240520"}
    )


NOTIFIERS = (
    ("wechat", "wechat"),
    ("weibo", "weibo"),
    ("aliyun_sms", "sms"),
    ("email", "email"),
)


@pytest.fixture
async def desk(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Desk]:
    opened = await open_desk(tmp_path, clock, notifiers=NOTIFIERS)
    opened.providers["weibo"].window_needed_for = set(NODES)  # as WeiboNotifier says
    yield opened
    await opened.store.aclose()
    await opened.outbox.aclose()


async def test_a_weibo_private_message_is_answered_on_weibo_inside_the_window(
    desk: Desk,
) -> None:
    complaint = weibo_record("weibo_dm", weibo_uid=UID, phone=PHONE)
    await desk.take_in(complaint)
    await desk.desk.accept(status(complaint.record_id))
    await desk.send_due()
    assert desk.sent() == [("weibo", UID, "accepted")]
    [message] = desk.providers["weibo"].sent
    assert message.reply_window_open and message.text == ACCEPTED_TEXT


async def test_outside_the_window_weibo_is_passed_over_for_sms(
    desk: Desk, clock: FrozenClock
) -> None:
    complaint = weibo_record("weibo_dm", weibo_uid=UID, phone=PHONE)
    await desk.take_in(complaint)
    clock.advance(49 * 3600)
    await desk.desk.accept(status(complaint.record_id, "resolved"))
    await desk.send_due()
    assert desk.sent() == [("aliyun_sms", PHONE, "resolved")]


async def test_the_weibo_window_length_is_a_setting(tmp_path: Path, clock: FrozenClock) -> None:
    desk = await open_desk(tmp_path, clock, notifiers=NOTIFIERS, weibo_window_hours=2)
    desk.providers["weibo"].window_needed_for = set(NODES)
    try:
        complaint = weibo_record("weibo_dm", weibo_uid=UID, email=EMAIL)
        await desk.take_in(complaint)
        clock.advance(3 * 3600)
        await desk.desk.accept(status(complaint.record_id))
        await desk.send_due()
        assert desk.sent() == [("email", EMAIL, "accepted")]
    finally:
        await desk.store.aclose()
        await desk.outbox.aclose()


async def test_outside_the_window_without_other_contacts_nobody_is_messaged(
    desk: Desk, clock: FrozenClock
) -> None:
    complaint = weibo_record("weibo_dm", weibo_uid=UID)
    await desk.take_in(complaint)
    clock.advance(49 * 3600)
    applied = await desk.desk.accept(status(complaint.record_id))
    assert applied.added == 0 and desk.sent() == []
    [outcome] = [json.loads(o.body) for o in await desk.store.unpublished(10)]
    assert outcome["reason"] == "no_reachable_channel"
    assert outcome["detail"].startswith("weibo: ") and "window" in outcome["detail"].split(";")[0]


async def test_a_weibo_comment_is_not_answered_on_weibo(desk: Desk) -> None:
    complaint = weibo_record("weibo", weibo_uid=UID, phone=PHONE)
    await desk.take_in(complaint)
    await desk.desk.accept(status(complaint.record_id))
    await desk.send_due()
    assert desk.sent() == [("aliyun_sms", PHONE, "accepted")]


async def test_a_weibo_comment_from_someone_who_wrote_privately_lately_is(
    desk: Desk, clock: FrozenClock
) -> None:
    private = weibo_record("weibo_dm", number=1, weibo_uid=UID)
    clock.advance(3600)
    comment = weibo_record("weibo", number=2, received_at=clock.now(), weibo_uid=UID, phone=PHONE)
    await desk.take_in(private, comment)
    await desk.desk.accept(status(comment.record_id))
    await desk.send_due()
    assert desk.sent() == [("weibo", UID, "accepted")]


async def test_a_customer_who_unfollowed_is_not_messaged_on_weibo_until_they_follow_again(
    desk: Desk, clock: FrozenClock
) -> None:
    first = weibo_record("weibo_dm", number=1, weibo_uid=UID, phone=PHONE)
    await desk.take_in(first)
    await desk.desk.follow(NotAComplaint("event:unfollow", f"weibo:{UID}"))
    await desk.desk.accept(status(first.record_id))
    await desk.send_due()
    assert desk.sent() == [("aliyun_sms", PHONE, "accepted")]
    await desk.desk.follow(NotAComplaint("event:follow", f"weibo:{UID}"))
    await desk.desk.accept(status(first.record_id, "in_progress"))
    await desk.send_due()
    assert desk.sent() == [("weibo", UID, "in_progress"), ("aliyun_sms", PHONE, "accepted")]


@pytest.mark.parametrize("channel", ["taobao", "jd", "pinduoduo", "douyin_shop"])
async def test_a_marketplace_complaint_is_routed_by_its_contacts(desk: Desk, channel: str) -> None:
    complaint = marketplace_record(channel, phone=PHONE, email=EMAIL)
    await desk.take_in(complaint)
    await desk.desk.accept(status(complaint.record_id))
    await desk.send_due()
    assert desk.sent() == [("aliyun_sms", PHONE, "accepted")]


async def test_a_marketplace_complaint_without_contacts_reaches_nobody(desk: Desk) -> None:
    complaint = marketplace_record("taobao")
    await desk.take_in(complaint)
    applied = await desk.desk.accept(status(complaint.record_id))
    assert applied.added == 0 and desk.sent() == []


async def test_a_weibo_customer_receives_the_reply_end_to_end_with_nothing_leaked(
    tmp_path: Path, clock: FrozenClock, weibo: WeiboProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outbox = await SQLiteOutbox.open(tmp_path / "outbox.sqlite3")
    store = await SQLiteNotificationStore.open(tmp_path / "notifications.sqlite3")
    sms = provider_class("aliyun_sms", "sms")(NotifierSettings(), httpx.AsyncClient(), clock)
    providers: dict[str, Any] = {"weibo": weibo_notifier(clock), "aliyun_sms": sms}
    desk = Desk(outbox, store, clock, NotificationSettings(), providers)
    try:
        complaint = weibo_record("weibo_dm", weibo_uid=BIG_UID, phone=PHONE)
        weibo.fake.message_from(BIG_UID)
        await desk.take_in(complaint)
        await desk.desk.accept(status(complaint.record_id))
        await desk.send_due()
        assert weibo.fake.received(BIG_UID) == [ACCEPTED_TEXT]
        assert sms.sent == []
        outcomes = [json.loads(o.body) for o in await store.unpublished(10)]
        assert [(o["status"], o["channel"]) for o in outcomes] == [("sent", "weibo")]
        # Weibo refuses (the customer unfollowed on Weibo's side): SMS takes over
        weibo.fake.unfollow(BIG_UID)
        await desk.desk.accept(status(complaint.record_id, "in_progress"))
        await desk.send_due()
        assert [m.node for m in sms.sent] == ["in_progress"]
        # two days later the window the private message opened has closed: no call to Weibo
        asked = len(weibo.forms)
        clock.advance(49 * 3600)
        await desk.desk.accept(status(complaint.record_id, "resolved"))
        await desk.send_due()
        assert [m.node for m in sms.sent] == ["in_progress", "resolved"]
        assert len(weibo.forms) == asked
        shown = json.dumps([json.loads(o.body) for o in await store.unpublished(10)])
        assert BIG_UID not in shown + caplog.text and TOKEN not in shown + caplog.text
    finally:
        await store.aclose()
        await outbox.aclose()


async def test_the_fake_serves_the_notifier_as_an_http_app(clock: FrozenClock) -> None:
    fake = FakeWeibo(TOKEN, clock=clock.now)
    fake.message_from(BIG_UID)
    transport = httpx.ASGITransport(app=platforms_app({"weibo": fake}))
    async with httpx.AsyncClient(transport=transport) as http:
        settings = WeiboNotifierSettings(access_token=TOKEN, base_url="http://fakes.test/weibo/2")
        receipt = await WeiboNotifier(settings, http, clock).send(sample_message(BIG_UID))
    assert fake.received(BIG_UID) == [ACCEPTED_TEXT]
    assert receipt.message_id == fake.replies[0].message_id
