"""The load generator: raw asyncio streams under uvloop, writing pre-built request bytes.

    python -m bench._load --mode throughput|latency --port P --count N --first-id N
                          [--connectors wechat,store,...] [--connections C] [--rate R]
                          [--wechat-messages numbered|customers]

Run as a child process (:mod:`bench._child`), so its CPU is not the
gateway's. httpx would be the bottleneck here, hence streams and requests
built before the clock starts (:func:`bench._traffic.build`).

* ``throughput``, closed loop: each of ``--connections`` keep-alive
  connections sends its next request when the last one is answered; the
  time runs from the first request until ``gateway_records_published_total``
  shows every request answered as accepted published by the sink.
* ``latency``, open loop: request i is due at t0 + i/rate and goes out on the
  next free connection of a pool whether or not earlier ones were answered;
  latency is measured from the *scheduled* send time, so a stalled server
  cannot hide its queueing (no coordinated omission).

Every loop is bounded in count and time (``--timeout``); loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import socket
import time
from collections.abc import Sequence
from typing import Any

from bench import _traffic
from bench._child import emit, run_child, run_loop
from bench._cpu import CpuMeter, self_cpu
from bench._gateway import HOST, GatewayProcess, scrape

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_IO_ERRORS = (OSError, asyncio.IncompleteReadError, ValueError)


async def _roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = _CONTENT_LENGTH.search(head)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return status, body


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class Tally:
    """Answers by status, and per connector how many were 200 with its "accepted" body."""

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.bad_bodies = 0
        self.errors: dict[str, int] = {}
        self.ok_by_connector: dict[str, int] = {}

    def status(self, connector: str, status: int, body: bytes) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status != 200:
            return
        if _traffic.accepted(connector, body):
            self.ok_by_connector[connector] = self.ok_by_connector.get(connector, 0) + 1
        else:
            self.bad_bodies += 1

    def error(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0) - self.bad_bodies

    def as_dict(self) -> dict[str, Any]:
        return {
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "bad_bodies": self.bad_bodies,
            "errors": self.errors,
            "ok_by_connector": dict(sorted(self.ok_by_connector.items())),
        }


async def throughput(args: argparse.Namespace, requests: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Closed loop over keep-alive connections; see the module docstring."""
    tally = Tally()
    queue = iter(requests)  # shared; next() never awaits, so no lock is needed

    async def worker() -> None:
        reconnects = 0
        while reconnects <= 3:
            try:
                reader, writer = await _connect(args.port)
            except (OSError, TimeoutError) as exc:
                tally.error(exc)
                reconnects += 1
                continue
            try:
                for connector, request in queue:
                    try:
                        status, body = await _roundtrip(reader, writer, request)
                    except _IO_ERRORS as exc:
                        tally.error(exc)
                        break
                    tally.status(connector, status, body)
                else:
                    return
            finally:
                writer.close()
            reconnects += 1

    published0 = (await scrape(args.port)).published_total
    meter = CpuMeter({"gateway": args.gateway_pid, "broker": args.broker_pid})
    meter.start()
    self0 = self_cpu()
    t0 = time.perf_counter()
    workers = [asyncio.create_task(worker()) for _ in range(min(args.connections, len(requests)))]
    _, pending = await asyncio.wait(workers, timeout=args.timeout)
    for task in pending:
        task.cancel()
    http_done = time.perf_counter() - t0
    loadgen_cpu = self_cpu() - self0

    target = published0 + tally.ok
    metrics = None
    deadline = time.monotonic() + args.timeout
    polls = 0
    while time.monotonic() < deadline and polls < 100_000:
        polls += 1
        metrics = await scrape(args.port)
        if metrics.published_total >= target:
            break
        await asyncio.sleep(0.02)
    all_published = time.perf_counter() - t0
    cpu = meter.stop(all_published)
    published = metrics.published_total if metrics else published0

    return {
        "sent": len(requests),
        "ok": tally.ok,
        **tally.as_dict(),
        "timed_out_workers": len(pending),
        "http_seconds": http_done,
        "http_rate": tally.ok / http_done,
        "published": published - published0,
        "publish_failures": metrics.publish_failures if metrics else 0.0,
        "complete": published >= target and tally.ok == len(requests),
        "seconds": all_published,
        "rate": (published - published0) / all_published,
        "gateway_cpu": cpu["gateway_cpu"],
        "broker_cpu": cpu["broker_cpu"],
        "loadgen_cpu_http_phase": loadgen_cpu / http_done,
        "machine_busy": cpu["machine_busy"],  # share of all CPUs, not of one
        "machine_steal": cpu["machine_steal"],
    }


