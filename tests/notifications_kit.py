"""What the notification tests share: scripted providers, records, a desk on a real store.

:class:`ScriptedProvider` is a provider fake: it answers each send with the
next scripted error, or takes the message. The planner, dispatcher, store
and timers under test are the real ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx

from outbound.base import Message, Notifier, NotifierSettings, Receipt
from outbound.directory import Directory
from outbound.dispatch import Dispatcher
from outbound.notifications import Notifications
from outbound.planner import Planner
from outbound.settings import NotificationSettings
from outbound.state_sqlite import SQLiteNotificationStore
from outbox.sqlite import NewEntry, SQLiteOutbox
from schemas import ComplaintRecord
from schemas.status import Node
from tests.fakes import FrozenClock

# 10:00 in China: outside the SMS quiet hours
DAYTIME = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
OPENID = "oR5Gjjl_eiZoUpGozMo7dbBJ362A"
PHONE = "+8613800138000"
EMAIL = "zhang.wei@example.com"
_serial = itertools.count(1)


class ScriptedProvider(Notifier):
    """A provider that raises the scripted errors in turn, then takes messages."""

    name: ClassVar[str] = "scripted"
    channel: ClassVar[str] = "sms"
    settings_model = NotifierSettings

    def __init__(self, settings: Any, http: httpx.AsyncClient, clock: Any) -> None:
        super().__init__(settings, http, clock)
        self.script: list[BaseException] = []
        self.sent: list[Message] = []
        self.calls = 0
        self.window_needed_for: set[Node] = set()

    def unreachable_reason(self, node: Node, *, reply_window_open: bool) -> str | None:
        if node in self.window_needed_for and not reply_window_open:
            return "no_template_outside_window"
        return None

    async def send(self, message: Message) -> Receipt:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        self.sent.append(message)
        return Receipt(self.name, f"{self.name}-{next(_serial)}", "")


def provider_class(name: str, channel: str) -> type[ScriptedProvider]:
    return type(f"Scripted_{name}", (ScriptedProvider,), {"name": name, "channel": channel})


def record(
    channel: str = "wechat",
    *,
    number: int = 1,
    priority: str = "P3",
    received_at: datetime = DAYTIME,
    **contacts: str,
) -> ComplaintRecord:
    return ComplaintRecord.model_validate(
        {
            "record_id": f"{channel}:{number:016x}",
            "received_at": received_at,
            "channel": channel,
            "channel_detail": "测试",
            "customer": {"id": f"{channel}:c{number}", "contacts": contacts},
            "description": "收到的商品有破损",
            "priority": priority,
            "received_by": "gateway",
            "source": {"connector": channel},
            "dedupe": {"fingerprint": f"f{number}"},
        }
    )


@dataclass
class Desk:
    """A notification desk on real SQLite files, with scripted providers."""

    outbox: SQLiteOutbox
    store: SQLiteNotificationStore
    clock: FrozenClock
    settings: NotificationSettings
    providers: dict[str, ScriptedProvider]
    desk: Notifications = field(init=False)
    dispatcher: Dispatcher = field(init=False)

    def __post_init__(self) -> None:
        planner = Planner(self.settings, self.providers)
        self.dispatcher = Dispatcher(
            self.store, planner, self.settings, self.clock, sole_owner=True
        )
        directory = Directory(self.outbox, self.store, self.settings, self.clock)
        self.desk = Notifications(
            self.settings, planner, self.store, directory, self.clock, self.dispatcher.wake
        )

    async def take_in(self, *records: ComplaintRecord) -> None:
        await self.outbox.append(
            [NewEntry(r, r.record_id, b"{}", "application/json") for r in records]
        )

    async def send_due(self) -> int:
        """Attempt every due job, one at a time, until none is due; returns attempts made."""
        attempts = 0
        while jobs := await self.store.claim(self.clock.now(), 50, "test"):
            for job in jobs:
                await self.dispatcher.attempt(job)
                attempts += 1
        return attempts

    def sent(self) -> list[tuple[str, str, Node]]:
        """(provider, recipient, node) of every message the providers took, provider by provider."""
        return [(p.name, m.recipient, m.node) for p in self.providers.values() for m in p.sent]


async def open_desk(
    tmp_path: Path,
    clock: FrozenClock,
    notifiers: Sequence[tuple[str, str]] = (
        ("wechat", "wechat"),
        ("aliyun_sms", "sms"),
        ("tencent_sms", "sms"),
        ("email", "email"),
    ),
    provider_settings: NotifierSettings | None = None,
    **settings: Any,
) -> Desk:
    outbox = await SQLiteOutbox.open(tmp_path / "outbox.sqlite3")
    store = await SQLiteNotificationStore.open(tmp_path / "notifications.sqlite3")
    built = {
        name: provider_class(name, channel)(
            provider_settings or NotifierSettings(), httpx.AsyncClient(), clock
        )
        for name, channel in notifiers
    }
    return Desk(outbox, store, clock, NotificationSettings(**settings), built)
