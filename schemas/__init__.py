"""The gateway's data contracts: the standard complaint record and the raw event envelope."""

from schemas.raw_event import RawEvent
from schemas.record import (
    CHANNEL_ID_PATTERN,
    SCHEMA_VERSION,
    AmountCNY,
    Attachment,
    Category,
    ChannelId,
    ComplaintRecord,
    Contacts,
    Customer,
    Dedupe,
    Product,
    Source,
    record_id_for,
)

__all__ = [
    "CHANNEL_ID_PATTERN",
    "SCHEMA_VERSION",
    "AmountCNY",
    "Attachment",
    "Category",
    "ChannelId",
    "ComplaintRecord",
    "Contacts",
    "Customer",
    "Dedupe",
    "Product",
    "RawEvent",
    "Source",
    "record_id_for",
]
