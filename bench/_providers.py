"""The fake SMS provider of a benchmark run, in a process of its own.

    python -m bench._providers --port P

:class:`service.fake_providers.FakeProviders` (Aliyun ``SendSms`` with its
RPC signature checked, WeChat's token and message APIs) under uvicorn with
uvloop and httptools, configured with the credentials and templates of
:mod:`tests.provider_server`, which :func:`notifier_env` hands the gateway
too. A process of its own keeps its CPU out of the gateway's and the
orchestrator's, and it is measured on its own (:attr:`ProviderProcess.pid`).

Besides the fake's own routes it serves ``GET /_count?requests=I&messages=J``:
what arrived from the I-th SendSms request and the J-th message taken on,
as counts, distinct ``OutId``\\ s and recipients, and a SHA-256 over the
sorted distinct ``OutId``\\ s, so the orchestrator can compare them with the
notification keys without fetching ``/_messages`` (thousands of texts).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench._child import ROOT
from bench._gateway import HOST, free_port, stop_process, wait_http


def digest(keys: Iterable[str]) -> str:
    """SHA-256 over the sorted distinct ``keys``, one per line."""
    return hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest()


def notifier_env(base: str, *, rate_per_second: float, burst: int) -> dict[str, str]:
    """``GATEWAY_NOTIFIERS__ALIYUN_SMS__*`` pointing the gateway at the fake at ``base``."""
    from tests.provider_server import notifier_env as aliyun_env

    return {
        **aliyun_env(base),
        "GATEWAY_NOTIFIERS__ALIYUN_SMS__RATE_PER_SECOND": f"{rate_per_second:g}",
        "GATEWAY_NOTIFIERS__ALIYUN_SMS__BURST": str(burst),
    }


class ProviderProcess:
    """``python -m bench._providers`` on a free loopback port; :meth:`stop` ends it."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        return self._process.pid if self._process else 0

    def start(self, ready_timeout: float = 20) -> None:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "bench._providers", "--port", str(self.port)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_http(self.port, "/_count", ready_timeout)

    def count(self, requests: int = 0, messages: int = 0) -> dict[str, Any]:
        """``GET /_count`` from the given positions (see the module docstring)."""
        import urllib.request

        url = f"{self.base_url}/_count?requests={requests}&messages={messages}"
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - loopback only
            return dict(json.loads(answer.read()))

    def stop(self) -> None:
        stop_process(self._process)


def _serve(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from service.fake_providers import FakeProviders
    from tests.provider_server import (
        ALIYUN_KEY_ID,
        ALIYUN_SECRET,
        SMS_TEMPLATES,
        WECHAT_APP_ID,
        WECHAT_SECRET,
    )

    fake = FakeProviders(ALIYUN_KEY_ID, ALIYUN_SECRET, WECHAT_APP_ID, WECHAT_SECRET, SMS_TEMPLATES)

    async def count(request: Request) -> Response:
        started = time.perf_counter()
        requests = fake.requests[int(request.query_params.get("requests", 0)) :]
        messages = fake.messages[int(request.query_params.get("messages", 0)) :]
        out_ids = [out_id for out_id, _ in requests]
        return JSONResponse(
            {
                "requests_total": len(fake.requests),
                "messages_total": len(fake.messages),
                "requests": len(requests),
                "distinct_out_ids": len(set(out_ids)),
                "out_ids_digest": digest(out_ids),
                "modes_met": sorted({mode for _, mode in requests}),
                "messages": len(messages),
                "distinct_message_out_ids": len({m.get("out_id") for m in messages}),
                "distinct_recipients": len({m["recipient"] for m in messages}),
                "count_ms": (time.perf_counter() - started) * 1000,
            }
        )

    app = Starlette(routes=[*fake.app().routes, Route("/_count", count, methods=["GET"])])
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    uvicorn.Server(config).run()


def main() -> None:
    parser = argparse.ArgumentParser(description="fake SMS provider child (bench/_providers.py)")
    parser.add_argument("--port", type=int, required=True)
    _serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
