"""Local stand-ins for the marketplace and Weibo open APIs.

Each fake (:mod:`.top`, :mod:`.jd`, :mod:`.pinduoduo`, :mod:`.weibo`) keeps
its platform's data in memory, checks every request the way the platform
does (signature, token or session, timestamp window) and answers in the
platform's own JSON shapes, error envelopes included. A fake is one method,
``handle(httpx.Request) -> httpx.Response``, so the same object serves two
kinds of test:

* unit tests route an ``httpx`` client to it with respx
  (``router.post(url).mock(side_effect=fake.handle)``);
* the demo, the benchmark and the crash tests serve it over loopback with
  :func:`platforms_app` under uvicorn, so a gateway process talks to it
  over real HTTP (:func:`serving_in_a_thread` for a caller that blocks).

Nothing here talks to a real platform. The demo labels these servers as fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Protocol

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

#: Headers that describe the transfer, not the answer; the ASGI server sets its own.
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "content-encoding"})


class FakePlatform(Protocol):
    def handle(self, request: httpx.Request) -> httpx.Response: ...


def real_clock() -> datetime:
    return datetime.now(UTC)


Clock = Callable[[], datetime]


def _asgi_handler(fake: FakePlatform, mount_path: str, latency: float) -> Callable[..., object]:
    async def app(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        request = Request(scope, receive)
        body = await request.body()
        if latency:
            await asyncio.sleep(latency)
        # the fake sees the path it would see at the platform: without our mount prefix
        path = request.url.path.removeprefix(mount_path) or "/"
        url = httpx.URL(
            scheme="https",
            host="fake.platform",
            path=path,
            query=request.url.query.encode("ascii"),
        )
        outgoing = httpx.Request(
            request.method, url, headers=list(request.headers.items()), content=body
        )
        answer = fake.handle(outgoing)
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
        response = Response(answer.content, status_code=answer.status_code, headers=headers)
        await response(scope, receive, send)

    return app


def platforms_app(fakes: Mapping[str, FakePlatform], *, latency: float = 0.0) -> Starlette:
    """One ASGI app serving each fake under ``/<prefix>``: ``{"top": FakeTop(...)}``
    answers at ``http://HOST:PORT/top/...`` with the path the platform would see.

    ``latency`` (seconds) delays every answer, as a platform across the internet
    would; crash tests use it to land a kill in the middle of a page walk.
    """
    routes = [
        Mount(f"/{prefix}", app=_asgi_handler(fake, f"/{prefix}", latency))  # type: ignore[arg-type]
        for prefix, fake in fakes.items()
    ]
    return Starlette(routes=routes)


@contextlib.contextmanager
def serving_in_a_thread(
    fakes: Mapping[str, FakePlatform], *, latency: float = 0.0
) -> Iterator[str]:
    """Serve ``{prefix: fake}`` on a free loopback port, on a thread of its own (for a
    caller whose gateway is another process); yields the base URL."""
    import threading
    import time

    import uvicorn

    config = uvicorn.Config(
        platforms_app(fakes, latency=latency),
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-platforms", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake platforms could not start listening")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
