"""Request signing for the marketplaces and Weibo, and checks on their signed pushes.

Pure functions pinned to the vectors in shared/reference/channels.md (§3.2, §4.1–4.4):
no clock, no randomness, no I/O. The caller passes the timestamp (from its
injected clock), so tests reproduce the published examples byte for byte. Text
is hashed as UTF-8, so Chinese values sign the way the platforms' SDKs sign them.

* **Taobao/Tmall TOP** (TV-TB-1, TV-TB-2): :func:`top_sign`, :func:`top_request_params`.
* **JD JOS** ``routerjson`` (TV-JD-1): :func:`jd_sign`, :func:`jd_request_params`.
* **Pinduoduo** (TV-PDD-1): :func:`pdd_sign`, :func:`pdd_request_params`.
* **Douyin shop** (抖店): :func:`douyin_sign`, :func:`douyin_request_params`, and the push's
  ``event-sign``: :func:`douyin_event_sign`, :func:`verify_douyin_push`.
* **Weibo** fans-service push (TV-WB-1): :func:`weibo_signature`, :func:`verify_weibo_signature`.

What the platforms' public documents leave open, and how this module treats it:

* Empty values: TOP's official SDK neither sends nor signs a parameter whose value is
  empty; JOS and Pinduoduo do not say. The request builders here never send an empty
  value, so the signed set and the sent set are the same whatever the platform's rule,
  and :func:`signed_pairs` leaves empty values out for all three.
* JSON serialisation of ``360buy_param_json`` and ``param_json``: sorted keys, no
  whitespace, non-ASCII kept raw. JOS documents only "sorted keys" and Douyin's rule
  comes from its Go SDK; either way the string signed is exactly the string sent.
* Timestamps: JOS's examples show both ``yyyy-MM-dd HH:mm:ss`` and the newer
  ``yyyy-MM-dd HH:mm:ss.SSS+0800`` (TV-JD-1 uses the latter); Douyin's Go SDK sends Unix
  seconds where its parameter table says ``yyyy-MM-dd HH:mm:ss``. Both are a choice
  (``timestamp_style``), so a connector can make them settings.
* Douyin has no official vector: TV-DY-0 is the reference author's own computation
  from the SDK code, and the ``hmac-sha256`` push variant has no official confirmation.

Secrets arrive as :class:`~pydantic.SecretStr` and are only ever hash or HMAC input:
no error message carries one. The request parameters returned hold the session or
access token, because the platform needs it in the request; never log them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta, timezone
from typing import Literal, cast, get_args

from pydantic import SecretStr

from connectors._signing import sorted_sha1, verify_sorted_sha1
from connectors.errors import InvalidSignature

TopSignMethod = Literal["md5", "hmac", "hmac-sha256"]
DouyinSignMethod = Literal["md5", "hmac-sha256"]
JdTimestampStyle = Literal["millis", "seconds"]
DouyinTimestampStyle = Literal["unix", "gmt8"]

#: China Standard Time, the zone of every marketplace's wall-clock timestamps.
GMT8 = timezone(timedelta(hours=8), "GMT+8")

_HEX = re.compile(r"[0-9a-fA-F]{32,64}", re.ASCII)


def _gmt8(moment: datetime) -> datetime:
    """``moment`` in GMT+8; a naive datetime is refused, not guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    return moment.astimezone(GMT8)


