"""The SQLite outbox and the publisher that drains it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.errors import OutboxUnavailable
from normalizer.store import StoreNormalizer
from outbox.publisher import Publisher
from outbox.sqlite import NewEntry, SQLiteOutbox
from schemas import ComplaintRecord, RawEvent
from tests.fakes import FrozenClock, MemorySink

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def record(n: int, at: datetime = T0) -> NewEntry:
    body = {
        "submission_id": f"S-{n}",
        "store_id": "SH01",
        "customer": {"phone": f"138{n:08d}"},
        "text": f"第{n}个投诉",
    }
    event = RawEvent("store", f"S-{n}", at, body, b'{"raw": true}', "application/json", f"S-{n}")
    result = StoreNormalizer().normalize(event)
    assert isinstance(result, ComplaintRecord)
    return NewEntry(result, f"S-{n}", event.body, event.media_type)


async def test_concurrent_appends_are_all_durable_and_share_commits(tmp_path: Path) -> None:
    outbox = await SQLiteOutbox.open(tmp_path / "o.sqlite3")
    commits_before = outbox.commits
    results = await asyncio.gather(*(outbox.append([record(n)]) for n in range(300)))
    assert all(r == [True] for r in results)
    assert outbox.pending == 300
    assert outbox.commits - commits_before < 300  # grouped, not one commit each
    await outbox.aclose()
    reopened = await SQLiteOutbox.open(tmp_path / "o.sqlite3")
    assert reopened.pending == 300
    assert len(await reopened.pending_batch(1000)) == 300
    await reopened.aclose()


async def test_same_record_twice_is_stored_once(tmp_path: Path) -> None:
    outbox = await SQLiteOutbox.open(tmp_path / "o.sqlite3")
    assert await outbox.append([record(1)]) == [True]
    assert await outbox.append([record(1), record(2)]) == [False, True]
    assert outbox.pending == 2
    await outbox.aclose()


async def test_sent_records_leave_the_queue_and_are_pruned_only_once_old(tmp_path: Path) -> None:
    outbox = await SQLiteOutbox.open(tmp_path / "o.sqlite3")
    await outbox.append([record(n) for n in range(3)])
    batch = await outbox.pending_batch(2)
    assert [e.record_id for e in batch] == [record(0).record.record_id, record(1).record.record_id]
    await outbox.mark_sent([e.seq for e in batch], T0)
    assert outbox.pending == 1
    assert await outbox.prune(T0 - timedelta(seconds=1)) == 0
    assert await outbox.prune(T0 + timedelta(seconds=1)) == 2
    assert outbox.pending == 1 and len(await outbox.select()) == 1  # the unsent one stays
    await outbox.aclose()


async def test_select_by_time_range_and_id(tmp_path: Path) -> None:
    outbox = await SQLiteOutbox.open(tmp_path / "o.sqlite3")
    await outbox.append([record(n, T0 + timedelta(hours=n)) for n in range(5)])
    middle = await outbox.select(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3))
    assert len(middle) == 3
    (one,) = await outbox.select(record_ids=[record(4).record.record_id])
    assert one.received_at == "2026-11-23T06:00:00Z"
    await outbox.aclose()


async def test_closed_outbox_refuses_writes(tmp_path: Path) -> None:
    outbox = await SQLiteOutbox.open(tmp_path / "o.sqlite3")
    await outbox.aclose()
    with pytest.raises(OutboxUnavailable):
        await outbox.append([record(1)])


async def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises((OutboxUnavailable, OSError)):
        await SQLiteOutbox.open(blocker / "o.sqlite3")


async def test_publisher_backs_off_while_the_sink_is_down_then_delivers_in_order(
    tmp_path: Path,
) -> None:
    outbox = await SQLiteOutbox.open(tmp_path / "o.sqlite3")
    await outbox.append([record(n) for n in range(5)])
    sink = MemorySink()
    sink.down = True
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 6:
            sink.down = False

    publisher = Publisher(outbox, sink, FrozenClock(), batch_size=2, sleep=sleep)
    assert await publisher.drain() == 5
    assert len(waits) == 6 and waits[-1] > waits[0]  # backed off, growing
    assert [r["source"]["message_id"] for r in sink.records] == [f"S-{n}" for n in range(5)]
    assert outbox.pending == 0
    assert await publisher.drain() == 0  # nothing is sent twice
    await outbox.aclose()


async def test_stopping_the_publisher_while_it_retries_leaves_records_pending(
    tmp_path: Path,
) -> None:
    outbox = await SQLiteOutbox.open(tmp_path / "o.sqlite3")
    await outbox.append([record(1)])
    sink = MemorySink()
    sink.down = True
    publisher = Publisher(outbox, sink, FrozenClock())
    task = asyncio.create_task(publisher.run())
    while sink.attempts < 2:
        await asyncio.sleep(0.01)
    publisher.notify()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert outbox.pending == 1
    await outbox.aclose()


async def test_an_unexpected_sink_error_does_not_stop_the_publisher(tmp_path: Path) -> None:
    outbox = await SQLiteOutbox.open(tmp_path / "o.sqlite3")
    await outbox.append([record(1)])

    class FlakySink(MemorySink):
        async def publish(self, batch):  # type: ignore[no-untyped-def]
            if self.attempts == 0:
                self.attempts += 1
                raise RuntimeError("a bug in a sink plugin")
            await super().publish(batch)

    sink = FlakySink()
    publisher = Publisher(outbox, sink, FrozenClock(), idle_seconds=0.01)
    task = asyncio.create_task(publisher.run())
    await sink.wait_for(1)
    async with asyncio.timeout(5):
        while outbox.pending:  # marked sent right after the sink's acknowledgement
            await asyncio.sleep(0.01)
    task.cancel()
    assert len(sink.entries) == 1
    await outbox.aclose()


async def test_a_failing_write_fails_alone_in_its_group_commit(tmp_path: Path) -> None:
    outbox = await SQLiteOutbox.open(tmp_path / "o.sqlite3")
    bad = outbox.quarantine(
        channel="store",
        reason="x",
        detail="x",
        headers={"not": object()},  # type: ignore[dict-item]
        body=b"",
        at=T0,
    )
    results = await asyncio.gather(
        *(outbox.append([record(n)]) for n in range(20)), bad, return_exceptions=True
    )
    assert results[:20] == [[True]] * 20
    assert isinstance(results[20], TypeError)
    assert outbox.pending == 20 and await outbox.quarantined() == []
    await outbox.aclose()
