"""Scenario ``mixed``: every webhook channel at once, end to end, next to WeChat alone.

One gateway process serves the webhook connectors that are registered among
WeChat (plaintext pushes), store submissions, FreeSWITCH ``mod_json_cdr``
posts, TCCC CDR pushes and raw mails POSTed to ``/webhooks/email_mime``
(:data:`bench._traffic.WEBHOOK_CONNECTORS`; one that is not registered is
left out of the mix and named in the report). The load generator sends
``--complaints`` requests per round over ``--connections`` keep-alive
connections, cycling through the connectors (equal shares, interleaved), and
times, as (b) does, from the first request until
``gateway_records_published_total`` shows every accepted message
acknowledged by Kafka.

The baseline is measured on the same gateway in the same run: WeChat-only
rounds of the same size alternate with the mixed rounds (W M W M ...), so a
drift of the shared VM's speed touches both alike. Then, to say what each
channel costs, ``--repeat`` times over: for each other connector a quarter
round of WeChat only and a quarter round of that connector alone, and the
median of the connector's rate and CPU over WeChat's in those pairs.

Reported: the medians of the WeChat-only and the mixed rounds, mixed over
WeChat-only, the gateway's CPU per complaint, and per connector what was
sent, answered as accepted, counted by ``gateway_records_accepted_total`` and
found in the topic (by the record's ``source.connector``): these must all
agree, with one distinct record id per message.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import _load, _traffic
from bench._broker import Broker
from bench._gateway import HOST, GatewayProcess, registered_connectors
from bench._report import (
    Row,
    fmt,
    median_run,
    pct,
    print_columns,
    print_problems,
    print_table,
    spread,
    step,
)
from bench.webhooks import FIRST_MSG_ID, cpu_us_per_record

TOPIC = "bench.mixed"


class _Loads:
    """Throughput rounds against one gateway, with unique ids and per-connector tallies."""

    def __init__(self, gateway: GatewayProcess, broker_pid: int, connections: int) -> None:
        self.gateway = gateway
        self.broker_pid = broker_pid
        self.connections = connections
        self.next_id = FIRST_MSG_ID
        self.sent: dict[str, int] = {}
        self.ok: dict[str, int] = {}
        self.runs: list[dict[str, Any]] = []

    def run(self, mix: Sequence[str], count: int, **extra: Any) -> dict[str, Any]:
        first, self.next_id = self.next_id, self.next_id + count
        extra.setdefault("connections", self.connections)
        extra.setdefault("timeout", 300)
        result = _load.run(self.gateway, self.broker_pid, "throughput", count, first, mix, **extra)
        result["gateway_cpu_us_per_complaint"] = cpu_us_per_record(result)
        for i in range(count):
            self.sent[mix[i % len(mix)]] = self.sent.get(mix[i % len(mix)], 0) + 1
        for connector, n in result["ok_by_connector"].items():
            self.ok[connector] = self.ok.get(connector, 0) + n
        self.runs.append(result)
        return result


def run(args: argparse.Namespace, broker: Broker, work: Path) -> tuple[dict[str, Any], list[str]]:
    """WeChat-only and mixed rounds, then each connector's cost; print the tables."""
    registered = registered_connectors()
    connectors = [c for c in _traffic.WEBHOOK_CONNECTORS if c in registered]
    missing = [c for c in _traffic.WEBHOOK_CONNECTORS if c not in registered]
    if missing:
        step(f"mixed: not registered, left out of the mix: {', '.join(missing)}")
    broker.create_topics(TOPIC)
    gateway = GatewayProcess(
        work,
        "mixed",
        bootstrap=broker.bootstrap,
        topic=TOPIC,
        connectors=_traffic.connector_settings(connectors),
    )
    loads = _Loads(gateway, broker.pid, args.connections)
    try:
        gateway.start()
        step(f"mixed: gateway pid {gateway.pid} on {HOST}:{gateway.port}: {', '.join(connectors)}")
        warm = loads.run(connectors, args.warmup, connections=16, timeout=60)
        step(
            f"mixed warm-up: {warm['ok']}/{warm['sent']} accepted, "
            f"{warm['published']:.0f} published"
        )
        if not warm["complete"]:
            raise RuntimeError(f"mixed warm-up did not complete: {warm}")

        step(
            f"mixed: {args.repeat} x (WeChat only, mix) rounds of {args.complaints:,} "
            f"over {args.connections} connections"
        )
        wechat_runs, mixed_runs = [], []
        for round_ in range(args.repeat):
            wechat_runs.append(loads.run(["wechat"], args.complaints))
            mixed_runs.append(loads.run(connectors, args.complaints))
            step(
                f"    round {round_ + 1}/{args.repeat}: WeChat only "
                f"{wechat_runs[-1]['rate']:,.0f}, mixed {mixed_runs[-1]['rate']:,.0f} complaints/s"
            )

        quarter = max(1, args.complaints // 4)
        others = [c for c in connectors if c != "wechat"]
        step(f"mixed: {args.repeat} x (WeChat only, one connector) rounds of {quarter:,} for each")
        pairs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {c: [] for c in others}
        for _ in range(args.repeat):
            for c in others:
                pairs[c].append((loads.run(["wechat"], quarter), loads.run([c], quarter)))

        expected = sum(loads.ok.values())
        metrics = gateway.wait_published(expected, 30)
        topic = broker.read_topic(TOPIC, by_connector=True)
        topic["expected"] = expected
        step(
            f"{TOPIC}: {topic['records']:,} records, {topic['distinct_record_ids']:,} distinct "
            f"record ids, {expected:,} expected; by connector {topic['connectors']}"
        )
    finally:
        gateway.stop()

    wechat = {**median_run(wechat_runs), "rates": [r["rate"] for r in wechat_runs]}
    mix = {**median_run(mixed_runs), "rates": [r["rate"] for r in mixed_runs]}
    cost = {c: _cost(p) for c, p in pairs.items()}
    cost["wechat"] = {
        "rate": wechat["rate"],
        "rate_vs_wechat": 1.0,
        "gateway_cpu_us": wechat["gateway_cpu_us_per_complaint"],
        "cpu_vs_wechat": 1.0,
    }
    per_connector = {
        c: {
            "request_bytes": _request_bytes(c),
            **cost[c],
            "mixed_rounds_accepted": sum(r["ok_by_connector"].get(c, 0) for r in mixed_runs),
            "sent": loads.sent.get(c, 0),
            "answered_accepted": loads.ok.get(c, 0),
            "gateway_accepted": metrics.accepted.get(c, 0.0),
            "in_topic": topic["connectors"].get(c, 0),
        }
        for c in connectors
    }
    results: dict[str, Any] = {
        "connectors": connectors,
        "not_registered": missing,
        "wechat_only": wechat,
        "mixed": mix,
        "ratio": mix["rate"] / wechat["rate"],
        "per_connector": per_connector,
        "topic": topic,
        "refused": metrics.refused,
        "quarantined": metrics.quarantined,
        "ignored": metrics.ignored,
        "duplicates": metrics.duplicates,
        "runs": loads.runs,
    }
    print_table(_rows(wechat, mix, results["ratio"], connectors, missing), title=_title(connectors))
    _print_connectors(per_connector)
    problems = _problems(results, per_connector, topic)
    print_problems(problems)
    return results, problems


def _cost(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """A connector's rate and CPU, and their ratios to the WeChat round just before each."""

    def cpu(r: dict[str, Any]) -> float:
        return float(r["gateway_cpu_us_per_complaint"] or "nan")

    return {
        "rate": statistics.median(alone["rate"] for _, alone in pairs),
        "rate_vs_wechat": statistics.median(a["rate"] / w["rate"] for w, a in pairs),
        "gateway_cpu_us": statistics.median(cpu(alone) for _, alone in pairs),
        "cpu_vs_wechat": statistics.median(cpu(a) / cpu(w) for w, a in pairs),
    }


def _request_bytes(connector: str, sample: int = 64) -> float:
    """Mean size of this connector's requests as sent (head and body)."""
    requests = _traffic.build(8080, [connector], FIRST_MSG_ID, sample)
    return sum(len(r) for _, r in requests) / sample


def _title(connectors: list[str]) -> str:
    return f"mixed webhook load ({', '.join(connectors)}; equal shares, interleaved)"


def _rows(
    wechat: dict[str, Any],
    mix: dict[str, Any],
    ratio: float,
    connectors: list[str],
    missing: list[str],
) -> list[Row]:
    def e2e(name: str, r: dict[str, Any]) -> list[Row]:
        return [
            (
                f"{name}, HTTP in -> Kafka ack",
                f"{fmt(r['rate'])} complaints/s",
                f"{spread(r['rates'])}{r['published']:,.0f} in {r['seconds']:.2f} s; "
                f"HTTP {fmt(r['http_rate'])} req/s",
            ),
            (
                "    gateway process CPU",
                f"{fmt(r['gateway_cpu_us_per_complaint'])} us/complaint",
                f"gateway {pct(r['gateway_cpu'])} of one CPU, broker {pct(r['broker_cpu'])}; "
                f"machine {pct(r['machine_busy'])} busy",
            ),
        ]

    rows = e2e("WeChat only (baseline)", wechat) + e2e(f"mixed, {len(connectors)} connectors", mix)
    rows.append(("ratio mixed / WeChat only", f"{ratio:.2f}", ""))
    if missing:
        rows.append(("not in the mix (not registered)", ", ".join(missing), "TODO once registered"))
    return rows


def _print_connectors(per_connector: dict[str, dict[str, Any]]) -> None:
    print_columns(
        (
            "connector",
            "request B",
            "alone c/s",
            "x WeChat",
            "us/c",
            "CPU x WeChat",
            "in mixed rounds",
            "sent",
            "answered",
            "accepted",
            "in topic",
        ),
        [
            (
                c,
                fmt(v["request_bytes"]),
                fmt(v["rate"]),
                fmt(v["rate_vs_wechat"], ".2f"),
                fmt(v["gateway_cpu_us"]),
                fmt(v["cpu_vs_wechat"], ".2f"),
                fmt(v["mixed_rounds_accepted"]),
                fmt(v["sent"]),
                fmt(v["answered_accepted"]),
                fmt(v["gateway_accepted"]),
                fmt(v["in_topic"]),
            )
            for c, v in per_connector.items()
        ],
    )
    print(
        "alone: that connector only, complaints/s and gateway CPU us/complaint, and each over\n"
        "the WeChat-only round just before it (medians of the pairs; WeChat: the baseline);\n"
        "sent / answered (200 with the accepted answer) / accepted "
        "(gateway_records_accepted_total) / in topic: whole scenario, warm-up included"
    )


def _problems(
    results: dict[str, Any], per_connector: dict[str, dict[str, Any]], topic: dict[str, Any]
) -> list[str]:
    problems = []
    for r in results["runs"]:
        if not r["complete"]:
            problems.append(
                f"mixed: a round did not complete: {r['ok']}/{r['sent']} accepted, "
                f"{r['published']:.0f} published, statuses {r['statuses']}, "
                f"bad bodies {r['bad_bodies']}, errors {r['errors']}"
            )
        if r.get("publish_failures"):
            problems.append(f"mixed: {r['publish_failures']:.0f} publish failures")
    for c, v in per_connector.items():
        if not v["sent"] == v["answered_accepted"] == v["gateway_accepted"] == v["in_topic"]:
            problems.append(
                f"mixed: {c}: {v['sent']} sent, {v['answered_accepted']} answered as accepted, "
                f"{v['gateway_accepted']:.0f} accepted by the gateway, {v['in_topic']} in {TOPIC}"
            )
    if not topic["records"] == topic["distinct_record_ids"] == topic["expected"]:
        problems.append(
            f"{TOPIC} holds {topic['records']} records with {topic['distinct_record_ids']} "
            f"distinct record ids; {topic['expected']} messages were accepted"
        )
    for name in ("refused", "quarantined", "ignored", "duplicates"):
        if results[name]:
            problems.append(f"mixed: gateway counted {name}: {results[name]}")
    return problems
