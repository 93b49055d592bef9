"""kill -9 in the middle of a marketplace poll and of a Weibo page walk: after the restart
nothing is missed and nothing becomes two records.

The platforms are the fakes of :mod:`service.fake_platforms`, served over
loopback HTTP (each answer delayed, as across the internet) to a real gateway
process; they check every request's signature and token as the platforms do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors import pinduoduo
from connectors.taobao import refund_event
from schemas import record_id_for
from service.fake_platforms import serving_in_a_thread
from service.fake_platforms.pinduoduo import FakePinduoduo
from service.fake_platforms.top import FakeTop
from service.fake_platforms.weibo import FakeWeibo
from tests.process import GatewayProcess, make_gateway_process, wait_until
from tests.test_process import assert_same_copies, published_ids

__all__ = ["make_gateway_process"]  # a fixture used below

pytestmark = pytest.mark.process

APP_KEY = "12345678"
APP_SECRET = "crash-top-secret-4d1f"
SESSION = "6100e23657fb0b2d0c78570b8d1b7e6c5a3b"
#: Seconds each fake answer waits: a 20-page walk takes about a second.
LATENCY = 0.05


@pytest.fixture
def top() -> Iterator[tuple[FakeTop, str]]:
    fake = FakeTop(APP_KEY, APP_SECRET, SESSION)
    with serving_in_a_thread({"top": fake}, latency=LATENCY) as base:
        yield fake, f"{base}/top/router/rest"


def refund_ids(refunds: list[dict[str, Any]]) -> set[str]:
    now = datetime.now(UTC)
    return {record_id_for("taobao", refund_event(r, now).source_key) for r in refunds}


def later_pages(fake: FakeTop, since: int) -> int:
    """Refund pages after the first that were asked for since request number ``since``."""
    return sum(
        1
        for r in list(fake.requests)[since:]
        if r.get("method") == "taobao.refunds.receive.get" and r.get("page_no") != "1"
    )


def test_a_taobao_poller_killed_mid_walk_misses_nothing_and_repeats_nothing(
    make_gateway_process: Callable[..., GatewayProcess], top: tuple[FakeTop, str]
) -> None:
    fake, api = top
    first = fake.add_backlog(1000)
    process = make_gateway_process(
        GATEWAY_CONNECTORS__TAOBAO__APP_KEY=APP_KEY,
        GATEWAY_CONNECTORS__TAOBAO__APP_SECRET=APP_SECRET,
        GATEWAY_CONNECTORS__TAOBAO__SESSION=SESSION,
        GATEWAY_CONNECTORS__TAOBAO__API_BASE=api,
        GATEWAY_CONNECTORS__TAOBAO__INTERVAL_SECONDS="0.2",
        GATEWAY_CONNECTORS__TAOBAO__INITIAL_LOOKBACK_SECONDS="7200",
        GATEWAY_CONNECTORS__TAOBAO__RATINGS="false",
    )
    wait_until(lambda: len(process.outbox_rows()) == 1000, 60, "the first backlog is taken in")

    # 2,000 refunds change now: the next poll walks 20 pages; kill it half-way
    second = [fake.add(modified=fake.top_time(0), reason="质量问题") for _ in range(2000)]
    asked = len(fake.requests)
    wait_until(lambda: later_pages(fake, asked) >= 6, 30, "the poll is walking its pages")
    process.kill()
    assert len(process.outbox_rows()) < 3000, "the kill should land before the walk committed"

    third = [fake.add(modified=fake.top_time(0), desc="停机期间提交") for _ in range(100)]
    process.start()
    expected = refund_ids(first + second + third)
    assert len(expected) == 3100
    wait_until(lambda: set(published_ids(process)) == expected, 90, "every refund is published")
    rows = process.outbox_rows()
    assert len(rows) == 3100 and set(rows) == expected  # one record per refund, none twice
    assert_same_copies(process)
    assert process.stop() == 0


WEIBO_TOKEN = "2.00CrashToken4e5f6a7b8c9d"


def test_a_weibo_poller_killed_mid_page_walk_misses_nothing_and_repeats_nothing(
    make_gateway_process: Callable[..., GatewayProcess],
) -> None:
    fake = FakeWeibo(WEIBO_TOKEN)
    backlog = fake.add_backlog("comments/to_me", 3000)
    with serving_in_a_thread({"weibo": fake}, latency=LATENCY) as base:
        process = make_gateway_process(
            GATEWAY_CONNECTORS__WEIBO__ACCESS_TOKEN=WEIBO_TOKEN,
            GATEWAY_CONNECTORS__WEIBO__API_BASE=f"{base}/weibo/2",
            GATEWAY_CONNECTORS__WEIBO__ENDPOINTS='["comments/to_me"]',
            GATEWAY_CONNECTORS__WEIBO__COUNT="50",
            GATEWAY_CONNECTORS__WEIBO__MAX_PAGES="4",
            GATEWAY_CONNECTORS__WEIBO__INTERVAL_SECONDS="0.2",
        )
        # the walk goes backwards from the newest, 200 comments a poll, committing each
        wait_until(lambda: len(process.outbox_rows()) >= 600, 60, "the walk is part-way through")
        process.kill()
        taken = len(process.outbox_rows())
        assert 600 <= taken < 3000, "the kill should land in the middle of the walk"

        later = [
            fake.add("comments/to_me", f"停机期间的第{n}条评论：退款还没到") for n in range(150)
        ]
        process.start()
        expected = {record_id_for("weibo", f"comment:{c['idstr']}") for c in backlog + later}
        assert len(expected) == 3150
        wait_until(lambda: set(published_ids(process)) == expected, 90, "every comment is in")
        rows = process.outbox_rows()
        assert len(rows) == 3150 and set(rows) == expected  # one record per comment, none twice
        assert_same_copies(process)
        assert process.stop() == 0


def test_a_pinduoduo_poller_killed_between_windows_misses_nothing_and_repeats_nothing(
    make_gateway_process: Callable[..., GatewayProcess],
) -> None:
    """PDD answers 30 minutes a call: four hours of after-sales are walked window by window,
    one window committed per poll here, and the kill lands between two of them."""
    fake = FakePinduoduo("crash-pdd", "crash-pdd-secret-8e2a", "crash-pdd-token")
    fake.add_backlog(3000, span_seconds=4 * 3600)
    with serving_in_a_thread({"pdd": fake}, latency=LATENCY) as base:
        process = make_gateway_process(
            GATEWAY_CONNECTORS__PINDUODUO__CLIENT_ID="crash-pdd",
            GATEWAY_CONNECTORS__PINDUODUO__CLIENT_SECRET="crash-pdd-secret-8e2a",
            GATEWAY_CONNECTORS__PINDUODUO__ACCESS_TOKEN="crash-pdd-token",
            GATEWAY_CONNECTORS__PINDUODUO__API_BASE=f"{base}/pdd/api/router",
            GATEWAY_CONNECTORS__PINDUODUO__INITIAL_LOOKBACK_SECONDS=str(5 * 3600),
            GATEWAY_CONNECTORS__PINDUODUO__MAX_WINDOWS_PER_POLL="1",
            GATEWAY_CONNECTORS__PINDUODUO__INTERVAL_SECONDS="0.2",
        )
        wait_until(lambda: len(process.outbox_rows()) >= 600, 60, "some windows are committed")
        process.kill()
        taken = len(process.outbox_rows())
        assert 600 <= taken < 3000, "the kill should land between two windows"

        for n in range(100):  # after-sales that changed while the gateway was down
            fake.add(id=500000000 + n, after_sale_reason=f"停机期间申请的第{n}个售后")
        process.start()
        now = datetime.now(UTC)
        expected = {
            record_id_for("pinduoduo", pinduoduo.refund_event(r, now).source_key)
            for r in fake.refunds
        }
        assert len(expected) == 3100
        wait_until(lambda: set(published_ids(process)) == expected, 120, "every after-sale is in")
        rows = process.outbox_rows()
        assert len(rows) == 3100 and set(rows) == expected  # one record per after-sale, none twice
        assert_same_copies(process)
        assert process.stop() == 0
