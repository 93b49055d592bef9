"""IMAP mailboxes (the complaint desk's inbox), polled: the ``imap`` connector.

Each poll reads every configured mailbox after its cursor with
:func:`connectors._imap.fetch_new` (stdlib ``imaplib`` in a worker thread:
``aioimaplib`` is GPL-3.0-only). The cursor is, per mailbox, its
UIDVALIDITY and the last UID taken, as JSON: ``{"INBOX": [1700000000, 42]}``.
UIDs only grow within one UIDVALIDITY, so flags set by people (read,
answered) and mail moved away never cause a miss or a repeat. When
UIDVALIDITY changes (the mailbox was recreated or restored), the mailbox is
read again from its start and the ``Message-ID`` dedupe absorbs what was
already taken; it is logged.

Messages are fetched with ``BODY.PEEK[]``: polling never marks mail read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import Field, SecretStr

from connectors._imap import ImapAccount, MailboxBatch, fetch_new
from connectors.base import ConnectorSettings
from connectors.errors import MalformedPayload, PayloadError
from connectors.polling import PollingConnector, PollingSettings, PollResult, Rejected
from normalizer.email import mail_event
from schemas import RawEvent

log = logging.getLogger(__name__)


class ImapSettings(PollingSettings):
    host: str = Field(description="IMAP server host name.")
    port: int = Field(993, ge=1, le=65535, description="IMAP server port (993 for tls).")
    security: Literal["tls", "starttls", "plain"] = Field(
        "tls", description="tls (IMAPS), starttls, or plain (tests on loopback only)."
    )
    username: str = Field(description="Mailbox login.")
    password: SecretStr = Field(description="Mailbox password or app password.")
    mailboxes: list[str] = Field(
        default_factory=lambda: ["INBOX"], description="Mailboxes to read, in this order."
    )
    ca_file: str | None = Field(
        None, description="PEM file of the CA to trust for tls/starttls instead of the system's."
    )
    batch: int = Field(
        200, ge=1, le=5000, description="At most this many mails per mailbox per poll."
    )


def _load(cursor: str | None) -> dict[str, tuple[int, int]]:
    if not cursor:
        return {}
    try:
        raw = json.loads(cursor)
        return {str(k): (int(v[0]), int(v[1])) for k, v in raw.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        log.warning("imap cursor unreadable; reading the mailboxes from the start")
        return {}


class ImapConnector(PollingConnector):
    name = "imap"
    channel = "email"
    settings_model = ImapSettings
    settings: ImapSettings

    def _account(self) -> ImapAccount:
        s = self.settings
        return ImapAccount(
            host=s.host,
            port=s.port,
            security=s.security,
            username=s.username,
            password=s.password.get_secret_value(),
            timeout=s.timeout_seconds,
            ca_file=s.ca_file,
        )

    async def poll(self, cursor: str | None) -> PollResult:
        # fetching and reading (MIME, charsets, HTML) run in a worker thread: a batch
        # of large mails must not hold the event loop, which serves the webhooks
        return await asyncio.to_thread(self._poll, cursor, self.clock.now())

    def _poll(self, cursor: str | None, now: datetime) -> PollResult:
        positions = _load(cursor)
        account = self._account()
        events: list[RawEvent] = []
        rejected: list[Rejected] = []
        more = False
        for mailbox in self.settings.mailboxes:
            uidvalidity, last_uid = positions.get(mailbox, (None, 0))
            batch: MailboxBatch = fetch_new(
                account, mailbox, uidvalidity, last_uid, limit=self.settings.batch
            )
            if batch.uidvalidity_changed:
                log.warning(
                    "imap mailbox %s has a new UIDVALIDITY (%s → %s): reading it again, "
                    "Message-ID dedupe absorbs what was taken",
                    mailbox,
                    uidvalidity,
                    batch.uidvalidity,
                )
            top = 0 if batch.uidvalidity_changed else last_uid
            for mail in batch.messages:
                key = f"{mailbox}:{batch.uidvalidity}:{mail.uid}"
                try:
                    events.append(mail_event(mail.raw, now, self.name, key))
                except PayloadError as exc:
                    rejected.append(Rejected(mail.raw, exc, source_key=key))
                except Exception as exc:  # a reader bug must not stop the mailbox at this mail
                    log.exception("imap could not read mail %s", key)
                    error = MalformedPayload(
                        f"cannot read this mail ({type(exc).__name__})", "connector_error"
                    )
                    rejected.append(Rejected(mail.raw, error, source_key=key))
                top = max(top, mail.uid)
            positions[mailbox] = (batch.uidvalidity, top)
            more = more or batch.more
        next_cursor = json.dumps(
            {box: list(position) for box, position in positions.items()}, sort_keys=True
        )
        return PollResult(events, next_cursor, rejected, more=more)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        """Golden-file entry: one raw message as IMAP would fetch it."""
        return [mail_event(body, received_at, ImapConnector.name)]
