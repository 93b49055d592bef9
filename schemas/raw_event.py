"""What a connector hands to the pipeline: one platform message, authenticated and parsed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One inbound platform message, before normalization.

    ``source_key`` is the platform's identity of the message (the key exact
    dedupe and ``record_id`` are derived from); ``message_id`` is the
    platform's message id when it has one. ``body`` is kept verbatim in the
    outbox for inspection (for encrypted channels: the decrypted plaintext).
    """

    channel: str
    source_key: str
    received_at: datetime
    payload: Mapping[str, Any]
    body: bytes
    media_type: str
    message_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
