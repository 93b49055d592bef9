"""The ``weibo`` poller against a fake Weibo Open API (respx, strict), in Weibo's own JSON.

The fake (:class:`service.fake_platforms.weibo.FakeWeibo`) answers
``comments/to_me``, ``comments/mentions`` and ``statuses/mentions`` the way
Weibo documents them: newest first, ``since_id`` exclusive, ``max_id``
inclusive, ``count`` per page, errors as ``{"error", "error_code", "request"}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
)
from connectors.weibo import WeiboConnector, WeiboSettings
from normalizer.weibo_feed import WeiboFeedNormalizer, followers_label
from service.fake_platforms.weibo import FakeWeibo, error_envelope, weibo_comment
from tests.fakes import FrozenClock
from tests.test_polling_contract import NOW, PollingConnectorContract

TOKEN = "2.00TOKENsecretABCdef123"
API = "https://api.weibo.test/2"


@pytest.fixture
def weibo() -> Iterator[FakeWeibo]:
    fake = FakeWeibo(TOKEN)
    with respx.mock(assert_all_called=False) as router:
        router.get(url__startswith=API).mock(side_effect=fake.handle)
        yield fake


def connector(**overrides: Any) -> WeiboConnector:
    settings = WeiboSettings.model_validate({"access_token": TOKEN, "api_base": API} | overrides)
    return WeiboConnector(settings, FrozenClock(NOW))


def texts(events: Sequence[Any]) -> list[str]:
    return [e.payload["item"]["text"] for e in events]


class TestWeiboContract(PollingConnectorContract):
    name = "weibo"
    secret_values = (TOKEN,)

    @pytest.fixture(autouse=True)
    def _fake(self, weibo: FakeWeibo) -> None:
        self.fake = weibo

    def settings_section(self, tmp_path: Path) -> dict[str, Any]:
        return {"access_token": TOKEN, "api_base": API}

    def add_messages(self, tmp_path: Path, texts: Sequence[str]) -> None:
        for text in texts:
            self.fake.add("comments/to_me", text)

    def break_platform(self, tmp_path: Path, how: str) -> dict[str, Any] | None:
        if how == "credentials":
            return {"access_token": "2.00expired"}
        self.fake.failure = httpx.Response(502, text="<html>502 Bad Gateway</html>")
        return {}


async def test_a_burst_of_three_pages_is_taken_whole_and_once(weibo: FakeWeibo) -> None:
    poller = connector(count=3, endpoints=["comments/to_me"])
    weibo.add("comments/to_me", "旧评论")
    first = await poller.poll(None)
    assert texts(first.events) == ["旧评论"]
    since = json.loads(first.cursor or "")["comments/to_me"]["since_id"]

    burst = [f"投诉{n}" for n in range(8)]  # pages of 3, 3 and 2
    for text in burst:
        weibo.add("comments/to_me", text)
    weibo.requests.clear()
    second = await poller.poll(first.cursor)

    assert texts(second.events) == burst  # oldest first, none twice, none lost
    assert not second.more
    asked = [params for _, params in weibo.requests]
    assert all(p["since_id"] == since for p in asked)
    assert "max_id" not in asked[0]
    ids = sorted(int(e.source_key.split(":")[1]) for e in second.events)
    # max_id is inclusive: each page asks below the smallest id it has seen
    assert asked[1]["max_id"] == str(ids[-3] - 1) and asked[2]["max_id"] == str(ids[-6] - 1)
    newest = json.loads(second.cursor or "")["comments/to_me"]["since_id"]
    assert newest == str(ids[-1])

    weibo.add("comments/to_me", "下一条")
    weibo.requests.clear()
    third = await poller.poll(second.cursor)
    assert texts(third.events) == ["下一条"]
    assert weibo.requests[0][1]["since_id"] == newest
    await poller.aclose()


async def test_a_walk_longer_than_max_pages_resumes_where_it_stopped(weibo: FakeWeibo) -> None:
    poller = connector(count=2, max_pages=2, endpoints=["comments/to_me"])
    weibo.add("comments/to_me", "起点")
    start = await poller.poll(None)
    burst = [f"积压{n}" for n in range(7)]
    for text in burst:
        weibo.add("comments/to_me", text)

    part = await poller.poll(start.cursor)
    assert part.more and texts(part.events) == burst[3:]
    assert (
        json.loads(part.cursor or "")["comments/to_me"]["since_id"]
        == json.loads(start.cursor or "")["comments/to_me"]["since_id"]
    )  # not moved until the walk reaches it
    weibo.add("comments/to_me", "途中新来的")
    taken, cursor, more = texts(part.events), part.cursor, part.more
    while more:  # the runner polls again at once while ``more``
        step = await poller.poll(cursor)
        taken, cursor, more = taken + texts(step.events), step.cursor, step.more
    assert sorted(taken) == sorted(burst) and len(taken) == len(burst)
    last = await poller.poll(cursor)
    assert texts(last.events) == ["途中新来的"]
    assert (await poller.poll(last.cursor)).events == []
    await poller.aclose()


async def test_ids_beyond_2_53_stay_exact(weibo: FakeWeibo) -> None:
    weibo.next_id = 2**53 - 6  # ids 2^53 + 1, 2^53 + 8: a float would round them
    for text in ("一", "二"):
        weibo.add("comments/to_me", text, as_number_only=True)
    poller = connector(endpoints=["comments/to_me"])
    result = await poller.poll(None)
    assert [e.source_key for e in result.events] == [
        f"comment:{2**53 + 1}",
        f"comment:{2**53 + 8}",
    ]
    cursor = json.loads(result.cursor or "")
    assert cursor == {"comments/to_me": {"since_id": str(2**53 + 8)}}
    weibo.add("comments/to_me", "三", as_number_only=True)
    weibo.requests.clear()
    assert texts((await poller.poll(result.cursor)).events) == ["三"]
    assert weibo.requests[0][1]["since_id"] == str(2**53 + 8)
    await poller.aclose()


async def test_each_endpoint_keeps_its_own_cursor_and_a_comment_is_taken_once(
    weibo: FakeWeibo,
) -> None:
    to_me = weibo.add("comments/to_me", "在你们微博下评论并且@你们")
    weibo.items["comments/mentions"].append(to_me)  # the same comment, found twice
    weibo.add("statuses/mentions", "@某品牌 发帖投诉")
    poller = connector()
    result = await poller.poll(None)
    assert sorted(e.source_key.split(":")[0] for e in result.events) == ["comment", "status"]
    assert {e.headers["endpoint"] for e in result.events} == {"comments/to_me", "statuses/mentions"}
    cursor = json.loads(result.cursor or "")
    assert set(cursor) == {"comments/to_me", "comments/mentions", "statuses/mentions"}
    assert TOKEN not in (result.cursor or "")
    records = [WeiboFeedNormalizer().normalize(e) for e in result.events]
    status_record = next(r for r in records if getattr(r, "channel_detail", "").startswith("微博@"))
    assert status_record.source.thread_id == status_record.source.message_id  # type: ignore[union-attr]
    await poller.aclose()


async def test_an_unreadable_item_is_rejected_and_the_rest_taken(weibo: FakeWeibo) -> None:
    weibo.add("comments/to_me", "好的一条")
    broken = weibo_comment(weibo.next_id + 1, "id 读不出")
    broken["idstr"] = "52318477600000O1"  # a letter O among the digits
    weibo.items["comments/to_me"].append(broken)
    result = await connector(endpoints=["comments/to_me"]).poll(None)
    assert texts(result.events) == ["好的一条"]
    assert [r.error.reason for r in result.rejected] == ["invalid_field"]


@pytest.mark.parametrize(
    ("code", "error", "expected"),
    [
        (21315, "expired_token", ChannelAuthError),
        (21327, "expired_token", ChannelAuthError),
        (21332, "invalid_access_token", ChannelAuthError),
        (10022, "IP requests out of rate limit", ChannelRateLimited),
        (10023, "User requests out of rate limit!", ChannelRateLimited),
        (10024, "User requests for (comments/to_me) out of rate limit!", ChannelRateLimited),
        (10001, "system error", ChannelUnavailable),
        (10009, "too many pending tasks, system is busy", ChannelUnavailable),
    ],
)
async def test_weibo_error_envelopes_are_classified(
    weibo: FakeWeibo, code: int, error: str, expected: type[Exception]
) -> None:
    weibo.failure = error_envelope(code, error, "comments/to_me", status=403)
    with pytest.raises(expected) as caught:
        await connector().poll(None)
    assert str(code) in str(caught.value) and TOKEN not in str(caught.value)


async def test_a_bad_request_is_an_error_of_ours_not_retried_as_transient(
    weibo: FakeWeibo,
) -> None:
    weibo.failure = error_envelope(10017, "parameter (count)'s value invalid", "comments/to_me")
    with pytest.raises(ChannelError) as caught:
        await connector().poll(None)
    assert not isinstance(caught.value, ChannelUnavailable | ChannelRateLimited | ChannelAuthError)
    assert "/2/comments/to_me.json" in str(caught.value)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(429, headers={"Retry-After": "120"}, text=""), ChannelRateLimited),
        (httpx.Response(503, text="busy"), ChannelUnavailable),
        (httpx.Response(200, text="<html>maintenance</html>"), ChannelUnavailable),
        (httpx.Response(401, text=""), ChannelAuthError),
        (httpx.Response(200, json={"total_number": 0}), ChannelError),
    ],
)
async def test_http_failures_without_an_envelope_are_classified(
    weibo: FakeWeibo, response: httpx.Response, expected: type[Exception]
) -> None:
    weibo.failure = response
    with pytest.raises(expected) as caught:
        await connector().poll(None)
    if isinstance(caught.value, ChannelRateLimited):
        assert caught.value.retry_after == 120


async def test_the_token_travels_in_the_header_never_in_the_url(weibo: FakeWeibo) -> None:
    weibo.add("comments/to_me", "看看请求")
    await connector(endpoints=["comments/to_me"]).poll(None)
    assert weibo.urls and all(TOKEN not in url for url in weibo.urls)


@pytest.mark.parametrize("cursor", ["{not json", '{"comments/to_me": {"since_id": "abc"}}', "[]"])
async def test_an_unreadable_cursor_is_reported_not_taken_as_the_start(
    weibo: FakeWeibo, cursor: str
) -> None:
    weibo.add("comments/to_me", "不应重新读取全部历史")
    with pytest.raises(ChannelError, match="cursor"):
        await connector().poll(cursor)
    assert weibo.requests == []


@pytest.mark.parametrize(
    ("count", "label"),
    [
        (0, "粉丝 0"),
        (9999, "粉丝 9999"),
        (10000, "粉丝 1 万"),
        (123456, "粉丝 12.3 万"),
        (150_000_000, "粉丝 1.5 亿"),
    ],
)
def test_follower_counts_read_as_weibo_shows_them(count: int, label: str) -> None:
    assert followers_label(count) == label


async def test_start_at_end_skips_the_history_weibo_still_lists(weibo: FakeWeibo) -> None:
    weibo.add("comments/to_me", "三个月前的评论")
    poller = connector(start_at="end", endpoints=["comments/to_me", "statuses/mentions"])
    first = await poller.poll(None)
    assert first.events == [] and first.cursor is not None
    assert json.loads(first.cursor)["statuses/mentions"] == {"since_id": "0"}  # none yet
    weibo.add("comments/to_me", "今天的评论")
    weibo.add("statuses/mentions", "@某品牌 今天的帖子")
    later = await poller.poll(first.cursor)
    assert texts(later.events) == ["今天的评论", "@某品牌 今天的帖子"]
    await poller.aclose()


async def test_each_event_body_is_a_one_item_page_that_reads_back(weibo: FakeWeibo) -> None:
    weibo.add("comments/to_me", "原样保存😡")
    (event,) = (await connector(endpoints=["comments/to_me"]).poll(None)).events
    (again,) = WeiboConnector.parse(event.body, event.received_at)
    assert again.source_key == event.source_key and again.payload == event.payload


def weibo_event(kind: str, item: Any) -> Any:
    from datetime import UTC, datetime

    from schemas import RawEvent

    return RawEvent(
        channel="weibo",
        connector="weibo",
        source_key="comment:1",
        received_at=datetime(2026, 11, 23, tzinfo=UTC),
        payload={"kind": kind, "item": item},
        body=b"{}",
        media_type="application/json",
    )


@pytest.mark.parametrize(
    ("user", "detail"),
    [
        ({"idstr": "1", "followers_count": True, "verified": "true"}, "微博@提及"),
        ({"idstr": "1", "followers_count": -5}, "微博@提及"),
        ({"idstr": "1", "followers_count": "12,000"}, "微博@提及"),
        (
            {"idstr": "", "id": 2, "followers_count": 100_000_000, "verified": True},
            "微博@提及（粉丝 1 亿，认证）",
        ),
    ],
)
def test_odd_reach_fields_are_left_out_not_guessed(user: dict[str, Any], detail: str) -> None:
    item = {"idstr": "5231822000000777", "text": "@某品牌 投诉", "user": user, "reposts_count": "0"}
    record = WeiboFeedNormalizer().normalize(weibo_event("status", item))
    assert getattr(record, "channel_detail", None) == detail


@pytest.mark.parametrize(
    ("kind", "item", "reason"),
    [
        ("direct_message", {"idstr": "1", "text": "x", "user": {"idstr": "1"}}, "invalid_field"),
        ("comment", "not an object", "invalid_field"),
        ("comment", {"idstr": "1", "text": "x", "user": "someone"}, "missing_field"),
        ("comment", {"idstr": "1", "text": 5, "user": {"idstr": "1"}}, "invalid_field"),
    ],
)
def test_unreadable_items_are_refused_by_reason(kind: str, item: Any, reason: str) -> None:
    from connectors.errors import MalformedPayload

    with pytest.raises(MalformedPayload) as caught:
        WeiboFeedNormalizer().normalize(weibo_event(kind, item))
    assert caught.value.reason == reason


async def test_a_backlog_is_taken_whole_once_each_comment_distinct(weibo: FakeWeibo) -> None:
    backlog = weibo.add_backlog("comments/to_me", 120)
    assert len({c["idstr"] for c in backlog}) == len({c["text"] for c in backlog}) == 120
    poller = connector(count=50, max_pages=10, endpoints=["comments/to_me"])
    result = await poller.poll(None)
    assert texts(result.events) == [c["text"] for c in backlog] and not result.more
    assert len({e.source_key for e in result.events}) == 120
    await poller.aclose()
