"""What a connector hands to the pipeline: one platform message, authenticated and parsed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One inbound platform message, before normalization.

    ``channel`` is the record channel (``phone``); ``connector`` the connector
    that delivered it (``asterisk_csv``), by default the channel's own. The
    normalizer is the connector's. ``source_key`` is the platform's identity of
    the message; with ``scope`` (default: the connector) it is what exact
    dedupe and ``record_id`` are derived from, so connectors that see the same
    messages share a scope (an e-mail fetched over IMAP and relayed as raw
    MIME is one record). ``message_id`` is the platform's message id when it
    has one. ``body`` is kept verbatim in the outbox for inspection (for
    encrypted channels: the decrypted plaintext).
    """

    channel: str
    source_key: str
    received_at: datetime
    payload: Mapping[str, Any]
    body: bytes
    media_type: str
    message_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    connector: str = ""
    scope: str = ""

    def __post_init__(self) -> None:
        if not self.connector:
            object.__setattr__(self, "connector", self.channel)
        if not self.scope:
            object.__setattr__(self, "scope", self.connector)

    @property
    def dedupe_key(self) -> str:
        """What exact dedupe remembers: ``<scope>:<source_key>``."""
        return f"{self.scope}:{self.source_key}"
