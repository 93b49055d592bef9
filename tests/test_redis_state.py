"""The Redis dedupe, identity and link state, against a real private ``redis-server``.

Each test opens its "replicas" (separate :class:`RedisState` clients, each
with its own connection pool) on one key prefix of its own; the outage tests
start a server of their own, password-protected, to pause or kill it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.errors import StateUnavailable
from dedupe.redis_state import RedisDedupeStore, RedisState
from dedupe.state import Entry
from tests.redis_server import RedisServer, redis_server, start_redis_server

__all__ = ["redis_server", "start_redis_server"]  # fixtures used below

WINDOW = timedelta(minutes=10)
PASSWORD = "s3cret"

OpenReplica = Callable[..., RedisState]


@pytest.fixture
async def replica(redis_server: RedisServer) -> AsyncIterator[OpenReplica]:
    """``replica()``: a new client (another gateway process) on this test's own prefix."""
    prefix = f"t{secrets.token_hex(4)}:"
    opened: list[RedisState] = []

    def open_replica(**options: Any) -> RedisState:
        options = {"dedupe_window": WINDOW, "link_window": WINDOW, **options}
        state = RedisState(redis_server.url, prefix=prefix, **options)
        opened.append(state)
        return state

    yield open_replica
    for state in opened:
        await state.aclose()


def now() -> datetime:
    return datetime.now(UTC)


def message_key() -> str:
    return f"wechat:oZx{secrets.token_hex(6)}:{secrets.randbelow(10**19)}"


# -- exact redeliveries --------------------------------------------------------------------


async def test_two_replicas_receiving_one_message_take_it_in_once(replica: OpenReplica) -> None:
    a = replica().dedupe
    b = replica().dedupe

    async def receive(store: RedisDedupeStore, key: str) -> str | None:
        taken = await store.claim(key, "rec-" + key[-6:])
        if taken is None:
            await asyncio.sleep(0.05)  # the outbox write
            await store.remember(key, "rec-" + key[-6:], now())
        return taken

    keys = [message_key() for _ in range(20)]
    results = await asyncio.gather(*(receive(s, k) for k in keys for s in (a, b)))
    for i, key in enumerate(keys):
        pair = results[2 * i : 2 * i + 2]
        assert sorted(pair, key=str) == [None, "rec-" + key[-6:]], key


async def test_a_second_replica_waits_for_the_first_and_sees_its_record(
    replica: OpenReplica,
) -> None:
    a = replica().dedupe
    b = replica().dedupe
    key = message_key()
    assert await a.claim(key, "rec-1") is None
    started = time.monotonic()
    waiting = asyncio.create_task(b.claim(key, "rec-1"))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await a.remember(key, "rec-1", now())
    assert await asyncio.wait_for(waiting, 1) == "rec-1"
    assert 0.3 <= time.monotonic() - started < 1
    assert await replica().dedupe.claim(key, "rec-2") == "rec-1"


async def test_two_claims_in_one_process_also_wait(replica: OpenReplica) -> None:
    store = replica().dedupe
    key = message_key()
    assert await store.claim(key, "rec-1") is None
    waiting = asyncio.create_task(store.claim(key, "rec-1"))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await store.remember(key, "rec-1", now())
    assert await asyncio.wait_for(waiting, 1) == "rec-1"


async def test_a_released_claim_lets_the_other_replica_take_the_message(
    replica: OpenReplica,
) -> None:
    a = replica().dedupe
    b = replica().dedupe
    key = message_key()
    assert await a.claim(key, "rec-1") is None
    waiting = asyncio.create_task(b.claim(key, "rec-1"))
    await asyncio.sleep(0.1)
    await a.release(key, "rec-1")  # a's outbox write failed
    assert await asyncio.wait_for(waiting, 1) is None
    await b.remember(key, "rec-1", now())
    assert await a.claim(key, "rec-1") == "rec-1"


async def test_an_expired_claim_lets_the_other_replica_take_the_message(
    replica: OpenReplica,
) -> None:
    crashed = replica(claim_seconds=0.3).dedupe
    b = replica().dedupe
    key = message_key()
    assert await crashed.claim(key, "rec-1") is None  # and never remembers nor releases
    started = time.monotonic()
    assert await b.claim(key, "rec-1") is None
    assert 0.25 <= time.monotonic() - started < 1.5


