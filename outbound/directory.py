"""The contact directory: whom each record's notifications go to, fed from the outbox.

Intake does not write the directory: it would put a second database write
on every webhook's path. The directory follows the outbox instead, by its
arrival order (``seq``), a batch at a time, with its cursor saved in the
same transaction as the contacts; outbox rows stay for days after they are
published, far longer than the directory ever lags. A status update for a
record not yet in the directory first makes it catch up, so a ticket opened
a moment after the complaint arrived is not refused as unknown.

The SLA timer of each record starts here: its deadline is the record's
arrival plus its priority's first-response time. Records whose deadline had
passed more than ``STALE_SLA`` before the directory saw them (a backlog from
before notifications were turned on) get no timer: a warning that late
would apologise for a wait the ticket system may long have ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from outbound.settings import NotificationSettings
from outbound.state import Contact, NotificationStore
from outbox.sqlite import OutboxEntry, SQLiteOutbox
from service.clock import Clock

log = logging.getLogger(__name__)

STALE_SLA = timedelta(hours=1)

#: Connectors whose complaints routing must tell apart from the rest of their record
#: channel: Weibo's private messages and its comments are both channel ``weibo``, but
#: only a private message opens the fans-service reply window, so the directory keeps
#: those as ``weibo_dm`` (``reply_channels`` and ``reply_window`` key on it).
REPLY_GROUNDS = {"weibo_dm": "weibo_dm"}


def contact_of(entry: OutboxEntry) -> Contact:
    record: dict[str, Any] = json.loads(entry.record_json)
    customer = record.get("customer") or {}
    contacts = customer.get("contacts") or {}
    product = record.get("product") or {}
    connector = (record.get("source") or {}).get("connector")
    return Contact(
        record_id=entry.record_id,
        channel=REPLY_GROUNDS.get(str(connector), entry.channel),
        customer_id=entry.customer_id,
        priority=str(record.get("priority") or "P3"),
        received_at=datetime.fromisoformat(str(record["received_at"]).replace("Z", "+00:00")),
        phone=contacts.get("phone"),
        email=contacts.get("email"),
        wechat_openid=contacts.get("wechat_openid"),
        weibo_uid=contacts.get("weibo_uid"),
        buyer_nick=contacts.get("buyer_nick"),
        order_id=product.get("order_id"),
    )


class Directory:
    def __init__(
        self,
        outbox: SQLiteOutbox,
        store: NotificationStore,
        settings: NotificationSettings,
        clock: Clock,
        *,
        batch_size: int = 1000,
    ) -> None:
        self.outbox = outbox
        self.store = store
        self.settings = settings
        self.clock = clock
        self.batch_size = batch_size
        self._lock = asyncio.Lock()

    def sla_deadline(self, contact: Contact) -> datetime | None:
        sla = self.settings.sla
        minutes = sla.first_response_minutes.get(contact.priority)  # type: ignore[call-overload]
        if not sla.enabled or minutes is None:
            return None
        due: datetime = contact.received_at + timedelta(minutes=minutes)
        return None if due < self.clock.now() - STALE_SLA else due

    async def catch_up(self) -> int:
        """Read every record the outbox has beyond the cursor; returns how many."""
        async with self._lock:
            total = 0
            cursor = await self.store.directory_cursor()
            while entries := await self.outbox.after(cursor, self.batch_size):
                contacts = [contact_of(entry) for entry in entries]
                deadlines = {c.record_id: self.sla_deadline(c) for c in contacts}
                cursor = entries[-1].seq
                await self.store.remember(
                    contacts,
                    cursor=cursor,
                    sla_due={rid: due for rid, due in deadlines.items() if due is not None},
                )
                total += len(entries)
            return total

    async def run(self, interval: float = 0.5) -> None:
        while True:
            try:
                await self.catch_up()
            except Exception:  # the store is down: try again next time, the outbox keeps all
                log.exception("the contact directory could not catch up")
            await asyncio.sleep(interval)
