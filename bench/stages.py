"""Scenario ``stages``: what the triage and linking stages cost WeChat intake.

Three gateway processes on the run's broker, each with a topic of its own:
``on`` (triage and linking, the defaults), ``triage`` (linking off) and
``off`` (both off: ``GATEWAY_TRIAGE__ENABLED=false``,
``GATEWAY_LINKING__ENABLED=false``). Each takes the same WeChat load, written
as customers write (:mod:`bench._customers`: about one OpenID per four
messages, three dozen texts about appliances, order numbers and phone
numbers of each customer's own), so linking has real work: repeats to find,
near misses to refuse.

1. **Intake**: WeChat throughput rounds as in ``wechat`` (b), alternating
   between the gateways (on, triage, off; off, triage, on; ...), ``--repeat``
   of each, every gateway idle again before the next one starts: medians of
   complaints/s, the ratios on/off, triage/off and on/triage (what linking
   adds to triage), and the gateway's CPU per complaint.
2. **What came out**: each topic holds one record per message accepted, with
   distinct record ids; on ``on``, how many records carry
   ``dedupe.duplicate_of`` (and for which reasons) and how many
   ``dedupe.batch`` (several customers reporting one fault: with three dozen
   texts among thousands of customers, many do); on ``triage`` and ``off``
   none may. A stage that fails keeps the record and logs the exception: a
   gateway log holding a traceback is reported with it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from bench import _load, _providers
from bench._broker import Broker
from bench._cpu import process_cpu_seconds
from bench._gateway import GatewayProcess
from bench._report import Row, fmt, median_run, pct, print_problems, print_table, spread, step
from bench._traffic import connector_settings
from bench.notifications import _settle
from bench.webhooks import FIRST_MSG_ID, cpu_us_per_record

#: The gateways, in the order of the first round, and what each turns off.
STAGES: dict[str, dict[str, str]] = {
    "on": {},
    "triage": {"GATEWAY_LINKING__ENABLED": "false"},
    "off": {"GATEWAY_TRIAGE__ENABLED": "false", "GATEWAY_LINKING__ENABLED": "false"},
}
TITLES = {
    "on": "triage and linking on",
    "triage": "triage on, linking off",
    "off": "triage and linking off",
}
TOPICS = {name: f"bench.stages.{name}" for name in STAGES}
_DIGITS = re.compile(r"\d+")
#: Lines of the first traceback in a gateway's log that the report quotes.
_TRACEBACK_LINES = 60


def run(args: argparse.Namespace, broker: Broker, work: Path) -> tuple[dict[str, Any], list[str]]:
    """Alternating intake rounds on the three gateways, then their topics; print the table."""
    broker.create_topics(*TOPICS.values())
    gateways = {
        name: GatewayProcess(
            work,
            f"stages-{name}",
            bootstrap=broker.bootstrap,
            topic=TOPICS[name],
            connectors=connector_settings(["wechat"]),
            env=env,
        )
        for name, env in STAGES.items()
    }
    accepted = dict.fromkeys(gateways, 0)
    results: dict[str, Any] = {}
    problems: list[str] = []
    try:
        for gateway in gateways.values():
            gateway.start()
        step("stages: " + ", ".join(f"{name} pid {g.pid}" for name, g in gateways.items()))
        results["intake"] = _intake(args, gateways, broker.pid, accepted, problems)
        for name in gateways:
            results[f"{name}_topic"] = _records(broker, TOPICS[name], accepted[name], problems)
    finally:
        for gateway in gateways.values():
            gateway.stop()
    results["accepted"] = accepted
    for name, gateway in gateways.items():
        problems += _log_problems(name, gateway.log_path)
    _check_links(results, problems)
    _print(results)
    print_problems(problems)
    return results, problems


def _intake(
    args: argparse.Namespace,
    gateways: dict[str, GatewayProcess],
    broker_pid: int,
    accepted: dict[str, int],
    problems: list[str],
) -> dict[str, Any]:
    """Alternating WeChat rounds on each gateway, the same messages to each; medians."""
    next_id = dict.fromkeys(gateways, FIRST_MSG_ID)

    def load(name: str, count: int, connections: int) -> dict[str, Any]:
        gateway = gateways[name]
        first, next_id[name] = next_id[name], next_id[name] + count
        cpu0 = process_cpu_seconds(gateway.pid) or 0.0
        r = _load.run(
            gateway,
            broker_pid,
            "throughput",
            count,
            first,
            connections=connections,
            timeout=300,
            wechat_messages="customers",
        )
        r["settle_seconds"] = _settle(gateway.pid)
        r["gateway_cpu_us_per_complaint"] = cpu_us_per_record(r)
        cpu = (process_cpu_seconds(gateway.pid) or 0.0) - cpu0
        r["all_in_cpu_us_per_complaint"] = cpu / max(1.0, r["published"]) * 1e6
        accepted[name] += r["ok"]
        if not r["complete"] or r.get("publish_failures"):
            problems.append(
                f"{name}: a WeChat round did not complete: {r['ok']}/{r['sent']} "
                f"accepted, {r['published']:.0f} published, {r['statuses']}, "
                f"errors {r['errors']}"
            )
        return r

    for name in gateways:
        load(name, args.warmup, 16)
    names = list(gateways)
    step(
        f"stages: {args.repeat} x ({', '.join(names)}) WeChat rounds of {args.complaints:,}, "
        "customers' own words"
    )
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in gateways}
    for round_ in range(args.repeat):
        for name in names if round_ % 2 == 0 else reversed(names):
            runs[name].append(load(name, args.complaints, args.connections))
        step(
            f"    round {round_ + 1}/{args.repeat}: "
            + ", ".join(f"{name} {runs[name][-1]['rate']:,.0f}" for name in names)
            + " complaints/s"
        )
    out: dict[str, Any] = {"runs": runs}
    for name, rounds in runs.items():
        out[name] = {
            **median_run(rounds),
            "rates": [r["rate"] for r in rounds],
            "all_in_us": statistics.median(r["all_in_cpu_us_per_complaint"] for r in rounds),
        }
    out["ratio"] = out["on"]["rate"] / out["off"]["rate"]
    out["ratio_triage"] = out["triage"]["rate"] / out["off"]["rate"]
    out["ratio_linking"] = out["on"]["rate"] / out["triage"]["rate"]
    return out


def _records(broker: Broker, topic: str, expected: int, problems: list[str]) -> dict[str, Any]:
    """Read ``topic``: records, distinct ids and customers, and what the stages wrote."""
    ids: set[str] = set()
    customers: set[str] = set()
    reasons: Counter[str] = Counter()
    counts = Counter[str]()

    def keep(headers: dict[str, bytes], value: bytes) -> None:
        record = json.loads(value)
        dedupe = record.get("dedupe") or {}
        counts["records"] += 1
        counts["linked"] += dedupe.get("duplicate_of") is not None
        counts["batch"] += dedupe.get("batch") is not None
        counts["triaged"] += record.get("triage") is not None
        ids.add(headers.get("record_id", b"").decode())
        customers.add(record["customer"]["id"])
        if dedupe.get("reason"):
            reasons[_DIGITS.sub("N", dedupe["reason"])] += 1

    def done() -> bool:
        return counts["records"] >= expected

    _providers.read_topic(broker.bootstrap, topic, broker.partitions, keep, done)
    out = {
        "records": counts["records"],
        "distinct_record_ids": len(ids),
        "expected": expected,
        "customers": len(customers),
        "linked": counts["linked"],
        "batch": counts["batch"],
        "triaged": counts["triaged"],
        "reasons": dict(reasons.most_common()),
    }
    if not out["records"] == out["distinct_record_ids"] == expected:
        problems.append(
            f"{topic}: {out['records']} records, {out['distinct_record_ids']} distinct ids; "
            f"{expected} accepted"
        )
    step(
        f"{topic}: {out['records']:,} records, {out['distinct_record_ids']:,} distinct ids, "
        f"{expected:,} accepted; {out['linked']:,} linked, {out['batch']:,} in a batch"
    )
    return out


def _check_links(results: dict[str, Any], problems: list[str]) -> None:
    """Linking ran where it is on (and only there); triage where it is on."""
    on = results["on_topic"]
    if not on["linked"]:
        problems.append(f"{TOPICS['on']}: no record has dedupe.duplicate_of: did linking run?")
    for name in ("triage", "off"):
        topic = results[f"{name}_topic"]
        if topic["linked"] or topic["batch"]:
            problems.append(f"{TOPICS[name]}: linking is off, yet records are linked")
    for name, triaged in (("on", True), ("triage", True), ("off", False)):
        topic = results[f"{name}_topic"]
        if (topic["triaged"] == topic["records"]) is not triaged and topic["records"]:
            problems.append(f"{TOPICS[name]}: {topic['triaged']} of {topic['records']} triaged")


def _log_problems(name: str, log: Path) -> list[str]:
    """Tracebacks in the gateway's log (a stage failed and kept the record as it was)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    if not starts:
        return []
    first = lines[max(0, starts[0] - 1) : starts[0] + _TRACEBACK_LINES]
    return [f"{name}: {len(starts)} traceback(s) in {log}; the first:\n" + "\n".join(first)]


