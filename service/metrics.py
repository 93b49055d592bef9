"""Prometheus metrics of one gateway instance (its own registry, no globals).

Label values come from bounded sets: a ``reason`` label (refusals, quarantine,
ignored events) is passed through :meth:`GatewayMetrics.reason` first, which
lets through the reasons the gateway knows and at most :data:`MAX_REASONS`
others of the expected shape, and calls anything else ``other``. So no
request, however it is crafted, can grow ``/metrics`` without bound.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from connectors.errors import PAYLOAD_REASONS
from outbox.sqlite import OutboxEntry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: How many distinct reason labels beyond the known ones a gateway will ever show.
MAX_REASONS = 64
_REASON_LABEL = re.compile(r"[a-z][a-z0-9_:]{0,39}", re.ASCII)
#: Refusals the HTTP server itself gives.
_SERVER_REASONS = frozenset(
    {
        "unknown_channel",
        "body_too_large",
        "body_timeout",
        "outbox_unavailable",
        "internal_error",
    }
)


class GatewayMetrics:
    def __init__(self, outbox_depth: Callable[[], float]) -> None:
        self._known_reasons = set(PAYLOAD_REASONS | _SERVER_REASONS)
        self._other_reasons: set[str] = set()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "gateway_webhooks_received",
            "Webhook requests received, by connector.",
            ["connector"],
            registry=r,
        )
        self.accepted = Counter(
            "gateway_records_accepted",
            "New records written to the outbox.",
            ["connector"],
            registry=r,
        )
        self.refused = Counter(
            "gateway_webhooks_refused",
            "Webhook requests refused.",
            ["connector", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "gateway_duplicates",
            "Redeliveries recognised and not published again.",
            ["connector"],
            registry=r,
        )
        self.ignored = Counter(
            "gateway_events_ignored",
            "Genuine events that are not complaints.",
            ["connector", "reason"],
            registry=r,
        )
        self.quarantined = Counter(
            "gateway_payloads_quarantined",
            "Unreadable payloads kept for inspection.",
            ["connector", "reason"],
            registry=r,
        )
        self.published = Counter(
            "gateway_records_published",
            "Records acknowledged by the sink.",
            ["channel"],
            registry=r,
        )
        self.publish_failures = Counter(
            "gateway_publish_failures", "Batches the sink did not acknowledge.", registry=r
        )
        self.outbox_depth = Gauge(
            "gateway_outbox_depth",
            "Records in the outbox not yet acknowledged by the sink.",
            registry=r,
        )
        self.outbox_depth.set_function(outbox_depth)
        self.publish_latency = Histogram(
            "gateway_publish_latency_seconds",
            "From receiving a complaint to the sink's acknowledgement.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )

        self.polls = Counter(
            "gateway_poll",
            "Polls by connector and outcome (success, failure after retries).",
            ["connector", "outcome"],
            registry=r,
        )
        self.poll_failures_in_a_row = Gauge(
            "gateway_poll_consecutive_failures",
            "Polls in a row that failed, per connector (0 after a success).",
            ["connector"],
            registry=r,
        )
        self.poll_last_success = Gauge(
            "gateway_poll_last_success_timestamp_seconds",
            "When the connector last polled successfully (Unix seconds).",
            ["connector"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "gateway_poll_duration_seconds",
            "Time a poll took, retries and commit included.",
            ["connector"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
            registry=r,
        )

        self.status_updates = Counter(
            "gateway_status_updates",
            "POST /status requests by answer.",
            ["status"],
            registry=r,
        )
        self.notifications = Counter(
            "gateway_notifications",
            "Notification attempts by channel, provider and outcome (sent, failed, skipped, "
            "unknown); retries are not counted until they end.",
            ["channel", "provider", "status", "reason"],
            registry=r,
        )
        self.notification_jobs = Gauge(
            "gateway_notification_jobs",
            "Notifications in the ledger by state (queued, sending, sent, skipped, dead, "
            "in_doubt); dead and in_doubt wait for an operator.",
            ["state"],
            registry=r,
        )

    def record_jobs(self, counts: dict[str, int]) -> None:
        for state in ("queued", "sending", "sent", "skipped", "dead", "in_doubt"):
            self.notification_jobs.labels(state).set(counts.get(state, 0))

    def record_notification(self, channel: str, provider: str, status: str, reason: str) -> None:
        self.notifications.labels(channel, provider, status, self.reason(reason or "none")).inc()

    def reason(self, value: str) -> str:
        """``value`` as a label: a known reason, one of a bounded few others, or ``other``."""
        if value in self._known_reasons or value in self._other_reasons:
            return value
        if len(self._other_reasons) < MAX_REASONS and _REASON_LABEL.fullmatch(value):
            self._other_reasons.add(value)
            return value
        return "other"

    def record_published(self, batch: list[OutboxEntry], at: datetime) -> None:
        for entry in batch:
            self.published.labels(entry.channel).inc()
            received = datetime.fromisoformat(entry.received_at)
            self.publish_latency.observe(max(0.0, (at - received).total_seconds()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
