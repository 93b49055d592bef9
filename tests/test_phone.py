"""The phone channel through HTTP: what FreeSWITCH and TCCC see, and what the stream gets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from gateway import Gateway, running_gateway
from schemas import record_id_for
from service.registry import Registry
from service.senders import basic_auth, freeswitch_cdr, tccc_cdr
from service.settings import load_settings
from tests.fakes import FrozenClock, MemorySink

PASSWORD = "cdr-push-pa55"
STAMP = int(FrozenClock().now().timestamp())


@pytest.fixture
async def phone_gateway(
    registry: Registry, tmp_path: Path, sink: MemorySink
) -> AsyncIterator[Gateway]:
    settings = load_settings(
        registry,
        data_dir=tmp_path,
        connectors={
            "freeswitch": {
                "username": "cdr",
                "password": PASSWORD,
                "complaint_numbers": ["4008123123"],
            },
            "tccc": {
                "username": "cdr",
                "password": PASSWORD,
                "sdk_app_id": 1400264214,
                "complaint_numbers": ["4008123123"],
            },
        },
    )
    async with running_gateway(settings, registry, clock=FrozenClock(), sink=sink) as gw:
        yield gw


@pytest.fixture
async def phone(phone_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=phone_gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client


def tccc_push(session: str, **fields: Any) -> bytes:
    return tccc_cdr(session, STAMP, **fields)


async def post_tccc(
    client: httpx.AsyncClient, body: bytes, action: str = "cdr", push_uuid: str = "p-1"
) -> httpx.Response:
    headers = basic_auth("cdr", PASSWORD) | {"x-tccc-push-uuid": push_uuid}
    return await client.post(
        "/webhooks/tccc", params={"action": action, "version": "1"}, headers=headers, content=body
    )


async def test_tccc_is_answered_errcode_0_and_a_retried_push_is_one_record(
    phone: httpx.AsyncClient, sink: MemorySink
) -> None:
    body = tccc_push("s-100")
    answers = [await post_tccc(phone, body, push_uuid="same-push") for _ in range(3)]
    assert [a.json() for a in answers] == [{"ErrCode": 0, "ErrMsg": ""}] * 3
    await sink.wait_for(1)
    (record,) = sink.records
    assert record["record_id"] == record_id_for("tccc", "s-100")
    assert record["source"]["message_id"] == "same-push"
    assert record["customer"]["id"] == "tel:+8613812345678"


async def test_tccc_push_for_another_application_is_refused_and_nothing_kept(
    phone: httpx.AsyncClient, phone_gateway: Gateway
) -> None:
    response = await post_tccc(phone, tccc_push("s-200", SdkAppId=1400000000))
    assert (response.status_code, response.json()["reason"]) == (403, "app_id_mismatch")
    assert not await phone_gateway.outbox.select(since=None)
    assert not await phone_gateway.outbox.quarantined()


async def test_tccc_call_with_a_null_direction_is_an_inbound_complaint(
    phone: httpx.AsyncClient, sink: MemorySink
) -> None:
    await post_tccc(phone, tccc_push("s-250", Direction=None, Remark="快递丢了"))
    await sink.wait_for(1)
    assert sink.records[0]["description"] == "快递丢了"


async def test_tccc_recording_after_the_call_points_at_its_complaint(
    phone: httpx.AsyncClient, sink: MemorySink
) -> None:
    await post_tccc(phone, tccc_push("s-300", EndStatus=103, AcceptTimestamp=0, Duration=0))
    recording = json.dumps(
        {
            "SdkAppId": 1400264214,
            "RecordId": "r-1",
            "SessionId": "s-300",
            "Timestamp": STAMP,
            "RecordURL": "https://recorder.example.cn/s-300.mp3",
        }
    ).encode()
    await post_tccc(phone, recording, action="record", push_uuid="p-2")
    await sink.wait_for(2)
    call, audio = sink.records
    assert call["description"] == "（未接来电，无文字记录，请尽快回电）"
    assert "未接" in call["channel_detail"]
    assert audio["dedupe"]["duplicate_of"] == call["record_id"]
    assert audio["attachments"][0]["media_type"] == "audio/mpeg"


async def test_freeswitch_form_encoded_cdr_with_url_encoded_summary(
    phone: httpx.AsyncClient, sink: MemorySink
) -> None:
    document = freeswitch_cdr(
        uuid="fs-1",
        caller="+86 21 6123 4567",
        destination="4008123123",
        start_epoch=STAMP - 60,
        answer_epoch=STAMP - 55,
        billsec=50,
        summary="热水器漏水 100% 没修好",
    )
    body = b"cdr=" + quote(document.decode(), safe="").encode()
    headers = basic_auth("cdr", PASSWORD) | {"content-type": "application/x-www-form-urlencoded"}
    response = await phone.post("/webhooks/freeswitch", headers=headers, content=body)
    assert response.status_code == 200, response.text
    await sink.wait_for(1)
    (record,) = sink.records
    assert record["description"] == "热水器漏水 100% 没修好"
    assert record["customer"]["id"] == "tel:+862161234567"
    assert "已接通" in record["channel_detail"]


async def test_a_call_to_another_line_is_counted_not_published(
    phone: httpx.AsyncClient, phone_gateway: Gateway
) -> None:
    response = await post_tccc(phone, tccc_push("s-400", Callee="02161230000"))
    assert response.json() == {"ErrCode": 0, "ErrMsg": ""}
    assert not await phone_gateway.outbox.select(since=None)
    metrics = phone_gateway.metrics.render().decode()
    assert 'gateway_events_ignored_total{connector="tccc",reason="call:other_line"} 1.0' in metrics
