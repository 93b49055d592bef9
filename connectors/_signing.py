"""Signature and timestamp checks shared by HMAC-signed webhook channels."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime

from connectors.errors import InvalidSignature


def hmac_sha256_hex(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_hmac_sha256(secrets: Iterable[bytes], message: bytes, signature: str) -> None:
    """Accept ``signature`` (hex, optionally ``sha256=``-prefixed) if any secret produced it.

    Several secrets allow a rotation: the current one and the previous one.
    The comparison is constant-time.
    """
    presented = signature.strip().removeprefix("sha256=").lower()
    for secret in secrets:
        if hmac.compare_digest(hmac_sha256_hex(secret, message), presented):
            return
    raise InvalidSignature("signature does not match the request body", "bad_signature")


def check_timestamp(raw: str | None, now: datetime, max_skew_seconds: float) -> int:
    """Parse a Unix-seconds timestamp header and refuse it outside ``now ± max_skew``."""
    if not raw:
        raise InvalidSignature("timestamp header is missing", "missing_timestamp", missing=True)
    try:
        stamp = int(raw.strip())
    except ValueError:
        raise InvalidSignature("timestamp header is not Unix seconds", "bad_timestamp") from None
    if abs(now.timestamp() - stamp) > max_skew_seconds:
        raise InvalidSignature(
            f"timestamp is more than {max_skew_seconds:g}s away from our clock", "stale_timestamp"
        )
    return stamp
