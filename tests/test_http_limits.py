"""Header size, count and time limits, against a real uvicorn server over loopback.

The client side is raw sockets so each test controls exactly which bytes are
sent and when. Timing bounds are generous: refusals are due within about
``HEADER_TIMEOUT``, and a test only fails if they take several times longer
(or come too early to have been the timer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import uvicorn

from service.http_limits import bounded_http_protocol
from service.settings import HttpSettings
from tests.brokers import free_port

HEADER_TIMEOUT = 0.3
KEEP_ALIVE = 1
DEADLINE = 5.0
LIMITS = HttpSettings(header_timeout_seconds=HEADER_TIMEOUT)

# One server for the module: starting and stopping uvicorn per test would double the run time.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Server:
    port: int
    bodies: list[int] = field(default_factory=list)
    """Body size of every request that reached the app."""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def running_server() -> AsyncIterator[Server]:
    served = Server(free_port())

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        more_body = True
        while more_body:
            message = await receive()
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
        served.bodies.append(len(body))
        answer = json.dumps({"body_bytes": len(body), "headers": len(scope["headers"])}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=served.port,
        http=bounded_http_protocol(LIMITS),
        lifespan="off",
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE,
    )
    uvicorn_server = uvicorn.Server(config)
    task = asyncio.create_task(uvicorn_server.serve())
    while not uvicorn_server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    yield served
    uvicorn_server.should_exit = True
    await task


@pytest.fixture
def server(running_server: Server) -> Server:
    running_server.bodies.clear()
    return running_server


def request(*headers: bytes, body: bytes = b"", end_headers: bool = True) -> bytes:
    lines = [b"POST /webhooks/wechat HTTP/1.1", b"Host: x", b"Content-Length: %d" % len(body)]
    head = b"\r\n".join([*lines, *headers]) + b"\r\n"
    return head + b"\r\n" + body if end_headers else head


def filler_headers(count: int, value_bytes: int = 8) -> list[bytes]:
    return [b"X-Filler-%d: %s" % (i, b"v" * value_bytes) for i in range(count)]


async def send_and_read_to_close(port: int, *chunks: bytes, pause: float = 0.0) -> bytes:
    """Send ``chunks`` (``pause`` apart), then everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            await asyncio.sleep(pause)
        return await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    status_line, *lines = head.rstrip(b"\r\n").split(b"\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, value in (line.split(b":", 1) for line in lines)
    }
    body = await asyncio.wait_for(
        reader.readexactly(int(headers.get(b"content-length", b"0"))), DEADLINE
    )
    return int(status_line.split(b" ")[1]), headers, body


def parse(response: bytes) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, value in (line.split(b":", 1) for line in lines)
    }
    return int(status_line.split(b" ")[1]), headers, json.loads(body)


async def assert_still_serving(server: Server) -> None:
    response = await send_and_read_to_close(server.port, request(b"Connection: close"))
    assert parse(response)[0] == 200


async def test_headers_sent_in_part_are_answered_408_and_closed(server: Server) -> None:
    started = time.monotonic()
    response = await send_and_read_to_close(server.port, request(end_headers=False))
    elapsed = time.monotonic() - started

    status, headers, body = parse(response)
    assert status == 408
    assert headers[b"connection"] == b"close"
    assert body["reason"] == "header_timeout"
    assert HEADER_TIMEOUT * 0.5 < elapsed < DEADLINE * 0.8
    assert server.bodies == []
    await assert_still_serving(server)


async def test_headers_trickled_a_byte_at_a_time_are_cut_off_at_the_timeout(
    server: Server,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in request(*filler_headers(50)):
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.02)

    trickling = asyncio.create_task(trickle())
    started = time.monotonic()
    try:
        response = await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        trickling.cancel()
        writer.close()

    assert parse(response)[0] == 408
    assert time.monotonic() - started < HEADER_TIMEOUT * 4
    assert server.bodies == []


async def test_connection_that_sends_nothing_is_closed_without_an_answer(server: Server) -> None:
    started = time.monotonic()
    response = await send_and_read_to_close(server.port)

    assert response == b""
    assert HEADER_TIMEOUT * 0.5 < time.monotonic() - started < DEADLINE * 0.8
    await assert_still_serving(server)


async def test_idle_keep_alive_connection_is_left_to_uvicorns_keep_alive_timeout(
    server: Server,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request())
        assert (await read_response(reader))[0] == 200
        idle_since = time.monotonic()
        after_response = await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()

    assert after_response == b""
    assert KEEP_ALIVE * 0.8 < time.monotonic() - idle_since < DEADLINE * 0.8


