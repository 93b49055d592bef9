"""Weibo comments and @mentions of the brand account, polled: the ``weibo`` connector.

Open API v2 with the account's OAuth2 ``access_token``, sent as
``Authorization: OAuth2 <token>`` so it never appears in a URL (or in a log
line that quotes one). Three endpoints, each optional:

* ``comments/to_me``: comments on the brand's posts;
* ``comments/mentions``: comments anywhere that @mention the brand;
* ``statuses/mentions``: posts that @mention the brand.

Each endpoint has its own position in the cursor, one JSON object::

    {"comments/to_me": {"since_id": "4981234567890123"}, ...}

Weibo returns items newest first; ``since_id`` gives those with a larger id,
``max_id`` those with an id **smaller than or equal to** it. A poll asks for
the newest page after ``since_id``, then pages backwards with
``max_id = smallest id so far - 1`` until a page is empty or reaches the
stored ``since_id``, so a burst larger than one page loses nothing. The
largest id seen then becomes the next ``since_id``. A walk longer than
``max_pages`` stops early: the cursor then also holds where the walk is
(``max_id``) and the largest id it saw (``newest``), the poll says ``more``,
and the next poll continues the walk; ``since_id`` only moves once the walk
has reached it, so a crash mid-walk repeats pages and never skips one.

Ids exceed 2^53: they are read as exact integers or strings (``idstr``),
kept as strings and compared as integers.

Each comment or post becomes one :class:`RawEvent` keyed ``comment:<id>`` or
``status:<id>``; a comment seen by two endpoints (on our post *and*
@mentioning us) is the same key, so it becomes one record. Its ``body`` is a
one-item page in Weibo's own shape (``{"comments": [...]}``), which
:meth:`WeiboConnector.parse` reads back, and ``headers["endpoint"]`` says
which endpoint found it.

Weibo's errors come as ``{"error": ..., "error_code": ..., "request": ...}``
and are classified once, in :func:`weibo_error`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from connectors._json import parse_json_object
from connectors.base import ConnectorSettings
from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
    MalformedPayload,
    PayloadError,
)
from connectors.polling import PollingConnector, PollingSettings, PollResult, Rejected
from schemas import RawEvent
from service.clock import Clock

Endpoint = Literal["comments/to_me", "comments/mentions", "statuses/mentions"]
ENDPOINTS: tuple[Endpoint, ...] = ("comments/to_me", "comments/mentions", "statuses/mentions")
_ID = re.compile(r"[0-9]{1,20}", re.ASCII)

#: Weibo's error codes by what they mean for us (from Weibo's public error-code
#: table; the gateway's reference lists none, so unknown codes fall to "bad request").
AUTH_ERRORS = frozenset(
    {
        10006,  # source (appkey) missing
        10013,  # invalid weibo user
        10014,  # insufficient app permissions
        21301,  # auth failed
        21314,  # token used
        21315,  # token expired
        21316,  # token revoked
        21317,  # token rejected
        21319,  # accessor was revoked
        21327,  # expired token
        21332,  # invalid access token
    }
)
RATE_LIMIT_ERRORS = frozenset(
    {
        10022,  # IP requests out of rate limit
        10023,  # user requests out of rate limit
        10024,  # user requests for this API out of rate limit
    }
)
SYSTEM_ERRORS = frozenset(
    {
        10001,  # system error
        10002,  # service unavailable
        10003,  # remote service error
        10009,  # too many pending tasks, system is busy
        10010,  # job expired
        10011,  # RPC error
    }
)


class WeiboSettings(PollingSettings):
    access_token: SecretStr = Field(
        description="OAuth2 access_token of the brand account (it expires: renew and restart)."
    )
    api_base: str = Field(
        "https://api.weibo.com/2", description="Open API base URL (a local fake in tests)."
    )
    endpoints: list[Endpoint] = Field(
        default_factory=lambda: list(ENDPOINTS),
        min_length=1,
        description="What to poll: comments/to_me, comments/mentions, statuses/mentions.",
    )
    start_at: Literal["beginning", "end"] = Field(
        "beginning",
        description="Where an endpoint's very first poll starts: what Weibo still lists "
        "(about its last 1,000 items), or only what arrives from then on.",
    )
    count: int = Field(50, ge=1, le=200, description="Items per page (Weibo's count).")
    max_pages: int = Field(
        20,
        ge=1,
        le=1000,
        description="At most this many pages per endpoint per poll; a longer burst is "
        "finished by the next polls, at once.",
    )


def weibo_error(status: int, envelope: dict[str, Any] | None) -> ChannelError:
    """The exception for a failed call: by Weibo's ``error_code``, else by HTTP status."""
    code = envelope.get("error_code") if envelope else None
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool):
        text = envelope.get("error") if envelope else None
        what = f"Weibo error {code}" + (f" ({text[:80]})" if isinstance(text, str) else "")
        if code in AUTH_ERRORS:
            return ChannelAuthError(f"{what}: renew the access_token")
        if code in RATE_LIMIT_ERRORS:
            return ChannelRateLimited(what)
        if code in SYSTEM_ERRORS:
            return ChannelUnavailable(what)
        request = envelope.get("request") if envelope else None
        where = f" on {request[:80]}" if isinstance(request, str) else ""
        return ChannelError(f"{what}{where}: request refused (a bug in the gateway?)")
    if status in (401, 403):
        return ChannelAuthError(f"Weibo answered HTTP {status}")
    if status == 429:
        return ChannelRateLimited(f"Weibo answered HTTP {status}")
    if status >= 500:
        return ChannelUnavailable(f"Weibo answered HTTP {status}")
    return ChannelError(f"Weibo answered HTTP {status} without an error code")


