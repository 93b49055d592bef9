"""complaint-gateway: the composition root and command line.

This is the only place that reads settings and builds long-lived resources
(the registry, the outbox, the sink, the publisher, the HTTP app); everything
else receives what it needs. ``python gateway.py ...`` and the
``complaint-gateway`` console script are the same program.

Subcommands: ``serve``, ``demo``, ``check-config``, ``replay``, ``quarantine``,
``notifications``, ``triage``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from connectors.base import Connector, WebhookConnector
from connectors.errors import ConfigError, StateUnavailable
from connectors.polling import PollingConnector
from dedupe.state import DedupeStore
from outbound.base import Notifier
from outbound.directory import Directory
from outbound.dispatch import Dispatcher
from outbound.notifications import Notifications, OutcomePublisher
from outbound.planner import Planner
from outbound.state import NotificationStore
from outbound.state_sqlite import SQLiteNotificationStore
from outbox.kafka import KafkaSink
from outbox.publisher import Publisher
from outbox.sinks import JsonLinesSink, Sink
from outbox.sqlite import SQLiteOutbox
from outbox.status_consumer import StatusConsumer
from service.board import ConnectorBoard, ConnectorState
from service.clock import Clock, SystemClock
from service.http import ASGIApp, WebhookServer
from service.intake import Intake
from service.linking_stage import LinkingStage
from service.logs import configure_logging, mask_text
from service.metrics import GatewayMetrics
from service.polling import PollRunner
from service.registry import Registry, RegistryError
from service.settings import GatewaySettingsBase, load_settings
from service.state import open_state
from service.status_http import StatusEndpoint
from service.triage_stage import TriageStage
from triage.engine import Triage
from triage.ruleset import RulesetError, load_ruleset

log = logging.getLogger("gateway")


@dataclass
class NotificationRuntime:
    """The status-notification side of a running gateway."""

    desk: Notifications
    store: NotificationStore
    dispatcher: Dispatcher
    outcomes: OutcomePublisher
    notifiers: dict[str, Notifier]
    consumer: StatusConsumer | None


@dataclass
class Gateway:
    """A running gateway: its ASGI app and the parts tests and the demo look at."""

    settings: GatewaySettingsBase
    app: ASGIApp
    outbox: SQLiteOutbox
    sink: Sink
    publisher: Publisher
    metrics: GatewayMetrics
    dedupe: DedupeStore
    connectors: dict[str, Connector]
    board: ConnectorBoard
    runners: dict[str, PollRunner]
    notifications: NotificationRuntime | None = None


def build_sink(settings: GatewaySettingsBase) -> Sink:
    if settings.kafka.bootstrap_servers:
        return KafkaSink(
            settings.kafka.topic,
            settings.kafka.producer_options(),
            timeout=settings.kafka.request_timeout_ms / 1000,
        )
    return JsonLinesSink(settings.jsonl_path)


def build_triage(settings: GatewaySettingsBase, rules: Path | None = None) -> TriageStage | None:
    """The triage stage from the configured rules (or ``rules``); ConfigError lists problems."""
    if not settings.triage.enabled and rules is None:
        return None
    try:
        ruleset = load_ruleset(rules or settings.triage.rules)
    except RulesetError as exc:
        raise ConfigError([f"triage rules: {p}" for p in exc.problems]) from None
    return TriageStage(Triage(ruleset))


def build_notifiers(
    settings: GatewaySettingsBase, registry: Registry, http: httpx.AsyncClient, clock: Clock
) -> dict[str, Notifier]:
    return {
        name: registry.notifiers[name](section, http, clock)
        for name, section in settings.enabled_notifiers().items()
    }


def notification_problems(settings: GatewaySettingsBase, registry: Registry) -> list[str]:
    """What keeps the configured notifications from working (``check-config`` and start-up)."""
    notifiers = build_notifiers(settings, registry, httpx.AsyncClient(), SystemClock())
    problems = Planner(settings.notifications, notifiers).problems()
    if settings.notifications.store == "postgresql" and settings.notifications.postgres_dsn is None:
        problems.append("notifications.postgres_dsn: required when store = 'postgresql'")
    return problems


async def open_notification_store(settings: GatewaySettingsBase) -> NotificationStore:
    section = settings.notifications
    if section.store == "postgresql" and section.postgres_dsn is not None:
        from outbound.state_postgres import PostgresNotificationStore

        return await PostgresNotificationStore.open(
            section.postgres_dsn.get_secret_value(), schema=section.postgres_schema
        )
    return await SQLiteNotificationStore.open(
        settings.notifications_path, synchronous=settings.outbox.synchronous
    )


async def start_notifications(
    stack: contextlib.AsyncExitStack,
    settings: GatewaySettingsBase,
    registry: Registry,
    *,
    outbox: SQLiteOutbox,
    http: httpx.AsyncClient,
    metrics: GatewayMetrics,
    clock: Clock,
    outcome_sink: Sink | None = None,
) -> NotificationRuntime | None:
    """Build and start the status-notification side; None when no notifier is configured."""
    section = settings.notifications
    notifiers = build_notifiers(settings, registry, http, clock)
    if not section.enabled or not notifiers:
        return None
    planner = Planner(section, notifiers)
    problems = planner.problems()
    if problems:
        raise ConfigError(problems)
    store = await open_notification_store(settings)
    stack.push_async_callback(store.aclose)
    for notifier in notifiers.values():
        stack.push_async_callback(notifier.aclose)
    dispatcher = Dispatcher(
        store,
        planner,
        section,
        clock,
        sole_owner=section.store == "sqlite",
        on_result=lambda r: metrics.record_notification(r.channel, r.provider, r.status, r.reason),
    )
    directory = Directory(outbox, store, section, clock)
    desk = Notifications(section, planner, store, directory, clock, dispatcher.wake)
    if outcome_sink is None:
        if settings.kafka.bootstrap_servers:
            outcome_sink = KafkaSink(
                section.outcomes_topic,
                settings.kafka.producer_options(),
                timeout=settings.kafka.request_timeout_ms / 1000,
            )
        else:
            outcome_sink = JsonLinesSink(settings.notifications_jsonl_path)
    stack.push_async_callback(outcome_sink.aclose)
    outcomes = OutcomePublisher(store, outcome_sink, clock)
    consumer = None
    if settings.kafka.bootstrap_servers:
        consumer = StatusConsumer(
            section.status_topic,
            section.consumer_group,
            settings.kafka.client_options(),
            desk.accept_from_stream,
        )
    await directory.catch_up()
    tasks = [
        asyncio.create_task(directory.run(), name="directory"),
        asyncio.create_task(dispatcher.run(), name="dispatcher"),
        asyncio.create_task(desk.run_timers(), name="timers"),
        asyncio.create_task(desk.run_upkeep(metrics.record_jobs), name="notification-upkeep"),
        asyncio.create_task(outcomes.run(), name="outcomes"),
    ]
    if consumer is not None:
        tasks.append(asyncio.create_task(consumer.run(), name="status-consumer"))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        # bounded: a task that will not end must not hold the shutdown (it is logged)
        _, stuck = await asyncio.wait(tasks, timeout=15)
        for task in stuck:
            log.error("notification task %s did not stop in time; left behind", task.get_name())
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await outcomes.drain()

    stack.push_async_callback(stop)
    log.info(
        "notifications ready: %s, store %s%s",
        ", ".join(f"{n.name} ({n.channel})" for n in notifiers.values()),
        section.store,
        f", status topic {section.status_topic}" if consumer else ", POST /status only",
    )
    return NotificationRuntime(desk, store, dispatcher, outcomes, notifiers, consumer)


@contextlib.asynccontextmanager
async def running_gateway(
    settings: GatewaySettingsBase,
    registry: Registry,
    *,
    clock: Clock | None = None,
    sink: Sink | None = None,
    outcome_sink: Sink | None = None,
    drain_seconds: float = 0,
) -> AsyncIterator[Gateway]:
    """Open the outbox, start the publisher, build the app; close everything on exit.

    On exit the publisher is stopped first, then given up to ``drain_seconds``
    for a last drain of its own, so no batch is ever published by two loops at once.
    """
    clock = clock or SystemClock()
    async with contextlib.AsyncExitStack() as stack:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        outbox = await SQLiteOutbox.open(
            settings.outbox_path, synchronous=settings.outbox.synchronous
        )
        stack.push_async_callback(outbox.aclose)
        sink = sink or build_sink(settings)
        stack.push_async_callback(sink.aclose)
        metrics = GatewayMetrics(lambda: outbox.pending)

        state = await open_state(settings, clock, outbox, stack)
        dedupe = state.dedupe

        publisher = Publisher(
            outbox,
            sink,
            clock,
            batch_size=settings.outbox.batch_size,
            retention=timedelta(days=settings.outbox.retention_days),
            on_published=metrics.record_published,
            on_failure=lambda exc: metrics.publish_failures.inc(),
        )
        http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        stack.push_async_callback(http.aclose)
        connectors: dict[str, Connector] = {
            name: registry.connectors[name](section, clock, http)
            for name, section in settings.enabled_connectors().items()
        }
        board = ConnectorBoard(
            [ConnectorState(c.name, c.kind, c.channel) for c in connectors.values()]
        )
        webhooks = {n: c for n, c in connectors.items() if isinstance(c, WebhookConnector)}
        notifications = await start_notifications(
            stack,
            settings,
            registry,
            outbox=outbox,
            http=http,
            metrics=metrics,
            clock=clock,
            outcome_sink=outcome_sink,
        )
        stage = build_triage(settings)
        if notifications is not None and state.linker is not None:
            notifications.desk.on_resolved = state.linker.index.close
        intake = Intake(
            registry.normalizers,
            dedupe,
            outbox,
            metrics,
            publisher.notify,
            on_ignored=notifications.desk.follow if notifications else None,
            stage=stage.apply if stage else None,
            link=LinkingStage(state.linker).apply if state.linker else None,
        )
        status = None
        if notifications is not None:
            status = StatusEndpoint(
                notifications.desk,
                settings.notifications.api_token,
                outbox,
                metrics,
                clock,
                settings.http.max_body_bytes,
            ).handle
        server = WebhookServer(
            webhooks,
            intake,
            outbox,
            sink,
            metrics,
            clock,
            settings.http,
            board,
            status,
            state_check=state.check,
        )
        task = asyncio.create_task(publisher.run(), name="publisher")

        async def stop_publisher() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if drain_seconds > 0:  # a last drain, alone now; what is left stays in the outbox
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(drain_seconds):
                        await publisher.drain()

        stack.push_async_callback(stop_publisher)

        runners = {
            name: PollRunner(c, intake, outbox, board.states[name], metrics, clock)
            for name, c in connectors.items()
            if isinstance(c, PollingConnector)
        }
        polling = [asyncio.create_task(r.run(), name=f"poll:{n}") for n, r in runners.items()]

        async def stop_pollers() -> None:  # before the publisher's last drain and the outbox
            for poller in polling:
                poller.cancel()
            await asyncio.gather(*polling, return_exceptions=True)
            for runner in runners.values():
                with contextlib.suppress(Exception):
                    await runner.connector.aclose()

        stack.push_async_callback(stop_pollers)
        log.info(
            "gateway ready: channels %s, sink %s, %d pending in outbox, state %s"
            " (%d dedupe keys, %d linking entries warmed)",
            ", ".join(connectors) or "(none configured)",
            sink.name,
            outbox.pending,
            state.backend,
            state.warmed_keys,
            state.warmed_entries,
        )
        yield Gateway(
            settings,
            server.app(),
            outbox,
            sink,
            publisher,
            metrics,
            dedupe,
            connectors,
            board,
            runners,
            notifications,
        )


async def serve(settings: GatewaySettingsBase, registry: Registry) -> None:
    import uvicorn

    from service.http_limits import bounded_http_protocol

    async with running_gateway(settings, registry, drain_seconds=5) as gateway:
        config = uvicorn.Config(
            gateway.app,
            host=settings.http.host,
            port=settings.http.port,
            http=bounded_http_protocol(settings.http),
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_keep_alive=15,
        )
        # uvicorn re-raises SIGINT/SIGTERM into the handlers it found once it has
        # stopped; no-op ones let the last drain and the clean-up below run.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        await uvicorn.Server(config).serve()
    log.info("gateway stopped; %d records wait in the outbox", gateway.outbox.pending)


def _load(args: argparse.Namespace) -> tuple[GatewaySettingsBase, Registry]:
    registry = Registry.from_entry_points()
    config = args.config or None
    return load_settings(registry, Path(config) if config else None), registry


def _print_problems(error: ConfigError) -> None:
    print(f"{len(error.problems)} problem(s) in the configuration:", file=sys.stderr)
    for problem in error.problems:
        print(f"  - {problem}", file=sys.stderr)


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} needs a timezone (e.g. Z or +08:00)")
    return parsed


async def replay(
    settings: GatewaySettingsBase,
    *,
    record_ids: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
) -> int:
    outbox = await SQLiteOutbox.open(settings.outbox_path)
    sink = build_sink(settings)
    try:
        entries = await outbox.select(record_ids=record_ids, since=since, until=until)
        missing = set(record_ids) - {e.record_id for e in entries}
        for record_id in sorted(missing):
            print(f"not in the outbox: {record_id}", file=sys.stderr)
        if not dry_run and entries:
            for start in range(0, len(entries), settings.outbox.batch_size):
                await sink.publish(entries[start : start + settings.outbox.batch_size])
        verb = "would re-publish" if dry_run else "re-published"
        print(f"{verb} {len(entries)} record(s) to {sink.name}")
        for entry in entries:
            print(f"  {entry.received_at}  {entry.channel:<8} {entry.record_id}")
        return 1 if missing else 0
    finally:
        await sink.aclose()
        await outbox.aclose()


async def show_quarantine(settings: GatewaySettingsBase, limit: int, *, raw: bool = False) -> None:
    """Print the newest quarantined payloads with a preview of each body.

    The bodies are customers' messages, so the preview is masked like a log
    line unless ``raw`` is asked for. The whole body is masked before it is
    cut to the preview, so the cut never leaves half a phone number unmasked.
    """
    outbox = await SQLiteOutbox.open(settings.outbox_path)
    try:
        for item in await outbox.quarantined(limit):
            detail = item.detail if raw else mask_text(item.detail)
            print(f"#{item.id} {item.received_at} {item.channel} {item.reason}: {detail}")
            if raw:
                preview = repr(item.body[:120])
            else:
                preview = repr(mask_text(item.body.decode("utf-8", errors="replace"))[:120])
            print(f"    {len(item.body)} bytes: {preview}")
    finally:
        await outbox.aclose()


async def manage_notifications(settings: GatewaySettingsBase, args: argparse.Namespace) -> int:
    """``complaint-gateway notifications``: dead letters, resends, opt-outs, the queue's counts."""
    from outbound.state import stamp
    from service.logs import mask_recipient

    store = await open_notification_store(settings)
    now = SystemClock().now()
    try:
        if args.resend:
            job = await store.resend(args.resend, now)
            if job is None:
                print(f"no dead or in-doubt notification has key {args.resend}", file=sys.stderr)
                return 1
            print(
                f"queued again: {job.node} of {job.record_id} on {job.channel}; a running "
                "gateway sends it within a second"
            )
            return 0
        for handle in args.opt_out:
            await store.set_opt_out(handle, True, source="operator", at=now)
            print(f"opted out: {handle.split(':', 1)[0]}:{mask_recipient(*handle.split(':', 1))}")
        for handle in args.opt_in:
            await store.set_opt_out(handle, False, source="operator", at=now)
            print(f"opted in again: {handle.split(':', 1)[0]}")
        if args.opt_out or args.opt_in:
            return 0
        if args.dlq:
            letters = await store.jobs(states=["dead", "in_doubt"], limit=args.limit)
            print(f"{len(letters)} dead letter(s)")
            for job in letters:
                when = stamp(job.updated_at) if job.updated_at else "-"
                print(
                    f"{job.key}  {when}  {job.state:<8} {job.node:<17} {job.channel:<6} "
                    f"{mask_recipient(job.channel, job.recipient)}  attempts={job.attempts}  "
                    f"{job.record_id}\n    {mask_text(job.error) or '-'}"
                )
            return 0
        counts = await store.counts()
        print(
            "notifications: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
        )
        return 0
    finally:
        await store.aclose()


