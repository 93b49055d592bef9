"""One signed form POST to a marketplace router (TOP, JOS, Pinduoduo), its failures classified.

The three routers answer alike: JSON, errors in an ``error_response``
envelope, HTTP 429 and 5xx from their front ends. :func:`post_form` turns
what the transport and the front end say into the gateway's errors; the
envelope's codes, which differ per platform, go to the caller's ``classify``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from connectors._json import parse_json_object
from connectors.errors import ChannelError, ChannelRateLimited, ChannelUnavailable, PayloadError

#: What may be quoted from a platform's answer in a key, a log line or an error.
_LABEL = re.compile(r"[A-Za-z0-9_.\-]{1,80}")


def label(value: Any) -> str:
    """``value`` as a short safe token (a code, a status, a request id), else ``?``."""
    text = str(value) if value is not None else ""
    return text if _LABEL.fullmatch(text) else "?"


def whole_number(value: Any) -> int | None:
    """A number the platform sends as an integer or a digit string; None when absent or odd."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


async def post_form(
    http: httpx.AsyncClient | None,
    url: str,
    form: Mapping[str, str],
    *,
    timeout_seconds: float,
    platform: str,
    classify: Callable[[Mapping[str, Any]], ChannelError],
) -> dict[str, Any]:
    """The answer's JSON object; raises the classified error (messages name ``platform``)."""
    if http is None:
        raise ChannelUnavailable(f"{platform} has no HTTP client")
    try:
        response = await http.post(url, data=dict(form), timeout=timeout_seconds)
    except httpx.HTTPError as exc:
        raise ChannelUnavailable(f"{platform} unreachable ({type(exc).__name__})") from None
    if response.status_code == 429:
        raise ChannelRateLimited(f"{platform} answered HTTP 429")
    if response.status_code >= 500:
        raise ChannelUnavailable(f"{platform} answered HTTP {response.status_code}")
    try:
        answer = parse_json_object(response.content)
    except PayloadError:
        raise ChannelUnavailable(
            f"{platform} answered HTTP {response.status_code} without JSON"
        ) from None
    error = answer.get("error_response")
    if isinstance(error, Mapping):
        raise classify(error)
    return answer
