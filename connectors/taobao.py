"""Taobao/Tmall refunds received by the shop, polled from TOP: the ``taobao`` connector.

Each poll pages through ``taobao.refunds.receive.get`` (``use_has_next``,
``page_no`` from 1 until ``has_next`` is false) over a ``modified`` window,
every request signed by :func:`connectors._marketplace_signing.top_request_params`.

**Cursor** (JSON): ``{"modified": "2026-11-23 10:15:00", "seen": [source keys]}``.
``modified`` is the latest ``modified`` time seen, as TOP writes it (GMT+8,
``yyyy-MM-dd HH:mm:ss``). The next window starts ``overlap_seconds`` before it
and ends at the poll's own clock time, so a refund TOP indexes a little late, or
one modified in the same second as the last one taken, is still found.
``seen`` holds the source keys already published whose ``modified`` lies in
that overlap; they are not published again. So a refund modified exactly at
the boundary second is neither missed nor published twice. With no cursor the
first window starts ``initial_lookback_seconds`` back.

**Source key**: ``<refund_id>:<modified>:<status>:<cs_status>``. Every change
TOP reports (a new ``modified``: the seller refused, the buyer escalated to the
platform, ``cs_status`` 客服介入) is a NEW event with its own key and therefore
its own ``record_id``; repeating a poll gives the same keys. The normalizer
puts ``refund_id`` in ``source.thread_id`` and ``tid`` in ``product.order_id``,
so the linker ties the later states to the first.

**Errors** (:func:`classify_error`, TOP's ``error_response``: ``code``,
``msg``, ``sub_code``, ``sub_msg``, ``request_id``):

* call limits (code 7, ``accesscontrol.*``, ``*call-limited``) →
  :class:`ChannelRateLimited` (``retry_after`` from "ban will last for N more
  seconds" when given);
* the platform's own failures (code 10 / 15 / 520, ``isp.*``), HTTP 5xx,
  timeouts and unreadable answers → :class:`ChannelUnavailable`;
* the session or app refused (codes 11, 12, 25–29, 53, ``*session*``) →
  :class:`ChannelAuthError`: the seller must authorise again;
* anything else is a request we built wrong: logged with TOP's ``request_id``
  and raised as a plain :class:`ChannelError`, so the runner counts a failed
  poll, keeps the cursor and tries again at the next interval.

The reference (channels.md §4.1) gives the envelope's shape but no code table:
the codes above are TOP's commonly documented ones, UNCONFIRMED there. Also
UNCONFIRMED: whether ``start_modified``/``end_modified`` are inclusive (the
``seen`` set makes either safe), a maximum window length, the page order, and
whether ``cs_status`` is returned by the list call (asked for in ``fields``;
when absent it is ``-`` in the key). A refund modified while the pages are
walked may shift between pages; the overlap of the next poll picks it up.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import Field, SecretStr

from connectors._json import parse_json_object
from connectors._marketplace_signing import GMT8, TopSignMethod, top_request_params
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

log = logging.getLogger(__name__)

TOP_ROUTER = "https://gw.api.taobao.com/router/rest"
REFUNDS_METHOD = "taobao.refunds.receive.get"
REFUND_FIELDS = (
    "refund_id,tid,oid,title,buyer_nick,buyer_open_uid,seller_nick,total_fee,status,created,"
    "refund_fee,good_status,company_name,sid,payment,reason,desc,has_good_return,modified,"
    "order_status,refund_phase,dispute_type,end_time,cs_status,sku,num"
)
TOP_TIME = "%Y-%m-%d %H:%M:%S"
_SECOND = timedelta(seconds=1)
#: A window that needs more pages than this is refused (a platform that never ends paging).
MAX_PAGES = 1000

#: TOP ``code`` values by meaning (commonly documented; UNCONFIRMED in the reference).
RATE_LIMIT_CODES = frozenset({7})
UNAVAILABLE_CODES = frozenset({10, 15, 520})
AUTH_CODES = frozenset({11, 12, 25, 26, 27, 28, 29, 53})
_BAN_SECONDS = re.compile(r"(\d{1,6})\s*more\s*second", re.IGNORECASE)
_LABEL = re.compile(r"[A-Za-z0-9_.\-]{1,80}")


class TaobaoSettings(PollingSettings):
    app_key: str = Field(description="TOP app key (AppKey of the seller's application).")
    app_secret: SecretStr = Field(description="TOP app secret; signs every request.")
    session: SecretStr = Field(description="The seller's authorisation (session key).")
    api_base: str = Field(TOP_ROUTER, description="TOP router URL (tests point it at a fake).")
    sign_method: TopSignMethod = Field("md5", description="md5, hmac (HMAC-MD5) or hmac-sha256.")
    page_size: int = Field(100, ge=1, le=100, description="Refunds per page (TOP allows 100).")
    overlap_seconds: int = Field(
        120,
        ge=0,
        le=86_400,
        description="Each window starts this long before the last modified time taken, "
        "so refunds TOP indexes late are still found.",
    )
    initial_lookback_seconds: int = Field(
        86_400,
        ge=0,
        le=90 * 86_400,
        description="With no cursor yet, the first window starts this long ago.",
    )


def top_time(moment: datetime) -> str:
    return moment.astimezone(GMT8).strftime(TOP_TIME)


def parse_top_time(text: str) -> datetime:
    """``yyyy-MM-dd HH:mm:ss`` as TOP writes it, in GMT+8."""
    return datetime.strptime(text, TOP_TIME).replace(tzinfo=GMT8)


def _label(value: Any) -> str:
    text = str(value) if value is not None else ""
    return text if _LABEL.fullmatch(text) else "?"


def classify_error(error: Mapping[str, Any]) -> ChannelError:
    """The exception for one ``error_response``; messages carry codes, never secrets."""
    code_value = error.get("code")
    code = code_value if isinstance(code_value, int) and not isinstance(code_value, bool) else -1
    if isinstance(code_value, str) and code_value.isdigit():
        code = int(code_value)
    sub_code = str(error.get("sub_code") or "").lower()
    request_id = _label(error.get("request_id"))
    what = f"TOP error {code} {_label(error.get('sub_code'))} (request_id {request_id})"
    if (
        code in RATE_LIMIT_CODES
        or sub_code.startswith("accesscontrol.")
        or (sub_code.endswith("call-limited"))
    ):
        ban = _BAN_SECONDS.search(f"{error.get('sub_msg') or ''} {error.get('msg') or ''}")
        return ChannelRateLimited(what, float(ban.group(1)) if ban else None)
    if code in AUTH_CODES or "session" in sub_code:
        return ChannelAuthError(what)
    if code in UNAVAILABLE_CODES or sub_code.startswith("isp."):
        return ChannelUnavailable(what)
    log.error(
        "taobao request refused as malformed: code %s sub_code %s request_id %s; "
        "poll skipped until the next interval",
        code,
        _label(error.get("sub_code")),
        request_id,
    )
    return ChannelError(what + ": request refused, a bug in the gateway")


def _load(cursor: str | None) -> tuple[datetime | None, set[str]]:
    if not cursor:
        return None, set()
    try:
        raw = json.loads(cursor)
        return parse_top_time(str(raw["modified"])), {str(k) for k in raw.get("seen", [])}
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("taobao cursor unreadable; starting from the initial lookback")
        return None, set()


def refund_event(
    refund: Mapping[str, Any], received_at: datetime, connector: str = "taobao"
) -> RawEvent:
    """One refund (an item of ``refunds.refund``) as a RawEvent; see the module docstring."""
    refund_id = refund.get("refund_id")
    modified = refund.get("modified")
    if refund_id in (None, "") or not isinstance(modified, str):
        raise MalformedPayload("a refund has no refund_id or modified time", "missing_field")
    try:
        parse_top_time(modified)
    except ValueError:
        raise MalformedPayload(
            "a refund's modified time is not TOP's format", "invalid_field"
        ) from None
    status = _label(refund.get("status") or "-")
    cs_status = _label(refund.get("cs_status") if refund.get("cs_status") is not None else "-")
    key = f"{refund_id}:{modified}:{status}:{cs_status}"
    return RawEvent(
        channel="taobao",
        source_key=key,
        received_at=received_at,
        payload=dict(refund),
        body=json.dumps(refund, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8"),
        media_type="application/json",
        message_id=str(refund_id),
        connector=connector,
    )


class TaobaoConnector(PollingConnector):
    name = "taobao"
    channel = "taobao"
    settings_model = TaobaoSettings
    settings: TaobaoSettings

    async def _call(self, params: Mapping[str, str]) -> dict[str, Any]:
        if self.http is None:
            raise ChannelUnavailable("taobao has no HTTP client")
        s = self.settings
        request = top_request_params(
            REFUNDS_METHOD,
            params,
            app_key=s.app_key,
            secret=s.app_secret,
            session=s.session,
            timestamp=self.clock.now(),
            sign_method=s.sign_method,
        )
        try:
            response = await self.http.post(s.api_base, data=request, timeout=s.timeout_seconds)
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"TOP unreachable ({type(exc).__name__})") from None
        if response.status_code == 429:
            raise ChannelRateLimited("TOP answered HTTP 429")
        if response.status_code >= 500:
            raise ChannelUnavailable(f"TOP answered HTTP {response.status_code}")
        try:
            answer = parse_json_object(response.content)
        except PayloadError:
            raise ChannelUnavailable(
                f"TOP answered HTTP {response.status_code} without JSON"
            ) from None
        error = answer.get("error_response")
        if isinstance(error, Mapping):
            raise classify_error(error)
        body = answer.get("refunds_receive_get_response")
        if not isinstance(body, dict):
            raise ChannelUnavailable("TOP answer holds no refunds_receive_get_response")
        return body

    async def poll(self, cursor: str | None) -> PollResult:
        last, seen = _load(cursor)
        now = self.clock.now()
        s = self.settings
        if last is None:
            start = now - timedelta(seconds=s.initial_lookback_seconds)
        else:
            start = last - timedelta(seconds=s.overlap_seconds)
        events: list[RawEvent] = []
        rejected: list[Rejected] = []
        taken: dict[str, datetime] = {}
        page = 1
        while True:
            body = await self._call(
                {
                    "fields": REFUND_FIELDS,
                    "start_modified": top_time(start),
                    "end_modified": top_time(now),
                    "page_no": str(page),
                    "page_size": str(s.page_size),
                    "use_has_next": "true",
                }
            )
            listed = body.get("refunds")
            refunds = listed.get("refund") if isinstance(listed, dict) else None
            if not isinstance(refunds, list):
                refunds = []
            for refund in refunds:
                self._take(refund, now, seen, events, rejected, taken)
            if body.get("has_next") not in (True, "true") or not refunds:
                break
            if page >= MAX_PAGES:
                raise ChannelError(f"TOP still had more refunds after {MAX_PAGES} pages")
            page += 1
        if last is None and not taken:
            return PollResult(events, None, rejected)
        newest = max([*taken.values(), *([last] if last else [])])
        floor = newest - timedelta(seconds=s.overlap_seconds)
        keep = sorted(k for k in seen | set(taken) if (_key_time(k) or floor - _SECOND) >= floor)
        next_cursor = json.dumps({"modified": top_time(newest), "seen": keep}, ensure_ascii=False)
        return PollResult(events, next_cursor, rejected)

    def _take(
        self,
        refund: Any,
        now: datetime,
        seen: set[str],
        events: list[RawEvent],
        rejected: list[Rejected],
        taken: dict[str, datetime],
    ) -> None:
        body = json.dumps(refund, ensure_ascii=False, default=str).encode("utf-8")
        try:
            if not isinstance(refund, Mapping):
                raise MalformedPayload("a refund is not an object", "invalid_json")
            event = refund_event(refund, now, self.name)
        except PayloadError as exc:
            rejected.append(Rejected(body, exc))
            return
        if event.source_key in seen or event.source_key in taken:
            return
        taken[event.source_key] = parse_top_time(str(refund["modified"]))
        events.append(event)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        """Golden-file entry: one refund object as TOP lists it."""
        return [refund_event(parse_json_object(body), received_at)]


def _key_time(key: str) -> datetime | None:
    """The ``modified`` inside a source key (``id:yyyy-MM-dd HH:mm:ss:status:cs``)."""
    parts = key.split(":")
    if len(parts) < 6:
        return None
    try:
        return parse_top_time(":".join(parts[1:4]))
    except ValueError:
        return None
