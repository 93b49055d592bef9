"""One provider request over the shared HTTP client, with transport failures mapped.

What is safe to retry depends on whether the request may have reached the
provider. A refused or timed-out connection, an exhausted pool or a write
that timed out never delivered a whole request: :class:`ChannelUnavailable`.
A read timeout or a connection lost while waiting for the answer may have:
:class:`DeliveryInDoubt`, which the dispatcher never retries by itself.
HTTP 5xx and 429 are the provider's own answers: unavailable and rate limited.
"""

from __future__ import annotations

import httpx

from connectors.errors import ChannelRateLimited, ChannelUnavailable, DeliveryInDoubt


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


async def send_request(
    http: httpx.AsyncClient, request: httpx.Request, what: str
) -> httpx.Response:
    """Send ``request``; raise the mapped error for transport failures, 5xx and 429.

    ``what`` names the provider in messages (never the URL, whose query may hold a token).
    """
    try:
        response = await http.send(request)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteTimeout) as exc:
        raise ChannelUnavailable(f"{what}: {type(exc).__name__}") from None
    except (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError) as exc:
        raise DeliveryInDoubt(f"{what}: no answer ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise ChannelUnavailable(f"{what}: {type(exc).__name__}") from None
    if response.status_code == 429:
        raise ChannelRateLimited(f"{what}: HTTP 429", retry_after(response))
    if response.status_code >= 500:
        raise ChannelUnavailable(f"{what}: HTTP {response.status_code}")
    return response
