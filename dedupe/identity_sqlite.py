"""The embedded identity map (and resolved incidents): one SQLite file beside the outbox.

One process owns it, so the calls are plain synchronous SQLite on the event
loop: a lookup is a few microseconds from the page cache, and a write (a new
key, a link) commits in WAL mode without waiting for the disk (``synchronous
= NORMAL``: a crash of the process loses nothing; a power cut may lose the
last links, which the next reports of those customers make again).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from dedupe.state import Entry, IdentityLink

_SCHEMA = """
CREATE TABLE IF NOT EXISTS identity_keys (
    key TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    evidence TEXT NOT NULL,
    record_id TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS identity_keys_person ON identity_keys (person);
CREATE TABLE IF NOT EXISTS identity_people (
    person TEXT PRIMARY KEY,
    first_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS link_entries (
    record_id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    entry TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resolved_incidents (
    record_id TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
"""


class SQLiteIdentityMap:
    def __init__(self, path: Path | str) -> None:
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    async def resolve(
        self, keys: Sequence[str], evidence: str, record_id: str, at: datetime
    ) -> str:
        return self.resolve_now(keys, evidence, record_id, at)

    def resolve_now(self, keys: Sequence[str], evidence: str, record_id: str, at: datetime) -> str:
        marks = ",".join("?" * len(keys))
        known = dict(
            self._db.execute(
                f"SELECT key, person FROM identity_keys WHERE key IN ({marks})", tuple(keys)
            ).fetchall()
        )
        if len(known) == len(keys) and len(set(known.values())) == 1:
            return str(next(iter(known.values())))  # the common case: nothing new
        stamp = _iso(at)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            people = sorted(set(known.values()))
            if not people:
                person = keys[0]
                db.execute("INSERT OR IGNORE INTO identity_people VALUES (?, ?)", (person, stamp))
            else:
                seen = dict(
                    db.execute(
                        "SELECT person, first_seen FROM identity_people"
                        f" WHERE person IN ({','.join('?' * len(people))})",
                        people,
                    ).fetchall()
                )
                person = min(people, key=lambda p: (seen.get(p, stamp), p))
                for other in people:
                    if other != person:
                        db.execute(
                            "UPDATE identity_keys SET person = ?, evidence = evidence || ?"
                            " WHERE person = ?",
                            (person, f"; merged by {evidence} ({record_id})", other),
                        )
                        db.execute("DELETE FROM identity_people WHERE person = ?", (other,))
            db.executemany(
                "INSERT OR IGNORE INTO identity_keys VALUES (?, ?, ?, ?, ?)",
                [(key, person, evidence, record_id, stamp) for key in keys if key not in known],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return person

    async def links(self, person: str) -> list[IdentityLink]:
        rows = self._db.execute(
            "SELECT key, person, evidence, record_id, at FROM identity_keys"
            " WHERE person = ? ORDER BY at, key",
            (person,),
        ).fetchall()
        return [
            IdentityLink(key, who, evidence, record_id, datetime.fromisoformat(at))
            for key, who, evidence, record_id, at in rows
        ]

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM identity_keys").fetchone()[0])

    # -- resolved incidents, for the embedded link index ------------------------------

    def remember_resolved(self, record_id: str, at: datetime) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO resolved_incidents VALUES (?, ?)", (record_id, _iso(at))
        )

    def resolved_since_epoch(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT record_id FROM resolved_incidents")]

    def resolved_since(self, since: datetime) -> list[str]:
        rows = self._db.execute(
            "SELECT record_id FROM resolved_incidents WHERE at >= ?", (_iso(since),)
        ).fetchall()
        return [row[0] for row in rows]

    # -- the link index of ``complaint-gateway triage --state`` (the gateway rebuilds
    # its own from the outbox) ------------------------------------------------------

    def save_entries(self, entries: Iterable[Entry]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM link_entries")
        db.executemany(
            "INSERT INTO link_entries VALUES (?, ?, ?)",
            [(e.record_id, e.at, e.to_json()) for e in entries],
        )
        db.execute("COMMIT")

    def load_entries(self, since: float) -> list[Entry]:
        rows = self._db.execute(
            "SELECT entry FROM link_entries WHERE at >= ? ORDER BY at", (since,)
        ).fetchall()
        return [Entry.from_json(row[0]) for row in rows]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()
