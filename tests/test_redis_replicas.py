"""Several gateway processes behind one load balancer, sharing state through a real Redis.

Each process has its own outbox and stream file; what counts is what all of
them published together. The Redis server is a private one (tests/redis_server.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from service.senders import StoreSender
from tests.conftest import STORE_SECRET
from tests.process import (
    GatewayProcess,
    make_gateway_process,
    wait_until,
    wechat_push,
    wechat_record_id,
)
from tests.redis_server import RedisServer, redis_server, start_redis_server

__all__ = ["make_gateway_process", "redis_server", "start_redis_server"]  # fixtures used below

Make = Callable[..., GatewayProcess]


def redis_env(server: RedisServer) -> dict[str, str]:
    """Settings of a replica: Redis state under a prefix of this test's own."""
    return {
        "GATEWAY_STATE__BACKEND": "redis",
        "GATEWAY_STATE__REDIS_URL": server.url,
        "GATEWAY_STATE__KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}:",
    }


def replicas(make: Make, server: RedisServer, count: int = 2) -> list[GatewayProcess]:
    env = redis_env(server)
    return [make(**env) for _ in range(count)]


def published_ids(processes: list[GatewayProcess]) -> list[str]:
    return [record["record_id"] for p in processes for record in p.published()]


async def post_to_both(processes: list[GatewayProcess], msg_ids: range) -> list[tuple[int, str]]:
    """Every push to every replica at the same moment, as a retry racing the original would."""
    async with httpx.AsyncClient(timeout=20.0) as client:

        async def one(process: GatewayProcess, msg_id: int) -> tuple[int, str]:
            push = wechat_push(msg_id)
            response = await client.post(
                f"{process.base_url}/webhooks/wechat", params=push.params, content=push.body
            )
            return response.status_code, response.text

        return await asyncio.gather(
            *(one(process, msg_id) for msg_id in msg_ids for process in processes)
        )


def test_the_same_wechat_retry_at_two_replicas_at_once_is_published_once(
    make_gateway_process: Make, redis_server: RedisServer
) -> None:
    gateways = replicas(make_gateway_process, redis_server)
    msg_ids = range(91_000, 91_040)
    answers = asyncio.run(post_to_both(gateways, msg_ids))
    assert answers == [(200, "success")] * (2 * len(msg_ids))  # both acknowledge
    expected = {wechat_record_id(m) for m in msg_ids}
    wait_until(lambda: set(published_ids(gateways)) >= expected, 20, "every record is published")
    ids = published_ids(gateways)
    assert sorted(ids) == sorted(expected)  # each exactly once, across both replicas


def test_two_replicas_link_two_channels_reports_of_one_incident(
    make_gateway_process: Make, redis_server: RedisServer
) -> None:
    first, second = replicas(make_gateway_process, redis_server)
    store = StoreSender(STORE_SECRET)
    body = store.body(
        {
            "submission_id": "SH0012-R-1",
            "store_id": "SH0012",
            "customer": {"phone": "13812340001"},
            "order": {"order_id": "TB4420017788123", "sku": "KT-9"},
            "text": "电热水壶底座漏水，要求换新",
        }
    )
    answer = httpx.post(
        f"{first.base_url}/webhooks/store",
        content=body,
        headers=store.sign(body, int(time.time())),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    push = wechat_push(92_001, "门店登记过的水壶漏水，订单号 4420 0177 88123，到现在没人联系我")
    answer = httpx.post(
        f"{second.base_url}/webhooks/wechat", params=push.params, content=push.body, timeout=10
    )
    assert answer.status_code == 200, answer.text
    wait_until(lambda: first.published() and second.published(), 20, "both are published")
    [store_record] = first.published()
    [wechat_record] = second.published()
    assert wechat_record["dedupe"]["duplicate_of"] == store_record["record_id"]
    assert wechat_record["dedupe"]["reason"] == "同一订单号"
    assert wechat_record["priority"] in ("P1", "P2")  # a second contact


def test_a_redis_outage_makes_webhooks_answer_503_and_readyz_say_why(
    make_gateway_process: Make, start_redis_server: Callable[..., RedisServer]
) -> None:
    server = start_redis_server()
    [gateway] = replicas(make_gateway_process, server, count=1)
    push = wechat_push(93_001)
    url = f"{gateway.base_url}/webhooks/wechat"
    with server.paused():
        answer = httpx.post(url, params=push.params, content=push.body, timeout=20)
        assert answer.status_code == 503
        assert answer.json()["reason"] == "state_unavailable"
        ready = httpx.get(f"{gateway.base_url}/readyz", timeout=20)
        assert ready.status_code == 503
        assert "state" in ready.json()["problems"]
    assert not gateway.published()  # nothing taken in without dedupe
    # WeChat's retry after Redis is back is taken in
    answer = httpx.post(url, params=push.params, content=push.body, timeout=20)
    assert (answer.status_code, answer.text) == (200, "success")
    wait_until(lambda: len(gateway.published()) == 1, 20, "the retry is published")
    assert httpx.get(f"{gateway.base_url}/readyz", timeout=10).status_code == 200


def test_a_replica_with_an_unreachable_redis_refuses_to_start_clearly(
    make_gateway_process: Make,
) -> None:
    gateway = make_gateway_process(
        start=False,
        GATEWAY_STATE__BACKEND="redis",
        GATEWAY_STATE__REDIS_URL="redis://:hunter2@127.0.0.1:1/0",
    )
    with pytest.raises(RuntimeError):  # the process exits at start
        gateway.start(timeout=15)
    log = gateway.log_text()
    assert "error: cannot start: Redis at redis://***@127.0.0.1:1/0 unavailable" in log
    assert "Traceback" not in log and "hunter2" not in log
