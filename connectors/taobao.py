"""Taobao/Tmall refunds and ratings received by the shop, polled from TOP: the ``taobao`` connector.

Each poll walks two streams, every request signed by
:func:`connectors._marketplace_signing.top_request_params`:

* **refunds**: ``taobao.refunds.receive.get`` (``page_no`` from 1 until
  ``total_results`` are read, see below) over a ``modified`` window. When a listed
  refund carries neither the buyer's ``reason`` nor ``desc`` (the list call may
  leave them out), one more signed call, ``taobao.refund.get`` for that refund,
  fetches its detail (``reason``, ``desc``, ``cs_status``, ``dispute_type``,
  ``refund_phase``…); the detail fills only the fields the listing left absent
  or blank, and is asked for only for refunds not published before.
* **ratings** (setting ``ratings``, default on): ``taobao.traderates.get`` with
  ``rate_type=get``, ``role=buyer`` and ``use_has_next``, once with
  ``result=bad`` and once with ``result=neutral``, over a ``created`` window
  (``start_date``/``end_date``). TOP keeps only the last 180 days of ratings
  and serves at most 200 pages, so a window never starts earlier than that
  and a window holding more than 200 pages fails the poll.

A poll succeeds or fails as a whole: any error on any call (a list page, a
refund's detail, a ratings page) raises, nothing of the poll is published and
the cursor stays where it was, so the next poll repeats it and nothing is lost.
(An app without permission for ``taobao.traderates.get`` therefore stops the
refunds too: turn ``ratings`` off.)

**Cursor** (JSON): ``{"refunds": {"modified": "2026-11-23 10:15:00", "seen":
[keys]}, "rates": {"created": "…", "seen": [keys]}}``; a stream that has
found nothing yet is left out. A cursor of the earlier, refunds-only format
``{"modified": …, "seen": […]}`` is read as the refunds part. Each time is
the latest one taken, as TOP writes it (GMT+8, ``yyyy-MM-dd HH:mm:ss``). The
next window starts ``overlap_seconds`` before it and ends at the poll's own
clock time, so an item TOP indexes a little late, or one of the same second as
the last one taken, is still found. ``seen`` holds the keys already published
whose time lies in that overlap; they are not published again. So an item at
the boundary second is neither missed nor published twice. With no position
yet a stream's first window starts ``initial_lookback_seconds`` back. With
``ratings`` off the ``rates`` part is kept as it was.

**Source keys**: a refund is ``<refund_id>:<modified>:<status>:<cs_status>``,
taken from the refund as listed (before any detail is merged). Every change TOP
reports (a new ``modified``: the seller refused, the buyer escalated to the
platform, ``cs_status`` 客服介入) is a NEW event with its own key and therefore
its own ``record_id``; repeating a poll gives the same keys. The normalizer
puts ``refund_id`` in ``source.thread_id`` and ``tid`` in ``product.order_id``,
so the linker ties the later states to the first. A rating is
``rate:<tid>:<oid>:<created>``: a buyer writes it once, and the seller's
``reply`` added later is not a new complaint. The refund event's payload is
the refund object itself; a rating's is ``{"kind": "rate", "rate": {…}}``.
Good ratings are not asked for; one TOP returns anyway is passed on and the
normalizer counts it as not a complaint.

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
UNCONFIRMED: whether the window bounds are inclusive (the ``seen`` sets make
either safe), that ``start_date``/``end_date`` take ``yyyy-MM-dd HH:mm:ss``, a
maximum window length, the page order, whether ``cs_status``, ``reason`` and
``desc`` are returned by the list call (asked for in ``fields``; a missing
``cs_status`` is ``-`` in the key), and whether a rating the buyer later changes
keeps its ``created``. An item changed again while the pages are walked leaves
the window, and those listed after it move up a page, so one could slip past.
Refunds are therefore paged by ``total_results`` (``use_has_next=false``), not
by ``has_next``: when the count drops during a walk, the window is walked again
from page 1. Ratings are written once and never move, so they are paged by
``has_next``. A refund that leaves the window while another arrives late in the
same walk keeps the count unchanged and goes unnoticed; the next poll's overlap
catches it only if it is recent.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, SecretStr

from connectors._json import parse_json_object
from connectors._marketplace_signing import GMT8, TopSignMethod, top_request_params
from connectors._platform_api import label, post_form, whole_number
from connectors._window import WindowPosition as Position
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
REFUND_METHOD = "taobao.refund.get"
RATES_METHOD = "taobao.traderates.get"
#: The answer's top-level member for each method.
RESPONSES = {
    REFUNDS_METHOD: "refunds_receive_get_response",
    REFUND_METHOD: "refund_get_response",
    RATES_METHOD: "traderates_get_response",
}
REFUND_FIELDS = (
    "refund_id,tid,oid,title,buyer_nick,buyer_open_uid,seller_nick,total_fee,status,created,"
    "refund_fee,good_status,company_name,sid,payment,reason,desc,has_good_return,modified,"
    "order_status,refund_phase,dispute_type,end_time,cs_status,sku,num"
)
#: What ``taobao.refund.get`` is asked for, and what of it may fill gaps in a listed refund.
DETAIL_FIELDS = (
    "refund_id,reason,desc,cs_status,dispute_type,refund_phase,good_status,has_good_return"
)
RATE_FIELDS = "tid,oid,role,nick,result,created,item_title,item_price,content,reply,num_iid"
#: The ratings that are complaints, asked for one ``result`` at a time.
COMPLAINT_RESULTS = ("bad", "neutral")
#: TOP serves ratings of the last 180 days only.
RATES_HISTORY = timedelta(days=180)
TOP_TIME = "%Y-%m-%d %H:%M:%S"
#: A refund window that needs more pages than this is refused (a platform that never ends paging).
MAX_PAGES = 1000
#: TOP's own limit on ``page_no`` for ratings.
MAX_RATE_PAGES = 200
#: How often a window is walked again when its ``total_results`` dropped during the walk.
REWALKS = 3

#: TOP ``code`` values by meaning (commonly documented; UNCONFIRMED in the reference).
RATE_LIMIT_CODES = frozenset({7})
UNAVAILABLE_CODES = frozenset({10, 15, 520})
AUTH_CODES = frozenset({11, 12, 25, 26, 27, 28, 29, 53})
_BAN_SECONDS = re.compile(r"(\d{1,6})\s*more\s*second", re.IGNORECASE)


class TaobaoSettings(PollingSettings):
    app_key: str = Field(description="TOP app key (AppKey of the seller's application).")
    app_secret: SecretStr = Field(description="TOP app secret; signs every request.")
    session: SecretStr = Field(description="The seller's authorisation (session key).")
    api_base: str = Field(TOP_ROUTER, description="TOP router URL (tests point it at a fake).")
    sign_method: TopSignMethod = Field("md5", description="md5, hmac (HMAC-MD5) or hmac-sha256.")
    page_size: int = Field(100, ge=1, le=100, description="Refunds per page (TOP allows 100).")
    ratings: bool = Field(
        True,
        description="Also poll bad and neutral ratings (taobao.traderates.get) as complaints; "
        "turn off when the app has no permission for ratings.",
    )
    rates_page_size: int = Field(
        150, ge=1, le=150, description="Ratings per page (TOP allows 150, and 200 pages)."
    )
    overlap_seconds: int = Field(
        120,
        ge=0,
        le=86_400,
        description="Each window starts this long before the last time taken "
        "(refund modified, rating created), so items TOP indexes late are still found.",
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


def classify_error(error: Mapping[str, Any]) -> ChannelError:
    """The exception for one ``error_response``; messages carry codes, never secrets."""
    code_value = error.get("code")
    code = code_value if isinstance(code_value, int) and not isinstance(code_value, bool) else -1
    if isinstance(code_value, str) and code_value.isdigit():
        code = int(code_value)
    sub_code = str(error.get("sub_code") or "").lower()
    request_id = label(error.get("request_id"))
    what = f"TOP error {code} {label(error.get('sub_code'))} (request_id {request_id})"
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
        label(error.get("sub_code")),
        request_id,
    )
    return ChannelError(what + ": request refused, a bug in the gateway")


# -- the cursor -------------------------------------------------------------------------


def _key_time(key: str) -> datetime | None:
    """The time inside a source key: ``rate:tid:oid:<created>`` or ``id:<modified>:status:cs``."""
    try:
        if key.startswith("rate:"):
            return parse_top_time(key[-len("yyyy-MM-dd HH:mm:ss") :])
        parts = key.split(":")
        return parse_top_time(":".join(parts[1:4])) if len(parts) >= 6 else None
    except ValueError:
        return None


def load_cursor(cursor: str | None) -> tuple[Position, Position]:
    """The refunds and ratings positions; the refunds-only format is the refunds part."""
    if not cursor:
        return Position(), Position()
    try:
        raw = json.loads(cursor)
        if "modified" in raw:
            return Position.load(raw, "modified", parse_top_time), Position()
        return Position.load(raw.get("refunds"), "modified", parse_top_time), Position.load(
            raw.get("rates"), "created", parse_top_time
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("taobao cursor unreadable; starting from the initial lookback")
        return Position(), Position()


def dump_cursor(refunds: Position, rates: Position) -> str | None:
    parts = {
        "refunds": refunds.dump("modified", top_time),
        "rates": rates.dump("created", top_time),
    }
    kept = {name: part for name, part in parts.items() if part is not None}
    return json.dumps(kept, ensure_ascii=False) if kept else None


# -- events -----------------------------------------------------------------------------


def _required_time(item: Mapping[str, Any], name: str, what: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise MalformedPayload(f"a {what} has no {name} time", "missing_field")
    try:
        parse_top_time(value)
    except ValueError:
        raise MalformedPayload(
            f"a {what}'s {name} time is not TOP's format", "invalid_field"
        ) from None
    return value


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def refund_event(
    refund: Mapping[str, Any],
    received_at: datetime,
    connector: str = "taobao",
    detail: Mapping[str, Any] | None = None,
) -> RawEvent:
    """One refund (an item of ``refunds.refund``) as a RawEvent; see the module docstring.

    ``detail`` (``taobao.refund.get``'s refund) fills the fields of
    :data:`DETAIL_FIELDS` the listing left absent or blank; the key is the listing's.
    """
    refund_id = refund.get("refund_id")
    if refund_id in (None, ""):
        raise MalformedPayload("a refund has no refund_id or modified time", "missing_field")
    modified = _required_time(refund, "modified", "refund")
    status = label(refund.get("status") or "-")
    cs_status = label(refund.get("cs_status") if refund.get("cs_status") is not None else "-")
    key = f"{refund_id}:{modified}:{status}:{cs_status}"
    payload = dict(refund)
    for name in DETAIL_FIELDS.split(","):
        value = (detail or {}).get(name)
        if _blank(payload.get(name)) and not _blank(value):
            payload[name] = value
    return RawEvent(
        channel="taobao",
        source_key=key,
        received_at=received_at,
        payload=payload,
        body=json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8"),
        media_type="application/json",
        message_id=str(refund_id),
        connector=connector,
    )


def rate_event(
    rate: Mapping[str, Any], received_at: datetime, connector: str = "taobao"
) -> RawEvent:
    """One rating (an item of ``trade_rates.trade_rate``) as a RawEvent; see the module doc."""
    tid = rate.get("tid")
    if tid in (None, "") or label(tid) == "?":
        raise MalformedPayload("a rating has no tid", "missing_field")
    created = _required_time(rate, "created", "rating")
    oid = rate.get("oid")
    thread = f"rate:{tid}:{label(oid) if oid not in (None, '') else '-'}"
    return RawEvent(
        channel="taobao",
        source_key=f"{thread}:{created}",
        received_at=received_at,
        payload={"kind": "rate", "rate": dict(rate)},
        body=json.dumps(rate, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8"),
        media_type="application/json",
        message_id=thread,
        connector=connector,
    )


def _listed(body: Mapping[str, Any], outer: str, inner: str) -> list[Any]:
    wrapper = body.get(outer)
    items = wrapper.get(inner) if isinstance(wrapper, dict) else None
    return items if isinstance(items, list) else []


# -- the connector ----------------------------------------------------------------------


class TaobaoConnector(PollingConnector):
    name = "taobao"
    channel = "taobao"
    settings_model = TaobaoSettings
    settings: TaobaoSettings

    async def _call(self, method: str, params: Mapping[str, str]) -> dict[str, Any]:
        s = self.settings
        request = top_request_params(
            method,
            params,
            app_key=s.app_key,
            secret=s.app_secret,
            session=s.session,
            timestamp=self.clock.now(),
            sign_method=s.sign_method,
        )
        answer = await post_form(
            self.http,
            s.api_base,
            request,
            timeout_seconds=s.timeout_seconds,
            platform="TOP",
            classify=classify_error,
        )
        body = answer.get(RESPONSES[method])
        if not isinstance(body, dict):
            raise ChannelUnavailable(f"TOP answer holds no {RESPONSES[method]}")
        return body

    async def _pages(
        self,
        method: str,
        params: Mapping[str, str],
        outer: str,
        inner: str,
        most: int,
        *,
        counted: bool = False,
    ) -> list[Any]:
        """Every item of a list, page 1 onwards; more than ``most`` pages fail.

        Paged by ``has_next`` (``use_has_next=true``, TOP's cheaper way), or with
        ``counted`` by ``total_results``: a list whose items can change while it
        is walked (refunds) needs the count. An item changed again leaves the
        window and those after it move up a page, so one could slip past; when
        the count drops during the walk, the window is walked again from page 1,
        up to :data:`REWALKS` times (the caller takes each key once).
        """
        items: list[Any] = []
        page, first_total, rewalks = 1, -1, 0
        size = int(params["page_size"])
        while True:
            paging = {"page_no": str(page), "use_has_next": "false" if counted else "true"}
            body = await self._call(method, {**params, **paging})
            listed = _listed(body, outer, inner)
            items += listed
            if counted:
                total = whole_number(body.get("total_results"))
                if total is None:
                    raise ChannelUnavailable(f"TOP answer to {method} holds no total_results")
                if page == 1:
                    first_total = total
                elif total < first_total and rewalks < REWALKS:
                    page, rewalks = 1, rewalks + 1
                    continue
                more = page * size < total
            else:
                more = body.get("has_next") in (True, "true")
            if not more or not listed:
                return items
            if page >= most:
                raise ChannelError(f"TOP still had more items of {method} after {most} pages")
            page += 1

    async def poll(self, cursor: str | None) -> PollResult:
        refunds_at, rates_at = load_cursor(cursor)
        now = self.clock.now()
        events: list[RawEvent] = []
        rejected: list[Rejected] = []
        refunds_at = await self._poll_refunds(refunds_at, now, events, rejected)
        if self.settings.ratings:
            rates_at = await self._poll_rates(rates_at, now, events, rejected)
        return PollResult(events, dump_cursor(refunds_at, rates_at), rejected)

    async def _poll_refunds(
        self, at: Position, now: datetime, events: list[RawEvent], rejected: list[Rejected]
    ) -> Position:
        s = self.settings
        refunds = await self._pages(
            REFUNDS_METHOD,
            {
                "fields": REFUND_FIELDS,
                "start_modified": top_time(
                    at.start(now, s.overlap_seconds, s.initial_lookback_seconds)
                ),
                "end_modified": top_time(now),
                "page_size": str(s.page_size),
            },
            "refunds",
            "refund",
            MAX_PAGES,
            counted=True,
        )
        taken: dict[str, datetime] = {}
        for refund in refunds:
            event = _read(refund, lambda r: refund_event(r, now, self.name), rejected)
            if event is None or event.source_key in at.seen or event.source_key in taken:
                continue
            if _blank(refund.get("reason")) and _blank(refund.get("desc")):
                detail = await self._detail(str(refund["refund_id"]))
                event = refund_event(refund, now, self.name, detail)
            taken[event.source_key] = parse_top_time(refund["modified"])
            events.append(event)
        return at.after(taken, s.overlap_seconds, _key_time)

    async def _detail(self, refund_id: str) -> Mapping[str, Any]:
        body = await self._call(REFUND_METHOD, {"refund_id": refund_id, "fields": DETAIL_FIELDS})
        detail = body.get("refund")
        if not isinstance(detail, dict) or str(detail.get("refund_id", refund_id)) != refund_id:
            raise ChannelUnavailable("TOP answered taobao.refund.get without that refund")
        return detail

    async def _poll_rates(
        self, at: Position, now: datetime, events: list[RawEvent], rejected: list[Rejected]
    ) -> Position:
        s = self.settings
        start = at.start(now, s.overlap_seconds, s.initial_lookback_seconds)
        if start < now - RATES_HISTORY:
            log.warning("taobao ratings older than 180 days cannot be fetched; window shortened")
            start = now - RATES_HISTORY
        taken: dict[str, datetime] = {}
        for result in COMPLAINT_RESULTS:
            rates = await self._pages(
                RATES_METHOD,
                {
                    "fields": RATE_FIELDS,
                    "rate_type": "get",
                    "role": "buyer",
                    "result": result,
                    "start_date": top_time(start),
                    "end_date": top_time(now),
                    "page_size": str(s.rates_page_size),
                },
                "trade_rates",
                "trade_rate",
                MAX_RATE_PAGES,
            )
            for rate in rates:
                event = _read(rate, lambda r: rate_event(r, now, self.name), rejected)
                if event is None or event.source_key in at.seen or event.source_key in taken:
                    continue
                taken[event.source_key] = parse_top_time(rate["created"])
                events.append(event)
        return at.after(taken, s.overlap_seconds, _key_time)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        """Golden-file entry: one refund object as TOP lists it, or a whole TOP answer
        (``refunds_receive_get_response``, ``refund_get_response``, ``traderates_get_response``)."""
        data = parse_json_object(body)
        if isinstance(data.get(RESPONSES[RATES_METHOD]), dict):
            rates = _listed(data[RESPONSES[RATES_METHOD]], "trade_rates", "trade_rate")
            return [rate_event(_object(r, "rating"), received_at) for r in rates]
        if isinstance(data.get(RESPONSES[REFUNDS_METHOD]), dict):
            refunds = _listed(data[RESPONSES[REFUNDS_METHOD]], "refunds", "refund")
            return [refund_event(_object(r, "refund"), received_at) for r in refunds]
        detail = data.get(RESPONSES[REFUND_METHOD])
        if isinstance(detail, dict):
            return [refund_event(_object(detail.get("refund"), "refund"), received_at)]
        return [refund_event(data, received_at)]


def _object(item: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise MalformedPayload(f"a {what} is not an object", "invalid_json")
    return item


def _read(
    item: Any, build: Callable[[Mapping[str, Any]], RawEvent], rejected: list[Rejected]
) -> RawEvent | None:
    """The event for one listed item, or None with the item quarantined in ``rejected``."""
    try:
        return build(_object(item, "listed item"))
    except PayloadError as exc:
        body = json.dumps(item, ensure_ascii=False, default=str).encode("utf-8")
        rejected.append(Rejected(body, exc))
        return None
