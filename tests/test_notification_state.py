"""The notification store contract, run against every implementation (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from outbound.state import Contact, Finish, Job, NotificationStore, StatusChange, notification_key
from outbound.state_sqlite import SQLiteNotificationStore
from schemas.status import node_rank
from tests.postgres_server import postgres_store_factory

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)

StoreFactory = Callable[[], Any]


@pytest.fixture(params=["sqlite", "postgres"])
async def open_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[], Any]]:
    """Opens stores on one shared database (two opens = two replicas for PostgreSQL)."""
    opened: list[NotificationStore] = []
    if request.param == "sqlite":

        async def open_sqlite() -> NotificationStore:
            store = await SQLiteNotificationStore.open(tmp_path / "notifications.sqlite3")
            opened.append(store)
            return store

        yield open_sqlite
    else:
        async with postgres_store_factory(request) as factory:

            async def open_postgres() -> NotificationStore:
                store = await factory()
                opened.append(store)
                return store

            yield open_postgres
    for store in opened:
        await store.aclose()


@pytest.fixture
async def store(open_store: Callable[[], Any]) -> NotificationStore:
    result: NotificationStore = await open_store()
    return result


def contact(record_id: str = "wechat:r1", **fields: Any) -> Contact:
    values: dict[str, Any] = {
        "channel": "wechat",
        "customer_id": "wechat:oR5G",
        "priority": "P2",
        "received_at": T0,
        "wechat_openid": "oR5Gjjl_eiZoUpGozMo7dbBJ362A",
        "phone": "+8613800138000",
    }
    values.update(fields)
    return Contact(record_id, **values)


def job(record_id: str = "wechat:r1", node: str = "accepted", channel: str = "sms") -> Job:
    recipient = "+8613800138000"
    return Job(
        key=notification_key(record_id, node, channel, recipient),
        record_id=record_id,
        node=node,  # type: ignore[arg-type]
        channel=channel,
        recipient=recipient,
        content={"text": "您好", "params": {"ticket_no": "T1"}},
        due_at=T0,
    )


def change(node: str = "accepted", *jobs: Job, reopens: bool = False, **kw: Any) -> StatusChange:
    return StatusChange(
        record_id="wechat:r1",
        node=node,  # type: ignore[arg-type]
        rank=node_rank(node),  # type: ignore[arg-type]
        ticket_no="T1",
        reopens=reopens,
        jobs=jobs,
        **kw,
    )


def finished(state: str = "sent", **kw: Any) -> Finish:
    return Finish(state=state, outcome=json.dumps({"status": state}).encode(), at=T0, **kw)  # type: ignore[arg-type]


async def test_the_directory_keeps_contacts_and_its_cursor(store: NotificationStore) -> None:
    assert await store.directory_cursor() == 0
    await store.remember([contact()], cursor=42, sla_due={})
    await store.remember([contact()], cursor=43, sla_due={})  # a re-read is harmless
    assert await store.directory_cursor() == 43
    assert await store.contact("wechat:r1") == contact()
    assert await store.contact("wechat:nope") is None


async def test_a_status_queues_its_jobs_once_however_often_it_comes(
    store: NotificationStore,
) -> None:
    first = await store.apply(change("accepted", job()), now=T0)
    again = await store.apply(change("accepted", job()), now=T0)
    assert (first.added, again.added, again.already_queued) == (1, 0, 1)
    claimed = await store.claim(T0, 10, "a")
    assert [j.key for j in claimed] == [job().key]
    assert await store.claim(T0, 10, "a") == []  # sending: nobody takes it again


async def test_a_node_that_goes_backwards_is_refused_unless_it_reopens(
    store: NotificationStore,
) -> None:
    await store.apply(change("resolved", job(node="resolved")), now=T0)
    refused = await store.apply(change("in_progress", job(node="in_progress")), now=T0)
    assert refused.backwards_from == "resolved" and refused.added == 0
    assert await store.jobs(record_id="wechat:r1", limit=10) == [
        j for j in await store.jobs(limit=10) if j.node == "resolved"
    ]
    reopened = await store.apply(
        change("in_progress", job(node="in_progress"), reopens=True), now=T0
    )
    assert reopened.added == 1
    progress = await store.progress("wechat:r1")
    assert progress is not None and progress.node == "in_progress"


async def test_an_overdue_warning_does_not_move_progress(store: NotificationStore) -> None:
    await store.apply(change("in_progress"), now=T0)
    await store.apply(change("overdue_warning", advances=False), now=T0)
    applied = await store.apply(change("solution_proposed"), now=T0)
    assert applied.backwards_from is None


async def test_jobs_wait_until_due_and_results_publish_outcomes(store: NotificationStore) -> None:
    await store.apply(change("accepted", job()), now=T0)
    assert await store.claim(T0 - timedelta(seconds=1), 10, "a") == []
    [claimed] = await store.claim(T0, 10, "a")
    follow = job(channel="email")
    await store.finish(claimed.key, finished("skipped", error="opted out", follow_up=[follow]))
    [row] = await store.jobs(states=["skipped"])
    assert row.attempts == 1 and row.error == "opted out"
    assert [j.channel for j in await store.jobs(states=["queued"])] == ["email"]
    outcomes = await store.unpublished(10)
    assert [json.loads(o.body)["status"] for o in outcomes] == ["skipped"]
    await store.mark_published([o.seq for o in outcomes], T0)
    assert await store.unpublished(10) == []


async def test_a_rescheduled_job_comes_back_when_due(store: NotificationStore) -> None:
    await store.apply(change("accepted", job()), now=T0)
    [claimed] = await store.claim(T0, 10, "a")
    due = T0 + timedelta(seconds=30)
    await store.reschedule(
        claimed.key, due, attempts=1, error="HTTP 503", content={"text": "x"}, at=T0
    )
    assert await store.claim(T0 + timedelta(seconds=29), 10, "a") == []
    [again] = await store.claim(due, 10, "a")
    assert again.attempts == 1 and again.content == {"text": "x"}


async def test_a_claim_that_outlives_its_lease_is_in_doubt_not_resent(
    store: NotificationStore,
) -> None:
    await store.apply(change("accepted", job()), now=T0)
    await store.claim(T0, 10, "crashed")
    abandoned = await store.abandon(T0 + timedelta(seconds=1), lambda j: b"{}", at=T0)
    assert [j.key for j in abandoned] == [job().key]
    assert await store.claim(T0 + timedelta(hours=1), 10, "b") == []
    [doubt] = await store.jobs(states=["in_doubt"])
    resent = await store.resend(doubt.key, T0 + timedelta(hours=1))
    assert resent is not None and resent.state == "queued"
    assert len(await store.claim(T0 + timedelta(hours=1), 10, "b")) == 1
    assert await store.resend("no-such-key", T0) is None


async def test_timers_fire_when_due_and_stop_when_cancelled(store: NotificationStore) -> None:
    due = T0 + timedelta(hours=1)
    await store.remember([contact()], cursor=1, sla_due={"wechat:r1": due})
    assert await store.due_timers(due - timedelta(seconds=1), 10) == []
    assert await store.due_timers(due, 10) == [("wechat:r1", "sla")]
    await store.apply(change("in_progress", clear_sla=True), now=T0)
    assert await store.due_timers(due, 10) == []
    await store.apply(change("resolved", survey_due_at=due), now=T0)
    assert await store.due_timers(due, 10) == [("wechat:r1", "survey")]
    await store.cancel_timer("wechat:r1", "survey")
    assert await store.due_timers(due, 10) == []


async def test_no_sla_timer_for_a_record_a_status_already_reached(
    store: NotificationStore,
) -> None:
    await store.apply(change("in_progress"), now=T0)
    await store.remember([contact()], cursor=1, sla_due={"wechat:r1": T0})
    assert await store.due_timers(T0, 10) == []


async def test_the_reply_window_counts_service_messages_since_the_last_message(
    store: NotificationStore,
) -> None:
    openid = "oR5Gjjl_eiZoUpGozMo7dbBJ362A"
    assert await store.reply_window(openid, T0 - timedelta(hours=48)) == (None, 0)
    await store.remember([contact(received_at=T0)], cursor=1, sla_due={})
    wx = dataclasses.replace(job(channel="wechat"), recipient=openid)
    await store.apply(change("accepted", wx), now=T0)
    [claimed] = await store.claim(T0, 1, "a")
    await store.finish(
        claimed.key, Finish("sent", b"{}", T0 + timedelta(minutes=1), detail="customer_service")
    )
    assert await store.reply_window(openid, T0 - timedelta(hours=48)) == (T0, 1)
    assert await store.reply_window(openid, T0 + timedelta(seconds=1)) == (None, 0)


async def test_only_weibo_private_messages_open_the_weibo_reply_window(
    store: NotificationStore,
) -> None:
    uid = str(2**53 + 1)
    comment = contact("weibo:c1", channel="weibo", weibo_uid=uid, received_at=T0)
    await store.remember([comment], cursor=1, sla_due={})
    since = T0 - timedelta(hours=48)
    assert await store.reply_window(uid, since, channel="weibo_dm") == (None, 0)
    later = T0 + timedelta(hours=1)
    private = contact("weibo:m1", channel="weibo_dm", weibo_uid=uid, received_at=later)
    await store.remember([private], cursor=2, sla_due={})
    assert await store.reply_window(uid, since, channel="weibo_dm") == (later, 0)
    assert await store.reply_window(uid, later + timedelta(seconds=1), channel="weibo_dm") == (
        None,
        0,
    )
    assert await store.reply_window(uid, since) == (None, 0)  # not a WeChat window


async def test_opt_outs(store: NotificationStore) -> None:
    await store.set_opt_out("sms:+8613800138000", True, source="operator", at=T0)
    assert await store.opted_out(["sms:+8613800138000", "email:a@b.cn"]) == {"sms:+8613800138000"}
    await store.set_opt_out("sms:+8613800138000", False, source="operator", at=T0)
    assert await store.opted_out(["sms:+8613800138000"]) == set()


async def test_prune_forgets_old_records_but_not_unsent_jobs(store: NotificationStore) -> None:
    await store.remember([contact()], cursor=1, sla_due={})
    await store.apply(change("accepted", job()), now=T0)
    assert await store.prune(T0 + timedelta(days=1)) == 1
    assert await store.contact("wechat:r1") is None
    assert len(await store.jobs(states=["queued"])) == 1


async def test_two_replicas_claim_each_job_once(open_store: Callable[[], Any]) -> None:
    first, second = await open_store(), await open_store()
    jobs = [job(record_id=f"wechat:r{i}") for i in range(200)]
    for item in jobs:
        await first.apply(StatusChange(item.record_id, "accepted", 0, "T", False, [item]), now=T0)

    async def drain(store: NotificationStore, owner: str) -> list[str]:
        taken: list[str] = []
        while batch := await store.claim(T0, 7, owner):
            taken.extend(j.key for j in batch)
            await asyncio.sleep(0)
        return taken

    a, b = await asyncio.gather(drain(first, "a"), drain(second, "b"))
    assert len(a) + len(b) == 200
    assert set(a) | set(b) == {j.key for j in jobs}
    assert not set(a) & set(b)


async def test_a_customer_s_opt_in_never_undoes_an_operator_s_opt_out(
    store: NotificationStore,
) -> None:
    handle = "wechat:oR5Gjjl_eiZoUpGozMo7dbBJ362A"
    await store.set_opt_out(handle, True, source="operator", at=T0)
    await store.set_opt_out(handle, True, source="wechat_unsubscribe", at=T0)
    await store.set_opt_out(handle, False, source="wechat_unsubscribe", at=T0)  # follows again
    assert await store.opted_out([handle]) == {handle}
    await store.set_opt_out(handle, False, source="operator", at=T0)
    assert await store.opted_out([handle]) == set()
    await store.set_opt_out(handle, True, source="wechat_unsubscribe", at=T0)
    await store.set_opt_out(handle, False, source="wechat_unsubscribe", at=T0)
    assert await store.opted_out([handle]) == set()
