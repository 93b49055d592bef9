"""Offline store submissions → complaint records.

The body a store app posts is validated here (:class:`StoreSubmission`); the
clerk who took the complaint is ``received_by``. The customer is identified by
their membership id when the store has one, else by their phone number.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from connectors.errors import MalformedPayload
from normalizer._contacts import phone_to_e164
from normalizer.base import Normalizer, NotAComplaint, build_record, describe_validation_error
from schemas import AmountCNY, ComplaintRecord, RawEvent
from schemas.record import Expectation, Priority, Tier


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StoreCustomer(_Body):
    phone: str | None = None
    member_id: str | None = None
    email: str | None = None
    tier: Tier | None = None


class StoreOrder(_Body):
    order_id: str | None = None
    sku: str | None = None
    product_name: str | None = None
    amount_cny: AmountCNY | None = None


class StorePhoto(_Body):
    url: str = Field(min_length=1)
    name: str | None = None
    media_type: str | None = None


class StoreCategory(_Body):
    code: str
    label: str


class StoreSubmission(_Body):
    submission_id: str = Field(min_length=1)
    store_id: str = Field(min_length=1)
    store_name: str | None = None
    clerk_id: str | None = None
    submitted_at: AwareDatetime | None = None
    customer: StoreCustomer
    order: StoreOrder | None = None
    text: str = Field(min_length=1)
    category: StoreCategory | None = None
    priority: Priority | None = None
    expectations: tuple[Expectation, ...] = ()
    photos: tuple[StorePhoto, ...] = ()


class StoreNormalizer(Normalizer):
    channel = "store"

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        try:
            body = StoreSubmission.model_validate(event.payload)
        except ValidationError as exc:
            raise MalformedPayload(
                f"store submission is invalid: {describe_validation_error(exc)}", "invalid_field"
            ) from None
        phone = phone_to_e164(body.customer.phone)
        if body.customer.phone and phone is None:
            raise MalformedPayload("customer.phone is not a phone number", "invalid_field")
        if body.customer.member_id:
            customer_id = f"member:{body.customer.member_id}"
        elif phone:
            customer_id = f"tel:{phone}"
        else:
            raise MalformedPayload(
                "customer.phone or customer.member_id is required", "missing_field"
            )
        order = body.order or StoreOrder()
        return build_record(
            event,
            customer={
                "id": customer_id,
                "tier": body.customer.tier,
                "contacts": {"phone": phone, "email": body.customer.email},
            },
            description=body.text,
            channel_detail=f"门店：{body.store_name or body.store_id}",
            received_by=body.clerk_id,
            occurred_at=body.submitted_at,
            product={
                "sku": order.sku,
                "name": order.product_name,
                "order_id": order.order_id,
                "amount_cny": order.amount_cny,
            },
            category=body.category.model_dump() if body.category else None,
            priority=body.priority,
            expectations=body.expectations,
            attachments=[p.model_dump() for p in body.photos],
        )