async def latency(args: argparse.Namespace, requests: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Open loop at ``--rate``; see the module docstring."""
    tally = Tally()
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    connections = []
    for _ in range(args.connections):
        conn = await _connect(args.port)
        connections.append(conn)
        pool.put_nowait(conn)
    from_schedule: list[float] = []
    from_send: list[float] = []
    late_sends = 0

    async def one(connector: str, request: bytes, due: float) -> None:
        nonlocal late_sends
        reader, writer = await pool.get()
        sent = time.perf_counter()
        if sent - due > 0.005:
            late_sends += 1
        try:
            status, body = await _roundtrip(reader, writer, request)
        except _IO_ERRORS as exc:
            tally.error(exc)
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                pool.put_nowait(await _connect(args.port))
            return
        done = time.perf_counter()
        pool.put_nowait((reader, writer))
        tally.status(connector, status, body)
        from_schedule.append(done - due)
        from_send.append(done - sent)

    tasks = []
    t0 = time.perf_counter() + 0.05
    interval = 1.0 / args.rate
    for i, (connector, request) in enumerate(requests):
        due = t0 + i * interval
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(connector, request, due)))
    sending = time.perf_counter() - t0
    _, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for task in pending:
        task.cancel()
    finished = time.perf_counter() - t0
    for _, writer in connections:
        writer.close()
    a, b = sorted(from_schedule), sorted(from_send)
    return {
        "sent": len(requests),
        "ok": tally.ok,
        **tally.as_dict(),
        "unanswered": len(pending),
        "rate_target": args.rate,
        "rate_offered": len(requests) / sending if sending > 0 else None,
        "seconds": finished,
        "late_sends": late_sends,
        "p50_ms": percentile(a, 0.50) * 1000,
        "p90_ms": percentile(a, 0.90) * 1000,
        "p99_ms": percentile(a, 0.99) * 1000,
        "max_ms": (a[-1] if a else float("nan")) * 1000,
        "service_p50_ms": percentile(b, 0.50) * 1000,
        "service_p99_ms": percentile(b, 0.99) * 1000,
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    requests = _traffic.build(
        args.port, args.connectors.split(","), args.first_id, args.count, args.wechat_messages
    )
    if args.mode == "throughput":
        return await throughput(args, requests)
    return await latency(args, requests)


def argv(mode: str, **options: Any) -> list[str]:
    """The command line of a :mod:`bench._load` child: ``--mode`` and ``--<option> value``."""
    out = ["--mode", mode]
    for key, value in options.items():
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def run(
    gateway: GatewayProcess,
    broker_pid: int,
    mode: str,
    count: int,
    first_id: int,
    connectors: Sequence[str] = ("wechat",),
    **extra: Any,
) -> dict[str, Any]:
    """Run one load child against ``gateway`` (from the orchestrator); its result dict."""
    gateway.check_running()
    command = argv(
        mode,
        port=gateway.port,
        count=count,
        first_id=first_id,
        connectors=",".join(connectors),
        gateway_pid=gateway.pid,
        broker_pid=broker_pid,
        **extra,
    )
    return run_child("_load", command, timeout=float(extra.get("timeout", 120)) * 2 + 60)


def main() -> None:
    parser = argparse.ArgumentParser(description="load generator child (see bench/_load.py)")
    parser.add_argument("--mode", choices=("throughput", "latency"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first-id", type=int, required=True)
    parser.add_argument("--connectors", default="wechat", help="comma-separated, cycled through")
    parser.add_argument(
        "--wechat-messages",
        choices=_traffic.WECHAT_MESSAGES,
        default="numbered",
        help="how WeChat texts are written (bench/_traffic.py)",
    )
    parser.add_argument("--connections", type=int, default=48)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--gateway-pid", type=int, default=0)
    parser.add_argument("--broker-pid", type=int, default=0)
    emit(run_loop(_main(parser.parse_args())))


if __name__ == "__main__":
    main()
