"""The durable outbox: SQLite in WAL mode, written through one group-committing thread.

A webhook is answered only after its record is here, so this is where
"acknowledged means never lost" is kept. Writes are group-committed
(:mod:`outbox._group_commit`): hundreds of concurrent webhooks cost a
handful of commits instead of hundreds.

Tables:

* ``outbox``: one row per record, in arrival order (``seq``), unique
  ``record_id``, the record JSON, the raw payload, and ``sent_at`` once the
  sink acknowledged it. Sent rows are pruned after the retention period.
* ``quarantine``: authenticated payloads that could not be read, kept verbatim.
* ``cursors``: each polling connector's position (a mailbox UID, a file
  offset), written in the same transaction as the records it covers, so a
  crash can repeat a poll but never skip one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.errors import OutboxUnavailable
from outbox._group_commit import GroupCommitDatabase
from schemas import ComplaintRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    source_key TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    record BLOB NOT NULL,
    raw BLOB NOT NULL,
    raw_media_type TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(seq) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_received ON outbox(received_at);
CREATE TABLE IF NOT EXISTS cursors (
    connector TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    channel TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A record as stored: what the sinks publish."""

    seq: int
    record_id: str
    channel: str
    customer_id: str
    received_at: str
    record_json: bytes


@dataclass(frozen=True, slots=True)
class NewEntry:
    record: ComplaintRecord
    source_key: str
    raw: bytes
    raw_media_type: str
    #: what dedupe remembers it by; default ``<channel>:<source_key>``
    dedupe_key: str = ""


@dataclass(frozen=True, slots=True)
class NewQuarantine:
    """An unreadable payload to keep verbatim for inspection."""

    channel: str
    reason: str
    detail: str
    headers: Mapping[str, str]
    body: bytes
    at: datetime

    def insert(self, conn: sqlite3.Connection) -> int:
        return (
            conn.execute(
                "INSERT INTO quarantine (received_at, channel, reason, detail, headers, body)"
                " VALUES (?,?,?,?,?,?)",
                (
                    _iso(self.at),
                    self.channel,
                    self.reason,
                    self.detail,
                    json.dumps(dict(self.headers)),
                    self.body,
                ),
            ).lastrowid
            or 0
        )


