"""One signed form POST to a marketplace router (TOP, JOS, Pinduoduo), its failures classified.

The three routers answer alike: JSON, errors in an ``error_response``
envelope, HTTP 429 and 5xx from their front ends. :func:`post_form` turns
what the transport and the front end say into the gateway's errors; the
envelope's codes, which differ per platform, go to the caller's ``classify``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from connectors._json import parse_json_object
from connectors.errors import ChannelError, ChannelRateLimited, ChannelUnavailable, PayloadError


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
