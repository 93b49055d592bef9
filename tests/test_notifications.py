"""Status updates to notifications: routing, policy, retries, failover, exactly once, timers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import (
    ChannelRateLimited,
    ChannelUnavailable,
    DeliveryInDoubt,
    DeliveryRefused,
    RecipientUnreachable,
)
from outbound.base import NotifierSettings
from outbound.dispatch import Dispatcher
from outbound.planner import Planner, StatusRejected
from outbound.policy import RateLimit, quiet_until
from outbound.settings import NotificationSettings, QuietHours
from schemas.status import StatusUpdate
from tests.fakes import FrozenClock
from tests.notifications_kit import DAYTIME, EMAIL, OPENID, PHONE, Desk, open_desk, record


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(DAYTIME)


@pytest.fixture
async def desk(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Desk]:
    opened = await open_desk(tmp_path, clock)
    yield opened
    await opened.store.aclose()
    await opened.outbox.aclose()


def status(record_id: str, node: str = "accepted", **fields: Any) -> StatusUpdate:
    return StatusUpdate.model_validate(
        {
            "record_id": record_id,
            "node": node,
            "occurred_at": DAYTIME,
            "ticket_no": "TS20240520",
            **fields,
        }
    )


async def outcomes(desk: Desk) -> list[dict[str, Any]]:
    return [json.loads(o.body) for o in await desk.store.unpublished(1000)]


# -- routing ---------------------------------------------------------------------------------


async def test_a_wechat_complaint_is_answered_on_wechat_in_the_reply_window(desk: Desk) -> None:
    complaint = record("wechat", wechat_openid=OPENID, phone=PHONE)
    await desk.take_in(complaint)
    await desk.desk.accept(status(complaint.record_id))
    await desk.send_due()
    assert desk.sent() == [("wechat", OPENID, "accepted")]
    [message] = desk.providers["wechat"].sent
    assert message.reply_window_open
    assert message.text == (
        "尊敬的客户，您的反馈我们已收到（编号：TS20240520），正在为您分配专属客服跟进，请您耐心等待。"
    )
    [outcome] = await outcomes(desk)
    assert outcome["status"] == "sent" and outcome["channel"] == "wechat"
    assert outcome["provider_message_id"].startswith("wechat-")
    assert OPENID not in json.dumps(outcome)


async def test_outside_the_window_without_a_template_wechat_passes_to_sms(
    desk: Desk, clock: FrozenClock
) -> None:
    desk.providers["wechat"].window_needed_for = {"resolved"}
    complaint = record("wechat", wechat_openid=OPENID, phone=PHONE)
    await desk.take_in(complaint)
    clock.advance(49 * 3600)
    await desk.desk.accept(status(complaint.record_id, "resolved"))
    await desk.send_due()
    assert desk.sent() == [("aliyun_sms", PHONE, "resolved")]


async def test_a_caller_gets_an_sms_on_the_number_that_called(desk: Desk) -> None:
    complaint = record("phone", phone=PHONE, wechat_openid=OPENID)
    await desk.take_in(complaint)
    await desk.desk.accept(status(complaint.record_id))
    await desk.send_due()
    assert desk.sent() == [("aliyun_sms", PHONE, "accepted")]


async def test_a_store_complaint_has_no_reply_path_and_follows_the_route(desk: Desk) -> None:
    complaint = record("store", phone=PHONE, email=EMAIL)
    await desk.take_in(complaint)
    await desk.desk.accept(status(complaint.record_id))
    await desk.send_due()
    assert desk.sent() == [("aliyun_sms", PHONE, "accepted")]  # no OpenID: WeChat passed over


async def test_an_update_may_choose_the_channels(desk: Desk) -> None:
    complaint = record("wechat", wechat_openid=OPENID, email=EMAIL)
    await desk.take_in(complaint)
    await desk.desk.accept(status(complaint.record_id, channels=["email"]))
    await desk.send_due()
    assert desk.sent() == [("email", EMAIL, "accepted")]
    assert desk.providers["email"].sent[0].subject == "您的反馈已受理（编号：TS20240520）"


async def test_nobody_reachable_is_a_skip_with_reasons(desk: Desk) -> None:
    complaint = record("store")
    await desk.take_in(complaint)
    applied = await desk.desk.accept(status(complaint.record_id))
    assert applied.added == 0
    [outcome] = await outcomes(desk)
    assert outcome["status"] == "skipped" and outcome["reason"] == "no_reachable_channel"
    assert "wechat: no_contact" in outcome["detail"]


# -- what is refused -------------------------------------------------------------------------


async def test_an_unknown_record_is_404_unless_the_update_names_a_recipient(desk: Desk) -> None:
    with pytest.raises(StatusRejected) as caught:
        await desk.desk.accept(status("wechat:never-seen"))
    assert caught.value.status == 404
    await desk.desk.accept(status("manual:T1", recipient={"email": EMAIL}))
    await desk.send_due()
    assert desk.sent() == [("email", EMAIL, "accepted")]


async def test_a_record_just_taken_in_is_found_before_the_directory_s_next_pass(
    desk: Desk,
) -> None:
    complaint = record("wechat", wechat_openid=OPENID)
    await desk.take_in(complaint)  # nothing has run the directory yet
    applied = await desk.desk.accept(status(complaint.record_id))
    assert applied.added == 1


async def test_bad_and_missing_variables_are_all_listed(desk: Desk) -> None:
    complaint = record("wechat", wechat_openid=OPENID)
    await desk.take_in(complaint)
    with pytest.raises(StatusRejected) as caught:
        await desk.desk.accept(
            status(complaint.record_id, "solution_proposed", variables={"colour": "red"})
        )
    assert caught.value.status == 400
    assert any("variables.colour" in p for p in caught.value.problems)
    assert any("variables.solution" in p for p in caught.value.problems)
    assert await desk.store.jobs() == []


async def test_a_node_that_goes_backwards_is_409_unless_it_reopens(desk: Desk) -> None:
    complaint = record("wechat", wechat_openid=OPENID)
    await desk.take_in(complaint)
    await desk.desk.accept(status(complaint.record_id, "resolved"))
    with pytest.raises(StatusRejected) as caught:
        await desk.desk.accept(status(complaint.record_id, "in_progress"))
    assert caught.value.status == 409
    await desk.desk.accept(status(complaint.record_id, "in_progress", reopens=True))
    await desk.send_due()
    assert [node for _, _, node in desk.sent()] == ["resolved", "in_progress"]


# -- exactly once ----------------------------------------------------------------------------


async def test_the_same_status_delivered_twice_sends_once(desk: Desk) -> None:
    complaint = record("wechat", wechat_openid=OPENID)
    await desk.take_in(complaint)
    first = await desk.desk.accept(status(complaint.record_id))
    await desk.send_due()
    again = await desk.desk.accept(status(complaint.record_id))
    await desk.send_due()
    assert (first.added, again.added, again.already_queued) == (1, 0, 1)
    assert len(desk.sent()) == 1


async def test_a_send_interrupted_by_a_crash_is_in_doubt_never_resent(
    tmp_path: Path, clock: FrozenClock
) -> None:
    first = await open_desk(tmp_path, clock)
    complaint = record("wechat", wechat_openid=OPENID)
    await first.take_in(complaint)
    await first.desk.accept(status(complaint.record_id))
    await first.store.claim(clock.now(), 10, "crashed-run")  # claimed, then the process died
    await first.store.aclose()
    await first.outbox.aclose()

    second = await open_desk(tmp_path, clock)
    try:
        assert len(await second.dispatcher.recover()) == 1
        assert await second.send_due() == 0
        [job] = await second.store.jobs(states=["in_doubt"])
        assert json.loads((await second.store.unpublished(10))[-1].body)["status"] == "unknown"
        await second.store.resend(job.key, clock.now())  # the operator checked: not received
        await second.send_due()
        assert second.sent() == [("wechat", OPENID, "accepted")]
    finally:
        await second.store.aclose()
        await second.outbox.aclose()


async def test_a_lost_answer_is_in_doubt_and_not_retried(desk: Desk) -> None:
    complaint = record("phone", phone=PHONE)
    await desk.take_in(complaint)
    desk.providers["aliyun_sms"].script = [DeliveryInDoubt("no answer")]
    await desk.desk.accept(status(complaint.record_id))
    assert await desk.send_due() == 1
    assert desk.sent() == []
    assert [j.state for j in await desk.store.jobs()] == ["in_doubt"]


# -- failover and retries --------------------------------------------------------------------


async def test_sms_fails_over_to_the_other_provider_when_the_primary_is_down(desk: Desk) -> None:
    complaint = record("phone", phone=PHONE)
    await desk.take_in(complaint)
    desk.providers["aliyun_sms"].script = [ChannelUnavailable("HTTP 503")]
    await desk.desk.accept(status(complaint.record_id))
    await desk.send_due()
    assert desk.sent() == [("tencent_sms", PHONE, "accepted")]


async def test_the_secondary_can_be_made_primary(tmp_path: Path, clock: FrozenClock) -> None:
    desk = await open_desk(tmp_path, clock, providers={"sms": ("tencent_sms", "aliyun_sms")})
    try:
        complaint = record("phone", phone=PHONE)
        await desk.take_in(complaint)
        await desk.desk.accept(status(complaint.record_id))
        await desk.send_due()
        assert desk.sent() == [("tencent_sms", PHONE, "accepted")]
    finally:
        await desk.store.aclose()
        await desk.outbox.aclose()


async def test_an_invalid_number_is_not_failed_over_but_passed_to_the_next_channel(
    desk: Desk,
) -> None:
    complaint = record("phone", phone=PHONE, email=EMAIL)
    await desk.take_in(complaint)
    desk.providers["aliyun_sms"].script = [RecipientUnreachable("invalid number", "invalid_number")]
    await desk.desk.accept(status(complaint.record_id))
    await desk.send_due()
    assert desk.providers["tencent_sms"].calls == 0
    assert desk.sent() == [("email", EMAIL, "accepted")]
    states = sorted((j.channel, j.state) for j in await desk.store.jobs())
    assert states == [("email", "sent"), ("sms", "skipped")]


async def test_a_template_refused_by_one_provider_goes_to_the_other(desk: Desk) -> None:
    complaint = record("phone", phone=PHONE)
    await desk.take_in(complaint)
    desk.providers["aliyun_sms"].script = [DeliveryRefused("template", "template_rejected")]
    await desk.desk.accept(status(complaint.record_id))
    await desk.send_due()
    assert desk.sent() == [("tencent_sms", PHONE, "accepted")]


async def test_an_outage_is_waited_out_then_sent(desk: Desk, clock: FrozenClock) -> None:
    complaint = record("phone", phone=PHONE)
    await desk.take_in(complaint)
    down = [ChannelUnavailable("HTTP 503")]
    desk.providers["aliyun_sms"].script = down * 2
    desk.providers["tencent_sms"].script = [ChannelRateLimited("limit", retry_after=30), *down]
    await desk.desk.accept(status(complaint.record_id))
    assert await desk.send_due() == 2  # one round: both providers down
    [waiting] = await desk.store.jobs(states=["queued"])
    assert waiting.due_at == clock.now() + timedelta(seconds=30)  # the provider's Retry-After
    clock.advance(30)
    await desk.send_due()
    assert desk.sent() == []  # still down
    clock.advance(3600)
    await desk.send_due()
    assert desk.sent() == [("aliyun_sms", PHONE, "accepted")]
    [outcome] = [o for o in await outcomes(desk) if o["status"] == "sent"]
    assert outcome["attempts"] == 5


async def test_after_the_retry_budget_a_dead_letter_that_can_be_resent(
    tmp_path: Path, clock: FrozenClock
) -> None:
    desk = await open_desk(tmp_path, clock, max_attempts=2, providers={"sms": ("aliyun_sms",)})
    try:
        complaint = record("phone", phone=PHONE, email=EMAIL)
        await desk.take_in(complaint)
        for name in ("aliyun_sms", "tencent_sms"):
            desk.providers[name].script = [ChannelUnavailable("HTTP 503")] * 2
        await desk.desk.accept(status(complaint.record_id))
        for _ in range(4):
            await desk.send_due()
            clock.advance(600)
        [dead] = await desk.store.jobs(states=["dead"])
        assert dead.channel == "sms" and "503" in dead.error
        assert desk.sent() == [("email", EMAIL, "accepted")]  # the customer still heard
        await desk.store.resend(dead.key, clock.now())
        await desk.send_due()
        assert ("aliyun_sms", PHONE, "accepted") in desk.sent()
    finally:
        await desk.store.aclose()
        await desk.outbox.aclose()


async def test_stopping_returns_jobs_still_waiting_for_the_rate_limit_to_the_queue(
    tmp_path: Path, clock: FrozenClock
) -> None:
    slow = NotifierSettings(rate_per_second=0.2, burst=1)  # one call, then one every 5 s
    desk = await open_desk(tmp_path, clock, provider_settings=slow)
    try:
        complaints = [record("phone", number=n, phone=f"+861380013800{n}") for n in range(3)]
        await desk.take_in(*complaints)
        for complaint in complaints:
            await desk.desk.accept(status(complaint.record_id))
        dispatcher = Dispatcher(
            desk.store,
            desk.dispatcher.planner,
            desk.settings,
            clock,
            sole_owner=True,
            drain_seconds=0.5,
        )
        running = asyncio.create_task(dispatcher.run())
        while not desk.sent():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        states = sorted(j.state for j in await desk.store.jobs())
        assert states == ["queued", "queued", "sent"]  # none in doubt: they never went out
    finally:
        await desk.store.aclose()
        await desk.outbox.aclose()


# -- policy ----------------------------------------------------------------------------------


async def test_opted_out_customers_are_not_messaged_except_for_mandatory_nodes(
    desk: Desk,
) -> None:
    complaint = record("phone", phone=PHONE, email=EMAIL)
    await desk.take_in(complaint)
    await desk.store.set_opt_out(f"sms:{PHONE}", True, source="operator", at=DAYTIME)
    await desk.desk.accept(status(complaint.record_id))
    await desk.desk.accept(status(complaint.record_id, "resolved"))
    await desk.send_due()
    assert sorted(desk.sent()) == [("aliyun_sms", PHONE, "resolved"), ("email", EMAIL, "accepted")]


async def test_sms_waits_for_the_end_of_quiet_hours_but_p1_does_not(
    desk: Desk, clock: FrozenClock
) -> None:
    clock.at = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)  # 23:30 in China
    calm = record("phone", number=1, phone=PHONE)
    urgent = record("phone", number=2, phone="+8613900139000", priority="P1")
    await desk.take_in(calm, urgent)
    await desk.desk.accept(status(calm.record_id))
    await desk.desk.accept(status(urgent.record_id))
    await desk.send_due()
    assert desk.sent() == [("aliyun_sms", "+8613900139000", "accepted")]
    [held] = await desk.store.jobs(states=["queued"])
    assert held.due_at == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # 08:00 in China
    clock.at = held.due_at
    await desk.send_due()
    assert ("aliyun_sms", PHONE, "accepted") in desk.sent()


def test_quiet_hours_cross_midnight_in_the_customers_zone() -> None:
    quiet = QuietHours()
    china = lambda h, m=0: datetime(2026, 11, 30, h, m, tzinfo=UTC) - timedelta(hours=8)  # noqa: E731
    assert quiet_until(china(20, 59), quiet) is None
    assert quiet_until(china(21, 0), quiet) == china(8) + timedelta(days=1)
    assert quiet_until(china(7, 59), quiet) == china(8)
    assert quiet_until(china(8, 0), quiet) is None


async def test_the_rate_limit_holds_calls_to_the_provider_s_pace() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limit = RateLimit(rate=10, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        await limit.acquire()
    assert now[0] == pytest.approx(0.3)  # two at once, then one every 0.1 s


# -- timers ----------------------------------------------------------------------------------


async def test_an_sla_timer_apologises_when_nothing_happened_in_time_even_after_a_restart(
    tmp_path: Path, clock: FrozenClock
) -> None:
    first = await open_desk(tmp_path, clock)
    urgent = record("wechat", number=1, priority="P1", wechat_openid=OPENID)
    handled = record(
        "wechat", number=2, priority="P1", wechat_openid="oOther0000000000000000000000"
    )
    await first.take_in(urgent, handled)
    await first.desk.directory.catch_up()
    await first.desk.accept(status(handled.record_id, "in_progress"))
    await first.send_due()
    await first.store.aclose()
    await first.outbox.aclose()

    clock.advance(15 * 60)
    second = await open_desk(tmp_path, clock)
    try:
        assert await second.desk.fire_timers() == 1
        await second.send_due()
        assert second.sent() == [("wechat", OPENID, "overdue_warning")]
        assert await second.desk.fire_timers() == 0  # once
    finally:
        await second.store.aclose()
        await second.outbox.aclose()


async def test_the_survey_follows_resolved_after_the_delay(desk: Desk, clock: FrozenClock) -> None:
    complaint = record("wechat", wechat_openid=OPENID)
    await desk.take_in(complaint)
    await desk.desk.accept(status(complaint.record_id, "resolved"))
    await desk.send_due()
    clock.advance(9 * 60)
    assert await desk.desk.fire_timers() == 0
    clock.advance(60)
    assert await desk.desk.fire_timers() == 1
    await desk.send_due()
    assert [node for _, _, node in desk.sent()] == ["resolved", "survey"]
    assert "评分" in desk.providers["wechat"].sent[-1].text


# -- configuration ---------------------------------------------------------------------------


async def test_templates_are_checked_at_start_not_at_send(desk: Desk) -> None:
    settings = NotificationSettings(
        texts={
            "sms": {"accepted": "您好 {eta} {colour}"},
            "email": {"overdue_warning": "预计 {eta} 前处理"},
            "fax": {"accepted": "x"},
        }
    )
    problems = Planner(settings, desk.providers).problems()
    assert any("sms.accepted: {colour} is not a variable" in p for p in problems)
    assert any("email.overdue_warning: {eta} has no value" in p for p in problems)
    assert any("texts.fax: no [notifiers.*] sends fax" in p for p in problems)
    assert not any("{eta} is not a variable" in p for p in problems)


async def test_a_dispatcher_woken_as_it_is_stopped_still_stops(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """A wake-up (a send finishing, a job queued) in the very tick the gateway stops the
    dispatcher must not swallow the stop: on Python 3.11, ``asyncio.wait_for`` returns the
    finished wait and drops the cancel (cpython#86296), and the dispatcher ran on forever."""
    desk = await open_desk(tmp_path, clock)
    try:
        running = asyncio.create_task(desk.dispatcher.run())
        await asyncio.sleep(0.3)  # no work: it is in its idle wait for a wake-up
        desk.dispatcher.wake()
        running.cancel()
        done, _ = await asyncio.wait({running}, timeout=5)
        assert done == {running}, "the dispatcher did not stop"
        assert running.cancelled()
    finally:
        await desk.store.aclose()
        await desk.outbox.aclose()
