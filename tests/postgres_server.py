"""A PostgreSQL database for tests: each test gets a fresh schema, dropped afterwards.

:func:`postgres_store_factory` finds a server once per session, in this order:

1. ``GATEWAY_TEST_POSTGRES_DSN``, when set (read when this module is imported,
   because ``tests.conftest`` removes every ``GATEWAY_*`` variable before each test);
2. the machine's own server at ``postgresql://postgres@127.0.0.1:5432/postgres``
   (trust authentication), if it accepts a connection within about two seconds;
3. a private server started from ``initdb`` and ``pg_ctl`` (on ``PATH`` or in
   ``/usr/lib/postgresql/*/bin``) in a directory under ``/tmp``, on a free port,
   stopped and removed when the session ends. PostgreSQL refuses to run as root,
   so as root it runs as the ``postgres`` user through ``runuser`` or ``su``.

When none is available the test is skipped, or fails in CI (``CI=true``), which
must run it. The DSN is never put in a message: it may hold a password.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from outbound.state_postgres import PostgresNotificationStore
from tests.brokers import free_port
from tests.conftest import IN_CI

DSN_VARIABLE = "GATEWAY_TEST_POSTGRES_DSN"
LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
START_TIMEOUT = 60  # seconds for pg_ctl start to see the server up

_CONFIGURED_DSN = os.environ.get(DSN_VARIABLE)

StoreFactory = Callable[[], Awaitable[PostgresNotificationStore]]


@dataclass
class _Found:
    dsn: str | None = None
    unavailable: str | None = None


_found = _Found()


@asynccontextmanager
async def postgres_dsn_and_schema(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str]]:
    """A server's DSN and a fresh schema name, for gateways configured with them; dropped after."""
    dsn = await _server_dsn(request)
    schema = f"gateway_test_{secrets.token_hex(6)}"
    try:
        yield dsn, schema
    finally:
        await _drop(dsn, schema)


async def _drop(dsn: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET lock_timeout = '10s'")
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


@asynccontextmanager
async def postgres_store_factory(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Yields ``open()``: each call opens a store (a replica) on one fresh schema."""
    dsn = await _server_dsn(request)
    schema = f"gateway_test_{secrets.token_hex(6)}"
    opened: list[PostgresNotificationStore] = []

    async def open_store() -> PostgresNotificationStore:
        store = await PostgresNotificationStore.open(dsn, schema=schema)
        opened.append(store)
        return store

    try:
        yield open_store
    finally:
        for store in opened:  # first: a connection mid-transaction would block the drop
            await store.aclose()
        await _drop(dsn, schema)


async def _server_dsn(request: pytest.FixtureRequest) -> str:
    if _found.dsn is None and _found.unavailable is None:
        if _CONFIGURED_DSN:
            _found.dsn = _CONFIGURED_DSN
        elif await _accepts(LOCAL_DSN):
            _found.dsn = LOCAL_DSN
        else:
            server = await asyncio.to_thread(PrivateServer.start)
            if isinstance(server, str):
                _found.unavailable = server
            else:
                request.config.add_cleanup(server.stop)
                _found.dsn = server.dsn
    if _found.dsn is None:
        message = f"no PostgreSQL server: {_found.unavailable}"
        if IN_CI:
            pytest.fail(f"{message}; CI must run this test")
        pytest.skip(message)
    return _found.dsn


async def _accepts(dsn: str) -> bool:
    try:
        conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=2)
    except psycopg.Error:
        return False
    await conn.close()
    return True


class PrivateServer:
    """A throwaway cluster: ``initdb`` into a temporary directory, ``pg_ctl start``."""

    def __init__(self, bin_dir: Path, run_as: Callable[[list[str]], list[str]]) -> None:
        self.bin_dir = bin_dir
        self.run_as = run_as
        self.root = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))  # short: a socket lives here
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def start(cls) -> PrivateServer | str:
        """The running server, or why there is none."""
        bin_dir = _binaries()
        if bin_dir is None:
            return "not on 127.0.0.1:5432, and initdb/pg_ctl are not installed"
        run_as = _unprivileged()
        if run_as is None:
            return "not on 127.0.0.1:5432, and as root a private one needs the postgres user"
        server = cls(bin_dir, run_as)
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(server.root, account.pw_uid, account.pw_gid)
        data = ["-D", str(server.data)]
        options = (
            f"-p {server.port} -k {server.root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        try:
            server._run("initdb", *data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
            wait = ["-w", "-t", str(START_TIMEOUT)]
            server._run("pg_ctl", *data, "-l", str(server.log_path), "-o", options, *wait, "start")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = exc.stdout if isinstance(exc.stdout, bytes) else b""
            lines = output.decode(errors="replace").strip().splitlines()[-3:]
            server.stop()
            return f"a private server did not start: {' | '.join(lines) or exc}"
        return server

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            self.run_as([str(self.bin_dir / program), *args]),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=START_TIMEOUT + 30,
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def _binaries() -> Path | None:
    """The directory holding both initdb and pg_ctl: the one on PATH, else the newest."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in versions), key=_major, reverse=True)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


def _major(bin_dir: Path) -> int:
    name = bin_dir.parent.name
    return int(name) if name.isdigit() else 0


def _unprivileged() -> Callable[[list[str]], list[str]] | None:
    """How to run a command as a user PostgreSQL accepts (it refuses root), if there is a way."""
    if os.geteuid() != 0:
        return lambda argv: argv
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    if runuser := shutil.which("runuser"):
        return lambda argv: [runuser, "-u", "postgres", "--", *argv]
    if su := shutil.which("su"):
        return lambda argv: [su, "postgres", "-s", "/bin/sh", "-c", shlex.join(argv)]
    return None
