from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from schemas import ComplaintRecord, record_id_for
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
    assert data["schema_version"] == "1" and data["priority"] == "P3"
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