def item_id(item: Any) -> int:
    """The item's id as an exact integer (``idstr`` first, then ``id``)."""
    if not isinstance(item, dict):
        raise MalformedPayload("a Weibo item is not an object", "invalid_field")
    for name in ("idstr", "id"):
        value = item.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and _ID.fullmatch(value):
            return int(value)
        if value is not None:
            raise MalformedPayload(f"{name} is not a Weibo id", "invalid_field")
    raise MalformedPayload("Weibo item has no id", "missing_field")


def _number(value: Decimal) -> float:
    return float(value)


def item_event(
    kind: str, item: dict[str, Any], received_at: datetime, endpoint: str | None = None
) -> RawEvent:
    """One comment or post as an event (pure); see the module docstring for its key and body."""
    ident = str(item_id(item))
    list_name = "comments" if kind == "comment" else "statuses"
    body = json.dumps({list_name: [item]}, ensure_ascii=False, default=_number).encode()
    return RawEvent(
        channel=WeiboConnector.channel,
        connector=WeiboConnector.name,
        source_key=f"{kind}:{ident}",
        received_at=received_at,
        payload={"kind": kind, "item": item},
        body=body,
        media_type="application/json",
        message_id=ident,
        headers={"endpoint": endpoint} if endpoint else {},
    )


def page_items(page: dict[str, Any]) -> tuple[str, list[Any]]:
    """The kind and items of one answer page (``comments`` or ``statuses``)."""
    for list_name, kind in (("comments", "comment"), ("statuses", "status")):
        if list_name in page:
            items = page[list_name]
            if not isinstance(items, list):
                raise MalformedPayload(f"{list_name} is not a list", "invalid_field")
            return kind, items
    raise MalformedPayload("Weibo page has neither comments nor statuses", "missing_field")


def _load(cursor: str | None) -> dict[str, dict[str, int]]:
    if not cursor:
        return {}
    try:
        raw = json.loads(cursor)
        return {
            endpoint: {
                k: int(v) for k, v in position.items() if k in ("since_id", "max_id", "newest")
            }
            for endpoint, position in raw.items()
        }
    except (ValueError, TypeError, AttributeError):
        raise ChannelError("the stored weibo cursor is not readable") from None


def _dump(positions: dict[str, dict[str, int]]) -> str:
    return json.dumps(
        {e: {k: str(v) for k, v in p.items()} for e, p in sorted(positions.items())},
        separators=(",", ":"),
    )


