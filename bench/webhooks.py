"""Scenario ``wechat``: (a) raw producer, (b) WeChat end to end, (c) webhook latency.

(a) **raw producer**: a bare aiokafka producer (:mod:`bench._producer`);
    messages/s.
(b) **gateway end to end**: ``complaint-gateway serve`` as a real server
    process; a separate load process sends signed WeChat text pushes (distinct
    MsgIds) over HTTP/1.1 keep-alive connections and takes the time from its
    first request to the moment ``gateway_records_published_total`` on
    ``/metrics`` shows every complaint acknowledged by Kafka. complaints/s.
    (The HTTP-side accept rate, all ``200 success`` answers, is reported too.)
(c) **webhook latency**: the same gateway, open-loop at a fixed rate; p50/p99
    of request → 200 response, measured from the *scheduled* send time.

(a) and (b) run ``--repeat`` rounds and report the median round. Also
reported: the gateway's CPU time per complaint, and a check that the topic
holds exactly one record per complaint answered 200. The ratio (b)/(a) is the
figure that compares across machines and over time.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import _load
from bench._broker import GATEWAY_TOPIC, RAW_TOPIC, Broker
from bench._child import run_child
from bench._gateway import HOST, GatewayProcess, stop_process
from bench._report import Row, fmt, median_run, pct, print_problems, print_table, spread, step
from bench._traffic import connector_settings

TARGET = 1500.0  # complaints/s, (b)
#: The first MsgId (17 digits; ids count up from it, one per message).
FIRST_MSG_ID = 10_000_000_000_000_000


def run(args: argparse.Namespace, broker: Broker, work: Path) -> tuple[dict[str, Any], list[str]]:
    """Measure (a), (b) and (c); print their table. Returns (figures, problems)."""
    broker.create_topics(RAW_TOPIC, GATEWAY_TOPIC)
    results: dict[str, Any] = {}
    step(f"(a) raw aiokafka producer: {args.messages:,} x {args.value_bytes} B")
    results["raw"] = raw = run_child(
        "_producer",
        [
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
            str(broker.pid),
            "--timeout",
            "300",
            "--rounds",
            str(args.repeat),
        ],
        timeout=120 + 300 * args.repeat,
    )

    gateway = GatewayProcess(
        work,
        "wechat",
        bootstrap=broker.bootstrap,
        topic=GATEWAY_TOPIC,
        connectors=connector_settings(["wechat"]),
    )
    try:
        gateway.start()
        step(f"gateway pid {gateway.pid} on {HOST}:{gateway.port}")
        next_id = FIRST_MSG_ID

        def load(mode: str, count: int, **extra: Any) -> dict[str, Any]:
            nonlocal next_id
            first, next_id = next_id, next_id + count
            return _load.run(gateway, broker.pid, mode, count, first, **extra)

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
        results["gateway"] = e2e = {**median_run(runs), "rates": [r["rate"] for r in runs]}
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
        metrics = gateway.wait_published(expected, 30)
        results["published_total"] = metrics.published_total
        results["topic"] = topic = broker.read_topic(GATEWAY_TOPIC)
        topic["expected"] = expected
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
        gateway.stop()

    ratio = e2e["rate"] / raw["rate"]
    results["ratio"] = ratio
    e2e["gateway_cpu_us_per_complaint"] = cpu_us_per_record(e2e)
    print_table(_rows(raw, e2e, lat, ratio))
    problems = _problems(e2e, lat, topic)
    print_problems(problems)
    return results, problems


def cpu_us_per_record(run: dict[str, Any]) -> float | None:
    """The gateway's CPU time per published record, from a throughput run."""
    if not run["gateway_cpu"] or not run["published"]:
        return None
    return float(run["gateway_cpu"] * run["seconds"] / run["published"] * 1e6)


def _rows(raw: dict[str, Any], e2e: dict[str, Any], lat: dict[str, Any], ratio: float) -> list[Row]:
    return [
        (
            "(a) raw aiokafka producer, 500 B JSON, acks=all",
            f"{fmt(raw['rate'])} msg/s",
            f"{spread(raw['rates'])}producer CPU {pct(raw['producer_cpu'])}, "
            f"broker CPU {pct(raw['broker_cpu'])}",
        ),
        (
            "(b) gateway end to end, HTTP in -> Kafka ack",
            f"{fmt(e2e['rate'])} complaints/s",
            f"{spread(e2e['rates'])}{e2e['published']:,.0f} in {e2e['seconds']:.2f} s",
        ),
        (
            "    gateway process CPU",
            f"{fmt(e2e['gateway_cpu_us_per_complaint'])} us/complaint",
            f"gateway {pct(e2e['gateway_cpu'])} of one CPU, broker {pct(e2e['broker_cpu'])}; "
            f"machine {pct(e2e['machine_busy'])} busy, steal {pct(e2e['machine_steal'])}",
        ),
        (
            "    HTTP accept rate (200 success)",
            f"{fmt(e2e['http_rate'])} req/s",
            f"{e2e['ok']:,}/{e2e['sent']:,} ok in {e2e['http_seconds']:.2f} s; "
            f"loadgen CPU {pct(e2e['loadgen_cpu_http_phase'])}",
        ),
        (
            f"(c) webhook latency, {lat['rate_target']:g} req/s open loop",
            f"p50 {lat['p50_ms']:.1f} ms  p99 {lat['p99_ms']:.1f} ms",
            f"max {lat['max_ms']:.1f} ms; {lat['ok']:,}/{lat['sent']:,} ok; "
            f"offered {fmt(lat['rate_offered'])} req/s",
        ),
        ("ratio (b)/(a)", f"{ratio:.3f}", ""),
        (
            f"target (b) >= {TARGET:,.0f} complaints/s",
            "met" if e2e["rate"] >= TARGET else "NOT met",
            "",
        ),
    ]


def _problems(e2e: dict[str, Any], lat: dict[str, Any], topic: dict[str, Any]) -> list[str]:
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
    if not topic["records"] == topic["distinct_record_ids"] == topic["expected"]:
        problems.append(
            f"{GATEWAY_TOPIC} holds {topic['records']} records with "
            f"{topic['distinct_record_ids']} distinct record ids; "
            f"{topic['expected']} complaints were answered 200"
        )
    if e2e.get("publish_failures"):
        problems.append(f"gateway reported {e2e['publish_failures']:.0f} publish failures")
    return problems


def _profile(
    args: argparse.Namespace, work: Path, pid: int, run: Callable[[int], dict[str, Any]]
) -> dict[str, Any]:
    """An extra (b) pass with py-spy attached to the gateway (not used for the figures)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return {"error": "py-spy not installed: .venv/bin/pip install py-spy"}
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
                fmt_,
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
        for fmt_, path, extra in outputs.values()
    ]
    try:
        time.sleep(1.5)
        result = run(args.complaints)
    finally:
        for spy in spies:
            stop_process(spy, signal.SIGINT)
    return {"files": {k: str(v) for k, v in files.items()}, "run": result}
