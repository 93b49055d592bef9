"""Regression tests for the defects an attack probe found (issue 5), through HTTP.

Each test sends what the probe sent and asserts what the probe should have
seen: a refusal with nothing kept for a stranger, a clear 400 with the body
quarantined for an authenticated but unreadable payload, and never a lost
complaint. The generic shapes (1 MiB bodies, health checks meanwhile, fuzzing)
are in the contract every connector inherits (tests/test_contract.py).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from connectors._xml import parse_xml_document
from connectors.errors import MalformedPayload
from gateway import Gateway
from service.senders import StoreSender, WeChatSender, wechat_signature, wechat_text, wechat_xml
from tests.fakes import FrozenClock, MemorySink
from tests.test_webhooks import (
    OPENID,
    metric,
    metrics,
    nothing_stored,
    post_store,
    store_submission,
    text_push,
)

# -- 1. one unsigned request must not stall the server ---------------------------------------

SIBLINGS = b"<xml>" + b"<a/>" * 150_000 + b"</xml>"


async def test_the_probes_600_kb_unsigned_body_is_refused_while_health_stays_prompt(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    refusal = asyncio.create_task(
        client.post("/webhooks/wechat", params={"encrypt_type": "aes"}, content=SIBLINGS)
    )
    health = await client.get("/healthz")
    response = await refusal
    assert health.status_code == 200
    assert response.status_code == 401
    assert response.json()["reason"] == "missing_signature"
    assert await nothing_stored(gateway)


async def test_a_signed_body_of_150_000_elements_is_refused_as_too_large_and_kept(
    client: httpx.AsyncClient, gateway: Gateway, wechat: WeChatSender, clock: FrozenClock
) -> None:
    push = wechat.push(SIBLINGS.decode(), timestamp=int(clock.now().timestamp()), nonce="big")
    response = await client.post("/webhooks/wechat", params=push.params, content=push.body)
    assert (response.status_code, response.json()["reason"]) == (400, "xml_too_large")
    (kept,) = await gateway.outbox.quarantined()
    assert kept.body == SIBLINGS


def test_repeated_siblings_are_all_kept_in_order_when_the_cap_allows() -> None:
    count = 100_000
    body = b"<xml>" + b"".join(b"<a>%d</a>" % n for n in range(count)) + b"</xml>"
    parsed = parse_xml_document(body, max_elements=count + 1)
    assert parsed["a"] == [str(n) for n in range(count)]


def test_xml_nested_deeper_than_the_cap_is_refused() -> None:
    with pytest.raises(MalformedPayload) as caught:
        parse_xml_document(b"<xml>" + b"<a>" * 50 + b"x" + b"</a>" * 50 + b"</xml>")
    assert caught.value.reason == "xml_too_large"


# -- 2. nothing of an unauthenticated request is stored --------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not xml at all \x00\xff", "missing_signature"),
        (b"<xml><Content>no Encrypt here</Content></xml>", "missing_signature"),
    ],
    ids=["not-xml", "xml-without-encrypt"],
)
async def test_encrypted_mode_without_signature_keeps_nothing(
    client: httpx.AsyncClient, gateway: Gateway, body: bytes, reason: str
) -> None:
    response = await client.post("/webhooks/wechat", params={"encrypt_type": "aes"}, content=body)
    assert (response.status_code, response.json()["reason"]) == (401, reason)
    assert await nothing_stored(gateway)


async def test_encrypted_mode_with_a_signature_but_no_encrypt_element_keeps_nothing(
    client: httpx.AsyncClient, gateway: Gateway, clock: FrozenClock
) -> None:
    ts = str(int(clock.now().timestamp()))
    query = {"encrypt_type": "aes", "msg_signature": "0" * 40, "timestamp": ts, "nonce": "1"}
    response = await client.post(
        "/webhooks/wechat", params=query, content=b"<xml><ToUserName>x</ToUserName></xml>"
    )
    assert (response.status_code, response.json()["reason"]) == (403, "missing_field")
    assert await nothing_stored(gateway)


async def test_get_with_a_body_on_the_store_channel_is_405_and_kept_nowhere(
    client: httpx.AsyncClient, gateway: Gateway, store: StoreSender
) -> None:
    response = await client.request(
        "GET", "/webhooks/store", content=store.body(store_submission())
    )
    assert (response.status_code, response.json()["reason"]) == (405, "bad_method")
    assert await nothing_stored(gateway)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (
            {"x-store-timestamp": "1795400100", "x-store-signature": "sha256=é" + "0" * 63},
            "bad_signature",
        ),
        (
            {"x-store-timestamp": "1" + "0" * 400, "x-store-signature": "sha256=" + "0" * 64},
            "bad_timestamp",
        ),
        (
            {
                "x-store-timestamp": "１７９５４００１００",
                "x-store-signature": "sha256=" + "0" * 64,
            },
            "bad_timestamp",
        ),
    ],
    ids=["non-ascii-signature", "400-digit-timestamp", "full-width-timestamp"],
)
async def test_store_headers_that_used_to_crash_are_refused_and_nothing_kept(
    client: httpx.AsyncClient,
    gateway: Gateway,
    store: StoreSender,
    headers: dict[str, str],
    reason: str,
) -> None:
    wire = {k: v.encode("utf-8") for k, v in headers.items()}
    response = await client.post(
        "/webhooks/store", headers=wire, content=store.body(store_submission())
    )
    assert (response.status_code, response.json()["reason"]) == (403, reason)
    assert await nothing_stored(gateway)


# -- 3. WeChat pushes cannot be replayed or re-bodied ----------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        ("1000000000", "stale_timestamp"),
        ("-5", "bad_timestamp"),
        ("99999999999999999999", "bad_timestamp"),
        ("abc", "bad_timestamp"),
        ("1.5", "bad_timestamp"),
    ],
)
async def test_a_validly_signed_push_with_a_bad_timestamp_is_refused(
    client: httpx.AsyncClient, gateway: Gateway, clock: FrozenClock, timestamp: str, reason: str
) -> None:
    from tests.conftest import WECHAT_TOKEN

    body = wechat_text(OPENID, "投诉", 1, int(clock.now().timestamp()))
    params = {
        "signature": wechat_signature(WECHAT_TOKEN, timestamp, "n1"),
        "timestamp": timestamp,
        "nonce": "n1",
    }
    response = await client.post("/webhooks/wechat", params=params, content=body.encode())
    assert (response.status_code, response.json()["reason"]) == (403, reason)
    assert await nothing_stored(gateway)


async def test_a_captured_plaintext_url_cannot_carry_another_body(
    client: httpx.AsyncClient,
    gateway: Gateway,
    sink: MemorySink,
    wechat: WeChatSender,
    clock: FrozenClock,
) -> None:
    params, body = text_push(wechat, clock, 701, "我的快递丢了")
    first = await client.post("/webhooks/wechat", params=params, content=body)
    forged = wechat_text(
        "oAttacker000000000000000000", "伪造的投诉", 702, int(clock.now().timestamp())
    )
    replay = await client.post("/webhooks/wechat", params=params, content=forged.encode())
    assert first.status_code == 200
    assert (replay.status_code, replay.json()["reason"]) == (403, "replayed_nonce")
    await sink.wait_for(1)
    assert [r["description"] for r in sink.records] == ["我的快递丢了"]


async def test_swapping_timestamp_and_nonce_does_not_make_a_fresh_signature(
    client: httpx.AsyncClient, gateway: Gateway, wechat: WeChatSender, clock: FrozenClock
) -> None:
    now = int(clock.now().timestamp())
    nonce = str(now - 10)  # a nonce that is itself a timestamp in the window
    push = wechat.push(wechat_text(OPENID, "原文", 711, now), timestamp=now, nonce=nonce)
    assert (await client.post("/webhooks/wechat", params=push.params, content=push.body)).is_success
    swapped = push.params | {"timestamp": nonce, "nonce": str(now)}
    forged = wechat_text(OPENID, "换了内容", 712, now).encode()
    response = await client.post("/webhooks/wechat", params=swapped, content=forged)
    assert (response.status_code, response.json()["reason"]) == (403, "replayed_nonce")


async def test_wechats_own_retry_of_a_push_is_still_answered_success(
    client: httpx.AsyncClient, gateway: Gateway, wechat: WeChatSender, clock: FrozenClock
) -> None:
    """A retry repeats signature and body: it must pass, or a complaint whose first
    delivery was answered 503 would be refused on every retry and lost."""
    params, body = text_push(wechat, clock, 721)
    answers = [await client.post("/webhooks/wechat", params=params, content=body) for _ in range(4)]
    assert [a.text for a in answers] == ["success"] * 4
    assert len(await gateway.outbox.select(since=None)) == 1


async def test_quarantine_keeps_the_query_without_signatures_nonces_or_timestamps(
    client: httpx.AsyncClient, gateway: Gateway, wechat: WeChatSender, clock: FrozenClock
) -> None:
    push = wechat.push("<xml><unterminated>", timestamp=int(clock.now().timestamp()), nonce="q1")
    params = push.params | {"openid": OPENID}
    response = await client.post("/webhooks/wechat", params=params, content=push.body)
    assert response.status_code == 400
    (kept,) = await gateway.outbox.quarantined()
    query = kept.headers["query"]
    assert f"openid={OPENID}" in query
    for credential in ("signature", "timestamp", "nonce"):
        assert f"{credential}=" not in query
    assert push.params["signature"] not in json.dumps(kept.headers)


# -- 4. another store's submission with the same number is another complaint -----------------


async def test_two_stores_numbering_alike_give_two_complaints(
    client: httpx.AsyncClient, sink: MemorySink, store: StoreSender, clock: FrozenClock
) -> None:
    shanghai = store_submission(submission_id="0007", store_id="SH0012", text="上海的投诉")
    beijing = store_submission(
        submission_id="0007",
        store_id="BJ0001",
        text="北京的投诉",
        customer={"phone": "13900001111"},
    )
    first = await post_store(client, store, clock, store.body(shanghai))
    second = await post_store(client, store, clock, store.body(beijing))
    assert [first.json()["status"], second.json()["status"]] == ["accepted", "accepted"]
    await sink.wait_for(2)
    assert sorted(r["description"] for r in sink.records) == ["上海的投诉", "北京的投诉"]


# -- 5. a field must be text ------------------------------------------------------------------


@pytest.mark.parametrize(
    "xml",
    [
        "<xml><ToUserName>gh</ToUserName><FromUserName>{o}</FromUserName><CreateTime>{t}</CreateTime>"
        "<MsgType>text</MsgType><Content>before<b>x</b>after</Content><MsgId>1</MsgId></xml>",
        "<xml><ToUserName>gh</ToUserName><FromUserName>{o}</FromUserName><CreateTime>{t}</CreateTime>"
        "<MsgType>text</MsgType><Content>dup</Content><Content>hello</Content><MsgId>2</MsgId></xml>",
        "<xml><ToUserName>gh</ToUserName><FromUserName>{o}</FromUserName><CreateTime>{t}</CreateTime>"
        "<MsgType>text</MsgType><Content>hi</Content><MsgId><a>1</a></MsgId></xml>",
    ],
    ids=["mixed-content", "two-contents", "nested-msgid"],
)
async def test_a_field_that_is_not_text_is_malformed_not_python_repr(
    client: httpx.AsyncClient,
    gateway: Gateway,
    wechat: WeChatSender,
    clock: FrozenClock,
    xml: str,
) -> None:
    ts = int(clock.now().timestamp())
    push = wechat.push(xml.format(o=OPENID, t=ts), timestamp=ts, nonce=str(len(xml)))
    response = await client.post("/webhooks/wechat", params=push.params, content=push.body)
    assert (response.status_code, response.json()["reason"]) == (400, "invalid_field")
    assert not await gateway.outbox.select(since=None)
    assert len(await gateway.outbox.quarantined()) == 1


# -- 6. metric labels come from a bounded set -------------------------------------------------


async def test_invented_event_names_do_not_become_metric_labels(
    client: httpx.AsyncClient, wechat: WeChatSender, clock: FrozenClock
) -> None:
    ts = int(clock.now().timestamp())
    for n in range(3):
        xml = wechat_xml(
            {
                "ToUserName": "gh_3f2a1b0c9d8e",
                "FromUserName": OPENID,
                "CreateTime": ts + n,
                "MsgType": "event",
                "Event": chr(ord("a") + n) * 20_000,
            }
        )
        push = wechat.push(xml, timestamp=ts, nonce=f"ev{n}")
        response = await client.post("/webhooks/wechat", params=push.params, content=push.body)
        assert response.text == "success"
    text = await metrics(client)
    assert len(text) < 20_000
    assert (
        metric(text, "gateway_events_ignored_total", connector="wechat", reason="event:other") == 3
    )


# -- 8. contract breaches are clear refusals, not connector or normalizer errors ----------------


async def test_an_xml_declaration_naming_gbk_is_read_as_utf8_not_a_crash(
    client: httpx.AsyncClient, sink: MemorySink, wechat: WeChatSender, clock: FrozenClock
) -> None:
    ts = int(clock.now().timestamp())
    xml = '<?xml version="1.0" encoding="GBK"?>' + wechat_text(OPENID, "编码声明", 801, ts)
    push = wechat.push(xml, timestamp=ts, nonce="gbk")
    response = await client.post("/webhooks/wechat", params=push.params, content=push.body)
    assert response.text == "success"
    await sink.wait_for(1)
    assert sink.records[0]["description"] == "编码声明"


async def test_create_time_out_of_range_is_an_invalid_field(
    client: httpx.AsyncClient, wechat: WeChatSender, clock: FrozenClock
) -> None:
    ts = int(clock.now().timestamp())
    xml = wechat_text(OPENID, "时间", 802, ts).replace(
        f"<CreateTime>{ts}</CreateTime>", "<CreateTime>-9223372036854775808</CreateTime>"
    )
    push = wechat.push(xml, timestamp=ts, nonce="ct")
    response = await client.post("/webhooks/wechat", params=push.params, content=push.body)
    assert (response.status_code, response.json()["reason"]) == (400, "invalid_field")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b'{"submission_id": "1", "store_id": "S", "x": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}",
            "json_too_deep",
        ),
        (
            b'{"submission_id": "1", "store_id": "S", "x": ' + b"[" * 40 + b"]" * 40 + b"}",
            "json_too_deep",
        ),
        (
            b'{"submission_id": "1", "store_id": "S", "x": ' + b"7" * 5000 + b"}",
            "json_number_too_long",
        ),
        (json.dumps(store_submission(order={"amount_cny": "1e1000000"})).encode(), "invalid_field"),
        (json.dumps(store_submission(order={"amount_cny": "9" * 29})).encode(), "invalid_field"),
        (json.dumps(store_submission(order={"amount_cny": "0.005"})).encode(), "invalid_field"),
        (json.dumps(store_submission(order={"amount_cny": "-0"})).encode(), "invalid_field"),
    ],
    ids=[
        "deep-json",
        "json-past-the-cap",
        "5000-digit-number",
        "amount-1e1000000",
        "amount-29-digits",
        "amount-half-fen",
        "amount-minus-zero",
    ],
)
async def test_store_payloads_that_used_to_crash_are_clear_400s_and_kept(
    client: httpx.AsyncClient,
    gateway: Gateway,
    store: StoreSender,
    clock: FrozenClock,
    body: bytes,
    reason: str,
) -> None:
    response = await post_store(client, store, clock, body)
    assert (response.status_code, response.json()["reason"]) == (400, reason)
    (kept,) = await gateway.outbox.quarantined()
    assert kept.body == body
