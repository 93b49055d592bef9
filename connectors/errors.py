"""The gateway's exception tree.

    GatewayError
    ├── ChannelError             a platform API call failed (outbound or polling)
    │   ├── ChannelUnavailable   5xx, timeout, connection refused: retry later
    │   ├── ChannelRateLimited   the platform asked us to slow down (``retry_after`` seconds)
    │   ├── ChannelAuthError     credentials refused: retrying will not help
    │   ├── DeliveryRefused      a notification was refused for good (``reason``)
    │   │   └── RecipientUnreachable  not on this channel now (bad number, unfollowed,
    │   │                             outside the reply window): try the next channel
    │   └── DeliveryInDoubt      the request may have reached the provider: never resent by itself
    ├── PayloadError             an inbound payload was refused (``reason`` labels the metric)
    │   ├── RequestRefused       refused before it was authenticated: 4xx, nothing kept
    │   │   └── InvalidSignature missing/wrong signature, bad or stale timestamp, replay: 401/403
    │   ├── MalformedPayload     authenticated but unreadable: 400, raw body quarantined
    │   └── UnsupportedMessage   readable but not mappable: 422, quarantined
    ├── ConfigError              the settings are invalid (``problems`` lists every one)
    ├── OutboxUnavailable        the durable outbox could not be written: 503, the sender retries
    └── SinkUnavailable          the stream sink (Kafka, file) refused or timed out: retried

Messages never contain secrets or raw customer contacts; ``reason`` is a short
stable label (``bad_signature``, ``invalid_json``...) for metrics and the quarantine table:
it must match :data:`REASON_PATTERN`, and the built-in ones are listed in
:data:`PAYLOAD_REASONS` (a plugin may add its own, but never one made from input).
"""

from __future__ import annotations

import re

#: What a ``reason`` label looks like: short, lower case, never built from input.
REASON_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

#: The reasons the gateway's own connectors and normalizers give.
PAYLOAD_REASONS = frozenset(
    {
        # refused before authentication, or as not genuine: nothing kept
        "missing_signature",
        "bad_signature",
        "missing_timestamp",
        "bad_timestamp",
        "stale_timestamp",
        "replayed_nonce",
        "app_id_mismatch",
        "plaintext_refused",
        "bad_method",
        "auth_error",
        # authenticated but unreadable or unmappable: quarantined
        "invalid_xml",
        "xml_dtd_refused",
        "xml_too_large",
        "invalid_json",
        "json_too_deep",
        "json_number_too_long",
        "missing_field",
        "invalid_field",
        "decrypt_failed",
        "no_aes_key",
        "connector_error",
        "normalizer_error",
    }
)


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ChannelError(GatewayError):
    """Talking to a platform's API failed."""


class ChannelUnavailable(ChannelError):
    """The platform is down or timed out; the call may succeed later."""


class ChannelRateLimited(ChannelError):
    """The platform asked us to slow down."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChannelAuthError(ChannelError):
    """The platform refused our credentials; retrying will not help."""


class DeliveryRefused(ChannelError):
    """The provider refused this notification and would refuse it again (template
    rejected, parameter invalid). ``reason`` is a short stable label; another
    provider of the same channel may still take it."""

    def __init__(self, message: str, reason: str) -> None:
        if not REASON_PATTERN.match(reason):
            raise ValueError(f"a reason must match {REASON_PATTERN.pattern}")
        super().__init__(message)
        self.reason = reason


class RecipientUnreachable(DeliveryRefused):
    """This recipient cannot be reached on this channel (invalid number, not a
    follower, refused or out of the reply window): no other provider of the
    channel is tried, the next channel of the route is."""


class DeliveryInDoubt(ChannelError):
    """The request was sent but no answer came (read timeout, connection lost
    mid-answer): the provider may have delivered it. Resending could message the
    customer twice, so the notification waits for an operator's ``--resend``."""


class PayloadError(GatewayError):
    """An inbound payload was refused. ``status`` is the HTTP answer given to the sender."""

    status: int = 400

    def __init__(self, message: str, reason: str) -> None:
        if not REASON_PATTERN.match(reason):
            raise ValueError(f"a reason must match {REASON_PATTERN.pattern}")
        super().__init__(message)
        self.reason = reason


class RequestRefused(PayloadError):
    """Refused before the request was authenticated: the sender may be anyone.

    Nothing of the request is stored, so no stranger can fill the disk. The
    status is what the sender is answered (400, 405...).
    """

    def __init__(self, message: str, reason: str, *, status: int = 400) -> None:
        super().__init__(message, reason)
        self.status = status


class InvalidSignature(RequestRefused):
    """Missing or wrong signature, a bad or stale timestamp, or a replayed nonce.

    A missing credential answers 401, a wrong one 403. Nothing is stored.
    """

    def __init__(self, message: str, reason: str, *, missing: bool = False) -> None:
        super().__init__(message, reason, status=401 if missing else 403)


class MalformedPayload(PayloadError):
    """The payload was authenticated but cannot be read; its raw body is quarantined."""

    status = 400


class UnsupportedMessage(PayloadError):
    """The payload is readable but of a kind this channel cannot map; quarantined."""

    status = 422


class ConfigError(GatewayError):
    """The settings are invalid. ``problems`` holds one "where: what" line per problem.

    Unlike pydantic's own error, it never repeats the offending values, which may be secrets.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the configuration: " + "; ".join(problems))
        self.problems = problems


class OutboxUnavailable(GatewayError):
    """The durable outbox could not take the record; the webhook is answered 503."""


class StateUnavailable(GatewayError):
    """The shared dedupe, identity or linking state (Redis) cannot be reached.

    A webhook is then answered 503 so the platform retries, rather than taking
    a message in without knowing whether it is a redelivery.
    """


class SinkUnavailable(GatewayError):
    """The stream sink did not acknowledge a batch; the publisher retries it."""
