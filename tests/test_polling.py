"""The poll runner with an in-memory platform: schedules, retries, cursors, /channels.

``ListPoller`` is a real :class:`PollingConnector` over a list of messages
(its cursor is the index of the next one), so these tests exercise the
runner, the intake and the SQLite outbox for real; only the platform is
in memory. Connectors that talk to real systems have their own tests
(tests/test_asterisk_csv.py, tests/test_imap.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from connectors.errors import (
    ChannelAuthError,
    ChannelRateLimited,
    ChannelUnavailable,
    MalformedPayload,
)
from connectors.polling import PollingConnector, PollingSettings, PollResult, Rejected
from gateway import Gateway, running_gateway
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent
from service.board import ConnectorState
from service.registry import Registry
from service.settings import load_settings
from tests.fakes import FrozenClock, MemorySink


class ListSettings(PollingSettings):
    batch: int = 2


class ListPoller(PollingConnector):
    """Messages come from ``platform`` (class-level, so a test can reach the instance's)."""

    name = "listbox"
    channel = "email"
    settings_model = ListSettings
    settings: ListSettings
    platform: ClassVar[list[Any]] = []
    polled_from: ClassVar[list[str | None]] = []

    async def poll(self, cursor: str | None) -> PollResult:
        type(self).polled_from.append(cursor)
        start = int(cursor or 0)
        if start < len(self.platform) and isinstance(self.platform[start], BaseException):
            error = self.platform.pop(start)
            raise error
        if start < len(self.platform) and self.platform[start] == "hang":
            await asyncio.sleep(3600)
        end = min(start + self.settings.batch, len(self.platform))
        events, rejected = [], []
        for index in range(start, end):
            text = str(self.platform[index])
            if text.startswith("bad"):
                error = MalformedPayload("not a message", "invalid_field")
                rejected.append(Rejected(text.encode(), error, source_key=str(index)))
                continue
            events.append(
                RawEvent(
                    channel="email",
                    connector=self.name,
                    source_key=f"m{index}",
                    received_at=self.clock.now(),
                    payload={"text": text},
                    body=text.encode(),
                    media_type="text/plain",
                )
            )
        return PollResult(events, str(end), rejected, more=end < len(self.platform))


class ListNormalizer(Normalizer):
    channel = "email"

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        text = str(event.payload["text"])
        if text == "auto-reply":
            return NotAComplaint("autoreply")
        return build_record(
            event,
            customer={"id": "email:a@example.cn", "contacts": {"email": "a@example.cn"}},
            description=text,
            channel_detail="邮件",
        )


@pytest.fixture
def list_registry() -> Registry:
    base = Registry.from_entry_points()
    return Registry.from_plugins(
        connectors=[*base.connectors.items(), ("listbox", ListPoller)],
        normalizers=[
            *((n, type(v)) for n, v in base.normalizers.items()),
            ("listbox", ListNormalizer),
        ],
    )


@pytest.fixture(autouse=True)
def _fresh_platform() -> None:
    ListPoller.platform = []
    ListPoller.polled_from = []


def gateway_for(registry: Registry, data: Path, sink: MemorySink, **section: Any) -> Any:
    settings = load_settings(
        registry,
        data_dir=data,
        connectors={
            "wechat": {"token": "wechat-token-x"},
            "listbox": {"interval_seconds": 0.01, "timeout_seconds": 0.5, **section},
        },
    )
    return running_gateway(settings, registry, clock=FrozenClock(), sink=sink)


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture
async def gw(list_registry: Registry, tmp_path: Path, sink: MemorySink) -> AsyncIterator[Gateway]:
    async with gateway_for(list_registry, tmp_path, sink) as gateway:
        yield gateway


def state(gateway: Gateway) -> ConnectorState:
    return gateway.board.states["listbox"]


async def test_polled_messages_are_published_and_the_cursor_is_committed(
    list_registry: Registry, tmp_path: Path, sink: MemorySink
) -> None:
    ListPoller.platform = ["漏水了", "退款", "auto-reply", "换货", "bad\x00"]
    async with gateway_for(list_registry, tmp_path, sink) as gw:
        await sink.wait_for(3)
        await wait_for(lambda: state(gw).cursor == "5")
        assert [r["description"] for r in sink.records] == ["漏水了", "退款", "换货"]
        assert {r["source"]["connector"] for r in sink.records} == {"listbox"}
        assert await gw.outbox.cursor("listbox") == "5"
        (bad,) = await gw.outbox.quarantined()
        assert (bad.channel, bad.reason, bad.body) == ("listbox", "invalid_field", b"bad\x00")


async def test_a_restart_resumes_from_the_committed_cursor(
    list_registry: Registry, tmp_path: Path, sink: MemorySink
) -> None:
    ListPoller.platform = ["一", "二", "三"]
    async with gateway_for(list_registry, tmp_path, sink) as gw:
        await wait_for(lambda: state(gw).cursor == "3")
        await sink.wait_for(3)
    ListPoller.platform += ["四"]
    ListPoller.polled_from = []
    async with gateway_for(list_registry, tmp_path, sink) as gw:
        await wait_for(lambda: state(gw).cursor == "4")
        await sink.wait_for(4)
    assert ListPoller.polled_from[0] == "3"
    assert [r["description"] for r in sink.records] == ["一", "二", "三", "四"]


async def test_a_poll_repeated_after_a_lost_commit_publishes_nothing_twice(
    list_registry: Registry, tmp_path: Path, sink: MemorySink
) -> None:
    """Records written, cursor not: the next poll repeats them, record ids absorb it."""
    ListPoller.platform = ["甲", "乙"]
    async with gateway_for(list_registry, tmp_path, sink) as gw:
        await wait_for(lambda: state(gw).cursor == "2")
        await gw.outbox._call(lambda c: c.execute("DELETE FROM cursors"))
    async with gateway_for(list_registry, tmp_path, sink) as gw:
        await wait_for(lambda: len(ListPoller.polled_from) >= 3 and state(gw).cursor == "2")
        await sink.wait_for(2)
        await asyncio.sleep(0.05)
        assert len(await gw.outbox.select(since=None)) == 2
    assert sorted(r["description"] for r in sink.records) == ["乙", "甲"]


async def test_transient_failures_are_retried_and_rate_limits_honoured(
    list_registry: Registry, tmp_path: Path, sink: MemorySink
) -> None:
    ListPoller.platform = [ChannelUnavailable("503 from the platform"), "第一封"]
    async with gateway_for(list_registry, tmp_path, sink) as gw:
        runner = gw.runners["listbox"]
        waits: list[float] = []

        async def record(seconds: float) -> None:
            waits.append(seconds)

        runner._retry = runner._retry.copy(sleep=record)
        ListPoller.platform.insert(1, ChannelRateLimited("slow down", retry_after=7))
        await sink.wait_for(1)
    assert 7 in waits
    assert sink.records[0]["description"] == "第一封"


async def test_refused_credentials_stop_only_that_poller_and_are_reported(
    list_registry: Registry, tmp_path: Path, sink: MemorySink
) -> None:
    ListPoller.platform = [ChannelAuthError("LOGIN refused for a***@example.cn")]
    async with gateway_for(list_registry, tmp_path, sink) as gw:
        await wait_for(lambda: state(gw).stopped is not None)
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            channels = (await client.get("/channels")).json()
            ready = await client.get("/readyz")
        entry = channels["listbox"]
        assert entry["kind"] == "poller" and entry["channel"] == "email"
        assert entry["last_error"]["class"] == "ChannelAuthError"
        assert entry["consecutive_failures"] == 1
        assert "credentials refused" in entry["stopped"]
        assert channels["wechat"]["kind"] == "webhook"
        assert ready.status_code == 200, "a dead mailbox must not take the webhooks out"
        polls = len(ListPoller.polled_from)
        await asyncio.sleep(0.1)
        assert len(ListPoller.polled_from) == polls


async def test_a_hanging_poll_times_out_and_is_reported(
    list_registry: Registry, tmp_path: Path, sink: MemorySink
) -> None:
    ListPoller.platform = ["hang"]
    async with gateway_for(list_registry, tmp_path, sink, timeout_seconds=0.05) as gw:
        runner = gw.runners["listbox"]

        async def no_wait(seconds: float) -> None:
            return None

        runner._retry = runner._retry.copy(sleep=no_wait)
        await wait_for(lambda: state(gw).consecutive_failures >= 1)
        error = state(gw).last_error
        assert error is not None and error[0] == "ChannelUnavailable"
        assert "longer than 0.05s" in error[1]
        metrics = gw.metrics.render().decode()
        assert 'gateway_poll_total{connector="listbox",outcome="failure"}' in metrics


async def test_channels_lists_webhooks_and_pollers_with_their_progress(gw: Gateway) -> None:
    ListPoller.platform.extend(["投诉一"])
    await wait_for(lambda: state(gw).taken_in == 1)
    transport = httpx.ASGITransport(app=gw.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        body = (await client.get("/channels")).json()
    assert body["listbox"]["cursor"] == "1"
    assert body["listbox"]["last_success"] is not None
    assert body["listbox"]["taken_in"] == 1
    assert set(body) == {"wechat", "listbox"}
    assert json.dumps(body).count("secret") == 0


async def test_a_big_poll_lets_the_loop_run_while_its_records_are_labelled(
    list_registry: Registry, tmp_path: Path, sink: MemorySink
) -> None:
    """Triage and linking cost about a millisecond a record: a poll of a thousand must
    hand the event loop back (to webhooks, /metrics) while its records are labelled."""
    ticks = 0
    ticks_at_each_record: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async with gateway_for(list_registry, tmp_path, sink, batch=1000) as gateway:
        intake = gateway.runners["listbox"]._intake
        label: Callable[[ComplaintRecord], ComplaintRecord] = intake._triage

        def counting(record: ComplaintRecord) -> ComplaintRecord:
            ticks_at_each_record.append(ticks)
            return label(record)

        intake._triage = counting
        running = asyncio.create_task(ticker())
        ListPoller.platform.extend(f"第{n}条投诉：退款一直没到" for n in range(1000))
        await wait_for(lambda: state(gateway).taken_in == 1000, timeout=60)
        running.cancel()
    assert len(ticks_at_each_record) == 1000
    # the other task ran between the records of the one poll, again and again
    assert len(set(ticks_at_each_record)) >= 1000 // 100