def gmt8_timestamp(moment: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in GMT+8, whatever zone ``moment`` is in (TOP, JOS)."""
    return _gmt8(moment).strftime("%Y-%m-%d %H:%M:%S")


def signed_pairs(params: Mapping[str, str]) -> str:
    """``name1value1name2value2…`` sorted by name, ``sign`` and empty values left out.

    The sort is by code point, which for the ASCII parameter names is ASCII order.
    """
    return "".join(
        f"{name}{value}"
        for name, value in sorted(params.items())
        if name != "sign" and name and value
    )


def _md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def wrapped_md5(params: Mapping[str, str], secret: SecretStr) -> str:
    """``UPPER(MD5(secret + pairs + secret))``: TOP's ``md5``, JOS's and Pinduoduo's sign."""
    key = secret.get_secret_value()
    return _md5_upper(key + signed_pairs(params) + key)


def _unix_seconds(moment: datetime) -> str:
    return str(int(_gmt8(moment).timestamp()))


def _refuse_clashes(params: Mapping[str, str], owned: Collection[str]) -> dict[str, str]:
    """``params`` without empty values; setting a parameter the builder owns is a ValueError.

    The value signed would otherwise silently differ from the one the caller meant.
    """
    clashes = sorted(set(owned).intersection(params))
    if clashes:
        raise ValueError(f"params may not set public parameters: {', '.join(clashes)}")
    return {name: value for name, value in params.items() if value}


def _compact_json(value: Mapping[str, object]) -> str:
    """Keys sorted at every depth, no whitespace, non-ASCII raw, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


# -- Taobao / Tmall TOP -----------------------------------------------------------------

TOP_PUBLIC_PARAMETERS = frozenset(
    {"method", "app_key", "session", "timestamp", "format", "v", "sign_method", "sign"}
)


def top_sign(params: Mapping[str, str], secret: SecretStr, method: TopSignMethod = "md5") -> str:
    """TOP's ``sign``: upper-case hex over :func:`signed_pairs` of all the request's parameters.

    ``md5`` hashes ``secret + pairs + secret``; ``hmac`` is HMAC-MD5 and
    ``hmac-sha256`` HMAC-SHA256, both keyed with the secret over the pairs alone.
    """
    if method == "md5":
        return wrapped_md5(params, secret)
    joined = signed_pairs(params)
    key = secret.get_secret_value()
    if method == "hmac":
        digest = hashlib.md5
    elif method == "hmac-sha256":
        digest = hashlib.sha256
    else:
        raise ValueError(f"unknown TOP sign_method {method!r}")
    return hmac.new(key.encode("utf-8"), joined.encode("utf-8"), digest).hexdigest().upper()


def top_request_params(
    api_method: str,
    params: Mapping[str, str],
    *,
    app_key: str,
    secret: SecretStr,
    session: SecretStr | None,
    timestamp: datetime,
    sign_method: TopSignMethod = "md5",
) -> dict[str, str]:
    """Every parameter of one TOP call, ``sign`` included, JSON answers asked for.

    ``params`` are the API's own (``fields``, ``page_no``…); empty ones are dropped,
    as the official SDK does. ``session`` is the seller's authorisation, ``None`` for
    APIs that need none.
    """
    request = {
        **_refuse_clashes(params, TOP_PUBLIC_PARAMETERS),
        "method": api_method,
        "app_key": app_key,
        "timestamp": gmt8_timestamp(timestamp),
        "format": "json",
        "v": "2.0",
        "sign_method": sign_method,
    }
    if session is not None:
        request["session"] = session.get_secret_value()
    request["sign"] = top_sign(request, secret, sign_method)
    return request


def verify_top_sign(params: Mapping[str, str], secret: SecretStr) -> None:
    """Check a TOP request's ``sign`` the way the gateway does (for fake TOP servers)."""
    method = params.get("sign_method", "md5")
    if method not in get_args(TopSignMethod):
        raise InvalidSignature("unknown sign_method", "bad_signature")
    _require_match(top_sign(params, secret, cast(TopSignMethod, method)), params.get("sign"))


# -- JD JOS routerjson ------------------------------------------------------------------


def jd_param_json(business: Mapping[str, object]) -> str:
    """``360buy_param_json``: the API's parameters as compact JSON with sorted keys."""
    return _compact_json(business)


def jd_timestamp(moment: datetime, style: JdTimestampStyle = "millis") -> str:
    """``2021-05-07 09:20:39.683+0800`` (``millis``, TV-JD-1's form) or ``… 09:20:39``."""
    local = _gmt8(moment)
    if style == "seconds":
        return local.strftime("%Y-%m-%d %H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}+0800"


def jd_sign(params: Mapping[str, str], secret: SecretStr) -> str:
    """``UPPER(MD5(secret + pairs + secret))`` over every parameter sent but ``sign``.

    That includes ``access_token`` and ``360buy_param_json``, which sorts first.
    """
    return wrapped_md5(params, secret)


def jd_request_params(
    api_method: str,
    business: Mapping[str, object],
    *,
    app_key: str,
    secret: SecretStr,
    access_token: SecretStr | None,
    timestamp: datetime,
    timestamp_style: JdTimestampStyle = "millis",
) -> dict[str, str]:
    """Every parameter of one ``routerjson`` call, ``sign`` included."""
    request = {
        "360buy_param_json": jd_param_json(business),
        "app_key": app_key,
        "method": api_method,
        "timestamp": jd_timestamp(timestamp, timestamp_style),
        "v": "2.0",
    }
    if access_token is not None:
        request["access_token"] = access_token.get_secret_value()
    request["sign"] = jd_sign(request, secret)
    return request


# -- Pinduoduo --------------------------------------------------------------------------

PDD_PUBLIC_PARAMETERS = frozenset(
    {"type", "client_id", "access_token", "timestamp", "data_type", "sign"}
)


def pdd_sign(params: Mapping[str, str], client_secret: SecretStr) -> str:
    """``UPPER(MD5(client_secret + pairs + client_secret))``; there is no ``sign_method``."""
    return wrapped_md5(params, client_secret)


def pdd_request_params(
    api_type: str,
    params: Mapping[str, str],
    *,
    client_id: str,
    client_secret: SecretStr,
    access_token: SecretStr | None,
    timestamp: datetime,
    data_type: Literal["JSON", "XML"] = "JSON",
) -> dict[str, str]:
    """Every parameter of one Pinduoduo call, ``sign`` included; the timestamp in Unix seconds.

    Nested values must already be JSON strings in ``params``: how the official SDK
    serialises them is undocumented, and what is signed is what is sent either way.
    """
    request = {
        **_refuse_clashes(params, PDD_PUBLIC_PARAMETERS),
        "type": api_type,
        "client_id": client_id,
        "timestamp": _unix_seconds(timestamp),
        "data_type": data_type,
    }
    if access_token is not None:
        request["access_token"] = access_token.get_secret_value()
    request["sign"] = pdd_sign(request, client_secret)
    return request


# -- Douyin shop (抖店) -------------------------------------------------------------------


def douyin_param_json(business: Mapping[str, object]) -> str:
    """``param_json``: sorted keys at every depth, no whitespace, non-ASCII raw (Go SDK)."""
    return _compact_json(business)


def _douyin_digest(key: bytes, message: bytes, method: DouyinSignMethod) -> str:
    if method == "md5":
        return hashlib.md5(message).hexdigest()
    if method == "hmac-sha256":
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    raise ValueError(f"unknown Douyin sign_method {method!r}")


def douyin_sign(
    *,
    app_key: str,
    app_secret: SecretStr,
    method: str,
    param_json: str,
    timestamp: str,
    sign_method: DouyinSignMethod = "hmac-sha256",
) -> str:
    """Lower-case hex over ``secret + "app_key…method…param_json…timestamp…v2" + secret``.

    ``hmac-sha256`` keys the HMAC with the secret (and still wraps the text in it);
    ``md5`` is the legacy mode. The access token is not signed. Our reading of the
    official Go SDK, pinned by TV-DY-0, which is self-computed and not official.
    """
    key = app_secret.get_secret_value()
    pattern = f"app_key{app_key}method{method}param_json{param_json}timestamp{timestamp}v2"
    return _douyin_digest(key.encode("utf-8"), (key + pattern + key).encode("utf-8"), sign_method)


def douyin_request_params(
    method: str,
    business: Mapping[str, object],
    *,
    app_key: str,
    app_secret: SecretStr,
    access_token: SecretStr | None,
    timestamp: datetime,
    timestamp_style: DouyinTimestampStyle = "unix",
    sign_method: DouyinSignMethod = "hmac-sha256",
) -> dict[str, str]:
    """The query of one call; send ``param_json`` as the JSON body too.

    The path is ``/`` + ``method`` with dots as slashes (``/order/searchList``).
    """
    param_json = douyin_param_json(business)
    stamp = gmt8_timestamp(timestamp) if timestamp_style == "gmt8" else _unix_seconds(timestamp)
    query = {
        "app_key": app_key,
        "method": method,
        "param_json": param_json,
        "timestamp": stamp,
        "v": "2",
        "sign_method": sign_method,
    }
    if access_token is not None:
        query["access_token"] = access_token.get_secret_value()
    query["sign"] = douyin_sign(
        app_key=app_key,
        app_secret=app_secret,
        method=method,
        param_json=param_json,
        timestamp=stamp,
        sign_method=sign_method,
    )
    return query


def douyin_event_sign(
    app_key: str, app_secret: SecretStr, body: bytes, sign_method: DouyinSignMethod = "md5"
) -> str:
    """A push's ``event-sign``: lower-case hex of MD5 over ``app_key + body + app_secret``.

    ``body`` is the raw bytes received. ``hmac-sha256`` (sent as ``sign-method``) is
    HMAC-SHA256 keyed with the secret over the same text: implementations use it, the
    platform's documents do not confirm it.
    """
    key = app_secret.get_secret_value().encode("utf-8")
    return _douyin_digest(key, app_key.encode("utf-8") + body + key, sign_method)


def verify_douyin_push(
    body: bytes,
    *,
    app_id: str | None,
    event_sign: str | None,
    sign_method: str | None,
    app_key: str,
    app_secret: SecretStr,
    accepted_methods: Collection[DouyinSignMethod] = ("md5", "hmac-sha256"),
) -> None:
    """Accept a push whose ``app-id`` is ours and whose ``event-sign`` matches; constant-time.

    ``sign_method`` is the ``sign-method`` header: absent means ``md5``. A missing
    header answers 401, anything wrong 403 (:class:`InvalidSignature`).
    """
    if not app_id or not event_sign:
        raise InvalidSignature("app-id or event-sign is missing", "missing_signature", missing=True)
    if not hmac.compare_digest(app_id.encode("utf-8"), app_key.encode("utf-8")):
        raise InvalidSignature("app-id is not this app", "app_id_mismatch")
    method = (sign_method or "md5").strip().lower()
    if method not in accepted_methods:
        raise InvalidSignature("sign-method is not accepted", "bad_signature")
    expected = douyin_event_sign(app_key, app_secret, body, cast(DouyinSignMethod, method))
    _require_match(expected, event_sign)


# -- Weibo fans-service push --------------------------------------------------------------


def weibo_signature(app_secret: SecretStr, timestamp: str, nonce: str) -> str:
    """SHA-1 hex of the sorted, concatenated ``[app_secret, timestamp, nonce]`` (ms timestamps)."""
    return sorted_sha1(app_secret.get_secret_value(), timestamp, nonce)


def verify_weibo_signature(
    app_secret: SecretStr, timestamp: str, nonce: str, signature: str
) -> None:
    """Accept ``signature`` if it is :func:`weibo_signature` of the rest; constant-time."""
    verify_sorted_sha1((app_secret.get_secret_value(), timestamp, nonce), signature)


# -- comparison ---------------------------------------------------------------------------


def _require_match(expected: str, presented: str | None) -> None:
    """Compare hex case-insensitively in constant time; never say what was expected."""
    if not presented:
        raise InvalidSignature("signature is missing", "missing_signature", missing=True)
    given = presented.strip()
    if not _HEX.fullmatch(given):
        raise InvalidSignature("signature is not hexadecimal", "bad_signature")
    if not hmac.compare_digest(expected.lower().encode("ascii"), given.lower().encode("ascii")):
        raise InvalidSignature("signature does not match", "bad_signature")
