"""The e-mail channel end to end: a real Dovecot, the imap poller, the email_mime webhook.

Mail is put in the mailbox with APPEND, as a mail server delivers it; the
gateway runs in-process with its SQLite outbox and an in-memory sink.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors._imap import append_message, create_mailbox
from gateway import running_gateway
from service.registry import Registry
from service.senders import MailRelaySender
from service.settings import load_settings
from tests.fakes import MemorySink
from tests.imap_server import PASSWORD, USERNAME, DovecotServer, dovecot_server, dovecot_tls_files
from tests.test_polling_contract import complaint_mail

__all__ = ["dovecot_server", "dovecot_tls_files"]  # fixtures used below

pytestmark = pytest.mark.imap

RELAY_SECRET = "relay-secret-for-tests"


def settings_for(server: DovecotServer, data: Path, registry: Registry, **imap: Any) -> Any:
    return load_settings(
        registry,
        data_dir=data,
        connectors={
            "imap": {
                "host": "127.0.0.1",
                "port": server.port,
                "security": "plain",
                "username": USERNAME,
                "password": PASSWORD,
                "interval_seconds": 0.05,
                **imap,
            },
            "email_mime": {"secret": RELAY_SECRET},
        },
    )


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_mail_in_two_mailboxes_is_published_and_a_restart_resumes(
    dovecot_server: DovecotServer, tmp_path: Path, registry: Registry
) -> None:
    account = dovecot_server.account("plain")
    create_mailbox(account, "投诉")
    append_message(account, "INBOX", complaint_mail("收件箱里的投诉", 1))
    append_message(account, "投诉", complaint_mail("投诉文件夹里的投诉", 2))
    sink = MemorySink()
    settings = settings_for(dovecot_server, tmp_path, registry, mailboxes=["INBOX", "投诉"])
    async with running_gateway(settings, registry, sink=sink) as gw:
        await sink.wait_for(2, timeout=10)
        await until(lambda: gw.board.states["imap"].cursor is not None)
    assert sorted(r["description"] for r in sink.records) == [
        "投诉文件夹里的投诉",
        "收件箱里的投诉",
    ]
    assert {r["customer"]["id"] for r in sink.records} == {"email:zhang.san@example.cn"}

    append_message(account, "INBOX", complaint_mail("重启之后的新邮件", 3))
    async with running_gateway(settings, registry, sink=sink) as gw:
        await sink.wait_for(3, timeout=10)
        await asyncio.sleep(0.2)  # a few more polls: nothing is taken twice
        assert len(await gw.outbox.select(since=None)) == 3
    assert [r["description"] for r in sink.records][-1] == "重启之后的新邮件"
    assert len(sink.records) == 3


async def test_a_mail_that_arrives_both_ways_is_one_record(
    dovecot_server: DovecotServer, tmp_path: Path, registry: Registry
) -> None:
    raw = complaint_mail("两条路都来了的邮件", 7)
    sink = MemorySink()
    async with running_gateway(
        settings_for(dovecot_server, tmp_path, registry), registry, sink=sink
    ) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            headers = MailRelaySender(RELAY_SECRET).sign(raw, int(time.time()))
            relayed = await client.post("/webhooks/email_mime", headers=headers, content=raw)
        assert relayed.status_code == 200
        append_message(dovecot_server.account("plain"), "INBOX", raw)
        await until(
            lambda: (
                gw.board.states["imap"].taken_in == 0
                and gw.board.states["imap"].last_success is not None
                and gw.board.states["imap"].cursor not in (None, "{}")
            )
        )
        await sink.wait_for(1)
        await asyncio.sleep(0.2)
        records = await gw.outbox.select(since=None)
    assert len(records) == 1
    assert sink.records[0]["source"]["connector"] == "email_mime"
    assert gw.metrics.duplicates.labels("imap")._value.get() == 1


async def test_a_wrong_password_is_reported_and_the_webhooks_go_on(
    dovecot_server: DovecotServer, tmp_path: Path, registry: Registry
) -> None:
    settings = settings_for(dovecot_server, tmp_path, registry, password="wrong")
    async with running_gateway(settings, registry, sink=MemorySink()) as gw:
        await until(lambda: gw.board.states["imap"].stopped is not None)
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            channels = (await client.get("/channels")).json()
            ready = await client.get("/readyz")
    assert channels["imap"]["last_error"]["class"] == "ChannelAuthError"
    assert "wrong" not in str(channels) and PASSWORD not in str(channels)
    assert ready.status_code == 200
