"""The shared notification store: PostgreSQL, for several replicas on one database.

Same semantics as :mod:`outbound.state_sqlite`; what differs is how replicas
are kept apart, since no single writer thread serializes the work here:

* ``claim`` and ``abandon`` lock the rows they take with ``FOR UPDATE SKIP
  LOCKED``: two replicas never take the same job, and never wait for each other;
* ``apply`` takes a per-record advisory lock, then locks the record's
  progress row (inserting it first when this update creates it), so two
  updates of one record run one after the other and the order check sees
  the other's result; ``remember`` takes the same advisory lock for the
  records whose SLA timer it starts, so it never starts one beside a status
  that is cancelling it;
* the job table's primary key is the ledger: ``ON CONFLICT (key) DO NOTHING``.

Each call is one transaction on the store's connection, one call at a time
(a replica's calls are short; more throughput means more replicas). A lost
connection is opened again by the next call; the call that lost it raises
:class:`~connectors.errors.OutboxUnavailable`, as the SQLite store does when
it cannot commit. A transaction PostgreSQL picks as a deadlock victim runs
again. The DSN may hold a password: it is in no ``repr``, error or log.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import astuple, replace
from datetime import UTC, datetime
from typing import Any, Self, TypeVar, cast

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg.types.json import Json

from connectors.errors import ConfigError, OutboxUnavailable
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
)

T = TypeVar("T")
Connection = psycopg.AsyncConnection[TupleRow]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    record_id text PRIMARY KEY, channel text NOT NULL, customer_id text NOT NULL,
    priority text NOT NULL, received_at timestamptz NOT NULL,
    phone text, email text, wechat_openid text, weibo_uid text, buyer_nick text, order_id text
);
CREATE INDEX IF NOT EXISTS contacts_received ON contacts (received_at);
CREATE INDEX IF NOT EXISTS contacts_openid ON contacts (wechat_openid, received_at)
    WHERE wechat_openid IS NOT NULL;
CREATE INDEX IF NOT EXISTS contacts_weibo ON contacts (weibo_uid, received_at)
    WHERE weibo_uid IS NOT NULL;
CREATE TABLE IF NOT EXISTS progress (
    record_id text PRIMARY KEY, node text NOT NULL, rank integer NOT NULL,
    ticket_no text NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS timers (
    record_id text NOT NULL, kind text NOT NULL, due_at timestamptz NOT NULL,
    PRIMARY KEY (record_id, kind)
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at);
CREATE TABLE IF NOT EXISTS jobs (
    key text PRIMARY KEY, record_id text NOT NULL, node text NOT NULL, channel text NOT NULL,
    recipient text NOT NULL, content json NOT NULL, state text NOT NULL,
    due_at timestamptz NOT NULL, attempts integer NOT NULL DEFAULT 0,
    provider text NOT NULL DEFAULT '', message_id text NOT NULL DEFAULT '',
    error text NOT NULL DEFAULT '', detail text NOT NULL DEFAULT '',
    owner text NOT NULL DEFAULT '', claimed_at timestamptz,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (due_at) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_claimed ON jobs (claimed_at) WHERE state = 'sending';
CREATE INDEX IF NOT EXISTS jobs_record ON jobs (record_id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, updated_at);
CREATE INDEX IF NOT EXISTS jobs_service ON jobs (recipient, updated_at)
    WHERE detail = 'customer_service';
CREATE TABLE IF NOT EXISTS outcomes (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, record_id text NOT NULL,
    body bytea NOT NULL, published_at timestamptz
);
CREATE INDEX IF NOT EXISTS outcomes_pending ON outcomes (seq) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS opt_outs (
    handle text PRIMARY KEY, source text NOT NULL, at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name text PRIMARY KEY, value text NOT NULL);
"""

