"""End to end through HTTP against the ASGI app: what a platform and an operator see."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
import pytest

from gateway import Gateway, running_gateway
from schemas import record_id_for
from service.registry import Registry
from service.senders import StoreSender, WeChatSender, wechat_text, wechat_xml
from service.settings import GatewaySettingsBase
from tests.fakes import FrozenClock, MemorySink

OPENID = "oyORnuP8q7ou2gfYjqLzSIWZf0rs"


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 if absent."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample))
        if sample.split("{")[0] == name and found == labels:
            return float(value)
    return 0.0


async def metrics(client: httpx.AsyncClient) -> str:
    return (await client.get("/metrics")).text


def text_push(
    wechat: WeChatSender,
    clock: FrozenClock,
    msg_id: int,
    content: str = "投诉：漏水",
    mode: str = "plain",
) -> tuple[dict[str, str], bytes]:
    ts = int(clock.now().timestamp())
    push = wechat.push(
        wechat_text(OPENID, content, msg_id, ts),
        mode=mode,  # type: ignore[arg-type]
        timestamp=ts,
        nonce=f"n{msg_id}",
    )
    return push.params, push.body


def store_submission(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "submission_id": "SH0012-20261123-0001",
        "store_id": "SH0012",
        "clerk_id": "E1024",
        "customer": {"phone": "13812345678"},
        "text": "水壶漏水，要求换新",
        "expectations": ["exchange"],
    }
    body.update(fields)
    return body


async def nothing_stored(gateway: Gateway) -> bool:
    return not await gateway.outbox.select(since=None) and not await gateway.outbox.quarantined()


# -- WeChat -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
async def test_wechat_message_in_each_mode_is_answered_success_and_published(
    client: httpx.AsyncClient,
    gateway: Gateway,
    sink: MemorySink,
    wechat: WeChatSender,
    clock: FrozenClock,
    mode: str,
) -> None:
    params, body = text_push(wechat, clock, 42, "快递三天没动了😡", mode)
    response = await client.post("/webhooks/wechat", params=params, content=body)
    assert (response.status_code, response.text) == (200, "success")
    await sink.wait_for(1)
    (record,) = sink.records
    assert record["description"] == "快递三天没动了😡"
    assert record["record_id"] == record_id_for("wechat", "42")
    raw, media_type = await gateway.outbox.raw_payload(record["record_id"]) or (b"", "")
    assert b"<MsgId>42</MsgId>" in raw and media_type == "application/xml"


async def test_wechat_retry_triple_gives_one_record(
    client: httpx.AsyncClient,
    sink: MemorySink,
    wechat: WeChatSender,
    clock: FrozenClock,
) -> None:
    params, body = text_push(wechat, clock, 7001)
    for attempt in range(4):  # the first delivery and WeChat's three retries
        clock.advance(5)
        response = await client.post("/webhooks/wechat", params=params, content=body)
        assert (response.status_code, response.text) == (200, "success"), attempt
    await sink.wait_for(1)
    assert len(sink.entries) == 1
    text = await metrics(client)
    assert metric(text, "gateway_duplicates_total", connector="wechat") == 3
    assert metric(text, "gateway_records_accepted_total", connector="wechat") == 1


async def test_wechat_url_check(client: httpx.AsyncClient, wechat: WeChatSender) -> None:
    response = await client.get(
        "/webhooks/wechat", params=wechat.url_check("8127364", timestamp=1795400000, nonce="1")
    )
    assert (response.status_code, response.text) == (200, "8127364")


async def test_subscribe_event_is_acknowledged_but_not_a_complaint(
    client: httpx.AsyncClient,
    gateway: Gateway,
    wechat: WeChatSender,
    clock: FrozenClock,
) -> None:
    ts = int(clock.now().timestamp())
    xml = wechat_xml(
        {
            "ToUserName": "gh_1",
            "FromUserName": OPENID,
            "CreateTime": ts,
            "MsgType": "event",
            "Event": "subscribe",
            "EventKey": "",
        }
    )
    push = wechat.push(xml, timestamp=ts, nonce="e1")
    response = await client.post("/webhooks/wechat", params=push.params, content=push.body)
    assert (response.status_code, response.text) == (200, "success")
    assert await nothing_stored(gateway)
    text = await metrics(client)
    assert (
        metric(text, "gateway_events_ignored_total", connector="wechat", reason="event:subscribe")
        == 1
    )


@pytest.mark.parametrize(
    ("mangle", "status", "reason"),
    [
        (lambda p: {k: v for k, v in p.items() if k != "signature"}, 401, "missing_signature"),
        (lambda p: p | {"signature": "0" * 40}, 403, "bad_signature"),
        (lambda p: p | {"nonce": "replayed-with-other-nonce"}, 403, "bad_signature"),
    ],
    ids=["missing", "wrong", "tampered-nonce"],
)
async def test_wechat_bad_signature_is_refused_counted_and_nothing_kept(
    client: httpx.AsyncClient,
    gateway: Gateway,
    wechat: WeChatSender,
    clock: FrozenClock,
    mangle: Callable[[dict[str, str]], dict[str, str]],
    status: int,
    reason: str,
) -> None:
    params, body = text_push(wechat, clock, 9)
    response = await client.post("/webhooks/wechat", params=mangle(params), content=body)
    assert response.status_code == status
    assert response.json()["reason"] == reason
    assert await nothing_stored(gateway)
    assert (
        metric(
            await metrics(client),
            "gateway_webhooks_refused_total",
            connector="wechat",
            reason=reason,
        )
        == 1
    )


async def test_wechat_entity_expansion_is_refused_and_quarantined(
    client: httpx.AsyncClient,
    gateway: Gateway,
    wechat: WeChatSender,
    clock: FrozenClock,
) -> None:
    lol = (
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<xml><FromUserName>&b;</FromUserName></xml>"
    )
    push = wechat.push(lol, timestamp=int(clock.now().timestamp()), nonce="x")
    response = await client.post("/webhooks/wechat", params=push.params, content=push.body)
    assert response.status_code == 400
    assert response.json()["reason"] == "xml_dtd_refused"
    (kept,) = await gateway.outbox.quarantined()
    assert kept.body == lol.encode() and kept.channel == "wechat"


# -- store ------------------------------------------------------------------------------


async def post_store(
    client: httpx.AsyncClient, store: StoreSender, clock: FrozenClock, body: bytes, *, skew: int = 0
) -> httpx.Response:
    headers = store.sign(body, int(clock.now().timestamp()) + skew)
    return await client.post("/webhooks/store", headers=headers, content=body)


async def test_store_complaint_is_accepted_then_its_resend_is_a_duplicate(
    client: httpx.AsyncClient,
    sink: MemorySink,
    store: StoreSender,
    clock: FrozenClock,
) -> None:
    body = store.body(store_submission())
    first = await post_store(client, store, clock, body)
    clock.advance(30)
    again = await post_store(client, store, clock, body)
    assert first.json() == {
        "status": "accepted",
        "record_id": record_id_for("store", "SH0012:SH0012-20261123-0001"),
    }
    assert again.json() == {"status": "duplicate", "record_id": first.json()["record_id"]}
    await sink.wait_for(1)
    (record,) = sink.records
    assert record["received_by"] == "E1024"
    assert record["customer"]["contacts"]["phone"] == "+8613812345678"


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({"x-store-signature": "sha256=" + "0" * 64}, 401, "missing_timestamp"),
        ({"x-store-timestamp": "1795400100"}, 401, "missing_signature"),
        (
            {"x-store-timestamp": "1795400100", "x-store-signature": "sha256=" + "0" * 64},
            403,
            "bad_signature",
        ),
        (
            {"x-store-timestamp": "yesterday", "x-store-signature": "sha256=00"},
            403,
            "bad_timestamp",
        ),
    ],
    ids=["no-timestamp", "no-signature", "wrong-signature", "garbled-timestamp"],
)
async def test_store_unauthenticated_requests_are_refused(
    client: httpx.AsyncClient,
    gateway: Gateway,
    store: StoreSender,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    response = await client.post(
        "/webhooks/store", headers=headers, content=store.body(store_submission())
    )
    assert (response.status_code, response.json()["reason"]) == (status, reason)
    assert await nothing_stored(gateway)


@pytest.mark.parametrize("skew", [-301, 301])
async def test_store_stale_or_future_timestamp_is_refused(
    client: httpx.AsyncClient,
    gateway: Gateway,
    store: StoreSender,
    clock: FrozenClock,
    skew: int,
) -> None:
    response = await post_store(client, store, clock, store.body(store_submission()), skew=skew)
    assert (response.status_code, response.json()["reason"]) == (403, "stale_timestamp")
    assert await nothing_stored(gateway)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"submission_id": "S-1", "text": "\xe6\x9c\xaa', "invalid_json"),
        (b"[1, 2, 3]", "invalid_json"),
        (json.dumps(store_submission(customer={})).encode(), "missing_field"),
        (json.dumps(store_submission(expectations=["free_gift"])).encode(), "invalid_field"),
    ],
    ids=["truncated", "not-an-object", "no-contact", "unknown-expectation"],
)
async def test_store_malformed_body_is_answered_400_and_kept_verbatim(
    client: httpx.AsyncClient,
    gateway: Gateway,
    store: StoreSender,
    clock: FrozenClock,
    body: bytes,
    reason: str,
) -> None:
    response = await post_store(client, store, clock, body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["reason"] == reason and payload["error"]
    (kept,) = await gateway.outbox.quarantined()
    assert (kept.id, kept.body, kept.reason) == (payload["quarantine_id"], body, reason)
    assert not await gateway.outbox.select(since=None)


# -- limits and routing -----------------------------------------------------------------


async def test_body_over_the_limit_is_413_with_or_without_content_length(
    client: httpx.AsyncClient,
    gateway: Gateway,
) -> None:
    big = b"x" * (1024 * 1024 + 1)
    declared = await client.post("/webhooks/store", content=big)

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(17):
            yield b"y" * 65536

    streamed = await client.post("/webhooks/wechat", content=chunks())
    assert declared.status_code == streamed.status_code == 413
    assert await nothing_stored(gateway)


async def test_unknown_and_unconfigured_channels_are_404(
    make_settings: Callable[..., GatewaySettingsBase],
    registry: Registry,
    clock: FrozenClock,
) -> None:
    settings = make_settings(connectors={"wechat": {"token": "t", "enabled": False}})
    async with running_gateway(settings, registry, clock=clock, sink=MemorySink()) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            for path in ("/webhooks/fax", "/webhooks/wechat", "/webhooks/store"):
                response = await client.post(path, content=b"<xml/>")
                assert response.status_code == 404, path


async def test_outbox_failure_is_503_so_the_platform_retries(
    client: httpx.AsyncClient,
    gateway: Gateway,
    wechat: WeChatSender,
    clock: FrozenClock,
) -> None:
    await gateway.outbox.aclose()
    params, body = text_push(wechat, clock, 77)
    response = await client.post("/webhooks/wechat", params=params, content=body)
    assert response.status_code == 503
    assert (await client.get("/readyz")).status_code == 503


async def test_health_readiness_and_metrics(
    client: httpx.AsyncClient,
    sink: MemorySink,
) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).json()["ready"] is True
    sink.down = True
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and "memory" in ready.json()["problems"]
    text = await metrics(client)
    for name in (
        "gateway_webhooks_received_total",
        "gateway_outbox_depth",
        "gateway_publish_latency_seconds_bucket",
    ):
        assert name in text


# -- durability -------------------------------------------------------------------------


async def test_accepted_records_wait_in_the_outbox_while_the_sink_is_down(
    client: httpx.AsyncClient,
    gateway: Gateway,
    sink: MemorySink,
    wechat: WeChatSender,
    clock: FrozenClock,
) -> None:
    sink.down = True
    for msg_id in range(100, 110):
        params, body = text_push(wechat, clock, msg_id)
        assert (
            await client.post("/webhooks/wechat", params=params, content=body)
        ).status_code == 200
    assert metric(await metrics(client), "gateway_outbox_depth") == 10
    sink.down = False
    gateway.publisher.notify()
    await gateway.publisher.drain()
    assert [r["source"]["message_id"] for r in sink.records] == [str(i) for i in range(100, 110)]


async def test_outbox_and_dedupe_survive_a_restart(
    make_settings: Callable[..., GatewaySettingsBase],
    registry: Registry,
    clock: FrozenClock,
    wechat: WeChatSender,
) -> None:
    settings = make_settings()
    down = MemorySink()
    down.down = True
    params, body = text_push(wechat, clock, 555)
    async with running_gateway(settings, registry, clock=clock, sink=down) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            assert (
                await client.post("/webhooks/wechat", params=params, content=body)
            ).status_code == 200
    up = MemorySink()
    async with running_gateway(settings, registry, clock=clock, sink=up) as gw:
        await up.wait_for(1)
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            retry = await client.post("/webhooks/wechat", params=params, content=body)
            assert retry.status_code == 200
            text = await metrics(client)
        assert metric(text, "gateway_duplicates_total", connector="wechat") == 1
    assert [r["record_id"] for r in up.records] == [record_id_for("wechat", "555")]


# -- hostile input ----------------------------------------------------------------------


async def test_garbage_bodies_get_4xx_and_the_server_keeps_working(
    client: httpx.AsyncClient,
    gateway: Gateway,
    sink: MemorySink,
    wechat: WeChatSender,
    store: StoreSender,
    clock: FrozenClock,
) -> None:
    import random

    rng = random.Random(20261123)
    ts = int(clock.now().timestamp())
    for n in range(150):
        size = rng.choice([0, 1, 7, 64, 512, 4096])
        body = bytes(rng.getrandbits(8) for _ in range(size))
        if n % 3 == 0:  # valid XML shapes with garbage inside
            body = b"<xml>" + body.replace(b"<", b"").replace(b"&", b"") + b"</xml>"
        push = wechat.push("<xml/>", timestamp=ts, nonce=f"g{n}")
        wx = await client.post("/webhooks/wechat", params=push.params, content=body)
        st = await client.post("/webhooks/store", headers=store.sign(body, ts), content=body)
        assert 400 <= wx.status_code < 500, (n, wx.status_code, wx.text)
        assert 400 <= st.status_code < 500, (n, st.status_code, st.text)
    assert len(await gateway.outbox.quarantined(1000)) == 300
    params, body = text_push(wechat, clock, 31337)
    assert (await client.post("/webhooks/wechat", params=params, content=body)).text == "success"
    await sink.wait_for(1)


async def test_a_body_that_trickles_in_too_slowly_is_408(
    make_settings: Callable[..., GatewaySettingsBase],
    registry: Registry,
    clock: FrozenClock,
) -> None:
    import asyncio

    settings = make_settings(http={"body_timeout_seconds": 0.2})
    async with running_gateway(settings, registry, clock=clock, sink=MemorySink()) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:

            async def trickle():  # type: ignore[no-untyped-def]
                for _ in range(10):
                    await asyncio.sleep(0.1)
                    yield b"x"

            response = await client.post("/webhooks/store", content=trickle())
            assert response.status_code == 408
            assert (await client.get("/healthz")).status_code == 200
