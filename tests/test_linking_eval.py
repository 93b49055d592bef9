"""The labelled linking set is well formed, and the linking scorer counts right.

These tests check ``bench/linking/data/events.jsonl`` itself, not the linker:
a broken label (an order id reused by an unrelated group, a status pointing
forward in time) would silently move every figure the benchmark reports.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest

from bench.linking_eval import (
    DATA,
    CliRun,
    as_line,
    clusters,
    is_status,
    pairwise,
    record_id,
    score,
)
from schemas import Customer, Product, record_id_for

CHANNELS = {
    "wechat",
    "phone",
    "email",
    "store",
    "weibo",
    "taobao",
    "jd",
    "pinduoduo",
    "douyin_shop",
}
#: How each channel's customer id starts.
CUSTOMER_ID = {
    "wechat": ("wechat:",),
    "phone": ("tel:+86", "call:asterisk_csv:"),
    "email": ("email:",),
    "store": ("member:", "tel:+86"),
    "weibo": ("weibo:",),
    "taobao": ("taobao:",),
    "jd": ("jd:",),
    "pinduoduo": ("pinduoduo:",),
    "douyin_shop": ("douyin_shop:",),
}
ORDER_ID = {
    "taobao": r"\d{18,19}",
    "jd": r"\d{12}",
    "pinduoduo": r"\d{6}-\d{15}",
    "douyin_shop": r"\d{19}",
}
ORDER_IN_TEXT = re.compile(r"SH\d{8}-\d{4}|\d{6}-\d{15}|(?<!\d)\d{12,19}(?!\d)")
MOBILE_IN_TEXT = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")

EVENTS: list[dict[str, Any]] = [
    json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()
]
COMPLAINTS = [e for e in EVENTS if not is_status(e)]


def by_group() -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in COMPLAINTS:
        groups[event["group"]].append(event)
    return groups


def test_every_line_is_a_well_formed_event() -> None:
    assert len({e["id"] for e in EVENTS}) == len(EVENTS)
    for event in EVENTS:
        assert re.fullmatch(r"e\d{4}", event["id"]), event
        assert datetime.fromisoformat(event["at"]).utcoffset() is not None, event["id"]
        assert event["kind"] in {"same", "near_miss", "batch"}, event["id"]
        if is_status(event):
            assert event["status"] == "resolved", event["id"]
            continue
        assert event["channel"] in CHANNELS, event["id"]
        assert event["text"].strip() and event["note"].strip(), event["id"]
        customer = Customer.model_validate(event["customer"])
        assert customer.id.startswith(CUSTOMER_ID[event["channel"]]), event["id"]
        if event["channel"] == "wechat":
            assert customer.id == f"wechat:{customer.contacts.wechat_openid}"
        if event["channel"] == "weibo":
            assert customer.id == f"weibo:{customer.contacts.weibo_uid}"
        if event["channel"] == "email":
            assert customer.id == f"email:{customer.contacts.email}"
        if customer.id.startswith("tel:"):
            assert customer.id == f"tel:{customer.contacts.phone}"
        if event["channel"] in ORDER_ID:
            assert customer.contacts.buyer_nick, event["id"]
            order = event["product"]["order_id"]
            assert re.fullmatch(ORDER_ID[event["channel"]], order), event["id"]
        if event.get("product"):
            Product.model_validate(event["product"])


def test_events_are_in_time_order() -> None:
    times = [datetime.fromisoformat(e["at"]) for e in EVENTS]
    assert times == sorted(times)
    assert timedelta(days=35) <= times[-1] - times[0] <= timedelta(days=49)


def test_the_set_is_big_enough_and_every_group_keeps_its_kind() -> None:
    kinds: dict[str, set[str]] = defaultdict(set)
    for event in EVENTS:
        kinds[event["group"]].add(event["kind"])
    assert all(len(k) == 1 for k in kinds.values()), kinds
    per_kind = Counter(next(iter(k)) for k in kinds.values())
    assert per_kind["same"] >= 60
    assert per_kind["near_miss"] >= 30
    assert per_kind["batch"] >= 6


def test_each_kind_has_the_shape_it_promises() -> None:
    for group, events in by_group().items():
        kind = events[0]["kind"]
        incidents = {e["incident"] for e in events}
        assert all(i.startswith(group) for i in incidents), group
        if kind == "same":
            assert 2 <= len(events) <= 5, group
            assert incidents == {group}, group
        elif kind == "near_miss":
            assert len(incidents) >= 2, group
        else:
            customers = {e["customer"]["id"] for e in events}
            assert 3 <= len(customers) <= 6, group
            assert len({e["channel"] for e in events}) >= 3, group
            skus = {(e.get("product") or {}).get("sku") for e in events} - {None}
            assert len(skus) <= 1, group
            incident_of = {e["customer"]["id"]: e["incident"] for e in events}
            assert len(set(incident_of.values())) == len(customers) == len(incidents), group


def test_incidents_never_span_groups() -> None:
    groups_of: dict[str, set[str]] = defaultdict(set)
    for event in COMPLAINTS:
        groups_of[event["incident"]].add(event["group"])
    assert all(len(g) == 1 for g in groups_of.values())


def test_every_status_resolves_an_earlier_first_event_of_its_group() -> None:
    position = {e["id"]: n for n, e in enumerate(EVENTS)}
    first_of_incident: dict[str, str] = {}
    for event in COMPLAINTS:
        first_of_incident.setdefault(event["incident"], event["id"])
    statuses = [e for e in EVENTS if is_status(e)]
    assert statuses
    for status in statuses:
        target = next(e for e in EVENTS if e["id"] == status["of"])
        assert position[target["id"]] < position[status["id"]], status
        assert target["group"] == status["group"], status
        assert first_of_incident[target["incident"]] == target["id"], status
        later = [e for e in EVENTS[position[status["id"]] :] if e["group"] == status["group"]]
        assert any(e.get("incident") != target["incident"] for e in later), status


def test_batch_expected_follows_the_seven_day_rule() -> None:
    for events in by_group().values():
        if events[0]["kind"] != "batch":
            assert not any("batch_expected" in e for e in events)
            continue
        for n, event in enumerate(events):
            now = datetime.fromisoformat(event["at"])
            recent = {
                e["customer"]["id"]
                for e in events[: n + 1]
                if now - datetime.fromisoformat(e["at"]) <= timedelta(days=7)
            }
            assert event["batch_expected"] is (len(recent) >= 3), event["id"]
    assert any(e.get("batch_expected") is False for e in COMPLAINTS if e["kind"] == "batch")


def _in_text(text: str) -> set[str]:
    """Order ids and mobile numbers written into a text, spaces and dashes between digits gone."""
    text = text.replace("+86", " ")
    squeezed = re.sub(r"(?<=\d) (?=\d)", "", text)
    found = {f"order {m}" for m in ORDER_IN_TEXT.findall(text) + ORDER_IN_TEXT.findall(squeezed)}
    squeezed = re.sub(r"(?<=\d)-(?=\d)", "", squeezed)
    return found | {f"phone +86{m}" for m in MOBILE_IN_TEXT.findall(squeezed)}


def _identifiers(event: dict[str, Any]) -> set[str]:
    contacts = event["customer"]["contacts"]
    found = {f"customer {event['customer']['id']}"}
    found |= {f"{key} {value}" for key, value in contacts.items() if value}
    order = (event.get("product") or {}).get("order_id")
    if order:
        found.add(f"order {order}")
    return found | _in_text(event["text"])


def test_unrelated_groups_share_no_order_phone_account_or_text() -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for event in COMPLAINTS:
        for identifier in _identifiers(event):
            owners[identifier].add(event["group"])
        owners[f"text {event['text']}"].add(event["group"])
    shared = {k: sorted(v) for k, v in owners.items() if len(v) > 1}
    assert not shared


def test_the_ids_written_into_texts_are_seen() -> None:
    """Guards the test above: its patterns must find the ids customers typed."""
    found = set().union(*(_in_text(e["text"]) for e in COMPLAINTS))
    assert sum(i.startswith("order ") for i in found) >= 20
    assert sum(i.startswith("phone ") for i in found) >= 8


# ---------------------------------------------------------------- the scorer


def test_pairwise_counts_pairs_on_a_tiny_example() -> None:
    truth = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2, "f": 3}
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z", "f": "z"}
    result = pairwise(truth, predicted)
    # true pairs ab ac bc de; predicted ab cd ef
    assert (result.tp, result.fp, result.fn) == (1, 2, 3)
    assert result.precision == pytest.approx(1 / 3)
    assert result.recall == pytest.approx(1 / 4)


def test_pairwise_without_links_has_no_precision_and_zero_recall() -> None:
    truth = {"a": 1, "b": 1, "c": 2}
    result = pairwise(truth, {"a": "a", "b": "b", "c": "c"})
    assert (result.tp, result.fp, result.fn) == (0, 0, 1)
    assert result.precision is None
    assert result.recall == 0


def test_duplicate_of_chains_become_one_cluster() -> None:
    found = clusters(["a", "b", "c", "d"], [("b", "a"), ("c", "b")])
    assert found["a"] == found["b"] == found["c"] != found["d"]


def _event(eid: str, group: str, incident: str, **extra: Any) -> dict[str, Any]:
    kind = {"s": "same", "n": "near_miss", "b": "batch"}[group[0]]
    return {
        "id": eid,
        "group": group,
        "kind": kind,
        "incident": incident,
        "at": f"2026-10-05T10:0{eid[-1]}:00+08:00",
        "channel": "wechat",
        "customer": {"id": f"wechat:o{eid}", "tier": None, "contacts": {}},
        "text": eid,
        "note": "",
        **extra,
    }


def test_score_splits_pairs_by_group_kind_and_counts_the_batch_signal() -> None:
    events = [
        _event("e1", "s1", "s1"),
        _event("e2", "s1", "s1"),
        _event("e3", "s1", "s1"),
        _event("e4", "n1", "n1a"),
        _event("e5", "n1", "n1b"),
        _event("e6", "b1", "b1a", batch_expected=False),
        _event("e7", "b1", "b1b", batch_expected=True),
        {
            "id": "e8",
            "group": "n1",
            "kind": "near_miss",
            "at": "",
            "status": "resolved",
            "of": "e4",
        },
    ]

    def record(eid: str, duplicate_of: str | None = None, batch: str | None = None) -> Any:
        target = record_id_for("wechat", duplicate_of) if duplicate_of else None
        return {
            "record_id": record_id_for("wechat", eid),
            "dedupe": {"duplicate_of": target, "batch": batch},
        }

    said = [
        record("e1"),
        record("e2", "e1"),  # right
        record("e3"),  # missed: e1-e3 and e2-e3
        record("e4"),
        record("e5", "e4"),  # false link inside a near miss
        record("e6", batch="c1"),  # batch too early
        record("e7", "e3", batch="c1"),  # a false link across groups
    ]
    run = CliRun(command=["x"], records={r["record_id"]: r for r in said})
    figures = score(events, run).figures
    linking = figures["linking"]
    assert (linking["same"]["tp"], linking["same"]["fp"], linking["same"]["fn"]) == (1, 0, 2)
    assert (linking["near_miss"]["tp"], linking["near_miss"]["fp"]) == (0, 1)
    assert linking["across_groups"]["false_links"] == 1
    overall = linking["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (1, 2, 2)
    assert overall["precision"] == pytest.approx(1 / 3)
    assert overall["recall"] == pytest.approx(1 / 3)
    batch = figures["batch_signal"]
    assert (batch["tp"], batch["fp"], batch["fn"]) == (1, 1, 0)
    assert figures["counts"]["status_events"] == 1


def test_lines_for_the_cli_carry_utc_times_and_point_statuses_at_the_first_record() -> None:
    first = _event("e1", "n1", "n1a", product={"order_id": "SH20261005-0001"})
    status = {"id": "e2", "group": "n1", "kind": "near_miss", "status": "resolved", "of": "e1"}
    status["at"] = "2026-10-06T08:30:00+08:00"
    by_id = {"e1": first, "e2": status}
    line = as_line(first, by_id)
    assert line["received_at"] == line["occurred_at"] == "2026-10-05T02:01:00Z"
    assert line["source"] == {"connector": "wechat", "message_id": "e1"}
    assert line["product"] == {"order_id": "SH20261005-0001"}
    assert as_line(status, by_id) == {
        "record_id": record_id(first),
        "node": "resolved",
        "occurred_at": "2026-10-06T00:30:00Z",
        "ticket_no": "T-e1",
    }
