"""A SQLite database written through one group-committing thread.

All database work runs on one writer thread: whatever jobs are queued when
it wakes run in one transaction with one commit (one fsync), so hundreds of
concurrent callers cost a handful of commits instead of hundreds. Each job
runs inside a savepoint when a batch fails, so one bad job fails alone.
Subclasses give the schema (:meth:`GroupCommitDatabase._prepare`) and the API;
the outbox and the notification state are both built on it.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from connectors.errors import OutboxUnavailable

T = TypeVar("T")

_Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]
_STOP = object()


class GroupCommitDatabase:
    """Create with :meth:`open`, close with :meth:`aclose`."""

    thread_name = "sqlite-writer"

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["full", "normal"] = "full",
        max_batch: int = 512,
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0

    @classmethod
    async def open(cls, path: Path, **options: Any) -> Self:
        database = cls(path, **options)
        path.parent.mkdir(parents=True, exist_ok=True)
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        database._thread = threading.Thread(
            target=database._run,
            args=(ready, asyncio.get_running_loop()),
            name=cls.thread_name,
            daemon=True,
        )
        database._thread.start()
        await ready
        await database._opened()
        return database

    async def _opened(self) -> None:
        """Runs once the writer thread is up (load counters and the like)."""

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Create or migrate the schema on the writer thread's connection."""

    # -- the writer thread -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        conn.execute("PRAGMA busy_timeout=5000")
        self._prepare(conn)
        return conn

    def _run(self, ready: asyncio.Future[None], loop: asyncio.AbstractEventLoop) -> None:
        try:
            conn = self._connect()
        except Exception as exc:
            loop.call_soon_threadsafe(ready.set_exception, OutboxUnavailable(str(exc)))
            return
        loop.call_soon_threadsafe(ready.set_result, None)
        try:
            while True:
                first = self._jobs.get()
                if first is _STOP:
                    return
                batch: list[_Job] = [first]  # type: ignore[list-item]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP:
                        stop = True
                        break
                    batch.append(job)  # type: ignore[arg-type]
                self._run_batch(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        try:
            results = self._transaction(conn, batch, isolate=False)
        except Exception:
            # Something failed: run the batch again with each job in a savepoint,
            # so only the job at fault fails.
            try:
                results = self._transaction(conn, batch, isolate=True)
            except Exception as exc:  # the commit itself failed (disk full, I/O error)
                failure = OutboxUnavailable(f"{self.path.name}: commit failed: {exc}")
                results = [(False, failure)] * len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (_, future, loop), (ok, value) in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, settled in by_loop.items():  # one wake-up per loop, not one per job
            loop.call_soon_threadsafe(_settle_all, settled)

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[_Job], *, isolate: bool
    ) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn, _, _ in batch:
                if not isolate:
                    results.append((True, fn(conn)))
                    continue
                conn.execute("SAVEPOINT job")
                try:
                    results.append((True, fn(conn)))
                    conn.execute("RELEASE job")
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((False, exc))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.commits += 1
        return results

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None or not self._thread.is_alive():
            raise OutboxUnavailable(f"{self.path.name} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, future, loop))
        return await future

    async def aclose(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(_STOP)
            await asyncio.to_thread(self._thread.join)


def _settle_all(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():  # its waiter was cancelled
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
