"""Tencent Cloud API 3.0 request signing, TC3-HMAC-SHA256.

Pure functions pinned to Tencent's published vectors (shared/reference/channels.md
§5.2, TV-TC-1..3): no clock and no I/O; the caller passes the Unix timestamp.

The protocol, in the order :func:`tc3_sign` runs it:

1. canonical request: ``METHOD\\n/\\nQUERY\\nHEADERS\\nSIGNED_HEADERS\\nhex(sha256(payload))``,
   signed headers lower-cased (names and values), trimmed and sorted;
2. string to sign: ``TC3-HMAC-SHA256\\n<timestamp>\\n<date>/<service>/tc3_request\\n
   hex(sha256(canonical request))``, where ``<date>`` is the **UTC** date of the
   timestamp;
3. signing key: ``HMAC("TC3" + SecretKey, date)`` → ``HMAC(·, service)`` →
   ``HMAC(·, "tc3_request")``; signature: hex ``HMAC(key, string to sign)``.

The ``host`` signed is the one passed in, which must be the host actually called
(a local fake in tests), not a constant. Secrets are only HMAC keys here: no
message, ``repr`` or exception carries one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "TC3-HMAC-SHA256"
SMS_SERVICE = "sms"
SMS_HOST = "sms.tencentcloudapi.com"
SMS_VERSION = "2021-01-11"

#: What Tencent's SDKs sign; the current doc's example adds ``x-tc-action``.
DEFAULT_SIGNED_HEADERS = ("content-type", "host")


def _hmac_sha256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_date(timestamp: int) -> str:
    """``YYYY-MM-DD`` of the timestamp in UTC (1551113065 → 2019-02-25, not Beijing's 26th)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def credential_scope(timestamp: int, service: str) -> str:
    return f"{utc_date(timestamp)}/{service}/tc3_request"


def canonical_query_string(query: Mapping[str, str]) -> str:
    """RFC 3986-encoded ``k=v`` pairs in the order given (send this string verbatim)."""
    return "&".join(
        f"{quote(key, safe='~')}={quote(value, safe='~')}" for key, value in query.items()
    )


def canonical_request(
    method: str,
    path: str,
    query_string: str,
    signed_headers: Mapping[str, str],
    payload: bytes,
) -> str:
    """The canonical request; header names and values lower-cased and trimmed, names sorted."""
    headers = sorted(
        (name.lower().strip(), value.lower().strip()) for name, value in signed_headers.items()
    )
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in headers)
    names = ";".join(name for name, _ in headers)
    return "\n".join(
        (method.upper(), path, query_string, canonical_headers, names, _sha256_hex(payload))
    )


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    return "\n".join(
        (
            ALGORITHM,
            str(timestamp),
            credential_scope(timestamp, service),
            _sha256_hex(canonical.encode("utf-8")),
        )
    )


def signing_key_from_date_key(date_key: bytes, service: str) -> bytes:
    """``SecretSigning`` from ``SecretDate``: the last two steps of the key chain."""
    return _hmac_sha256(_hmac_sha256(date_key, service), "tc3_request")


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    """``SecretSigning``: ``HMAC("TC3"+key, date)`` → ``service`` → ``"tc3_request"``."""
    date_key = _hmac_sha256(f"TC3{secret_key}".encode(), date)
    return signing_key_from_date_key(date_key, service)


def signature(key: bytes, to_sign: str) -> str:
    """Hex HMAC-SHA256 of the string to sign under the derived signing key."""
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Tc3Request:
    """A signed request: send ``headers`` (``Authorization`` included) and ``query_string``.

    ``Host`` is not among the headers: the HTTP client derives it from the URL,
    which must name the host that was signed.
    """

    authorization: str
    headers: dict[str, str]
    query_string: str
    canonical_request: str = field(repr=False)
    string_to_sign: str = field(repr=False)


def tc3_sign(
    method: str,
    host: str,
    payload: bytes,
    *,
    service: str,
    action: str,
    version: str,
    timestamp: int,
    secret_id: str,
    secret_key: str,
    content_type: str = "application/json; charset=utf-8",
    region: str | None = None,
    path: str = "/",
    query: Mapping[str, str] | None = None,
    signed_header_names: Iterable[str] = DEFAULT_SIGNED_HEADERS,
) -> Tc3Request:
    """Sign one API 3.0 request with TC3-HMAC-SHA256.

    Every header signed is taken from the headers sent (plus ``host``), so the two
    cannot disagree; ``signed_header_names`` picks which ones, ``content-type``
    and ``host`` by default. A name that is not sent is a :class:`ValueError`.
    """
    sent = {
        "Content-Type": content_type,
        "X-TC-Action": action,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": version,
    }
    if region is not None:
        sent["X-TC-Region"] = region
    available = {"host": host, **{name.lower(): value for name, value in sent.items()}}
    names = sorted({name.lower() for name in signed_header_names})
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"cannot sign headers that are not sent: {', '.join(unknown)}")
    query_string = canonical_query_string(query or {})
    canonical = canonical_request(
        method, path, query_string, {name: available[name] for name in names}, payload
    )
    to_sign = string_to_sign(timestamp, service, canonical)
    key = signing_key(secret_key, utc_date(timestamp), service)
    authorization = (
        f"{ALGORITHM} Credential={secret_id}/{credential_scope(timestamp, service)}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature(key, to_sign)}"
    )
    return Tc3Request(
        authorization=authorization,
        headers={**sent, "Authorization": authorization},
        query_string=query_string,
        canonical_request=canonical,
        string_to_sign=to_sign,
    )
