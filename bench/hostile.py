"""What a hostile body costs the gateway, next to what a normal push costs.

    .venv/bin/python bench/hostile.py [--rounds 30] [--json FILE]

The gateway runs in this process on its embedded defaults (SQLite outbox,
JSON Lines sink, in a temporary directory) and its ASGI app is driven
directly, without a socket or an HTTP client, so the figures are the
gateway's own work per request:

* **normal push**: a signed WeChat plaintext text push, a new MsgId each time
  (checked: every one answered ``success`` and a record each in the outbox);
* **unsigned hostile**: 1 MiB bodies of the shapes an attack probe sent
  (150,000 sibling elements, deep nesting, entity declarations, binary, deep
  JSON...) with no signature, in every mode the channel has: each must be
  refused (401/403) with nothing stored;
* **signed hostile**: the same bodies correctly signed (a leaked token, or a
  buggy platform): refused as unreadable (400), and quarantined, which costs
  a durable write of the 1 MiB body.

Each figure is the median over ``--rounds`` requests, and the report gives it
as a multiple of the normal push measured in the same run: the ratios, not the
microseconds, are what compare across machines. Before the fix of issue 5 the
150,000-element body took 20.9 s to refuse unsigned (quadratic XML building).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import running_gateway
from service.registry import Registry
from service.senders import WeChatSender, wechat_text
from service.settings import load_settings

TOKEN = "bench-token-5e2"
MIB = 1024 * 1024

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _mib(unit: bytes, head: bytes = b"", tail: bytes = b"") -> bytes:
    room = MIB - 1024 - len(head) - len(tail)
    return head + unit * (room // len(unit)) + tail


HOSTILE = {
    "xml_150k_siblings": _mib(b"<a/>", b"<xml>", b"</xml>"),
    "xml_deep": _mib(b"<a>", b"<xml>"),
    "xml_entities": b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml>' + b"&a;" * 300_000 + b"</xml>",
    "binary": bytes(range(256)) * (MIB // 256 - 8),
    "json_deep": _mib(b"["),
}


async def call(app: ASGIApp, query: dict[str, str], body: bytes) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/wechat",
        "query_string": urlencode(query).encode(),
        "headers": [(b"content-type", b"text/xml"), (b"content-length", str(len(body)).encode())],
    }
    sent = False
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] = message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["body"]


async def timed(
    app: ASGIApp, requests: list[tuple[dict[str, str], bytes]], expect: set[int]
) -> float:
    """Median seconds per request; every answer must have a status in ``expect``."""
    times = []
    for query, body in requests:
        started = time.perf_counter()
        status, answer = await call(app, query, body)
        times.append(time.perf_counter() - started)
        if status not in expect:
            raise SystemExit(f"unexpected answer {status} {answer[:200]!r}")
    return statistics.median(times)


async def run(rounds: int) -> dict[str, Any]:
    registry = Registry.from_entry_points()
    with tempfile.TemporaryDirectory(prefix="hostile-bench-") as tmp:
        settings = load_settings(
            registry, data_dir=Path(tmp), connectors={"wechat": {"token": TOKEN}}
        )
        sender = WeChatSender(TOKEN)
        async with running_gateway(settings, registry) as gw:
            now = int(time.time())
            normal = []
            for n in range(rounds * 10):
                msg_id = 7_000_000_000 + n
                xml = wechat_text(
                    f"oBench{n:06d}Xq9LmNc3vT8kZabcd", f"第{n}号投诉：漏水", msg_id, now
                )
                push = sender.push(xml, timestamp=now, nonce=f"{msg_id}")
                normal.append((push.params, push.body))
            results: dict[str, Any] = {"rounds": rounds}
            await timed(gw.app, normal[:20], {200})  # warm up
            results["normal_push_s"] = await timed(gw.app, normal[20:], {200})
            stored = await gw.outbox.select(since=None)
            if len(stored) != len(normal):
                raise SystemExit(f"{len(normal)} pushes answered, {len(stored)} records stored")

            unsigned: dict[str, float] = {}
            signed: dict[str, float] = {}
            for name, body in HOSTILE.items():
                strangers = [{"timestamp": str(now), "nonce": "1"}, {"encrypt_type": "aes"}]
                unsigned[name] = await timed(
                    gw.app, [(strangers[i % 2], body) for i in range(rounds)], {401, 403}
                )
                pushes = []
                for i in range(rounds):
                    ts, nonce = str(now), f"{name}-{i}"
                    params = sender.push("<xml/>", timestamp=now, nonce=nonce).params
                    pushes.append((params | {"timestamp": ts}, body))
                signed[name] = await timed(gw.app, pushes, {400})
            if await gw.outbox.select(since=None) != stored:
                raise SystemExit("a hostile request added a record")
            quarantined = len(await gw.outbox.quarantined(10_000))
            if quarantined != rounds * len(HOSTILE):
                raise SystemExit(f"{quarantined} quarantined, expected {rounds * len(HOSTILE)}")
            results["unsigned_1mib_s"] = unsigned
            results["signed_1mib_s"] = signed
            return results


def report(results: dict[str, Any]) -> str:
    base = results["normal_push_s"]
    lines = [
        f"normal push: {base * 1e6:,.0f} µs (median of {results['rounds'] * 10 - 20})",
        "",
        "| 1 MiB body | unsigned: 401/403 | × normal | signed: 400, quarantined | × normal |",
        "|---|---|---|---|---|",
    ]
    for name in HOSTILE:
        u, s = results["unsigned_1mib_s"][name], results["signed_1mib_s"][name]
        lines.append(
            f"| {name} | {u * 1e6:,.0f} µs | {u / base:.1f} | {s * 1e3:,.1f} ms | {s / base:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # a warning per quarantined body is not the point
    results = asyncio.run(run(args.rounds))
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
