from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.errors import MalformedPayload
from normalizer.store import StoreNormalizer
from schemas import ComplaintRecord, RawEvent, record_id_for
from schemas.__main__ import SCHEMA_PATH, render


def test_json_schema_file_is_in_sync_with_the_model() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render(), (
        "schemas/complaint_record.schema.json is stale: run `python -m schemas`"
    )


def minimal(**fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "record_id": record_id_for("wechat", "1"),
        "received_at": datetime(2026, 11, 23, 10, 15, tzinfo=timezone(timedelta(hours=8))),
        "channel": "wechat",
        "channel_detail": "官方公众号消息",
        "customer": {"id": "wechat:o1"},
        "description": "坏了",
        "received_by": "gateway/wechat",
        "source": {"connector": "wechat"},
        "dedupe": {"fingerprint": "sha256:00"},
    }
    record.update(fields)
    return record


def test_times_are_rfc3339_utc_and_defaults_are_filled() -> None:
    data = json.loads(ComplaintRecord.model_validate(minimal()).model_dump_json())
    assert data["received_at"] == "2026-11-23T02:15:00Z"
    assert data["schema_version"] == "1.1" and data["priority"] == "P3"
    assert data["category"] == {"code": "other", "label": "其他"}
    assert data["product"] == {"sku": None, "name": None, "order_id": None, "amount_cny": None}


@pytest.mark.parametrize(
    "bad",
    [
        {"channel": "WeChat"},
        {"channel": "9lives"},
        {"priority": "P5"},
        {"expectations": ["free_gift"]},
        {"received_at": datetime(2026, 11, 23, 10, 15)},  # naive: which zone?
        {"customer": {"id": "x", "contacts": {"phone": "13812345678"}}},  # not E.164
        {"product": {"amount_cny": "-1"}},
        {"surprise": 1},
    ],
)
def test_invalid_records_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ComplaintRecord.model_validate(minimal(**bad))


def test_a_plugin_channel_id_is_accepted() -> None:
    assert ComplaintRecord.model_validate(minimal(channel="douyin_shop")).channel == "douyin_shop"


def test_record_ids_are_deterministic_per_channel_and_key() -> None:
    assert record_id_for("wechat", "42") == record_id_for("wechat", "42")
    assert record_id_for("wechat", "42") != record_id_for("store", "42")
    assert record_id_for("wechat", "42") != record_id_for("wechat", "43")


@pytest.mark.parametrize(
    ("amount", "published"),
    [
        ("12.5", "12.50"),
        ("12.500", "12.50"),
        (12.5, "12.50"),
        (3, "3.00"),
        ("0", "0.00"),
        ("999999999999.99", "999999999999.99"),
    ],
)
def test_amounts_are_published_with_two_decimals(amount: object, published: str) -> None:
    record = ComplaintRecord.model_validate(minimal(product={"amount_cny": amount}))
    assert json.loads(record.model_dump_json())["product"]["amount_cny"] == published


BAD_AMOUNTS = [
    "0.005",  # would round to 0.00
    "1.234",
    "-0",  # would be published as -0.00
    "-0.00",
    "-1",
    "NaN",
    "Infinity",
    "1e1000000",  # used to raise decimal.InvalidOperation
    "1" * 29,
    "1" * 13,  # more than 12 digits of yuan
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_an_amount_that_is_not_exact_yuan_and_fen_is_refused(amount: str) -> None:
    with pytest.raises(ValidationError):
        ComplaintRecord.model_validate(minimal(product={"amount_cny": amount}))


def store_submission(amount: str) -> RawEvent:
    body = {
        "submission_id": "S-1",
        "store_id": "SH01",
        "customer": {"member_id": "M1"},
        "order": {"order_id": "O-1", "amount_cny": amount},
        "text": "退款金额不对",
    }
    at = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    return RawEvent("store", "S-1", at, body, b"{}", "application/json", "S-1")


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_a_store_submission_with_a_bad_amount_is_refused_as_invalid(amount: str) -> None:
    with pytest.raises(MalformedPayload) as refused:
        StoreNormalizer().normalize(store_submission(amount))
    assert refused.value.reason == "invalid_field"
    assert "order.amount_cny" in str(refused.value)


def test_a_store_amount_keeps_its_value() -> None:
    record = StoreNormalizer().normalize(store_submission("12.5"))
    assert isinstance(record, ComplaintRecord)
    assert json.loads(record.model_dump_json())["product"]["amount_cny"] == "12.50"


def test_a_version_1_record_still_reads_and_its_schema_stays_published() -> None:
    v1 = json.loads(
        (Path(__file__).parent.parent / "schemas/complaint_record.v1.schema.json").read_text()
    )
    assert v1["properties"]["schema_version"]["const"] == "1"
    assert "triage" not in v1["properties"]
    record = ComplaintRecord.model_validate(
        {
            "record_id": record_id_for("wechat", "1"),
            "schema_version": "1",
            "received_at": "2026-11-23T02:15:00Z",
            "channel": "wechat",
            "channel_detail": "官方公众号消息",
            "customer": {"id": "wechat:oAbc"},
            "description": "水壶漏水",
            "received_by": "gateway/wechat",
            "source": {"connector": "wechat"},
            "dedupe": {"fingerprint": "f"},
        }
    )
    assert record.schema_version == "1" and record.triage is None
