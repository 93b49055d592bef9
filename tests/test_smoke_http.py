from __future__ import annotations

import httpx

from gateway import Gateway
from service.senders import WeChatSender, wechat_text
from tests.fakes import FrozenClock, MemorySink


async def test_wechat_text_reaches_the_sink(
    client: httpx.AsyncClient,
    gateway: Gateway,
    sink: MemorySink,
    wechat: WeChatSender,
    clock: FrozenClock,
) -> None:
    ts = int(clock.now().timestamp())
    push = wechat.push(
        wechat_text("oUser1234567890abcdefghijklm", "水壶漏水", 1001, ts), timestamp=ts, nonce="n1"
    )
    response = await client.post("/webhooks/wechat", params=push.params, content=push.body)
    assert response.status_code == 200
    assert response.text == "success"
    await sink.wait_for(1)
    assert sink.records[0]["description"] == "水壶漏水"
