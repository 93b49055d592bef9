"""Signature and timestamp checks shared by signed webhook channels.

Everything here runs before a request is authenticated, on values a stranger
chose: each check is constant-time where it compares secrets, never raises
anything but :class:`InvalidSignature`, and accepts ASCII only, so a
non-ASCII header or a thousand-digit timestamp is a refusal, not a crash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from datetime import datetime

from connectors.errors import InvalidSignature

#: Unix seconds as platforms send them: ASCII digits only (no sign, no fraction, no
#: full-width digits, no ``_``), at most 10 digits (up to the year 2286).
_UNIX_SECONDS = re.compile(r"[0-9]{1,10}", re.ASCII)
_HEX = re.compile(r"[0-9a-fA-F]{1,128}", re.ASCII)


def hmac_sha256_hex(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _presented_hex(signature: str) -> bytes:
    presented = signature.strip().removeprefix("sha256=")
    if not _HEX.fullmatch(presented):
        raise InvalidSignature("signature is not hexadecimal", "bad_signature")
    return presented.lower().encode("ascii")


def verify_hmac_sha256(secrets: Iterable[bytes], message: bytes, signature: str) -> None:
    """Accept ``signature`` (hex, optionally ``sha256=``-prefixed) if any secret produced it.

    Several secrets allow a rotation: the current one and the previous one.
    The comparison is constant-time.
    """
    presented = _presented_hex(signature)
    for secret in secrets:
        expected = hmac_sha256_hex(secret, message).encode("ascii")
        if hmac.compare_digest(expected, presented):
            return
    raise InvalidSignature("signature does not match the request body", "bad_signature")


def sorted_sha1(*parts: str) -> str:
    """SHA-1 hex of the parts sorted and joined with nothing (WeChat's and Weibo's rule)."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def verify_sorted_sha1(parts: Iterable[str], signature: str) -> None:
    """Accept ``signature`` if it is :func:`sorted_sha1` of ``parts``; constant-time."""
    presented = _presented_hex(signature)
    if not hmac.compare_digest(sorted_sha1(*parts).encode("ascii"), presented):
        raise InvalidSignature("signature does not match", "bad_signature")


def check_timestamp(raw: str | None, now: datetime, max_skew_seconds: float) -> int:
    """Parse a Unix-seconds timestamp and refuse it outside ``now ± max_skew``.

    Missing: 401 ``missing_timestamp``; not plain digits: 403 ``bad_timestamp``;
    outside the window: 403 ``stale_timestamp``.
    """
    if not raw:
        raise InvalidSignature("timestamp is missing", "missing_timestamp", missing=True)
    if not _UNIX_SECONDS.fullmatch(raw):
        raise InvalidSignature("timestamp is not Unix seconds", "bad_timestamp")
    stamp = int(raw)
    if abs(now.timestamp() - stamp) > max_skew_seconds:
        raise InvalidSignature(
            f"timestamp is more than {max_skew_seconds:g}s away from our clock", "stale_timestamp"
        )
    return stamp


def verify_basic_auth(header: str | None, username: str, passwords: Iterable[str]) -> None:
    """Accept an ``Authorization: Basic`` header naming ``username`` and one of ``passwords``.

    For systems that push with HTTP Basic authentication (FreeSWITCH's
    mod_json_cdr, Tencent Cloud Contact Center). Missing: 401; wrong or
    unreadable: 403. Both parts are compared in constant time.
    """
    if not header:
        raise InvalidSignature("Basic credentials are required", "missing_signature", missing=True)
    scheme, _, encoded = header.strip().partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError
        decoded = base64.b64decode(encoded.strip().encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise InvalidSignature("Authorization is not Basic credentials", "bad_signature") from None
    given_user, _, given_password = decoded.partition(b":")
    user_ok = hmac.compare_digest(given_user, username.encode("utf-8"))
    password_ok = False
    for password in passwords:
        password_ok |= hmac.compare_digest(given_password, password.encode("utf-8"))
    if not (user_ok and password_ok):
        raise InvalidSignature("Basic credentials do not match", "bad_signature")


def verify_timestamped_hmac(
    headers: Mapping[str, str],
    body: bytes,
    *,
    timestamp_header: str,
    signature_header: str,
    secrets: Iterable[bytes],
    now: datetime,
    max_skew_seconds: float,
) -> None:
    """The gateway's own push scheme (stores, mail relays): a timestamp header within
    the window and ``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<body>``.

    Binding the timestamp into the signed text means a captured request cannot
    be replayed later with a fresh timestamp; within the window a replay is an
    exact repeat, which dedupe absorbs.
    """
    stamp = check_timestamp(headers.get(timestamp_header), now, max_skew_seconds)
    signature = headers.get(signature_header)
    if not signature:
        raise InvalidSignature(
            f"{signature_header} header is missing", "missing_signature", missing=True
        )
    verify_hmac_sha256(secrets, f"{stamp}.".encode() + body, signature)