#: the fields of :class:`Contact`, in order
_CONTACT_COLUMNS = (
    "record_id, channel, customer_id, priority, received_at,"
    " phone, email, wechat_openid, weibo_uid, buyer_nick, order_id"
)
#: the fields of :class:`Job`, in order
_JOB_COLUMNS = (
    "key, record_id, node, channel, recipient, content, due_at, state, attempts,"
    " provider, message_id, error, created_at, updated_at"
)
_SET_PROGRESS = (
    "INSERT INTO progress (record_id, node, rank, ticket_no, updated_at)"
    " VALUES (%s,%s,%s,%s,%s) ON CONFLICT (record_id)"
)
_RECORD_LOCK = 0x4E4F5449  # first key of the two-key advisory locks, one per record
_ATTEMPTS = 3  # runs of a transaction that PostgreSQL picks as a deadlock victim
_dumps = functools.partial(json.dumps, ensure_ascii=False)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


async def _insert_job(conn: Connection, job: Job, now: datetime) -> bool:
    content = Json(job.content, dumps=_dumps)
    what = (job.key, job.record_id, job.node, job.channel, job.recipient, content, job.state)
    cursor = await conn.execute(
        "INSERT INTO jobs (key, record_id, node, channel, recipient, content, state,"
        " due_at, created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
        " ON CONFLICT (key) DO NOTHING",
        (*what, _utc(job.due_at), now, now),
    )
    return cursor.rowcount == 1


async def _add_outcomes(conn: Connection, rows: Sequence[tuple[str, bytes]]) -> None:
    if rows:
        async with conn.cursor() as cursor:
            await cursor.executemany("INSERT INTO outcomes (record_id, body) VALUES (%s, %s)", rows)


async def _lock_records(conn: Connection, record_ids: Sequence[str]) -> None:
    """Advisory locks held until the transaction ends, taken in one order (no deadlock)."""
    if not record_ids:
        return
    await conn.execute(
        "SELECT pg_advisory_xact_lock(%s, k) FROM"
        " (SELECT DISTINCT hashtext(r) AS k FROM unnest(%s::text[]) AS r ORDER BY k) AS keys",
        (_RECORD_LOCK, list(record_ids)),
    )


