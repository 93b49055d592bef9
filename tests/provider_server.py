"""The fake SMS and WeChat providers (:mod:`service.fake_providers`) on a loopback port, and
gateway settings that point the notifiers at them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from outbound.templates import DEFAULT_SMS_TEXTS
from service.fake_providers import FakeProviders
from tests.brokers import free_port, wait_for_port

ALIYUN_KEY_ID = "LTAI5tFakeKeyId0000"
ALIYUN_SECRET = "fake-aliyun-secret-7c1e"
WECHAT_APP_ID = "wx00000000fa4e0001"
WECHAT_SECRET = "fake-wechat-secret-93ab"
API_TOKEN = "status-api-token-5d2f"
SMS_TEMPLATES = {f"SMS_{node.upper()}": text for node, text in DEFAULT_SMS_TEXTS.items()}


def _serving() -> tuple[FakeProviders, uvicorn.Server, int]:
    fake = FakeProviders(ALIYUN_KEY_ID, ALIYUN_SECRET, WECHAT_APP_ID, WECHAT_SECRET, SMS_TEMPLATES)
    port = free_port()
    config = uvicorn.Config(
        fake.app(),
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=1,  # a request held open (mode "hang") does not hold the stop
    )
    return fake, uvicorn.Server(config), port


@contextlib.asynccontextmanager
async def running_providers() -> AsyncIterator[tuple[FakeProviders, str]]:
    """The fake providers served by uvicorn; yields them and their base URL."""
    fake, server, port = _serving()
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):  # a port taken meanwhile ends the task: raise, not wait
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"the fake providers could not listen on {port}")
            await asyncio.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:  # a connection that will not close must not hang the suite
            server.force_exit = True


@contextlib.contextmanager
def providers_in_a_thread() -> Iterator[tuple[FakeProviders, str]]:
    """The fake providers on their own thread and loop, for tests that block (process tests)."""
    fake, server, port = _serving()
    thread = threading.Thread(target=server.run, name="fake-providers", daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def notifier_env(base: str) -> dict[str, str]:
    """``notifier_settings`` as ``GATEWAY_*`` variables, for gateway processes."""
    aliyun = notifier_settings(base, wechat=False)["aliyun_sms"]
    return {
        f"GATEWAY_NOTIFIERS__ALIYUN_SMS__{key.upper()}": (
            json.dumps(value) if isinstance(value, dict) else str(value)
        )
        for key, value in aliyun.items()
    }


def notifier_settings(base: str, *, wechat: bool = True) -> dict[str, Any]:
    """``notifiers`` settings for the fake providers: Aliyun SMS, and WeChat if asked."""
    settings: dict[str, Any] = {
        "aliyun_sms": {
            "access_key_id": ALIYUN_KEY_ID,
            "access_key_secret": ALIYUN_SECRET,
            "sign_name": "示例品牌",
            "templates": {node: f"SMS_{node.upper()}" for node in DEFAULT_SMS_TEXTS},
            "base_url": f"{base}/aliyun",
        }
    }
    if wechat:
        settings["wechat"] = {
            "app_id": WECHAT_APP_ID,
            "app_secret": WECHAT_SECRET,
            "base_url": f"{base}/wechat",
        }
    return settings


async def wait_for_messages(fake: FakeProviders, count: int, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while len(fake.messages) < count:
            await asyncio.sleep(0.02)