def run_triage(settings: GatewaySettingsBase, args: argparse.Namespace) -> int:
    from service.state import link_settings
    from service.triage_cli import OfflineState, run

    try:
        stage = build_triage(settings, Path(args.rules) if args.rules else None)
    except ConfigError as exc:
        _print_problems(exc)
        return 2
    state = OfflineState(Path(args.state) if args.state else None, link_settings(settings))
    with contextlib.ExitStack() as files:
        files.callback(state.close)
        source = (
            files.enter_context(open(args.input, encoding="utf-8")) if args.input else sys.stdin
        )
        sink = (
            files.enter_context(open(args.output, "w", encoding="utf-8"))
            if args.output
            else sys.stdout
        )
        return asyncio.run(run(stage, state, source, sink, show=args.explain))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="complaint-gateway",
        description="Collect complaints from every channel into one deduplicated stream.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML settings file (default: $GATEWAY_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", parents=[common], help="run the webhook server and the publisher")
    demo = sub.add_parser("demo", help="run the gateway and send it sample complaints")
    demo.add_argument("--data-dir", help="keep the demo's outbox and stream here")
    cc = sub.add_parser(
        "check-config", parents=[common], help="validate the settings, list all problems"
    )
    cc.add_argument(
        "--settings", action="store_true", help="list every setting with its default and meaning"
    )
    rp = sub.add_parser("replay", parents=[common], help="re-publish records from the outbox")
    rp.add_argument("--record-id", action="append", default=[], help="a record id (repeatable)")
    rp.add_argument("--since", type=_parse_time, help="received at or after (RFC 3339)")
    rp.add_argument("--until", type=_parse_time, help="received at or before (RFC 3339)")
    rp.add_argument("--dry-run", action="store_true", help="list, do not publish")
    qp = sub.add_parser("quarantine", parents=[common], help="list quarantined payloads")
    qp.add_argument("--limit", type=int, default=20)
    qp.add_argument(
        "--raw", action="store_true", help="show bodies unmasked (phone numbers, OpenIDs...)"
    )
    tr = sub.add_parser(
        "triage",
        parents=[common],
        help="label and link complaint records (JSON Lines) as the gateway would",
    )
    tr.add_argument("--input", help="records to read (default: standard input)")
    tr.add_argument("--output", help="where the labelled records go (default: standard output)")
    tr.add_argument("--rules", help="a rules file to try instead of the configured one")
    tr.add_argument("--explain", action="store_true", help="print each record's reasons")
    tr.add_argument(
        "--state",
        help="identity map and link index file to carry on from and keep (default: a fresh"
        " temporary one)",
    )
    nt = sub.add_parser(
        "notifications", parents=[common], help="status notifications: dead letters, resends"
    )
    nt.add_argument("--dlq", action="store_true", help="list dead and in-doubt notifications")
    nt.add_argument("--resend", metavar="KEY", help="send a dead or in-doubt notification again")
    nt.add_argument("--limit", type=int, default=50)
    nt.add_argument(
        "--opt-out",
        action="append",
        default=[],
        metavar="CHANNEL:HANDLE",
        help="stop messaging e.g. sms:+8613800138000 (repeatable)",
    )
    nt.add_argument(
        "--opt-in",
        action="append",
        default=[],
        metavar="CHANNEL:HANDLE",
        help="undo an opt-out (repeatable)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import os

    args = build_parser().parse_args(argv)
    if not getattr(args, "config", None):
        args.config = os.environ.get("GATEWAY_CONFIG")
    if args.command == "check-config" and args.settings:
        from service.settings import describe_settings

        for path, kind, default, description in describe_settings(Registry.from_entry_points()):
            print(f"{path}  ({kind}, default {default})\n    {description}")
        return 0
    if args.command == "demo":
        from service.demo import run_demo

        registry = Registry.from_entry_points()
        return asyncio.run(run_demo(registry, Path(args.data_dir) if args.data_dir else None))
    try:
        settings, registry = _load(args)
    except ConfigError as exc:
        _print_problems(exc)
        return 2
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "check-config":
        problems = notification_problems(settings, registry)
        try:
            build_triage(settings)
        except ConfigError as exc:
            problems += exc.problems
        if problems:
            _print_problems(ConfigError(problems))
            return 2
        enabled = ", ".join(settings.enabled_connectors()) or "none"
        sink = (
            f"kafka topic {settings.kafka.topic}"
            if settings.kafka.bootstrap_servers
            else (f"JSON Lines {settings.jsonl_path}")
        )
        notifiers = settings.enabled_notifiers()
        notifying = (
            f"; notifications by {', '.join(notifiers)} (state in {settings.notifications.store})"
            if notifiers and settings.notifications.enabled
            else "; no notifications (no [notifiers.*] section)"
        )
        linking = (
            f"; linking on, state {settings.state.backend}"
            if settings.linking.enabled
            else f"; linking off, dedupe state {settings.state.backend}"
        )
        print(f"configuration is valid: channels {enabled}; stream to {sink}{notifying}{linking}")
        return 0
    if args.command == "serve":
        try:
            _run(serve(settings, registry))
        except StateUnavailable as exc:  # the shared state is down: say so, not a traceback
            print(f"error: cannot start: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "replay":
        if not (args.record_id or args.since or args.until):
            print("error: give --record-id, --since or --until", file=sys.stderr)
            return 2
        return asyncio.run(
            replay(
                settings,
                record_ids=args.record_id,
                since=args.since,
                until=args.until,
                dry_run=args.dry_run,
            )
        )
    if args.command == "quarantine":
        asyncio.run(show_quarantine(settings, args.limit, raw=args.raw))
        return 0
    if args.command == "notifications":
        return asyncio.run(manage_notifications(settings, args))
    if args.command == "triage":
        return run_triage(settings, args)
    return 2


def _run(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
