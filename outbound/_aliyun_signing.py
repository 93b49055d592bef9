"""Aliyun (Alibaba Cloud) request signing: RPC signature v1 and ACS3-HMAC-SHA256.

Pure functions, pinned to Aliyun's published vectors (shared/reference/channels.md
§5.1, TV-ALI-1..4): no clock, no randomness, no I/O. The caller passes the nonce
and the timestamp, so a notifier draws them from its injected clock and tests
reproduce the published examples byte for byte.

* **RPC v1** (``SignatureMethod=HMAC-SHA1``, ``SignatureVersion=1.0``), which
  Dysmsapi ``SendSms`` 2017-05-25 accepts: :func:`rpc_v1_signature` signs a set of
  parameters, :func:`signed_rpc_query` adds the common parameters and the
  signature. Send the result as the query (GET) or the form body (POST) encoded
  with :func:`canonicalized_query`, whose encoding is exactly the one signed.
* **ACS3-HMAC-SHA256** (Aliyun's "V3" signature): :func:`acs3_authorization`.

Secrets are only ever HMAC keys here: no message, ``repr`` or exception carries one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

DYSMS_VERSION = "2017-05-25"

#: The parameters :func:`signed_rpc_query` owns; a caller's params may not set them.
RPC_COMMON_PARAMETERS = frozenset(
    {
        "AccessKeyId",
        "Format",
        "Signature",
        "SignatureMethod",
        "SignatureNonce",
        "SignatureVersion",
        "Timestamp",
        "Version",
    }
)

ACS3_ALGORITHM = "ACS3-HMAC-SHA256"


def percent_encode(value: str) -> str:
    """Aliyun's ``percentEncode``: RFC 3986 over UTF-8.

    Only ``A-Z a-z 0-9 - _ . ~`` stay as they are; everything else, ``/`` included,
    becomes ``%XX`` with upper-case hex, so a space is ``%20`` (never ``+``) and
    ``*`` is ``%2A``.
    """
    return quote(value, safe="~", encoding="utf-8", errors="strict")


def canonicalized_query(params: Mapping[str, str]) -> str:
    """``k=v`` pairs, both percent-encoded, sorted by encoded key, joined with ``&``."""
    pairs = sorted((percent_encode(key), percent_encode(value)) for key, value in params.items())
    return "&".join(f"{key}={value}" for key, value in pairs)


def timestamp_iso8601(moment: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ssZ`` in UTC; a naive datetime is refused, not guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rpc_v1_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&percentEncode(CanonicalizedQueryString)``; ``Signature`` is left out."""
    signed = {key: value for key, value in params.items() if key != "Signature"}
    return "&".join(
        (method.upper(), percent_encode("/"), percent_encode(canonicalized_query(signed)))
    )


def rpc_v1_signature(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    """Base64 of HMAC-SHA1 over :func:`rpc_v1_string_to_sign`, keyed ``secret + "&"``.

    ``params`` are all the request's parameters, common ones included. The result
    is the raw Base64 text; it is percent-encoded like any other value when sent.
    """
    key = f"{access_key_secret}&".encode()
    message = rpc_v1_string_to_sign(method, params).encode("utf-8")
    return base64.b64encode(hmac.new(key, message, hashlib.sha1).digest()).decode("ascii")


def signed_rpc_query(
    method: str,
    params: Mapping[str, str],
    access_key_id: str,
    access_key_secret: str,
    *,
    nonce: str,
    timestamp: datetime,
    version: str = DYSMS_VERSION,
    response_format: str = "JSON",
) -> dict[str, str]:
    """``params`` plus the RPC common parameters and their ``Signature``.

    ``params`` carry the API's own parameters and ``Action`` (and ``RegionId``);
    setting a common parameter there is a :class:`ValueError`, because the value
    signed would silently differ from the one the caller meant. ``nonce`` must be
    unique per request (Aliyun refuses a replayed one).
    """
    clashes = sorted(RPC_COMMON_PARAMETERS.intersection(params))
    if clashes:
        raise ValueError(f"params may not set common parameters: {', '.join(clashes)}")
    if not nonce:
        raise ValueError("nonce must not be empty")
    query = {
        **params,
        "AccessKeyId": access_key_id,
        "Format": response_format,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": nonce,
        "SignatureVersion": "1.0",
        "Timestamp": timestamp_iso8601(timestamp),
        "Version": version,
    }
    query["Signature"] = rpc_v1_signature(method, query, access_key_secret)
    return query


@dataclass(frozen=True)
class Acs3Request:
    """What to send for an ACS3-signed request: ``headers`` include ``Authorization``.

    ``query`` is the canonical query string that was signed; put it after ``?``
    verbatim. ``Host`` is not among the headers: the HTTP client derives it from the
    URL, which must be the host that was signed.
    """

    authorization: str
    headers: dict[str, str]
    query: str
    canonical_request: str = field(repr=False)


def acs3_canonical_request(
    method: str,
    path: str,
    query: Mapping[str, str],
    signed_headers: Mapping[str, str],
    hashed_payload: str,
) -> str:
    """``Method\\nURI\\nQuery\\nHeaders\\nSignedHeaders\\nHashedPayload`` (names lower-cased)."""
    headers = sorted((name.lower(), value.strip()) for name, value in signed_headers.items())
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in headers)
    names = ";".join(name for name, _ in headers)
    return "\n".join(
        (
            method.upper(),
            path,
            canonicalized_query(query),
            canonical_headers,
            names,
            hashed_payload,
        )
    )


def acs3_authorization(
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    payload: bytes,
    access_key_id: str,
    access_key_secret: str,
    *,
    action: str,
    version: str,
    timestamp: datetime,
    nonce: str,
    content_type: str | None = None,
) -> Acs3Request:
    """Sign one request with ACS3-HMAC-SHA256.

    Signed headers are Aliyun's rule: ``host``, every ``x-acs-*`` header and
    ``content-type`` when there is one. The key is the secret itself (no ``&``,
    unlike RPC v1); the signature is hex.
    """
    if not nonce:
        raise ValueError("nonce must not be empty")
    hashed_payload = hashlib.sha256(payload).hexdigest()
    sent = {
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": timestamp_iso8601(timestamp),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": hashed_payload,
    }
    if content_type is not None:
        sent["content-type"] = content_type
    signed = {"host": host, **sent}
    canonical = acs3_canonical_request(method, path, query, signed, hashed_payload)
    string_to_sign = f"{ACS3_ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(
        access_key_secret.encode(), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    names = ";".join(sorted(signed))
    authorization = (
        f"{ACS3_ALGORITHM} Credential={access_key_id},SignedHeaders={names},Signature={signature}"
    )
    return Acs3Request(
        authorization=authorization,
        headers={**sent, "Authorization": authorization},
        query=canonicalized_query(query),
        canonical_request=canonical,
    )
