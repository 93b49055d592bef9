"""The standard complaint record, ``schema_version`` "1".

Every channel's normalizer produces this model; the Kafka stream carries it as
UTF-8 JSON. Consumers may rely on every field being present (``null`` where the
channel does not say), on ``record_id`` being the same whenever the same source
message is delivered again, and on times being RFC 3339 in UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

SCHEMA_VERSION: Literal["1.1"] = "1.1"
#: Versions a record may carry: 1.1 adds ``triage``; a v1 record (no triage) still reads.
SchemaVersion = Literal["1", "1.1"]

#: Channel ids are open (a plugin may add one) but must look like an identifier.
CHANNEL_ID_PATTERN = r"^[a-z][a-z0-9_]*$"
ChannelId = Annotated[str, StringConstraints(pattern=CHANNEL_ID_PATTERN, max_length=64)]

#: Namespace of the deterministic record ids (uuid5 of channel and source key).
RECORD_ID_NAMESPACE = uuid.UUID("6f1c2d7e-4b0a-5c3e-9a41-2f8d5e7b9c10")


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    PlainSerializer(_rfc3339, return_type=str, when_used="json"),
]

Priority = Literal["P1", "P2", "P3", "P4"]
Expectation = Literal[
    "refund",
    "return",
    "exchange",
    "repair",
    "compensation",
    "apology",
    "explanation",
    "accountability",
    "improvement",
]
Tier = Literal["vip", "regular"]


def record_id_for(channel: str, source_key: str) -> str:
    """The record id of a source message: the same message always gets the same id.

    ``source_key`` is the platform's own identity of the message (WeChat MsgId,
    a store's submission id...), so a redelivery maps onto the first record.
    """
    return str(uuid.uuid5(RECORD_ID_NAMESPACE, f"{channel}\x1f{source_key}"))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contacts(_Model):
    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = Field(
        None, description="Phone number in E.164 form, e.g. +8613812345678."
    )
    email: str | None = Field(None, description="E-mail address as the customer gave it.")
    wechat_openid: str | None = Field(None, description="The customer's OpenID at our account.")
    weibo_uid: str | None = Field(None, description="The customer's Weibo user id.")
    buyer_nick: str | None = Field(None, description="Marketplace buyer nickname.")


class Customer(_Model):
    id: str = Field(
        min_length=1,
        description="Stable customer id: the channel's own user id, else a normalized contact "
        "(e.g. 'wechat:<openid>', 'member:<id>', 'tel:+86...').",
    )
    tier: Tier | None = Field(None, description="Customer tier when the channel knows it.")
    contacts: Contacts = Field(default_factory=Contacts)


#: Yuan digits an amount may have: far above any order, far below Decimal's precision.
MAX_YUAN_DIGITS = 12
_FEN = Decimal("0.01")
_QUANTIZE = Context(prec=28)


def _exact_fen(value: Decimal) -> Decimal:
    """The amount with exactly two decimals, or ValueError if that would change it.

    Rounding is refused rather than done: ``0.005`` is not an amount anyone
    paid, and silently turning it into ``0.00`` would hide a broken sender.
    The digit limit keeps ``quantize`` within Decimal's precision, so a huge
    amount is a validation error instead of ``decimal.InvalidOperation``.
    """
    if not value.is_finite():
        raise ValueError("must be a finite number")
    if value.is_signed():
        raise ValueError("must not be negative")
    if value and value.adjusted() >= MAX_YUAN_DIGITS:
        raise ValueError(f"must have at most {MAX_YUAN_DIGITS} digits before the decimal point")
    fen = value.quantize(_FEN, context=_QUANTIZE)
    if fen != value:
        raise ValueError("must be whole fen (at most two decimals)")
    return fen


#: An amount in yuan: finite, not negative (not even ``-0``), whole fen; always two decimals.
AmountCNY = Annotated[
    Decimal,
    AfterValidator(_exact_fen),
    WithJsonSchema(
        {"type": "string", "pattern": rf"^[0-9]{{1,{MAX_YUAN_DIGITS}}}\.[0-9]{{2}}$"},
        mode="serialization",
    ),
]


class Product(_Model):
    sku: str | None = None
    name: str | None = None
    order_id: str | None = None
    amount_cny: AmountCNY | None = Field(None, description="Amount in yuan, two decimals.")


class Category(_Model):
    code: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]*$")] = "other"
    label: str = "其他"


class Attachment(_Model):
    url: str = Field(min_length=1)
    media_type: str | None = None
    name: str | None = None
    size: int | None = Field(None, ge=0, description="Size in bytes, when the channel says.")


class Source(_Model):
    connector: str = Field(description="Name of the connector that received the message.")
    message_id: str | None = Field(None, description="The platform's own message id.")
    thread_id: str | None = Field(None, description="Conversation or thread id, if any.")
    raw_ref: str | None = Field(None, description="Where the raw payload is kept.")


class Dedupe(_Model):
    fingerprint: str = Field(description="Content fingerprint used to link repeated reports.")
    duplicate_of: str | None = Field(
        None,
        description="The record_id of the first report of the open incident this record "
        "repeats (still published: attach it to that ticket).",
    )
    reason: str | None = Field(
        None, description="Why it was linked (1.1): 同一订单号, 同一顾客、同一问题…"
    )
    score: float | None = Field(
        None, ge=0, le=1, description="How strong the evidence for the link is (1.1)."
    )
    batch: str | None = Field(
        None,
        description="Cluster id when several different customers report the same fault of "
        "the same product in the window (1.1): a batch signal, escalated as P1.",
    )


class Triage(_Model):
    """Why the record has its category, priority and expectations (schema 1.1)."""

    reasons: tuple[str, ...] = Field(
        default=(),
        description="The rules that fired, in words a supervisor reads: P1: 安全隐患「插座烧黑」.",
    )
    ruleset_version: str = Field(description="The version of the rules file that labelled it.")


class ComplaintRecord(_Model):
    """One customer complaint, whatever channel it came through."""

    record_id: str = Field(description="Deterministic id: same source message, same id.")
    schema_version: SchemaVersion = SCHEMA_VERSION
    received_at: UtcDatetime = Field(description="When the gateway received it (UTC).")
    occurred_at: UtcDatetime | None = Field(
        None, description="When the customer wrote or called, if the channel says."
    )
    channel: ChannelId
    channel_detail: str = Field(description="Human description, e.g. 官方公众号消息.")
    customer: Customer
    product: Product = Field(default_factory=Product)
    category: Category = Field(default_factory=Category)
    description: str = Field(description="The customer's own words, verbatim.")
    priority: Priority = "P3"
    expectations: tuple[Expectation, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    received_by: str = Field(
        description="Agent id when a person took it, else gateway/<connector>."
    )
    source: Source
    dedupe: Dedupe
    triage: Triage | None = Field(
        None, description="How category, priority and expectations were set (1.1; none in 1)."
    )

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")