class PostgresNotificationStore:
    """Create with :meth:`open`, close with :meth:`aclose`."""

    def __init__(self, dsn: str, *, schema: str) -> None:
        try:
            self._password = str(conninfo_to_dict(dsn).get("password") or "")
        except psycopg.Error:  # its message may quote the DSN
            raise ConfigError(["postgres dsn: not a valid PostgreSQL connection string"]) from None
        self._dsn = dsn
        self._schema = schema
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, dsn: str, *, schema: str = "complaint_gateway") -> Self:
        """Connect, and create ``schema`` and its tables if missing (safe from several replicas)."""
        store = cls(dsn, schema=schema)

        async def create(conn: Connection) -> None:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"complaint_gateway.notification_state:{schema}",),
            )
            await conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            )
            await conn.execute(_SCHEMA)

        try:
            await store._run(create)
        except BaseException:
            await store.aclose()
            raise
        return store

    def __repr__(self) -> str:
        return f"<PostgresNotificationStore schema={self._schema!r}>"

    async def aclose(self) -> None:
        """Close the connection (after the call using it, if any); idempotent."""
        self._closed = True
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()

    # -- the connection -----------------------------------------------------------------

    async def _run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, one call at a time."""
        async with self._lock:
            for attempt in range(1, _ATTEMPTS + 1):
                if self._closed:
                    raise OutboxUnavailable("PostgreSQL notification state: closed")
                if self._conn is None or self._conn.closed:
                    self._conn = await self._connect()
                conn = self._conn
                try:
                    async with conn.transaction():
                        return await work(conn)
                except (errors.DeadlockDetected, errors.SerializationFailure) as exc:
                    if attempt == _ATTEMPTS:
                        raise OutboxUnavailable(f"PostgreSQL notification state: {exc}") from exc
                except psycopg.OperationalError as exc:  # connection lost, server stopping...
                    raise OutboxUnavailable(f"PostgreSQL notification state: {exc}") from exc
                finally:
                    # left mid-transaction (a cancelled call): start afresh next time
                    if conn.info.transaction_status != TransactionStatus.IDLE:
                        await conn.close()
        raise AssertionError("unreachable")

    async def _connect(self) -> Connection:
        try:
            conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=False)
        except psycopg.Error as exc:
            message = (str(exc).strip() or repr(exc)).splitlines()[0]
            if self._password:
                message = message.replace(self._password, "***")
            # from None: the original error may quote the DSN in full
            raise OutboxUnavailable(f"PostgreSQL notification state: {message}") from None
        try:
            await conn.execute(
                "SELECT set_config('search_path', %s, false), set_config('TimeZone', 'UTC', false)",
                (sql.Identifier(self._schema).as_string(conn),),
            )
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _all(self, query: str, params: Sequence[Any]) -> list[TupleRow]:
        async def run(conn: Connection) -> list[TupleRow]:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall() if cursor.description else []

        return await self._run(run)

    async def _one(self, query: str, params: Sequence[Any]) -> TupleRow | None:
        rows = await self._all(query, params)
        return rows[0] if rows else None

    # -- the directory ------------------------------------------------------------------

    async def remember(
        self, contacts: Sequence[Contact], *, cursor: int, sla_due: Mapping[str, datetime]
    ) -> None:
        rows = [astuple(replace(c, received_at=_utc(c.received_at))) for c in contacts]
        timers = [(rid, _utc(due), rid) for rid, due in sla_due.items()]

        async def write(conn: Connection) -> None:
            await _lock_records(conn, list(sla_due))
            async with conn.cursor() as cur:
                await cur.executemany(
                    f"INSERT INTO contacts ({_CONTACT_COLUMNS}) VALUES"
                    " (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (record_id) DO NOTHING",
                    rows,
                )
                # A timer starts only for a record no status has reached yet.
                await cur.executemany(
                    "INSERT INTO timers (record_id, kind, due_at) SELECT %s, 'sla', %s"
                    " WHERE NOT EXISTS (SELECT 1 FROM progress WHERE record_id = %s)"
                    " ON CONFLICT (record_id, kind) DO NOTHING",
                    timers,
                )
            await conn.execute(
                "INSERT INTO meta (name, value) VALUES ('directory_cursor', %s)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (str(cursor),),
            )

        await self._run(write)

    async def directory_cursor(self) -> int:
        row = await self._one("SELECT value FROM meta WHERE name = 'directory_cursor'", ())
        return int(row[0]) if row else 0

    async def contact(self, record_id: str) -> Contact | None:
        query = f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE record_id = %s"
        row = await self._one(query, (record_id,))
        return Contact(*row) if row else None

    async def progress(self, record_id: str) -> Progress | None:
        query = "SELECT record_id, node, rank, ticket_no FROM progress WHERE record_id = %s"
        row = await self._one(query, (record_id,))
        return Progress(*row) if row else None

    # -- status updates and the queue ---------------------------------------------------

    async def apply(self, change: StatusChange, *, now: datetime) -> Applied:
        at = _utc(now)
        rid = change.record_id

        async def write(conn: Connection) -> Applied:
            await _lock_records(conn, [rid])
            progress = (rid, change.node, change.rank, change.ticket_no, at)
            created = False
            if change.advances:  # the row this update makes, unless the record has one
                cursor = await conn.execute(f"{_SET_PROGRESS} DO NOTHING", progress)
                created = cursor.rowcount == 1
            row = None
            if not created:
                cursor = await conn.execute(
                    "SELECT node, rank FROM progress WHERE record_id = %s FOR UPDATE", (rid,)
                )
                row = await cursor.fetchone()
            if row is not None and change.rank < row[1] and not change.reopens:
                return Applied(0, 0, backwards_from=row[0])
            added = 0
            for job in change.jobs:
                added += await _insert_job(conn, job, at)
            await _add_outcomes(conn, [(rid, body) for body in change.outcomes])
            if change.advances and not created:  # an upsert: prune may have removed it
                await conn.execute(
                    f"{_SET_PROGRESS} DO UPDATE SET node = excluded.node, rank = excluded.rank,"
                    " ticket_no = excluded.ticket_no, updated_at = excluded.updated_at",
                    progress,
                )
            if change.clear_sla:
                await conn.execute(
                    "DELETE FROM timers WHERE record_id = %s AND kind = 'sla'", (rid,)
                )
            if change.clear_survey:
                await conn.execute(
                    "DELETE FROM timers WHERE record_id = %s AND kind = 'survey'", (rid,)
                )
            if change.survey_due_at is not None:
                await conn.execute(
                    "INSERT INTO timers (record_id, kind, due_at) VALUES (%s, 'survey', %s)"
                    " ON CONFLICT (record_id, kind) DO UPDATE SET due_at = excluded.due_at",
                    (rid, _utc(change.survey_due_at)),
                )
            return Applied(added, len(change.jobs) - added)

        return await self._run(write)

    async def record_outcome(self, record_id: str, outcome: bytes) -> None:
        await self._run(lambda conn: _add_outcomes(conn, [(record_id, outcome)]))

    async def claim(self, now: datetime, limit: int, owner: str) -> list[Job]:
        # The jobs as they were when taken (state "queued"), as the SQLite store returns them.
        at = _utc(now)
        rows = await self._all(
            "UPDATE jobs SET state = 'sending', owner = %s, claimed_at = %s, updated_at = %s"
            f" FROM (SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'queued' AND due_at <= %s"
            "  ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED) AS picked"
            " WHERE jobs.key = picked.key RETURNING picked.*",
            (owner, at, at, at, limit),
        )
        return sorted((Job(*row) for row in rows), key=lambda job: job.due_at)

    async def finish(self, key: str, result: Finish) -> None:
        at = _utc(result.at)
        done = (result.state, result.provider, result.message_id, result.error, result.detail)

        async def write(conn: Connection) -> None:
            updated = await conn.execute(
                "UPDATE jobs SET state = %s, provider = %s, message_id = %s, error = %s,"
                " detail = %s, attempts = attempts + 1, updated_at = %s WHERE key = %s"
                " RETURNING record_id",
                (*done, at, key),
            )
            row = await updated.fetchone()
            await _add_outcomes(conn, [(row[0] if row else "", result.outcome)])
            for job in result.follow_up:
                await _insert_job(conn, job, at)

        await self._run(write)

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
        await self._all(
            "UPDATE jobs SET state = 'queued', due_at = %s, attempts = %s, error = %s,"
            " content = %s, owner = '', claimed_at = NULL, updated_at = %s WHERE key = %s",
            (_utc(due_at), attempts, error, Json(content, dumps=_dumps), _utc(at), key),
        )

    async def abandon(
        self, claimed_before: datetime, outcome: Callable[[Job], bytes], *, at: datetime
    ) -> list[Job]:
        async def write(conn: Connection) -> list[Job]:
            found = await conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'sending' AND claimed_at <= %s"
                " ORDER BY claimed_at FOR UPDATE SKIP LOCKED",
                (_utc(claimed_before),),
            )
            jobs = [Job(*row) for row in await found.fetchall()]
            if jobs:
                await conn.execute(
                    "UPDATE jobs SET state = 'in_doubt', error = 'claim outlived its lease:"
                    " the process stopped while sending', updated_at = %s WHERE key = ANY(%s)",
                    (_utc(at), [job.key for job in jobs]),
                )
                await _add_outcomes(conn, [(job.record_id, outcome(job)) for job in jobs])
            return jobs

        return await self._run(write)

    async def resend(self, key: str, now: datetime) -> Job | None:
        at = _utc(now)
        row = await self._one(
            "UPDATE jobs SET state = 'queued', due_at = %s, attempts = 0, error = '',"
            " owner = '', claimed_at = NULL, updated_at = %s"
            f" WHERE key = %s AND state IN ('dead', 'in_doubt') RETURNING {_JOB_COLUMNS}",
            (at, at, key),
        )
        return Job(*row) if row else None

    # -- timers, reply window, opt-outs, outcomes ---------------------------------------

    async def due_timers(self, now: datetime, limit: int) -> list[tuple[str, TimerKind]]:
        rows = await self._all(
            "SELECT record_id, kind FROM timers WHERE due_at <= %s ORDER BY due_at LIMIT %s",
            (_utc(now), limit),
        )
        return [(rid, kind) for rid, kind in rows]

    async def cancel_timer(self, record_id: str, kind: TimerKind) -> None:
        await self._all("DELETE FROM timers WHERE record_id = %s AND kind = %s", (record_id, kind))

    async def reply_window(
        self, handle: str, since: datetime, *, channel: str = "wechat"
    ) -> tuple[datetime | None, int]:
        column = WINDOW_HANDLES[channel]
        row = await self._one(
            "SELECT last, (SELECT count(*) FROM jobs WHERE recipient = %s"
            "  AND detail = 'customer_service' AND updated_at >= last)"
            f" FROM (SELECT max(received_at) AS last FROM contacts WHERE {column} = %s"
            "  AND channel = %s AND received_at >= %s) AS latest",
            (handle, handle, channel, _utc(since)),
        )
        if row is None or row[0] is None:
            return None, 0
        return row[0], int(row[1])

    async def opted_out(self, handles: Sequence[str]) -> set[str]:
        if not handles:
            return set()
        query = "SELECT handle FROM opt_outs WHERE handle = ANY(%s)"
        return {row[0] for row in await self._all(query, (list(handles),))}

    async def set_opt_out(self, handle: str, opted_out: bool, *, source: str, at: datetime) -> None:
        if opted_out:
            await self._all(
                "INSERT INTO opt_outs (handle, source, at) VALUES (%s,%s,%s)"
                " ON CONFLICT (handle) DO UPDATE SET source = excluded.source, at = excluded.at"
                " WHERE opt_outs.source <> 'operator' OR excluded.source = 'operator'",
                (handle, source, _utc(at)),
            )
        else:
            await self._all(
                "DELETE FROM opt_outs WHERE handle = %s AND (%s = 'operator' OR source = %s)",
                (handle, source, source),
            )

    async def unpublished(self, limit: int) -> list[Outcome]:
        rows = await self._all(
            "SELECT seq, record_id, body FROM outcomes WHERE published_at IS NULL"
            " ORDER BY seq LIMIT %s",
            (limit,),
        )
        return [Outcome(seq, rid, bytes(body)) for seq, rid, body in rows]

    async def mark_published(self, seqs: Sequence[int], at: datetime) -> None:
        if seqs:
            await self._all(
                "UPDATE outcomes SET published_at = %s WHERE seq = ANY(%s::bigint[])",
                (_utc(at), list(seqs)),
            )

    # -- operators ----------------------------------------------------------------------

    async def jobs(
        self, *, states: Sequence[JobState] = (), record_id: str | None = None, limit: int = 100
    ) -> list[Job]:
        clauses: list[str] = []
        params: list[Any] = []
        if states:
            clauses.append("state = ANY(%s)")
            params.append(list(states))
        if record_id is not None:
            clauses.append("record_id = %s")
            params.append(record_id)
        where = " AND ".join(clauses) or "TRUE"
        rows = await self._all(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY created_at, key LIMIT %s",
            (*params, limit),
        )
        return [Job(*row) for row in rows]

    async def counts(self) -> dict[JobState, int]:
        rows = await self._all("SELECT state, count(*) FROM jobs GROUP BY state", ())
        return {cast(JobState, state): int(n) for state, n in rows}

    async def prune(self, before: datetime) -> int:
        cut = _utc(before)
        old = "SELECT record_id FROM contacts WHERE received_at < %s"

        async def write(conn: Connection) -> int:
            for table in ("progress", "timers"):
                await conn.execute(f"DELETE FROM {table} WHERE record_id IN ({old})", (cut,))
            await conn.execute(
                f"DELETE FROM jobs WHERE record_id IN ({old})"
                " AND state IN ('sent', 'skipped', 'dead', 'in_doubt')",
                (cut,),
            )
            await conn.execute(
                "DELETE FROM outcomes WHERE published_at IS NOT NULL AND published_at < %s", (cut,)
            )
            deleted = await conn.execute("DELETE FROM contacts WHERE received_at < %s", (cut,))
            return deleted.rowcount

        return await self._run(write)