@dataclass(frozen=True, slots=True)
class QuarantinedPayload:
    id: int
    received_at: str
    channel: str
    reason: str
    detail: str
    headers: Mapping[str, str]
    body: bytes


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class SQLiteOutbox(GroupCommitDatabase):
    """The embedded outbox. Create with :meth:`open`, close with :meth:`aclose`."""

    thread_name = "outbox-writer"

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(path, **options)
        self._pending = 0

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
        if "dedupe_key" not in columns:  # an outbox from before connectors had scopes
            conn.execute("ALTER TABLE outbox ADD COLUMN dedupe_key TEXT")

    async def _opened(self) -> None:
        self._pending = await self._call(
            lambda c: c.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
        )

    # -- the outbox API ----------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records written but not yet acknowledged by the sink."""
        return self._pending

    async def append(
        self,
        entries: Sequence[NewEntry],
        *,
        cursor: tuple[str, str] | None = None,
        quarantine: Sequence[NewQuarantine] = (),
        at: datetime | None = None,
    ) -> list[bool]:
        """Write records durably; for each, True if new, False if its record_id was already in.

        A poller passes its ``cursor`` (connector name, cursor text) and the
        payloads it could not read: all are committed in one transaction with
        the records, or none is. Returns only after the commit. Raises
        :class:`OutboxUnavailable` if it failed.
        """

        def insert(conn: sqlite3.Connection) -> list[bool]:
            added = []
            for entry in entries:
                record = entry.record
                row = conn.execute(
                    "INSERT OR IGNORE INTO outbox (record_id, channel, source_key, customer_id,"
                    " received_at, record, raw, raw_media_type, dedupe_key)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        record.record_id,
                        record.channel,
                        entry.source_key,
                        record.customer.id,
                        _iso(record.received_at),
                        record.to_json_bytes(),
                        entry.raw,
                        entry.raw_media_type,
                        entry.dedupe_key or f"{record.channel}:{entry.source_key}",
                    ),
                )
                added.append(row.rowcount == 1)
            for item in quarantine:
                item.insert(conn)
            if cursor is not None:
                conn.execute(
                    "INSERT INTO cursors (connector, cursor, updated_at) VALUES (?,?,?)"
                    " ON CONFLICT(connector) DO UPDATE"
                    " SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                    (cursor[0], cursor[1], _iso(at) if at else ""),
                )
            return added

        try:
            added = await self._call(insert)
        except sqlite3.Error as exc:
            raise OutboxUnavailable(f"outbox write failed: {exc}") from exc
        self._pending += sum(added)
        return added

    async def pending_batch(self, limit: int) -> list[OutboxEntry]:
        """The oldest unsent records, in arrival order."""
        rows = await self._call(
            lambda c: c.execute(
                "SELECT seq, record_id, channel, customer_id, received_at, record FROM outbox"
                " WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [OutboxEntry(*row) for row in rows]

    async def after(self, seq: int, limit: int) -> list[OutboxEntry]:
        """Records stored after ``seq``, sent or not, in arrival order (for the directory)."""
        rows = await self._call(
            lambda c: c.execute(
                "SELECT seq, record_id, channel, customer_id, received_at, record FROM outbox"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        )
        return [OutboxEntry(*row) for row in rows]

    async def mark_sent(self, seqs: Sequence[int], at: datetime) -> None:
        stamp = _iso(at)

        def update(conn: sqlite3.Connection) -> int:
            cursor = conn.executemany(
                "UPDATE outbox SET sent_at = ? WHERE seq = ? AND sent_at IS NULL",
                [(stamp, seq) for seq in seqs],
            )
            return cursor.rowcount

        changed = await self._call(update)
        self._pending = max(0, self._pending - changed)

    async def prune(self, sent_before: datetime) -> int:
        """Delete sent records older than ``sent_before``; unsent ones are never deleted."""
        return await self._call(
            lambda c: (
                c.execute(
                    "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?",
                    (_iso(sent_before),),
                ).rowcount
            )
        )

    async def recent_keys(self, since: datetime) -> list[tuple[str, str, datetime]]:
        """(channel:source_key, record_id, received_at) of records since ``since``: warms dedupe."""
        rows = await self._call(
            lambda c: c.execute(
                "SELECT coalesce(dedupe_key, channel || ':' || source_key), record_id, received_at"
                " FROM outbox"
                " WHERE received_at >= ? ORDER BY seq",
                (_iso(since),),
            ).fetchall()
        )
        return [(key, rid, datetime.fromisoformat(at)) for key, rid, at in rows]

    async def select(
        self,
        *,
        record_ids: Iterable[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[OutboxEntry]:
        """Stored records by id or by received time (both bounds inclusive), in arrival order."""
        ids = list(record_ids)
        clauses, params = [], []
        if ids:
            clauses.append(f"record_id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        if since is not None:
            clauses.append("received_at >= ?")
            params.append(_iso(since))
        if until is not None:
            clauses.append("received_at <= ?")
            params.append(_iso(until))
        where = " AND ".join(clauses) or "1"
        rows = await self._call(
            lambda c: c.execute(
                "SELECT seq, record_id, channel, customer_id, received_at, record FROM outbox"
                f" WHERE {where} ORDER BY seq",
                params,
            ).fetchall()
        )
        return [OutboxEntry(*row) for row in rows]

    async def raw_payload(self, record_id: str) -> tuple[bytes, str] | None:
        row = await self._call(
            lambda c: c.execute(
                "SELECT raw, raw_media_type FROM outbox WHERE record_id = ?", (record_id,)
            ).fetchone()
        )
        return (bytes(row[0]), row[1]) if row else None

    async def quarantine(
        self,
        *,
        channel: str,
        reason: str,
        detail: str,
        headers: Mapping[str, str],
        body: bytes,
        at: datetime,
    ) -> int:
        """Keep an unreadable payload verbatim for inspection; returns its quarantine id."""
        return await self._call(NewQuarantine(channel, reason, detail, headers, body, at).insert)

    async def cursor(self, connector: str) -> str | None:
        """The last committed cursor of a polling connector, None before its first poll."""
        row = await self._call(
            lambda c: c.execute(
                "SELECT cursor FROM cursors WHERE connector = ?", (connector,)
            ).fetchone()
        )
        return str(row[0]) if row else None

    async def cursors(self) -> dict[str, tuple[str, str]]:
        """Every connector's cursor and when it was committed."""
        rows = await self._call(
            lambda c: c.execute("SELECT connector, cursor, updated_at FROM cursors").fetchall()
        )
        return {name: (cursor, at) for name, cursor, at in rows}

    async def quarantined(self, limit: int = 100) -> list[QuarantinedPayload]:
        rows = await self._call(
            lambda c: c.execute(
                "SELECT id, received_at, channel, reason, detail, headers, body FROM quarantine"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [
            QuarantinedPayload(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), bytes(r[6]))
            for r in rows
        ]

    async def check_writable(self) -> None:
        """Raise :class:`OutboxUnavailable` unless a write transaction can be taken now."""
        try:
            await self._call(lambda c: c.execute("CREATE TEMP TABLE IF NOT EXISTS ping (x)"))
        except sqlite3.Error as exc:
            raise OutboxUnavailable(f"outbox is not writable: {exc}") from exc
