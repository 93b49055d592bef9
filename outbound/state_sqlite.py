"""The embedded notification store: SQLite, group-committed like the outbox.

One process owns the file (the default, single-replica deployment); for
several replicas use :mod:`outbound.state_postgres`. Claims need no row
locks here: every write runs on the one writer thread, so reading due jobs
and marking them ``sending`` in one job is already atomic.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from outbound.state import (
    WINDOW_HANDLES,
    Applied,
    Contact,
    Finish,
    Job,
    JobState,
    Outcome,
    Progress,
    StatusChange,
    TimerKind,
    stamp,
)
from outbox._group_commit import GroupCommitDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    record_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    priority TEXT NOT NULL,
    received_at TEXT NOT NULL,
    phone TEXT, email TEXT, wechat_openid TEXT, weibo_uid TEXT, buyer_nick TEXT, order_id TEXT
);
CREATE INDEX IF NOT EXISTS contacts_received ON contacts(received_at);
CREATE INDEX IF NOT EXISTS contacts_openid ON contacts(wechat_openid, received_at)
    WHERE wechat_openid IS NOT NULL;
CREATE INDEX IF NOT EXISTS contacts_weibo ON contacts(weibo_uid, received_at)
    WHERE weibo_uid IS NOT NULL;
CREATE TABLE IF NOT EXISTS progress (
    record_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    rank INTEGER NOT NULL,
    ticket_no TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS timers (
    record_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    due_at TEXT NOT NULL,
    PRIMARY KEY (record_id, kind)
);
CREATE INDEX IF NOT EXISTS timers_due ON timers(due_at);
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    node TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    content TEXT NOT NULL,
    state TEXT NOT NULL,
    due_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    provider TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    claimed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(due_at) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_claimed ON jobs(claimed_at) WHERE state = 'sending';
CREATE INDEX IF NOT EXISTS jobs_record ON jobs(record_id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, updated_at);
CREATE INDEX IF NOT EXISTS jobs_service ON jobs(recipient, updated_at)
    WHERE detail = 'customer_service';
CREATE TABLE IF NOT EXISTS outcomes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    body BLOB NOT NULL,
    published_at TEXT
);
CREATE INDEX IF NOT EXISTS outcomes_pending ON outcomes(seq) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS opt_outs (
    handle TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_CONTACT_COLUMNS = (
    "record_id, channel, customer_id, priority, received_at,"
    " phone, email, wechat_openid, weibo_uid, buyer_nick, order_id"
)
_JOB_COLUMNS = (
    "key, record_id, node, channel, recipient, content, due_at, state, attempts,"
    " provider, message_id, error, created_at, updated_at"
)


def _time(text: str | None) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) if text else None


def _job(row: Sequence[Any]) -> Job:
    return Job(
        key=row[0],
        record_id=row[1],
        node=row[2],
        channel=row[3],
        recipient=row[4],
        content=json.loads(row[5]),
        due_at=cast(datetime, _time(row[6])),
        state=row[7],
        attempts=row[8],
        provider=row[9],
        message_id=row[10],
        error=row[11],
        created_at=_time(row[12]),
        updated_at=_time(row[13]),
    )


def _insert_job(conn: sqlite3.Connection, job: Job, now: str) -> bool:
    cursor = conn.execute(
        "INSERT OR IGNORE INTO jobs (key, record_id, node, channel, recipient, content, state,"
        " due_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            job.key,
            job.record_id,
            job.node,
            job.channel,
            job.recipient,
            json.dumps(job.content, ensure_ascii=False),
            job.state,
            stamp(job.due_at),
            now,
            now,
        ),
    )
    return cursor.rowcount == 1


class SQLiteNotificationStore(GroupCommitDatabase):
    thread_name = "notifications-writer"

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.executescript(_SCHEMA)

    async def remember(
        self, contacts: Sequence[Contact], *, cursor: int, sla_due: Mapping[str, datetime]
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                f"INSERT INTO contacts ({_CONTACT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(record_id) DO NOTHING",
                [
                    (
                        c.record_id,
                        c.channel,
                        c.customer_id,
                        c.priority,
                        stamp(c.received_at),
                        c.phone,
                        c.email,
                        c.wechat_openid,
                        c.weibo_uid,
                        c.buyer_nick,
                        c.order_id,
                    )
                    for c in contacts
                ],
            )
            # A timer starts only for a record no status has reached yet.
            conn.executemany(
                "INSERT OR IGNORE INTO timers (record_id, kind, due_at)"
                " SELECT ?, 'sla', ? WHERE NOT EXISTS"
                " (SELECT 1 FROM progress WHERE record_id = ?)",
                [(rid, stamp(due), rid) for rid, due in sla_due.items()],
            )
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('directory_cursor', ?)"
                " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (str(cursor),),
            )

        await self._call(write)

    async def directory_cursor(self) -> int:
        row = await self._call(
            lambda c: c.execute("SELECT value FROM meta WHERE name = 'directory_cursor'").fetchone()
        )
        return int(row[0]) if row else 0

    async def contact(self, record_id: str) -> Contact | None:
        row = await self._call(
            lambda c: c.execute(
                f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE record_id = ?", (record_id,)
            ).fetchone()
        )
        if row is None:
            return None
        return Contact(row[0], row[1], row[2], row[3], cast(datetime, _time(row[4])), *row[5:])

    async def progress(self, record_id: str) -> Progress | None:
        row = await self._call(
            lambda c: c.execute(
                "SELECT record_id, node, rank, ticket_no FROM progress WHERE record_id = ?",
                (record_id,),
            ).fetchone()
        )
        return Progress(*row) if row else None

    async def apply(self, change: StatusChange, *, now: datetime) -> Applied:
        at = stamp(now)

        def write(conn: sqlite3.Connection) -> Applied:
            row = conn.execute(
                "SELECT node, rank FROM progress WHERE record_id = ?", (change.record_id,)
            ).fetchone()
            if row is not None and change.rank < row[1] and not change.reopens:
                return Applied(0, 0, backwards_from=row[0])
            added = sum(_insert_job(conn, job, at) for job in change.jobs)
            for outcome in change.outcomes:
                conn.execute(
                    "INSERT INTO outcomes (record_id, body) VALUES (?, ?)",
                    (change.record_id, outcome),
                )
            if change.advances:
                conn.execute(
                    "INSERT INTO progress (record_id, node, rank, ticket_no, updated_at)"
                    " VALUES (?,?,?,?,?) ON CONFLICT(record_id) DO UPDATE SET node = excluded.node,"
                    " rank = excluded.rank, ticket_no = excluded.ticket_no,"
                    " updated_at = excluded.updated_at",
                    (
                        change.record_id,
                        change.node,
                        change.rank,
                        change.ticket_no,
                        at,
                    ),
                )
            if change.clear_sla:
                conn.execute(
                    "DELETE FROM timers WHERE record_id = ? AND kind = 'sla'", (change.record_id,)
                )
            if change.clear_survey:
                conn.execute(
                    "DELETE FROM timers WHERE record_id = ? AND kind = 'survey'",
                    (change.record_id,),
                )
            if change.survey_due_at is not None:
                conn.execute(
                    "INSERT INTO timers (record_id, kind, due_at) VALUES (?, 'survey', ?)"
                    " ON CONFLICT(record_id, kind) DO UPDATE SET due_at = excluded.due_at",
                    (change.record_id, stamp(change.survey_due_at)),
                )
            return Applied(added, len(change.jobs) - added)

        return await self._call(write)

    async def record_outcome(self, record_id: str, outcome: bytes) -> None:
        await self._call(
            lambda c: c.execute(
                "INSERT INTO outcomes (record_id, body) VALUES (?, ?)", (record_id, outcome)
            )
        )

    async def claim(self, now: datetime, limit: int, owner: str) -> list[Job]:
        at = stamp(now)

        def take(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'queued' AND due_at <= ?"
                " ORDER BY due_at LIMIT ?",
                (at, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE jobs SET state = 'sending', owner = ?, claimed_at = ?, updated_at = ?"
                " WHERE key = ?",
                [(owner, at, at, row[0]) for row in rows],
            )
            return [_job(row) for row in rows]

        return await self._call(take)

    async def finish(self, key: str, result: Finish) -> None:
        at = stamp(result.at)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE jobs SET state = ?, provider = ?, message_id = ?, error = ?, detail = ?,"
                " attempts = attempts + 1, updated_at = ? WHERE key = ?",
                (
                    result.state,
                    result.provider,
                    result.message_id,
                    result.error,
                    result.detail,
                    at,
                    key,
                ),
            )
            record_id = conn.execute("SELECT record_id FROM jobs WHERE key = ?", (key,)).fetchone()
            conn.execute(
                "INSERT INTO outcomes (record_id, body) VALUES (?, ?)",
                (record_id[0] if record_id else "", result.outcome),
            )
            for job in result.follow_up:
                _insert_job(conn, job, at)

        await self._call(write)

    async def reschedule(
        self,
        key: str,
        due_at: datetime,
        *,
        attempts: int,
        error: str,
        content: Mapping[str, Any],
        at: datetime,
    ) -> None:
        await self._call(
            lambda c: c.execute(
                "UPDATE jobs SET state = 'queued', due_at = ?, attempts = ?, error = ?,"
                " content = ?, owner = '', claimed_at = NULL, updated_at = ? WHERE key = ?",
                (
                    stamp(due_at),
                    attempts,
                    error,
                    json.dumps(content, ensure_ascii=False),
                    stamp(at),
                    key,
                ),
            )
        )

    async def abandon(
        self, claimed_before: datetime, outcome: Callable[[Job], bytes], *, at: datetime
    ) -> list[Job]:
        before = stamp(claimed_before)

        def write(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'sending' AND claimed_at <= ?",
                (before,),
            ).fetchall()
            jobs = [_job(row) for row in rows]
            for job in jobs:
                conn.execute(
                    "UPDATE jobs SET state = 'in_doubt', error = 'claim outlived its lease:"
                    " the process stopped while sending', updated_at = ? WHERE key = ?",
                    (stamp(at), job.key),
                )
                conn.execute(
                    "INSERT INTO outcomes (record_id, body) VALUES (?, ?)",
                    (job.record_id, outcome(job)),
                )
            return jobs

        return await self._call(write)

    async def due_timers(self, now: datetime, limit: int) -> list[tuple[str, TimerKind]]:
        rows = await self._call(
            lambda c: c.execute(
                "SELECT record_id, kind FROM timers WHERE due_at <= ? ORDER BY due_at LIMIT ?",
                (stamp(now), limit),
            ).fetchall()
        )
        return [(rid, kind) for rid, kind in rows]

    async def cancel_timer(self, record_id: str, kind: TimerKind) -> None:
        await self._call(
            lambda c: c.execute(
                "DELETE FROM timers WHERE record_id = ? AND kind = ?", (record_id, kind)
            )
        )

    async def reply_window(
        self, handle: str, since: datetime, *, channel: str = "wechat"
    ) -> tuple[datetime | None, int]:
        column = WINDOW_HANDLES[channel]

        def read(conn: sqlite3.Connection) -> tuple[datetime | None, int]:
            row = conn.execute(
                f"SELECT max(received_at) FROM contacts WHERE {column} = ?"
                " AND channel = ? AND received_at >= ?",
                (handle, channel, stamp(since)),
            ).fetchone()
            last = row[0] if row else None
            if last is None:
                return None, 0
            sent = conn.execute(
                "SELECT count(*) FROM jobs WHERE recipient = ? AND detail = 'customer_service'"
                " AND updated_at >= ?",
                (handle, last),
            ).fetchone()[0]
            return _time(last), int(sent)

        return await self._call(read)

    async def opted_out(self, handles: Sequence[str]) -> set[str]:
        if not handles:
            return set()
        marks = ",".join("?" * len(handles))
        rows = await self._call(
            lambda c: c.execute(
                f"SELECT handle FROM opt_outs WHERE handle IN ({marks})", list(handles)
            ).fetchall()
        )
        return {row[0] for row in rows}

    async def set_opt_out(self, handle: str, opted_out: bool, *, source: str, at: datetime) -> None:
        if opted_out:
            await self._call(
                lambda c: c.execute(
                    "INSERT INTO opt_outs (handle, source, at) VALUES (?,?,?)"
                    " ON CONFLICT(handle) DO UPDATE SET source = excluded.source, at = excluded.at"
                    " WHERE opt_outs.source <> 'operator' OR excluded.source = 'operator'",
                    (handle, source, stamp(at)),
                )
            )
        else:
            await self._call(
                lambda c: c.execute(
                    "DELETE FROM opt_outs WHERE handle = ? AND (? = 'operator' OR source = ?)",
                    (handle, source, source),
                )
            )

    async def unpublished(self, limit: int) -> list[Outcome]:
        rows = await self._call(
            lambda c: c.execute(
                "SELECT seq, record_id, body FROM outcomes WHERE published_at IS NULL"
                " ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [Outcome(seq, rid, bytes(body)) for seq, rid, body in rows]

    async def mark_published(self, seqs: Sequence[int], at: datetime) -> None:
        await self._call(
            lambda c: c.executemany(
                "UPDATE outcomes SET published_at = ? WHERE seq = ?",
                [(stamp(at), seq) for seq in seqs],
            )
        )

    async def jobs(
        self, *, states: Sequence[JobState] = (), record_id: str | None = None, limit: int = 100
    ) -> list[Job]:
        clauses: list[str] = []
        params: list[str] = []
        if states:
            clauses.append(f"state IN ({','.join('?' * len(states))})")
            params.extend(states)
        if record_id is not None:
            clauses.append("record_id = ?")
            params.append(record_id)
        where = " AND ".join(clauses) or "1"
        rows = await self._call(
            lambda c: c.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY created_at, key LIMIT ?",
                (*params, limit),
            ).fetchall()
        )
        return [_job(row) for row in rows]

    async def resend(self, key: str, now: datetime) -> Job | None:
        at = stamp(now)

        def write(conn: sqlite3.Connection) -> Job | None:
            changed = conn.execute(
                "UPDATE jobs SET state = 'queued', due_at = ?, attempts = 0, error = '',"
                " owner = '', claimed_at = NULL, updated_at = ?"
                " WHERE key = ? AND state IN ('dead', 'in_doubt')",
                (at, at, key),
            ).rowcount
            if not changed:
                return None
            row = conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE key = ?", (key,)).fetchone()
            return _job(row)

        return await self._call(write)

    async def counts(self) -> dict[JobState, int]:
        rows = await self._call(
            lambda c: c.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        )
        return {state: int(n) for state, n in rows}

    async def prune(self, before: datetime) -> int:
        cut = stamp(before)

        def write(conn: sqlite3.Connection) -> int:
            old = "SELECT record_id FROM contacts WHERE received_at < ?"
            for table in ("progress", "timers"):
                conn.execute(f"DELETE FROM {table} WHERE record_id IN ({old})", (cut,))
            conn.execute(
                f"DELETE FROM jobs WHERE record_id IN ({old})"
                " AND state IN ('sent', 'skipped', 'dead', 'in_doubt')",
                (cut,),
            )
            conn.execute(
                "DELETE FROM outcomes WHERE published_at IS NOT NULL AND published_at < ?", (cut,)
            )
            return conn.execute("DELETE FROM contacts WHERE received_at < ?", (cut,)).rowcount

        return await self._call(write)
