"""The normalizer contract: a pure function from :class:`RawEvent` to the standard record.

The pipeline calls :meth:`Normalizer.normalize` once per event, after the
connector authenticated it and before dedupe. A normalizer does no I/O, reads
no clock and no settings: everything it needs is in the event or was given to
its constructor. It returns either a :class:`ComplaintRecord` or
:class:`NotAComplaint` (a subscribe event, a delivery report...) and raises
:class:`MalformedPayload` when a field it needs is missing or invalid.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pydantic import ValidationError

from connectors.errors import MalformedPayload
from dedupe.fingerprint import fingerprint
from schemas import (
    Attachment,
    Category,
    ComplaintRecord,
    Customer,
    Dedupe,
    Product,
    RawEvent,
    Source,
    record_id_for,
)


@dataclass(frozen=True, slots=True)
class NotAComplaint:
    """The event is genuine but carries no complaint; ``reason`` labels the metric.

    ``handle`` names the customer an event is about when it matters beyond the
    metric (``wechat:<openid>`` of an unsubscribe: no more WeChat messages).
    """

    reason: str
    handle: str | None = None


class Normalizer(ABC):
    channel: ClassVar[str]

    @abstractmethod
    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        """Map one event; see the module docstring."""


def describe_validation_error(error: ValidationError) -> str:
    """Field paths and problems, without the offending values (they may be personal data)."""
    parts = [
        f"{'.'.join(str(p) for p in item['loc']) or '(body)'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)
    ]
    return "; ".join(parts)


def build_record(
    event: RawEvent,
    *,
    customer: Customer | dict[str, Any],
    description: str,
    channel_detail: str,
    received_by: str | None = None,
    occurred_at: datetime | None = None,
    product: Product | dict[str, Any] | None = None,
    category: Category | dict[str, Any] | None = None,
    priority: str | None = None,
    expectations: Sequence[str] = (),
    attachments: Sequence[Attachment | dict[str, Any]] = (),
    thread_id: str | None = None,
    duplicate_of: str | None = None,
) -> ComplaintRecord:
    """Assemble a record, deriving its id, fingerprint and source from the event.

    Invalid values (a phone that is not E.164, an unknown expectation...) raise
    :class:`MalformedPayload` naming the fields.
    """
    record_id = record_id_for(event.scope, event.source_key)
    try:
        customer_model = Customer.model_validate(customer)
        product_model = Product.model_validate(product or {})
        return ComplaintRecord(
            record_id=record_id,
            received_at=event.received_at,
            occurred_at=occurred_at,
            channel=event.channel,
            channel_detail=channel_detail,
            customer=customer_model,
            product=product_model,
            category=Category.model_validate(category or {}),
            description=description,
            priority=priority or "P3",
            expectations=tuple(expectations),
            attachments=tuple(Attachment.model_validate(a) for a in attachments),
            received_by=received_by or f"gateway/{event.connector}",
            source=Source(
                connector=event.connector,
                message_id=event.message_id,
                thread_id=thread_id,
                raw_ref=f"outbox:{record_id}",
            ),
            dedupe=Dedupe(
                fingerprint=fingerprint(customer_model.id, product_model.order_id, description),
                duplicate_of=duplicate_of,
            ),
        )
    except ValidationError as exc:
        raise MalformedPayload(
            f"{event.channel} payload does not fit the record: {describe_validation_error(exc)}",
            "invalid_field",
        ) from None