async def test_next_request_on_a_kept_alive_connection_gets_its_own_header_timeout(
    server: Server,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request())
        assert (await read_response(reader))[0] == 200
        await asyncio.sleep(HEADER_TIMEOUT * 2)  # idle longer than the header timeout
        writer.write(request())
        assert (await read_response(reader))[0] == 200
        writer.write(request(end_headers=False))
        started = time.monotonic()
        status, headers, _ = await read_response(reader)
        closed = await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()

    assert (status, headers[b"connection"], closed) == (408, b"close", b"")
    assert HEADER_TIMEOUT * 0.5 < time.monotonic() - started < DEADLINE * 0.8
    assert server.bodies == [0, 0]


@pytest.mark.parametrize(
    ("chunks", "reason"),
    [
        pytest.param(
            [request(b"X-Big: " + b"a" * 200_000)], "headers_too_large", id="one-200KB-header"
        ),
        pytest.param(
            [request(b"X-Big: " + b"a" * 200_000, end_headers=False)],
            "headers_too_large",
            id="200KB-header-never-finished",
        ),
        pytest.param(
            [request(b"X-Big: " + b"a" * 8_000, end_headers=False), b"a" * 9_000],
            "headers_too_large",
            id="header-growing-over-two-writes",
        ),
        pytest.param(
            [request(*filler_headers(17, value_bytes=1_000))],
            "headers_too_large",
            id="17KB-of-headers",
        ),
        pytest.param(
            [request(*filler_headers(10_000))], "too_many_headers", id="10000-small-headers"
        ),
        pytest.param(
            [request(*filler_headers(LIMITS.max_headers - 1))],
            "too_many_headers",
            id="one-header-too-many",
        ),
        pytest.param(
            [request(*filler_headers(120)) + b"\x00 not HTTP\r\n\r\n"],
            "too_many_headers",
            id="junk-after-refused-headers",
        ),
    ],
)
async def test_oversized_headers_are_answered_431_and_closed(
    server: Server, chunks: Sequence[bytes], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="service.http_limits"):
        response = await send_and_read_to_close(server.port, *chunks, pause=0.05)

    status, headers, body = parse(response)
    assert status == 431
    assert headers[b"connection"] == b"close"
    assert body["reason"] == reason
    assert server.bodies == []
    refusals = [r.getMessage() for r in caplog.records if r.name == "service.http_limits"]
    assert len(refusals) == 1
    assert "127.0.0.1:" in refusals[0]
    assert "aaaa" not in refusals[0] and "X-Filler" not in refusals[0]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    await assert_still_serving(server)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(filler_headers(LIMITS.max_headers - 3), id="exactly-max-headers"),
        pytest.param(filler_headers(14, value_bytes=1_000), id="14KB-of-headers"),
    ],
)
async def test_headers_within_the_limits_are_served(server: Server, headers: list[bytes]) -> None:
    response = await send_and_read_to_close(server.port, request(b"Connection: close", *headers))

    status, _, body = parse(response)
    assert status == 200
    assert body["headers"] == len(headers) + 3


@pytest.mark.parametrize("separate_writes", [False, True], ids=["same-write", "later-writes"])
async def test_body_is_not_counted_as_header_bytes(server: Server, separate_writes: bool) -> None:
    whole = request(b"Connection: close", body=b"b" * 100_000)
    head_end = whole.index(b"\r\n\r\n") + 4
    chunks = [
        whole[:head_end],
        *(whole[i : i + 20_000] for i in range(head_end, len(whole), 20_000)),
    ]
    response = await send_and_read_to_close(
        server.port, *(chunks if separate_writes else [whole]), pause=0.01
    )

    status, _, body = parse(response)
    assert (status, body["body_bytes"]) == (200, 100_000)


async def test_two_requests_on_one_keep_alive_connection_both_served(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        # Together the two exceed max_headers: the count must start again per request.
        writer.write(request(*filler_headers(60), body=b"first"))
        first = await read_response(reader)
        writer.write(request(*filler_headers(60), body=b"second!"))
        second = await read_response(reader)
    finally:
        writer.close()

    assert (first[0], second[0]) == (200, 200)
    assert server.bodies == [5, 7]


async def test_pipelined_request_after_a_large_body_is_served(server: Server) -> None:
    second = request(b"Connection: close", *filler_headers(20), body=b"second")
    split = len(second) // 2
    response = await send_and_read_to_close(
        server.port,
        request(body=b"b" * 100_000) + second[:split],
        second[split:],
        pause=0.1,
    )

    assert response.count(b"HTTP/1.1 200 OK") == 2
    assert server.bodies == [100_000, 6]
