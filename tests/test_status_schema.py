"""The status update a ticket system sends back (issue 7's input contract)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from schemas.__main__ import SCHEMAS, render
from schemas.status import NODES, StatusUpdate, node_rank


def test_every_json_schema_file_is_in_sync_with_its_model() -> None:
    for path, (model, schema_id) in SCHEMAS.items():
        assert path.read_text(encoding="utf-8") == render(model, schema_id), (
            f"schemas/{path.name} is stale: run `python -m schemas`"
        )


def update(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "record_id": "6539ed99-0c2b-5b40-9d3f-0e5c1f7a2b11",
        "node": "accepted",
        "occurred_at": "2026-11-30T18:05:00+08:00",
        "ticket_no": "TS20261130-0042",
    }
    return body | fields


def test_a_minimal_update_is_read_with_its_time_in_utc() -> None:
    status = StatusUpdate.model_validate(update(variables={"eta": "24小时内"}))
    assert status.occurred_at == datetime(2026, 11, 30, 10, 5, tzinfo=UTC)
    assert status.variables == {"eta": "24小时内"}
    assert status.model_dump(mode="json")["occurred_at"] == "2026-11-30T10:05:00Z"


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"node": "closed"}, "node"),
        ({"occurred_at": "2026-11-30T18:05:00"}, "occurred_at"),
        ({"ticket_no": ""}, "ticket_no"),
        ({"variables": {"ETA": "x"}}, "variables"),
        ({"variables": {"eta": "x" * 501}}, "variables"),
        ({"recipient": {"phone": "138 1234 5678"}}, "recipient"),
        ({"channels": ["SMS"]}, "channels"),
        ({"priority": "P1"}, "priority"),
    ],
)
def test_a_malformed_update_is_refused_naming_the_field(
    fields: dict[str, object], where: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        StatusUpdate.model_validate(update(**fields))
    assert where in str(caught.value)


def test_nodes_are_ranked_in_a_complaints_life() -> None:
    assert [node_rank(n) for n in NODES] == list(range(6))
    assert node_rank("resolved") > node_rank("in_progress")


def test_a_recipient_and_channels_override_the_routing() -> None:
    status = StatusUpdate.model_validate(
        update(
            channels=["sms", "email"],
            recipient={"phone": "+8613812345678"},
            occurred_at=datetime(2026, 11, 30, 10, 5, tzinfo=timezone(timedelta(hours=8))),
        )
    )
    assert status.channels == ("sms", "email")
    assert status.recipient is not None and status.recipient.phone == "+8613812345678"
