"""Memory per message key and per linking record, embedded and Redis: ``bench/state_memory.py``.

* embedded dedupe (:class:`dedupe.store.MemoryDedupeStore`): the Python heap
  that N remembered keys keep (``tracemalloc``, after minus before, over N);
* Redis dedupe (:class:`dedupe.redis_state.RedisDedupeStore`): the growth of
  ``used_memory`` (``INFO memory``) of a private ``redis-server`` (started as
  the tests start theirs: no persistence, a free loopback port) after N
  ``remember`` calls, over N;
* Redis link index and, when it is importable, the embedded one
  (``dedupe.index_memory.MemoryLinkIndex``): the same per linking entry, with
  realistic fields: two order ids, a phone, a 16-value text sketch, about 12
  lookups, persons and products repeating as in real traffic.

Keys look like WeChat's (``wechat:<28-char openid>:<19-digit MsgId>``), record
ids are UUID strings. Every figure includes what the store keeps of the key
and record id themselves (the strings, the expiry, the index structures).

    .venv/bin/python bench/state_memory.py [--keys N] [--records M]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import random
import shutil
import string
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dedupe.evidence import lookups  # noqa: E402
from dedupe.redis_state import RedisState  # noqa: E402
from dedupe.state import Entry  # noqa: E402
from dedupe.store import MemoryDedupeStore  # noqa: E402
from service.clock import SystemClock  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

WINDOW = timedelta(days=1)
LINK_WINDOW = timedelta(days=7)
CONCURRENCY = 64
_OPENID = string.ascii_letters + string.digits + "-_"


def message_keys(n: int, seed: int = 1) -> Iterator[tuple[str, str, datetime]]:
    """``n`` (key, record_id, at) as WeChat pushes make them, over the last hours."""
    rng = random.Random(seed)
    openids = ["o" + "".join(rng.choices(_OPENID, k=27)) for _ in range(max(1, n // 4))]
    start = datetime.now(UTC) - timedelta(hours=6)
    for i in range(n):
        key = f"wechat:{rng.choice(openids)}:{rng.randrange(10**18, 10**19)}"
        at = start + timedelta(seconds=i * 21_600 / n)
        yield key, str(uuid.UUID(int=rng.getrandbits(128), version=4)), at


def entries(n: int, seed: int = 2) -> Iterator[Entry]:
    """``n`` linking entries over the last day: repeat customers, a few hundred products."""
    rng = random.Random(seed)
    people = [f"wechat:o{''.join(rng.choices(_OPENID, k=27))}" for _ in range(max(1, n // 2))]
    products = [f"SKU-{rng.randrange(10**6):06d}" for _ in range(300)]
    bigrams = sorted(rng.sample(range(2**32), 4000))  # the texts' common character bigrams
    start = time.time() - 86_400
    for i in range(n):
        orders = {str(rng.randrange(10**15, 10**16)) for _ in range(2)}
        phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        words = tuple(sorted(rng.sample(bigrams[: rng.randrange(200, 4000)], 16)))
        person = rng.choice(people)
        product = rng.choice(products)
        record_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        yield Entry(
            record_id=record_id,
            root=record_id,
            at=start + i * 86_400 / n,
            channel="wechat",
            kind="wechat",
            person=person,
            category="delivery",
            product=product,
            orders=tuple(sorted(orders)),
            phones=(phone,),
            tails=(phone[-4:],),
            sketch=words,
            lookups=lookups(
                person=person,
                orders=orders,
                phones=(phone,),
                masked=(),
                tails=(),
                text_sketch=words,
                product=product,
            ),
        )


def heap_per_item(fill: Callable[[], object], n: int) -> float:
    """Bytes of Python heap that ``fill()``'s result keeps, per item."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = fill()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return (after - before) / n


async def used_memory(state: RedisState) -> int:
    info = await state.client.info("memory")
    return int(info["used_memory"])


async def redis_per_item(
    server: RedisServer, n: int, write: Callable[[RedisState], Iterator[Awaitable[None]]]
) -> float:
    """``used_memory`` growth per item after the awaitables of ``write(state)`` ran."""
    state = RedisState(server.url, dedupe_window=WINDOW, link_window=LINK_WINDOW)
    try:
        await state.client.flushall()
        before = await used_memory(state)
        pending: set[asyncio.Task[None]] = set()
        for call in write(state):
            pending.add(asyncio.ensure_future(call))
            if len(pending) >= CONCURRENCY:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*pending)
        after = await used_memory(state)
        return (after - before) / n
    finally:
        await state.aclose()


def memory_link_index(n: int) -> tuple[float | None, str]:
    """The embedded link index's heap per entry, or why it was not measured."""
    try:
        from dedupe.index_memory import MemoryLinkIndex
    except ImportError as exc:
        return None, f"not importable ({exc})"
    parameters = list(inspect.signature(MemoryLinkIndex).parameters)
    if parameters[:2] != ["window_seconds", "per_lookup"]:
        return None, f"constructor differs: {parameters}"

    async def add_all(index: MemoryLinkIndex) -> MemoryLinkIndex:
        for entry in entries(n):
            await index.add(entry)
        return index

    def fill() -> object:
        return asyncio.run(add_all(MemoryLinkIndex(LINK_WINDOW.total_seconds(), per_lookup=64)))

    return heap_per_item(fill, n), "tracemalloc"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="message keys (dedupe)")
    parser.add_argument("--records", type=int, default=20_000, help="linking entries")
    args = parser.parse_args()
    n, m = args.keys, args.records

    rows: list[tuple[str, int, float | None, str]] = []

    def fill_dedupe() -> object:
        store = MemoryDedupeStore(SystemClock(), WINDOW, max_keys=n + 1)
        store.warm(message_keys(n))
        return store

    rows.append(("dedupe, embedded (MemoryDedupeStore)", n, heap_per_item(fill_dedupe, n), ""))
    per_entry, note = memory_link_index(m)
    rows.append(("link index, embedded (MemoryLinkIndex)", m, per_entry, note))

    binary = shutil.which("redis-server")
    if binary is None:
        rows.append(("Redis stores", 0, None, "redis-server not installed"))
    else:
        server = RedisServer.start(binary)
        try:
            version = server_version(binary)

            def remember(state: RedisState) -> Iterator[Awaitable[None]]:
                for key, record_id, at in message_keys(n):
                    yield state.dedupe.remember(key, record_id, at)

            def add(state: RedisState) -> Iterator[Awaitable[None]]:
                return (state.index.add(entry) for entry in entries(m))

            per_key = asyncio.run(redis_per_item(server, n, remember))
            rows.append(("dedupe, Redis (RedisDedupeStore)", n, per_key, version))
            per_record = asyncio.run(redis_per_item(server, m, add))
            rows.append(("link index, Redis (RedisLinkIndex)", m, per_record, version))
        finally:
            server.stop()

    print("| state | items | bytes per item | note |")
    print("|---|---:|---:|---|")
    for name, count, per_item, note in rows:
        shown = f"{per_item:,.0f}" if per_item is not None else "n/a"
        print(f"| {name} | {count:,} | {shown} | {note} |")
    print(
        "\nEmbedded: Python heap kept (tracemalloc). Redis: growth of used_memory; its hash"
        " tables grow in powers of two, so the figure moves a little with N."
    )


def server_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    words = out.stdout.split()
    version = next((w for w in words if w.startswith("v=")), "v=?")[2:]
    return f"redis-server {version}, used_memory"


if __name__ == "__main__":
    main()
