"""Outcomes: what became of each notification, as published to ``complaint-notifications.v1``.

One JSON object per result, keyed by ``record_id`` so a ticket's outcomes
stay in order on one partition::

    {"schema_version": "1", "record_id": "wechat:…", "ticket_no": "TS20240520",
     "node": "accepted", "channel": "sms", "recipient": "+86138****8000",
     "status": "sent", "reason": "", "provider": "aliyun_sms",
     "provider_message_id": "9006197469364984400", "attempts": 1,
     "key": "…", "at": "2026-11-30T02:00:00.000000Z", "detail": ""}

``status`` is ``sent``, ``failed`` (a dead letter: out of retries or refused
for good), ``skipped`` (not sent on purpose: opted out, no channel reaches
the customer, a node that went backwards; ``reason`` says which) or
``unknown`` (in doubt: the provider may have delivered it). The recipient
is masked: the ticket system knows the customer, the stream's readers need not.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from outbound.state import stamp
from service.logs import mask_recipient

OUTCOME_SCHEMA_VERSION = "1"

Status = Literal["sent", "failed", "skipped", "unknown"]


def outcome_json(
    *,
    record_id: str,
    ticket_no: str,
    node: str,
    channel: str,
    recipient: str,
    status: Status,
    at: datetime,
    reason: str = "",
    provider: str = "",
    provider_message_id: str = "",
    attempts: int = 0,
    key: str = "",
    detail: str = "",
) -> bytes:
    return json.dumps(
        {
            "schema_version": OUTCOME_SCHEMA_VERSION,
            "record_id": record_id,
            "ticket_no": ticket_no,
            "node": node,
            "channel": channel,
            "recipient": mask_recipient(channel, recipient) if recipient else "",
            "status": status,
            "reason": reason,
            "provider": provider,
            "provider_message_id": provider_message_id,
            "attempts": attempts,
            "key": key,
            "at": stamp(at),
            "detail": detail,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