async def test_releasing_an_expired_claim_keeps_the_new_owner_s_claim(
    replica: OpenReplica,
) -> None:
    slow = replica(claim_seconds=0.2).dedupe
    b = replica().dedupe
    key = message_key()
    assert await slow.claim(key, "rec-1") is None
    assert await b.claim(key, "rec-1") is None  # after slow's claim expired
    await slow.release(key, "rec-1")
    third = replica(wait_seconds=0.2).dedupe
    with pytest.raises(StateUnavailable):
        await third.claim(key, "rec-1")  # b still holds it


async def test_a_claim_held_too_long_answers_unavailable_so_the_platform_retries(
    replica: OpenReplica,
) -> None:
    a = replica().dedupe
    b = replica(wait_seconds=0.3).dedupe
    key = message_key()
    assert await a.claim(key, "rec-1") is None
    started = time.monotonic()
    with pytest.raises(StateUnavailable, match="another replica"):
        await b.claim(key, "rec-1")
    assert 0.3 <= time.monotonic() - started < 1


async def test_a_remembered_message_is_recognised_for_the_window_from_its_time(
    replica: OpenReplica,
) -> None:
    store = replica(dedupe_window=timedelta(milliseconds=400)).dedupe
    key = message_key()
    assert await store.claim(key, "rec-1") is None
    await store.remember(key, "rec-1", now())
    assert await store.claim(key, "rec-2") == "rec-1"
    await asyncio.sleep(0.5)
    assert await store.claim(key, "rec-2") is None

    state = replica(dedupe_window=timedelta(seconds=60))
    minutes = state.dedupe
    older = message_key()
    await minutes.remember(older, "rec-3", now() - timedelta(seconds=50))
    ttl_ms = await state.client.pttl(f"{state.prefix}d:{older}")
    assert 9_000 < ttl_ms <= 10_000
    stale = message_key()
    assert await minutes.claim(stale, "rec-4") is None
    await minutes.remember(stale, "rec-4", now() - timedelta(seconds=61))
    assert await minutes.claim(stale, "rec-4") is None  # out of the window: taken in again


# -- identity ------------------------------------------------------------------------------


async def test_new_keys_make_a_person_named_by_the_first_key(replica: OpenReplica) -> None:
    identity = replica().identity
    at = now()
    person = await identity.resolve(["wechat:oA1", "tel:+8613800000001"], "caller id", "r1", at)
    assert person == "wechat:oA1"
    links = await identity.links(person)
    assert [(link.key, link.person, link.evidence, link.record_id) for link in links] == [
        ("tel:+8613800000001", person, "caller id", "r1"),
        ("wechat:oA1", person, "caller id", "r1"),
    ]
    assert all(link.at == at for link in links)
    assert await identity.resolve(["tel:+8613800000001"], "again", "r2", at) == person
    assert len(await identity.links(person)) == 2


async def test_keys_and_evidence_in_chinese_survive_the_round_trip(replica: OpenReplica) -> None:
    identity = replica().identity
    key = "email:客服小王@例子.中国"
    person = await identity.resolve([key], "门店会员 / 已核实", "r1", now())
    assert person == key
    [link] = await identity.links(person)
    assert (link.key, link.evidence) == (key, "门店会员 / 已核实")


async def test_a_key_seen_before_joins_its_person_with_its_evidence(replica: OpenReplica) -> None:
    identity = replica().identity
    t0 = now()
    person = await identity.resolve(["wechat:oA1"], "own key", "r1", t0)
    t1 = t0 + timedelta(minutes=5)
    assert await identity.resolve(["order:123456789", "wechat:oA1"], "buyer", "r2", t1) == person
    links = await identity.links(person)
    assert [(link.key, link.evidence, link.record_id, link.at) for link in links] == [
        ("wechat:oA1", "own key", "r1", t0),
        ("order:123456789", "buyer", "r2", t1),
    ]


