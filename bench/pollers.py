"""Scenario ``pollers``: how fast a poller takes in a backlog, until Kafka has it all.

(a) **Asterisk Master.csv**: ``--csv-lines`` (100,000) CDR lines as
    Asterisk's ``cdr_csv`` writes them (:func:`service.senders.asterisk_cdr_line`,
    a unique ``uniqueid`` each; answered calls with the agent's summary and
    missed calls, to the hotline) are written to a ``Master.csv`` before a
    gateway with ``[connectors.asterisk_csv]`` on that path starts.
(b) **IMAP mailbox**: ``--mails`` (5,000) complaint mails (a unique
    ``Message-ID`` each) are APPENDed to the INBOX of a private Dovecot
    (:mod:`service.dovecot`) before a gateway with ``[connectors.imap]``
    (plaintext on loopback) starts; skipped, saying why, when Dovecot is not
    installed or the ``imap`` connector is not registered.

(c) **Marketplaces and Weibo**: ``--refunds`` (10,000) after-sales on each of
    the local fakes of :mod:`service.fake_platforms` (TOP refunds, JD JOS
    after-sale services, Pinduoduo refunds) and as many comments on the fake
    Weibo API, served over loopback HTTP by this process (a thread of its
    own, so the fake's CPU competes with the gateway's on the same machine:
    the figures are a floor, not the platform's speed). The fakes check every
    signature as the platforms do, and page as they do (TOP 100 a page, JOS 50,
    PDD 100, Weibo 200 with ``max_pages`` 5 a poll).

Each backlog is timed from the gateway's spawn (its start-up, about a second,
included) until ``gateway_records_published_total`` reaches the backlog's
size; the sink is Kafka, the run's broker, a topic per backlog. ``/metrics``
is sampled every 50 ms, so the report also says when every line or mail was
in the outbox (``gateway_records_accepted_total``), and how long the slowest
of those ``/metrics`` answers took: a poll normalizes its batch on the event
loop, so that is how long a webhook would have waited meanwhile. Polls run
every ``interval_seconds`` = 0.2 s, and at once again when a poll stopped at
its size limit (4 MiB of CSV, 200 mails). Checked: every line or mail
accepted, none quarantined or ignored, and the topic holding exactly one
record per line or mail, with distinct record ids.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import _traffic
from bench._broker import Broker
from bench._cpu import process_cpu_seconds
from bench._gateway import GatewayProcess, registered_connectors
from bench._report import Row, fmt, pct, print_problems, print_table, step
from service.dovecot import DOVECOT, PASSWORD, USERNAME, Dovecot

ASTERISK_TOPIC = "bench.asterisk"
#: The polled platforms of (c), each on its own topic.
PLATFORMS = ("taobao", "jd", "pinduoduo", "weibo")
IMAP_TOPIC = "bench.imap"
POLL_INTERVAL = "0.2"
TIMEOUT = 900.0  # seconds a backlog may take before the scenario gives up on it
APPEND_THREADS = 4  # IMAP sessions filling the mailbox at once (set-up, not measured)


def run(args: argparse.Namespace, broker: Broker, work: Path) -> tuple[dict[str, Any], list[str]]:
    """Take in both backlogs; print their table. Returns (figures, problems)."""
    broker.create_topics(ASTERISK_TOPIC, IMAP_TOPIC, *(f"bench.{p}" for p in PLATFORMS))
    results = {
        "asterisk_csv": _asterisk(args.csv_lines, broker, work),
        "imap": _mailbox(args.mails, broker, work),
    }
    for platform in PLATFORMS:
        results[platform] = _platform(platform, args.refunds, broker, work)
    print_table(_rows(results), title="pollers: a backlog taken in, from gateway spawn to Kafka")
    problems = [p for r in results.values() for p in _problems(r)]
    print_problems(problems)
    return results, problems


def write_master_csv(path: Path, lines: int, first_epoch: int) -> None:
    """``lines`` CDRs of calls to the hotline, 5 a second from ``first_epoch``."""
    from service.senders import asterisk_cdr_line

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for i in range(lines):
            epoch = first_epoch + i // 5
            start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
            uniqueid = f"{epoch}.{i + 1000}"  # Asterisk's <epoch>.<channel sequence>
            if i % 4:
                out.write(
                    asterisk_cdr_line(
                        src=_traffic.phone(i),
                        dst=_traffic.HOTLINE,
                        start=start,
                        answer=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch + 6)),
                        end=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch + 192)),
                        duration=192,
                        billsec=186,
                        uniqueid=uniqueid,
                        userfield=f'洗衣机脱水噪音大,已报修两次,要求"退货"(工单{i})',
                    )
                )
            else:
                out.write(
                    asterisk_cdr_line(
                        src=_traffic.phone(i),
                        dst=_traffic.HOTLINE,
                        start=start,
                        duration=25,
                        disposition="NO ANSWER",
                        uniqueid=uniqueid,
                    )
                )


def _asterisk(lines: int, broker: Broker, work: Path) -> dict[str, Any]:
    path = work / "asterisk" / "Master.csv"
    t0 = time.perf_counter()
    write_master_csv(path, lines, int(time.time()) - lines // 5 - 3600)
    step(
        f"pollers: wrote {lines:,} lines ({path.stat().st_size / 1e6:.1f} MB) to {path} "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    section = {"path": str(path), "interval_seconds": POLL_INTERVAL}
    result = _backlog(broker, work, "asterisk_csv", ASTERISK_TOPIC, section, lines)
    return {"what": f"{lines:,}-line Master.csv", "unit": "lines", **result}


def _mailbox(mails: int, broker: Broker, work: Path) -> dict[str, Any]:
    what = f"{mails:,}-mail IMAP mailbox"
    if not Path(DOVECOT).exists():
        return {"what": what, "skipped": f"Dovecot is not installed ({DOVECOT})"}
    if "imap" not in registered_connectors():
        return {
            "what": what,
            "skipped": "the imap connector is not registered "
            "(no 'imap' entry point in complaint_gateway.connectors)",
        }
    from connectors._imap import ImapAccount, append_message

    with Dovecot() as server:
        account = ImapAccount(_traffic.HOST, server.port, "plain", USERNAME, PASSWORD, 30.0)
        now = int(time.time())
        t0 = time.perf_counter()
        with ThreadPoolExecutor(APPEND_THREADS) as pool:  # a session each: LOGIN, APPEND, LOGOUT
            uids = list(
                pool.map(
                    lambda n: append_message(account, "INBOX", _traffic.mail(n, now - n % 3600)),
                    range(mails),
                )
            )
        appended = time.perf_counter() - t0
        if len(set(uids)) != mails:
            raise RuntimeError(f"Dovecot gave {len(set(uids))} distinct UIDs for {mails} mails")
        step(f"pollers: appended {mails:,} mails to Dovecot INBOX in {appended:.1f} s")
        section = {
            "host": _traffic.HOST,
            "port": str(server.port),
            "security": "plain",
            "username": USERNAME,
            "password": PASSWORD,
            "mailboxes": '["INBOX"]',
            "interval_seconds": POLL_INTERVAL,
        }
        result = _backlog(broker, work, "imap", IMAP_TOPIC, section, mails)
    return {"what": what, "unit": "mails", "append_seconds": appended, **result}


def _platform(name: str, count: int, broker: Broker, work: Path) -> dict[str, Any]:
    """A backlog of ``count`` on the fake platform ``name``, polled by a fresh gateway."""
    import secrets

    from service.fake_platforms import serving_in_a_thread
    from service.fake_platforms.jd import FakeJd
    from service.fake_platforms.pinduoduo import FakePinduoduo
    from service.fake_platforms.top import FakeTop
    from service.fake_platforms.weibo import FakeWeibo

    what = f"{count:,} {'comments' if name == 'weibo' else 'after-sales'} on a local fake"
    if name not in registered_connectors():
        return {"what": what, "skipped": f"the {name} connector is not registered"}
    secret, token = secrets.token_hex(12), secrets.token_hex(12)
    every = {"interval_seconds": POLL_INTERVAL, "initial_lookback_seconds": "7200"}
    fake: Any
    if name == "taobao":
        fake = FakeTop("23456789", secret, token)
        fake.add_backlog(count)
        path = "/router/rest"
        section = {"app_key": "23456789", "app_secret": secret, "session": token, **every}
        section |= {"ratings": "false", "page_size": "100"}
    elif name == "jd":
        fake = FakeJd(app_key="bench-jd", app_secret=secret, access_token=token)
        fake.add_backlog(count, spread_seconds=3600)
        path = "/routerjson"
        section = {"app_key": "bench-jd", "app_secret": secret, "access_token": token, **every}
        section["page_size"] = "50"
    elif name == "pinduoduo":
        fake = FakePinduoduo("bench-pdd", secret, token)
        fake.add_backlog(count, span_seconds=3600)
        path = "/api/router"
        section = {"client_id": "bench-pdd", "client_secret": secret, "access_token": token}
        section |= {**every, "page_size": "100"}
    else:
        fake = FakeWeibo(token)
        fake.add_backlog("comments/to_me", count)
        path = "/2"
        section = {"access_token": token, "interval_seconds": POLL_INTERVAL}
        section |= {"endpoints": '["comments/to_me"]', "count": "200", "max_pages": "5"}
        section["start_at"] = "beginning"
    with serving_in_a_thread({name: fake}) as base:
        section["api_base"] = f"{base}/{name}{path}"
        step(f"pollers: {what}: fake {name} at {base}/{name}")
        result = _backlog(broker, work, name, f"bench.{name}", section, count)
    return {"what": what, "unit": "records", **result}


@dataclass(frozen=True)
class _Sample:
    at: float  # seconds since the gateway's spawn
    published: float
    accepted: float
    cpu: float | None  # the gateway's CPU seconds so far
    answer: float  # seconds /metrics took to answer


def _backlog(
    broker: Broker,
    work: Path,
    connector: str,
    topic: str,
    section: dict[str, str],
    expected: int,
) -> dict[str, Any]:
    """Start a gateway polling ``connector``; time it until ``expected`` records are published."""
    gateway = GatewayProcess(
        work, connector, bootstrap=broker.bootstrap, topic=topic, connectors={connector: section}
    )
    samples: list[_Sample] = []
    try:
        ready = gateway.start(ready_timeout=60)
        step(f"pollers: {connector} gateway pid {gateway.pid}, /healthz after {ready:.2f} s")
        deadline = time.monotonic() + TIMEOUT
        while True:
            asked = time.perf_counter()
            metrics = gateway.metrics()
            answered = time.perf_counter()
            samples.append(
                _Sample(
                    answered - gateway.started_at,
                    metrics.published_total,
                    metrics.accepted.get(connector, 0.0),
                    process_cpu_seconds(gateway.pid),
                    answered - asked,
                )
            )
            if metrics.published_total >= expected or time.monotonic() >= deadline:
                break
            gateway.check_running()
            time.sleep(0.05)
    finally:
        gateway.stop()
    last = samples[-1]
    all_accepted = next((s for s in samples if s.accepted >= expected), None)
    topic_count = broker.read_topic(topic, by_connector=True)
    step(
        f"pollers: {connector}: {last.published:,.0f}/{expected:,} published in {last.at:.2f} s; "
        f"{topic}: {topic_count['records']:,} records, "
        f"{topic_count['distinct_record_ids']:,} distinct record ids"
    )
    return {
        "expected": expected,
        "published": last.published,
        "accepted": last.accepted,
        "quarantined": metrics.quarantined,
        "ignored": metrics.ignored,
        "publish_failures": metrics.publish_failures,
        "seconds": last.at,
        "ready_seconds": ready,
        "rate": last.published / last.at,
        "accepted_seconds": all_accepted.at if all_accepted else None,
        "accepted_rate": expected / all_accepted.at if all_accepted else None,
        "slowest_metrics_answer": max(s.answer for s in samples),
        "gateway_cpu_seconds": last.cpu,
        "gateway_cpu": last.cpu / last.at if last.cpu is not None else None,
        "timeline": _timeline(samples),
        "topic": topic_count,
    }


def _timeline(samples: list[_Sample], points: int = 40) -> list[dict[str, float | None]]:
    """At most ``points`` samples, evenly picked, for the JSON output."""
    step_ = max(1, len(samples) // points)
    picked = samples[::step_] + ([samples[-1]] if (len(samples) - 1) % step_ else [])
    return [vars(s) for s in picked]


def _rows(results: dict[str, dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for connector, r in results.items():
        if "skipped" in r:
            rows.append((f"{connector}: {r['what']}", "skipped", r["skipped"]))
            continue
        unit = r["unit"]
        rows.append(
            (
                f"{connector}: {r['what']}",
                f"{fmt(r['rate'])} {unit}/s",
                f"{r['published']:,.0f}/{r['expected']:,} published in {r['seconds']:.2f} s "
                f"from spawn (/healthz at {r['ready_seconds']:.2f} s)",
            )
        )
        accepted_at = r["accepted_seconds"]
        rows.append(
            (
                "    all taken into the outbox",
                f"{fmt(r['accepted_rate'])} {unit}/s",
                (f"after {accepted_at:.2f} s; " if accepted_at is not None else "")
                + f"slowest /metrics answer meanwhile {r['slowest_metrics_answer']:.2f} s",
            )
        )
        cpu = r["gateway_cpu_seconds"]
        per_record = cpu / r["published"] * 1e6 if cpu and r["published"] else None
        rows.append(
            (
                "    gateway process CPU",
                f"{fmt(per_record)} us/{unit[:-1]}",
                f"gateway {pct(r['gateway_cpu'])} of one CPU, start-up included",
            )
        )
    return rows


def _problems(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return []
    name, topic = r["what"], r["topic"]
    problems = []
    if not r["expected"] == r["published"] == r["accepted"]:
        problems.append(
            f"{name}: {r['expected']} written, {r['accepted']:.0f} accepted, "
            f"{r['published']:.0f} published"
        )
    if not topic["records"] == topic["distinct_record_ids"] == r["expected"]:
        problems.append(
            f"{name}: the topic holds {topic['records']} records with "
            f"{topic['distinct_record_ids']} distinct record ids; {r['expected']} expected"
        )
    for kind in ("quarantined", "ignored"):
        if r[kind]:
            problems.append(f"{name}: {kind}: {r[kind]}")
    if r["publish_failures"]:
        problems.append(f"{name}: {r['publish_failures']:.0f} publish failures")
    return problems