class WeiboConnector(PollingConnector):
    name = "weibo"
    channel = "weibo"
    settings_model = WeiboSettings
    settings: WeiboSettings

    def __init__(
        self, settings: WeiboSettings, clock: Clock, http: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(settings, clock, http)
        self._own_http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self.http is not None:
            return self.http
        if self._own_http is None:  # only when run outside the gateway (tests, scripts)
            self._own_http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        return self._own_http

    async def aclose(self) -> None:
        if self._own_http is not None:
            await self._own_http.aclose()
            self._own_http = None

    async def _page(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.settings.api_base.rstrip('/')}/{endpoint}.json"
        token = self.settings.access_token.get_secret_value()
        try:
            response = await self._client().get(
                url, params=params, headers={"Authorization": f"OAuth2 {token}"}
            )
        except httpx.TransportError as exc:
            raise ChannelUnavailable(f"Weibo {endpoint}: {type(exc).__name__}") from None
        try:
            page: dict[str, Any] | None = parse_json_object(response.content)
        except MalformedPayload:
            page = None
        if response.status_code != 200 or page is None or "error_code" in page:
            if response.status_code == 200 and page is None:
                raise ChannelUnavailable(f"Weibo {endpoint} answered something not JSON")
            error = weibo_error(response.status_code, page)
            if isinstance(error, ChannelRateLimited):
                error.retry_after = _retry_after(response.headers.get("retry-after"))
            raise error
        return page

    async def _walk(
        self, endpoint: str, position: dict[str, int], now: datetime
    ) -> tuple[list[RawEvent], list[Rejected], dict[str, int], bool]:
        """Page backwards from the newest (or from a walk in progress) to ``since_id``."""
        if not position and self.settings.start_at == "end":
            return [], [], await self._newest(endpoint), False
        since = position.get("since_id")
        max_id = position.get("max_id")
        newest = position.get("newest")
        events: list[RawEvent] = []
        rejected: list[Rejected] = []
        for _ in range(self.settings.max_pages):
            params = {"count": str(self.settings.count)}
            if since is not None:
                params["since_id"] = str(since)
            if max_id is not None:
                params["max_id"] = str(max_id)
            page = await self._page(endpoint, params)
            try:
                kind, items = page_items(page)
            except MalformedPayload as exc:
                raise ChannelError(
                    f"Weibo {endpoint} answered an unexpected shape: {exc}"
                ) from None
            ids: list[int] = []
            for item in items:
                try:
                    ident = item_id(item)
                except PayloadError as exc:
                    body = json.dumps(item, ensure_ascii=False, default=_number).encode()
                    rejected.append(Rejected(body, exc))
                    continue
                if (since is not None and ident <= since) or (
                    max_id is not None and ident > max_id
                ):
                    continue  # outside the window asked for: Weibo should not send it
                ids.append(ident)
                events.append(item_event(kind, item, now, endpoint))
            if not ids:
                break
            newest = max(ids) if newest is None else max(newest, *ids)
            max_id = min(ids) - 1
            if since is not None and max_id <= since:
                break
        else:
            # out of pages before reaching since_id: keep the walk's place for the next poll
            walking = {"max_id": max_id, "newest": newest}
            if since is not None:
                walking["since_id"] = since
            return events, rejected, {k: v for k, v in walking.items() if v is not None}, True
        done = newest if newest is not None else since
        return events, rejected, ({"since_id": done} if done is not None else {}), False

    async def _newest(self, endpoint: str) -> dict[str, int]:
        """The position just after the newest item (0, Weibo's "from the start", if none)."""
        _kind, items = page_items(await self._page(endpoint, {"count": "1"}))
        ids = []
        for item in items:
            try:
                ids.append(item_id(item))
            except PayloadError:
                continue
        return {"since_id": max(ids, default=0)}

    async def poll(self, cursor: str | None) -> PollResult:
        positions = _load(cursor)
        now = self.clock.now()
        events: list[RawEvent] = []
        rejected: list[Rejected] = []
        more = False
        seen: set[str] = set()
        for endpoint in self.settings.endpoints:
            found, bad, position, unfinished = await self._walk(
                endpoint, positions.get(endpoint, {}), now
            )
            # oldest first, as the customers wrote them; a comment on our post that
            # @mentions us is found by two endpoints and taken once
            for event in reversed(found):
                if event.source_key not in seen:
                    seen.add(event.source_key)
                    events.append(event)
            rejected.extend(bad)
            if position:
                positions[endpoint] = position
            more = more or unfinished
        return PollResult(events, _dump(positions) if positions else None, rejected, more=more)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        """Golden-file entry: the items of one answer page, in Weibo's shape."""
        kind, items = page_items(parse_json_object(body))
        return [item_event(kind, item, received_at) for item in items]


def _retry_after(value: str | None) -> float | None:
    if value and value.isascii() and value.isdigit():
        return float(value)
    return None
