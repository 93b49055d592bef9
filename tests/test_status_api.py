"""``POST /status`` on a running gateway: what a ticket system is answered, what a customer gets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gateway import Gateway, running_gateway
from service.fake_providers import FakeProviders
from service.registry import Registry
from service.senders import StoreSender, WeChatSender, wechat_text, wechat_xml
from service.settings import GatewaySettingsBase
from tests.fakes import FrozenClock, MemorySink
from tests.provider_server import API_TOKEN, notifier_settings, running_providers, wait_for_messages

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
async def providers() -> AsyncIterator[tuple[FakeProviders, str]]:
    async with running_providers() as running:
        yield running


@pytest.fixture
async def notifying(
    make_settings: Callable[..., GatewaySettingsBase],
    registry: Registry,
    clock: FrozenClock,
    providers: tuple[FakeProviders, str],
) -> AsyncIterator[Gateway]:
    settings = make_settings(
        notifiers=notifier_settings(providers[1]),
        notifications={"api_token": API_TOKEN},
    )
    async with running_gateway(settings, registry, clock=clock, sink=MemorySink()) as gw:
        yield gw


@pytest.fixture
async def api(notifying: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=notifying.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


def update(record_id: str, node: str = "accepted", **fields: Any) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "node": node,
        "occurred_at": "2026-11-23T02:20:00Z",
        "ticket_no": "TS20240520",
        **fields,
    }


async def take_in_store_complaint(
    api: httpx.AsyncClient, store: StoreSender, clock: FrozenClock
) -> str:
    body = store.body(
        {
            "submission_id": "SH0012-20261123-0001",
            "store_id": "SH0012",
            "customer": {"phone": "13800138000"},
            "text": "水壶漏水，要求换新",
        }
    )
    headers = store.sign(body, int(clock.now().timestamp()))
    answer = await api.post("/webhooks/store", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["record_id"])


async def test_a_status_update_reaches_the_customer_once(
    api: httpx.AsyncClient,
    store: StoreSender,
    clock: FrozenClock,
    providers: tuple[FakeProviders, str],
    notifying: Gateway,
) -> None:
    fake = providers[0]
    record_id = await take_in_store_complaint(api, store, clock)
    first = await api.post("/status", json=update(record_id), headers=AUTH)
    again = await api.post("/status", json=update(record_id), headers=AUTH)
    assert first.status_code == 202 and first.json() == {"queued": 1, "already_queued": 0}
    assert again.status_code == 202 and again.json() == {"queued": 0, "already_queued": 1}
    await wait_for_messages(fake, 1)
    await asyncio.sleep(0.3)
    [message] = fake.messages
    assert message["provider"] == "aliyun_sms" and message["recipient"] == "13800138000"
    assert message["text"] == (
        "【示例品牌】尊敬的客户，您的反馈我们已收到（编号：TS20240520），"
        "正在为您分配专属客服跟进，请您耐心等待。"
    )
    assert notifying.notifications is not None
    await notifying.notifications.outcomes.drain()
    lines = notifying.settings.notifications_jsonl_path.read_text().splitlines()
    outcome = json.loads(lines[-1])
    assert outcome["status"] == "sent" and outcome["provider_message_id"] == message["message_id"]
    assert outcome["recipient"] == "+86138****8000"


async def test_wechat_complaints_are_answered_in_the_chat(
    api: httpx.AsyncClient,
    wechat: WeChatSender,
    clock: FrozenClock,
    providers: tuple[FakeProviders, str],
    notifying: Gateway,
) -> None:
    fake = providers[0]
    openid = "oWechatCustomer000000000001"
    ts = int(clock.now().timestamp())
    push = wechat.push(wechat_text(openid, "耳机左边没声音", 7001, ts), timestamp=ts, nonce="s1")
    answer = await api.post("/webhooks/wechat", params=push.params, content=push.body)
    assert answer.status_code == 200
    [entry] = await notifying.outbox.select(since=clock.now())
    accepted = await api.post("/status", json=update(entry.record_id), headers=AUTH)
    assert accepted.status_code == 202
    await wait_for_messages(fake, 1)
    [message] = fake.messages
    assert message["provider"] == "wechat" and message["recipient"] == openid
    assert message["kind"] == "custom/send" and "TS20240520" in message["text"]


async def test_a_customer_who_unfollowed_is_not_messaged_on_wechat(
    api: httpx.AsyncClient,
    wechat: WeChatSender,
    clock: FrozenClock,
    providers: tuple[FakeProviders, str],
    notifying: Gateway,
) -> None:
    fake = providers[0]
    openid = "oWechatCustomer000000000002"
    ts = int(clock.now().timestamp())
    push = wechat.push(wechat_text(openid, "充电器坏了", 7002, ts), timestamp=ts, nonce="s2")
    assert (await api.post("/webhooks/wechat", params=push.params, content=push.body)).is_success
    [entry] = await notifying.outbox.select(since=clock.now())
    unfollow = wechat_xml(
        {
            "ToUserName": "gh_3f2a1b0c9d8e",
            "FromUserName": openid,
            "CreateTime": ts,
            "MsgType": "event",
            "Event": "unsubscribe",
        }
    )
    push = wechat.push(unfollow, timestamp=ts, nonce="s3")
    assert (await api.post("/webhooks/wechat", params=push.params, content=push.body)).is_success
    answer = await api.post("/status", json=update(entry.record_id), headers=AUTH)
    assert answer.json() == {"queued": 0, "already_queued": 0}  # no other contact known
    assert notifying.notifications is not None
    [outcome] = [json.loads(o.body) for o in await notifying.notifications.store.unpublished(10)]
    assert outcome["status"] == "skipped" and "wechat: opted_out" in outcome["detail"]
    assert fake.messages == []


async def test_who_may_post_and_what(
    api: httpx.AsyncClient, store: StoreSender, clock: FrozenClock, notifying: Gateway
) -> None:
    record_id = await take_in_store_complaint(api, store, clock)
    assert (await api.post("/status", json=update(record_id))).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    refused = await api.post("/status", json=update(record_id), headers=wrong)
    assert refused.status_code == 403 and API_TOKEN not in refused.text

    bad = await api.post(
        "/status",
        json={"record_id": record_id, "node": "teleported", "ticket_no": ""},
        headers=AUTH,
    )
    assert bad.status_code == 400
    problems = bad.json()["problems"]
    assert {p.split(":")[0] for p in problems} >= {"node", "occurred_at", "ticket_no"}
    kept = await notifying.outbox.quarantined(5)
    assert kept[0].channel == "status" and b"teleported" in kept[0].body

    unknown = await api.post("/status", json=update("store:nobody"), headers=AUTH)
    assert unknown.status_code == 404
    by_hand = await api.post(
        "/status",
        json=update("store:nobody", recipient={"phone": "+8613900139000"}),
        headers=AUTH,
    )
    assert by_hand.status_code == 202

    resolved = await api.post("/status", json=update(record_id, "resolved"), headers=AUTH)
    assert resolved.status_code == 202
    backwards = await api.post("/status", json=update(record_id, "in_progress"), headers=AUTH)
    assert backwards.status_code == 409 and "reopens" in backwards.json()["error"]
    reopened = await api.post(
        "/status", json=update(record_id, "in_progress", reopens=True), headers=AUTH
    )
    assert reopened.status_code == 202

    missing = await api.post("/status", json=update(record_id, "solution_proposed"), headers=AUTH)
    assert missing.status_code == 400
    assert any(p.startswith("variables.solution") for p in missing.json()["problems"])


async def test_without_a_configured_token_every_request_is_refused(
    make_settings: Callable[..., GatewaySettingsBase],
    registry: Registry,
    clock: FrozenClock,
    providers: tuple[FakeProviders, str],
) -> None:
    settings = make_settings(notifiers=notifier_settings(providers[1]))
    async with running_gateway(settings, registry, clock=clock, sink=MemorySink()) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://g.test") as c:
            answer = await c.post("/status", json=update("x"), headers={"Authorization": "Bearer "})
            assert answer.status_code == 401
            answer = await c.post("/status", json=update("x"), headers=AUTH)
            assert answer.status_code == 403


async def test_a_template_with_an_unknown_variable_stops_the_start(
    make_settings: Callable[..., GatewaySettingsBase],
    registry: Registry,
    providers: tuple[FakeProviders, str],
) -> None:
    from connectors.errors import ConfigError

    settings = make_settings(
        notifiers=notifier_settings(providers[1]),
        notifications={"texts": {"wechat": {"accepted": "您好 {nickname}"}}},
    )
    with pytest.raises(ConfigError) as caught:
        async with running_gateway(settings, registry, sink=MemorySink()):
            pass
    assert any(
        "{nickname} is not a variable of node 'accepted'" in p for p in caught.value.problems
    )