async def test_two_people_meeting_merge_into_the_older(replica: OpenReplica) -> None:
    identity = replica().identity
    t0 = now()
    # the older person's id sorts last: age decides, not the name
    older = await identity.resolve(["wechat:oZZ", "order:111111111"], "buyer", "r1", t0)
    younger = await identity.resolve(
        ["email:a@example.com", "tel:+8613900000002"], "verified", "r2", t0 + timedelta(hours=1)
    )
    assert (older, younger) == ("wechat:oZZ", "email:a@example.com")
    t2 = t0 + timedelta(hours=2)
    assert await identity.resolve(["tel:+8613900000002", "wechat:oZZ"], "caller", "r3", t2) == older
    for key in ("email:a@example.com", "tel:+8613900000002", "order:111111111"):
        assert await identity.resolve([key], "lookup", "r4", t2) == older
    links = {link.key: link for link in await identity.links(older)}
    assert set(links) == {
        "wechat:oZZ",
        "order:111111111",
        "email:a@example.com",
        "tel:+8613900000002",
    }
    moved = links["email:a@example.com"]
    assert moved.person == older
    assert moved.evidence == "verified; merged by caller (r3)"
    assert moved.at == t0 + timedelta(hours=1)
    assert await identity.links(younger) == []


async def test_replicas_resolving_overlapping_keys_at_once_make_one_person(
    replica: OpenReplica,
) -> None:
    a = replica().identity
    b = replica().identity
    at = now()
    for round_ in range(30):
        k = [f"wechat:o{round_}-{i}" for i in range(4)]
        got = await asyncio.gather(
            a.resolve([k[0], k[1], k[2]], "a", f"ra{round_}", at),
            b.resolve([k[3], k[2], k[1]], "b", f"rb{round_}", at),
        )
        assert got[0] == got[1]
        assert {link.key for link in await a.links(got[0])} == set(k)


# -- linking -------------------------------------------------------------------------------


def entry(record_id: str, at: float, *lookups: str, root: str | None = None) -> Entry:
    return Entry(
        record_id=record_id,
        root=root or record_id,
        at=at,
        channel="wechat",
        kind="wechat",
        person="wechat:oA1",
        category="delivery",
        product="SKU-1",
        orders=("2026112300012345",),
        phones=("13800000001",),
        tails=("0001",),
        sketch=(11, 22, 33),
        lookups=lookups,
    )


async def test_an_entry_is_found_by_any_of_its_lookups(replica: OpenReplica) -> None:
    index = replica().index
    t = time.time()
    filed = entry("r1", t, "o:2026112300012345", "t:0001", "p:wechat:oA1")
    await index.add(filed)
    other = replica().index  # another replica sees it
    for lookup in filed.lookups:
        found = await other.candidates([lookup, "h:999"], t - 60)
        assert found == [filed]
        assert found[0].lookups == filed.lookups
    assert await other.candidates(["o:999999999"], t - 60) == []
    assert await other.candidates([], t - 60) == []


async def test_candidates_are_those_since_the_given_time_newest_first(
    replica: OpenReplica,
) -> None:
    index = replica().index
    t = time.time()
    await index.add(entry("old", t - 100, "o:1"))
    await index.add(entry("newest", t - 10, "o:1", "t:1"))
    await index.add(entry("middle", t - 50, "t:1", "o:1"))
    found = await index.candidates(["o:1", "t:1"], since=t - 60)
    assert [e.record_id for e in found] == ["newest", "middle"]
    found = await index.candidates(["o:1"], since=t - 100)
    assert [e.record_id for e in found] == ["newest", "middle", "old"]


async def test_each_lookup_keeps_only_its_newest_entries(replica: OpenReplica) -> None:
    state = replica(per_lookup=3, weak_per_lookup=2)
    index = state.index
    t = time.time()
    for i in range(5):
        await index.add(entry(f"r{i}", t - 50 + i, "p:42", "h:7", f"o:{i}"))
    found = await index.candidates(["p:42"], since=t - 60)
    assert [e.record_id for e in found] == ["r4", "r3", "r2"]
    assert await state.client.zcard(f"{state.prefix}l:x:p:42") == 3  # memory stays bounded
    # a lookup many reports share (a text sketch value) keeps fewer
    assert [e.record_id for e in await index.candidates(["h:7"], t - 60)] == ["r4", "r3"]
    # trimmed from the shared lookup only: r0 is still found by its own order
    assert [e.record_id for e in await index.candidates(["o:0"], t - 60)] == ["r0"]
    both = await index.candidates(["p:42", "o:0"], t - 60)
    assert [e.record_id for e in both] == ["r4", "r3", "r2", "r0"]


