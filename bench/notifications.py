"""Scenario ``notifications``: what status notifications cost intake, and how fast they go out.

Two gateway processes on the run's broker: ``plain`` (no notifier) and
``notify`` (the ``aliyun_sms`` notifier pointed at the fake provider, a
process of its own, and the ticket system's topics: :mod:`bench._providers`).

1. **Intake**: WeChat throughput rounds as in ``wechat`` (b), alternating
   between the two gateways (P N, N P, ...), ``--repeat`` of each: medians
   of complaints/s, their ratio, and the gateway's CPU per complaint, in the
   round's window and "all in", until the gateway is idle again, which takes
   in the contact directory that follows the outbox in the background.
2. **The whole path** on ``notify``, once per ``--notify-workers`` value (the
   gateway restarted with that ``notifications.workers``): ``--notifications``
   store complaints taken in (``bench._traffic.store``, a phone number each),
   then one ``StatusUpdate`` per record (node ``accepted``, a ticket number of
   its own) produced to the status topic; the time runs from the first
   produce until ``gateway_notifications_total{status="sent"}`` counts them
   all. A small pass before each warms the consumer group and the provider
   connections. Checked: the provider got one ``SendSms`` per notification,
   with distinct ``OutId``\\ s, and took each; the outcomes topic holds one
   ``sent`` outcome per record, and their keys are those ``OutId``\\ s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from bench import _load, _providers
from bench._broker import Broker
from bench._cpu import CpuMeter, process_cpu_seconds
from bench._gateway import GatewayProcess, delta, scrape
from bench._providers import SMS_BURST, SMS_RATE, ProviderProcess
from bench._report import Row, fmt, median_run, pct, print_problems, print_table, spread, step
from bench._traffic import connector_settings
from bench.webhooks import FIRST_MSG_ID, cpu_us_per_record

TOPICS = {
    "plain": "bench.notify.plain",
    "notify": "bench.notify.complaints",
    "status": "bench.notify.status",
    "outcomes": "bench.notify.outcomes",
}
FIRST_STORE_ID = 7_000_000


def run(args: argparse.Namespace, broker: Broker, work: Path) -> tuple[dict[str, Any], list[str]]:
    """Intake with and without notifications, then the notification path; print the tables."""
    broker.create_topics(*TOPICS.values())
    providers = ProviderProcess(work / "providers.log")
    env = _providers.gateway_env(
        providers.base_url, TOPICS["status"], TOPICS["outcomes"], workers=args.notify_workers[0]
    )
    gateways = {
        name: GatewayProcess(
            work,
            name,
            bootstrap=broker.bootstrap,
            topic=TOPICS[name],
            connectors=connector_settings(["wechat", "store"]),
            env=env if name == "notify" else None,
        )
        for name in ("plain", "notify")
    }
    notify, accepted = gateways["notify"], dict.fromkeys(gateways, 0)
    results: dict[str, Any] = {"sms_rate_per_second": SMS_RATE, "sms_burst": SMS_BURST}
    problems: list[str] = []
    try:
        providers.start()
        for gateway in gateways.values():
            gateway.start()
        step(
            f"notifications: plain pid {gateways['plain'].pid}, notify pid {notify.pid}, fake "
            f"provider pid {providers.pid} on {providers.base_url}"
        )
        results["intake"] = _intake(args, gateways, broker.pid, accepted, problems)
        path = _Path(broker, notify, providers, problems)
        for i, workers in enumerate(args.notify_workers):
            if i:  # restarted with the next value, its data directory kept
                notify.stop()
                notify.env["GATEWAY_NOTIFICATIONS__WORKERS"] = str(workers)
                notify.log_path = work / f"gateway-notify-w{workers}.log"
                notify.start()
            path.run(max(10, args.notifications // 20), workers, "warm-up")
            path.run(args.notifications, workers, "measured")
        results["path"], results["warm_up_passes"] = path.passes, path.warm_ups
        accepted["notify"] += path.accepted
        for name in gateways:
            topic = results[f"{name}_topic"] = broker.read_topic(TOPICS[name])
            if not topic["records"] == topic["distinct_record_ids"] == accepted[name]:
                problems.append(
                    f"{TOPICS[name]}: {topic['records']} records, "
                    f"{topic['distinct_record_ids']} distinct ids; {accepted[name]} accepted"
                )
    finally:
        for process in (*gateways.values(), providers):
            process.stop()
    results["accepted"] = accepted
    _print(results)
    print_problems(problems)
    return results, problems


def _settle(pid: int, timeout: float = 20, window: float = 0.5) -> float:
    """Wait until ``pid`` uses under 6% of a core over ``window``; the seconds waited."""
    started = time.monotonic()
    last = process_cpu_seconds(pid) or 0.0
    while time.monotonic() - started < timeout:
        time.sleep(window)
        now = process_cpu_seconds(pid) or 0.0
        if now - last < 0.06 * window:
            break
        last = now
    return time.monotonic() - started


def _intake(
    args: argparse.Namespace,
    gateways: dict[str, GatewayProcess],
    broker_pid: int,
    accepted: dict[str, int],
    problems: list[str],
) -> dict[str, Any]:
    """Alternating WeChat rounds on the plain and the notify gateway; medians of each."""
    next_id = dict.fromkeys(gateways, FIRST_MSG_ID)

    def load(name: str, count: int, connections: int) -> dict[str, Any]:
        gateway = gateways[name]
        first, next_id[name] = next_id[name], next_id[name] + count
        cpu0 = process_cpu_seconds(gateway.pid) or 0.0
        r = _load.run(
            gateway, broker_pid, "throughput", count, first, connections=connections, timeout=300
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
    step(f"notifications: {args.repeat} x (plain, notify) WeChat rounds of {args.complaints:,}")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in gateways}
    for round_ in range(args.repeat):
        for name in ("plain", "notify") if round_ % 2 == 0 else ("notify", "plain"):
            runs[name].append(load(name, args.complaints, args.connections))
        step(
            f"    round {round_ + 1}/{args.repeat}: plain {runs['plain'][-1]['rate']:,.0f}, "
            f"notify {runs['notify'][-1]['rate']:,.0f} complaints/s"
        )
    out: dict[str, Any] = {"runs": runs}
    for name, rounds in runs.items():
        out[name] = {
            **median_run(rounds),
            "rates": [r["rate"] for r in rounds],
            "all_in_us": statistics.median(r["all_in_cpu_us_per_complaint"] for r in rounds),
        }
    out["ratio"] = out["notify"]["rate"] / out["plain"]["rate"]
    return out


class _Path:
    """Passes of the whole notification path on the ``notify`` gateway (module docstring, 2)."""

    def __init__(
        self,
        broker: Broker,
        gateway: GatewayProcess,
        providers: ProviderProcess,
        problems: list[str],
    ) -> None:
        self.broker = broker
        self.gateway = gateway
        self.providers = providers
        self.problems = problems
        self.next_store, self.accepted = FIRST_STORE_ID, 0
        self.used: set[str] = set()
        self.passes: list[dict[str, Any]] = []
        self.warm_ups: list[dict[str, Any]] = []

    def run(self, count: int, workers: int, label: str) -> None:
        first, self.next_store = self.next_store, self.next_store + count
        step(f"notifications: {label} pass, {count:,} store complaints, workers {workers}")
        intake = _load.run(
            self.gateway, self.broker.pid, "throughput", count, first, ["store"], timeout=300
        )
        self.accepted += intake["ok"]
        _settle(self.gateway.pid)  # the directory has caught up
        bootstrap, partitions = self.broker.bootstrap, self.broker.partitions
        phones = _providers.store_complaints(bootstrap, TOPICS["notify"], partitions, self.used)
        tickets = len(self.used)  # one ticket number per record, over all passes
        self.used |= set(phones)
        updates = [
            _providers.status_update(record_id, f"TS{tickets + i:08d}")
            for i, record_id in enumerate(phones, 1)
        ]
        before = self.providers.count()
        cpu0 = process_cpu_seconds(self.gateway.pid) or 0.0
        r = asyncio.run(self._measure(updates))
        r["settle_seconds"] = _settle(self.gateway.pid)  # the outcomes are published
        cpu = (process_cpu_seconds(self.gateway.pid) or 0.0) - cpu0
        r.update(
            label=label,
            workers=workers,
            count=count,
            all_in_us=cpu / count * 1e6,
            store_intake={k: intake[k] for k in ("ok", "sent", "rate", "complete")},
            records_found=len(phones),
            distinct_phones=len(set(phones.values())),
            provider=self.providers.count(before["requests_total"], before["messages_total"]),
            outcomes=_providers.outcomes(bootstrap, TOPICS["outcomes"], partitions, set(phones)),
        )
        self._check(r)
        (self.warm_ups if label == "warm-up" else self.passes).append(r)
        step(f"    {r['sent']:,.0f} sent in {r['seconds']:.2f} s: {r['rate']:,.0f}/s")

    async def _measure(self, updates: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        """Produce ``updates``, then scrape until they are all counted sent (bounded)."""
        port, count = self.gateway.port, len(updates)
        pids = {"gateway": self.gateway.pid, "broker": self.broker.pid}
        meter = CpuMeter({**pids, "provider": self.providers.pid})
        before = await scrape(port)
        meter.start()
        metered = time.perf_counter()
        t0, produced = await _providers.produce(self.broker.bootstrap, TOPICS["status"], updates)
        first_sent, deadline = None, time.monotonic() + 60 + count / 20
        for _ in range(100_000):
            metrics = await scrape(port)
            sent = metrics.notifications_with("sent") - before.notifications_with("sent")
            if sent and first_sent is None:
                first_sent = time.perf_counter() - t0
            if sent >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        end = time.perf_counter()
        seconds, cpu = end - t0, meter.stop(end - metered)  # the meter includes producer start
        return {
            "produce_seconds": produced,
            "first_sent_seconds": first_sent,
            "seconds": seconds,
            "sent": sent,
            "rate": sent / seconds,
            "gateway_cpu_us": (cpu["gateway_cpu"] or 0.0) * (end - metered) / max(1.0, sent) * 1e6,
            **cpu,
            "notifications": delta(metrics.notifications, before.notifications),
            "jobs": metrics.notification_jobs,
        }

    def _check(self, r: dict[str, Any]) -> None:
        n, p, o, intake = r["count"], r["provider"], r["outcomes"], r["store_intake"]
        found = []
        if not intake["complete"] or r["records_found"] != n:
            found.append(f"{intake['ok']}/{n} store complaints in, {r['records_found']} found")
        if r["sent"] != n or set(r["notifications"]) != {"sms:aliyun_sms:sent:none"}:
            found.append(f"the gateway counted {r['notifications']}; {n} sent expected")
        found += _providers.check_ends(n, p, o)
        self.problems += [f"path ({r['label']}, workers {r['workers']}): {f}" for f in found]


def _print(results: dict[str, Any]) -> None:
    rows: list[Row] = []
    intake = results.get("intake")
    for name, title in (("plain", "without"), ("notify", "with")) if intake else ():
        r = intake[name]
        rows += [
            (
                f"WeChat intake {title} notifications",
                f"{fmt(r['rate'])} complaints/s",
                f"{spread(r['rates'])}{r['published']:,.0f} in {r['seconds']:.2f} s",
            ),
            (
                "    gateway CPU, round / all in",
                f"{fmt(r['gateway_cpu_us_per_complaint'])} / {fmt(r['all_in_us'])} us/complaint",
                f"gateway {pct(r['gateway_cpu'])} of one CPU in the round",
            ),
        ]
    if intake:
        rows.append(("ratio with / without notifications", f"{intake['ratio']:.2f}", ""))
    for p in results.get("path", []):
        o, pv = p["outcomes"], p["provider"]
        rows += [
            (
                f"status topic -> SMS sent, workers {p['workers']}",
                f"{fmt(p['rate'])} notifications/s",
                f"{p['sent']:,.0f} in {p['seconds']:.2f} s; producing took "
                f"{p['produce_seconds']:.2f} s, the first sent at "
                f"{fmt(p['first_sent_seconds'], '.2f')} s",
            ),
            (
                "    gateway CPU, window / all in",
                f"{fmt(p['gateway_cpu_us'])} / {fmt(p['all_in_us'])} us/notification",
                f"gateway {pct(p['gateway_cpu'])}, provider {pct(p['provider_cpu'])}, "
                f"broker {pct(p['broker_cpu'])}; machine {pct(p['machine_busy'])} busy",
            ),
            (
                "    SendSms / OutIds / taken / outcomes sent / keys",
                f"{pv['requests']:,} / {pv['distinct_out_ids']:,} / {pv['messages']:,} / "
                f"{o['sent']:,} / {o['distinct_keys']:,}",
                f"{pv['distinct_recipients']:,} phones; store complaints taken in at "
                f"{fmt(p['store_intake']['rate'])}/s",
            ),
        ]
    rows += [
        (
            f"    warm-up pass, workers {w['workers']}",
            f"{w['sent']:,.0f} sent",
            f"in {w['seconds']:.2f} s, the first at {fmt(w['first_sent_seconds'], '.2f')} s",
        )
        for w in results.get("warm_up_passes", [])
    ]
    title = f"status notifications (aliyun_sms at most {SMS_RATE:,.0f}/s, burst {SMS_BURST})"
    print_table(rows, title=title)