def _print(results: dict[str, Any]) -> None:
    intake = results["intake"]
    rows: list[Row] = []
    for name in STAGES:
        r = intake[name]
        rows += [
            (
                f"WeChat intake, {TITLES[name]}",
                f"{fmt(r['rate'])} complaints/s",
                f"{spread(r['rates'])}{r['published']:,.0f} in {r['seconds']:.2f} s",
            ),
            (
                "    gateway CPU, round / all in",
                f"{fmt(r['gateway_cpu_us_per_complaint'])} / {fmt(r['all_in_us'])} us/complaint",
                f"gateway {pct(r['gateway_cpu'])} of one CPU, broker {pct(r['broker_cpu'])}; "
                f"machine {pct(r['machine_busy'])} busy",
            ),
        ]
    rows += [
        ("ratio on / off", f"{intake['ratio']:.2f}", "triage and linking together"),
        ("ratio triage only / off", f"{intake['ratio_triage']:.2f}", "the triage stage"),
        ("ratio on / triage only", f"{intake['ratio_linking']:.2f}", "the linking stage"),
    ]
    on = results["on_topic"]
    reasons = "; ".join(f"{k} {v:,}" for k, v in list(on["reasons"].items())[:4])
    rows += [
        (
            "    records linked (dedupe.duplicate_of)",
            f"{on['linked']:,} / {on['records']:,}",
            f"{on['customers']:,} customers; {reasons}",
        ),
        (
            "    records in a batch (dedupe.batch)",
            f"{on['batch']:,} / {on['records']:,}",
            "different customers, one fault (the texts are shared)",
        ),
    ]
    print_table(rows, title="triage and linking stages, WeChat intake (customers' own words)")
