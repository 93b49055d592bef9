from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import Gateway, running_gateway
from service.registry import Registry
from service.senders import StoreSender, WeChatSender
from service.settings import GatewaySettingsBase, load_settings
from tests.fakes import FrozenClock, MemorySink

WECHAT_TOKEN = "demotoken2026"
WECHAT_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
WECHAT_APP_ID = "wx2c2769f8efd9abc2"
STORE_SECRET = "store-shared-secret-9f8e7d"

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_binary(path: str | None, what: str) -> str:
    """Skip (or, in CI, fail) when a server binary the test needs is missing."""
    if path and (os.path.exists(path) or shutil.which(path)):
        return path
    message = f"{what} is not installed on this machine"
    if IN_CI:
        pytest.fail(f"{message}; CI must run this test")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _clean_gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their own settings; a developer's GATEWAY_* variables must not leak in."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.from_entry_points()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def make_settings(registry: Registry, tmp_path: Path) -> Callable[..., GatewaySettingsBase]:
    def make(**overrides: Any) -> GatewaySettingsBase:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "connectors": {
                "wechat": {
                    "token": WECHAT_TOKEN,
                    "encoding_aes_key": WECHAT_AES_KEY,
                    "app_id": WECHAT_APP_ID,
                },
                "store": {"secret": STORE_SECRET},
            },
        }
        values.update(overrides)
        return load_settings(registry, **values)

    return make


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
async def gateway(
    make_settings: Callable[..., GatewaySettingsBase],
    registry: Registry,
    clock: FrozenClock,
    sink: MemorySink,
) -> AsyncIterator[Gateway]:
    async with running_gateway(make_settings(), registry, clock=clock, sink=sink) as gw:
        yield gw


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


@pytest.fixture
def wechat() -> WeChatSender:
    return WeChatSender(WECHAT_TOKEN, WECHAT_AES_KEY, WECHAT_APP_ID)


@pytest.fixture
def store() -> StoreSender:
    return StoreSender(STORE_SECRET)