async def test_entries_expire_after_the_window(replica: OpenReplica) -> None:
    state = replica(link_window=timedelta(milliseconds=400))
    index = state.index
    t = time.time()
    await index.add(entry("r1", t, "o:1", "t:1"))
    await index.add(entry("too-old", t - 1, "o:1"))  # already out of the window: not filed
    assert [e.record_id for e in await index.candidates(["o:1"], t - 10)] == ["r1"]
    await asyncio.sleep(0.5)
    assert await index.candidates(["o:1", "t:1"], t - 10) == []
    assert await state.client.keys(f"{state.prefix}*") == []  # nothing left behind


async def test_a_closed_incident_is_remembered_for_the_window(replica: OpenReplica) -> None:
    a = replica(link_window=timedelta(milliseconds=400)).index
    b = replica(link_window=timedelta(milliseconds=400)).index
    assert await b.closed(["root-1", "root-2"]) == set()
    await a.close("root-1", now())
    assert await b.closed(["root-1", "root-2"]) == {"root-1"}
    assert await b.closed([]) == set()
    await asyncio.sleep(0.5)
    assert await b.closed(["root-1"]) == set()


# -- outages and secrets -------------------------------------------------------------------


def every_call(state: RedisState) -> dict[str, Any]:
    dedupe, identity, index = state.dedupe, state.identity, state.index
    return {
        "ping": state.ping(),
        "claim": dedupe.claim(message_key(), "rec-x"),
        "remember": dedupe.remember(message_key(), "rec-x", now()),
        "resolve": identity.resolve(["wechat:oB"], "e", "rec-x", now()),
        "links": identity.links("wechat:oB"),
        "add": index.add(entry("rec-x", time.time(), "o:1")),
        "candidates": index.candidates(["o:1"], 0),
        "close": index.close("rec-x", now()),
        "closed": index.closed(["rec-x"]),
    }


async def assert_every_call_unavailable(state: RedisState, within: float) -> None:
    calls = every_call(state)
    started = time.monotonic()
    results = await asyncio.gather(*calls.values(), return_exceptions=True)
    assert time.monotonic() - started < within
    for name, result in zip(calls, results, strict=True):
        assert isinstance(result, StateUnavailable), (name, result)
        assert PASSWORD not in str(result), name
        assert "redis://***@127.0.0.1:" in str(result), name


async def test_a_paused_redis_makes_every_call_unavailable_within_seconds(
    start_redis_server: Callable[..., RedisServer],
) -> None:
    server = start_redis_server(password=PASSWORD)
    state = RedisState(server.url)
    try:
        await state.ping()
        with server.paused():
            await assert_every_call_unavailable(state, within=2.5)
        await state.ping()  # back once Redis answers again
        assert await state.identity.resolve(["wechat:oC"], "e", "r", now()) == "wechat:oC"
    finally:
        await state.aclose()


async def test_a_stopped_redis_makes_every_call_unavailable_at_once(
    start_redis_server: Callable[..., RedisServer],
) -> None:
    server = start_redis_server(password=PASSWORD)
    state = RedisState(server.url)
    try:
        await state.ping()  # a pooled connection, broken by the stop
        server.stop()
        await assert_every_call_unavailable(state, within=1.0)
    finally:
        await state.aclose()


async def test_a_wrong_password_is_unavailable_without_showing_either_password(
    start_redis_server: Callable[..., RedisServer],
) -> None:
    server = start_redis_server(password=PASSWORD)
    state = RedisState(server.url.replace(PASSWORD, "wr0ngpass"))
    try:
        with pytest.raises(StateUnavailable) as caught:
            await state.ping()
        assert "wr0ngpass" not in str(caught.value)
        assert PASSWORD not in str(caught.value)
    finally:
        await state.aclose()


def test_the_state_s_repr_masks_the_password() -> None:
    for url in (
        f"redis://:{PASSWORD}@127.0.0.1:6390/0",
        f"redis://gateway:{PASSWORD}@redis.internal:6390/2",
        f"redis://127.0.0.1:6390/0?password={PASSWORD}",
    ):
        shown = repr(RedisState(url))
        assert PASSWORD not in shown
        assert "6390" in shown
