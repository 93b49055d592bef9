"""JD (京东 JOS) after-sale service orders, polled from ``routerjson``: the ``jd`` connector.

Each poll pages through :data:`AFTER_SALE_METHOD` over an update-time window,
every request signed by :func:`connectors._marketplace_signing.jd_request_params`
(the business parameters travel as one sorted JSON string, ``360buy_param_json``).

**Which API** (channels.md §4.2 leaves the after-sale API UNCONFIRMED): we read
JOS's 售后 category as offering ``jingdong.asc.query.list`` with
``updateTimeBegin``/``updateTimeEnd`` (``yyyy-MM-dd HH:mm:ss``, GMT+8),
``pageNumber`` (from 1) and ``pageSize``; a JD SDK's request class lists those
names, and public client code reads the answer as
``{"jingdong_asc_query_list_responce": {"code": "0", "pageResult":
{"totalCount": n, "data": [service, ...]}}}`` (JOS does spell it "responce").
A sibling after-sale API documents that a ``pageNumber`` past the last page
answers the last page again, so paging stops on ``totalCount``, not on an
empty page. ``buId``/``operatePin`` appear in the request class; whether they
are required is UNCONFIRMED, so they are settings sent only when set.
Every other name here is our reading too: the method and the answer's keys are
the constants below, and the fields of one service are read in one place
(:data:`SERVICE_ID`, :data:`UPDATE_TIME`, :data:`STATUS` here and the table at
the top of :mod:`normalizer.jd`), so a correction is a one-line change.

**Cursor** (JSON): ``{"modified": "2026-11-23 10:15:00", "seen": [source keys]}``.
``modified`` is the latest ``updateTime`` taken (GMT+8, to the second). The
next window starts ``overlap_seconds`` before it and ends at the poll's own
clock time, so a service JD indexes a little late, or one updated in the same
second as the last one taken, is still found; ``seen`` holds the source keys
already published whose update time lies in that overlap, and they are not
published again. A service updated exactly at the boundary second is neither
missed nor published twice. With no cursor the first window starts
``initial_lookback_seconds`` back.

**Source key**: ``<serviceId>:<updateTime>:<serviceStatus>``, the time written
``yyyy-MM-dd HH:mm:ss`` whatever form JD sent it in (text, or epoch
milliseconds: which one this API returns is UNCONFIRMED, both are read). Every
state JD reports (审核, 待收货, 完成...) is a NEW event with its own key and
``record_id``; repeating a poll gives the same keys. The normalizer puts
``serviceId`` in ``source.thread_id`` and ``orderId`` in ``product.order_id``,
so the linker ties the later states to the first.

**Errors** (:func:`classify_error`, JOS's ``{"error_response": {"code",
"zh_desc", "en_desc"}}``, or a success envelope whose ``code`` is not ``"0"``):

* call limits (code 2 "App Call Limited", or a description saying 限流 /
  频率 / 超限 / "limit") → :class:`ChannelRateLimited` (JOS gives no wait time);
* the platform's own failures (codes 1, 66, 67, or 繁忙 / 超时 / 不可用 /
  "busy" / "unavailable" / "timeout"), HTTP 5xx, timeouts and unreadable
  answers → :class:`ChannelUnavailable`;
* the app or the seller's authorisation refused (12 invalid signature: a wrong
  app secret; 16 invalid app key; 18 invalid and 19 expired ``access_token``;
  or a description naming the token) → :class:`ChannelAuthError`: the seller
  must authorise again or the settings be fixed;
* anything else is a request we built wrong: logged with JD's request id (when
  the answer has one) and raised as a plain :class:`ChannelError`, so the
  runner counts a failed poll, keeps the cursor and tries again.

Codes 2, 8 (timestamp), 12 and 15 (method) are in a third-party copy of JOS's
gateway error table; 1, 16, 18, 19, 66 and 67 are our reading: the whole
table is UNCONFIRMED, and the words are matched so that a renumbered code
still lands in the right class. Also UNCONFIRMED: whether the window bounds are
inclusive (the ``seen`` set makes either safe), a maximum window length, the
maximum ``pageSize`` (a sibling API allows 30; :class:`JdSettings` caps it at
50), and the page order. A service updated again while the pages are walked
leaves the window, and those listed after it move up a page, so one could
slip past: when ``totalCount`` drops during a walk the window is walked again
from page 1 (up to :data:`REWALKS` times; keys already taken are not taken
twice).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, SecretStr

from connectors._json import parse_json_object
from connectors._marketplace_signing import GMT8, JdTimestampStyle, jd_request_params
from connectors._platform_api import label, post_form, whole_number
from connectors._window import WindowPosition
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

JOS_ROUTER = "https://api.jd.com/routerjson"
AFTER_SALE_METHOD = "jingdong.asc.query.list"
#: The success envelope: the method's name with ``_`` for ``.``, and JOS's spelling.
ANSWER_KEY = "jingdong_asc_query_list_responce"
PAGE_KEY = "pageResult"
ITEMS_KEY = "data"
TOTAL_KEY = "totalCount"
#: The fields of one service the connector needs (the normalizer reads the rest).
SERVICE_ID = "serviceId"
UPDATE_TIME = "updateTime"
STATUS = "serviceStatus"

JD_TIME = "%Y-%m-%d %H:%M:%S"
_SECOND = timedelta(seconds=1)
#: How often a window is walked again when its total dropped during the walk.
REWALKS = 3
#: A window that needs more pages than this is refused (a platform that never ends paging).
MAX_PAGES = 1000

#: JOS gateway ``code`` values by meaning (UNCONFIRMED; see the module docstring).
RATE_LIMIT_CODES = frozenset({2})
UNAVAILABLE_CODES = frozenset({1, 66, 67})
AUTH_CODES = frozenset({12, 16, 18, 19})
_RATE_WORDS = ("限流", "频率", "超限", "limit")
_UNAVAILABLE_WORDS = ("繁忙", "超时", "不可用", "busy", "unavailable", "timeout", "timed out")
_AUTH_WORDS = ("access_token", "token", "授权")
_SERVICE_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
#: Epoch milliseconds a JD time may hold (2000 to 2100).
_MILLIS = (946_684_800_000, 4_102_444_800_000)


class JdSettings(PollingSettings):
    app_key: str = Field(description="JOS app key of the seller's application.")
    app_secret: SecretStr = Field(description="JOS app secret; signs every request.")
    access_token: SecretStr = Field(description="The seller's authorisation (OAuth access_token).")
    api_base: str = Field(JOS_ROUTER, description="JOS routerjson URL (tests point it at a fake).")
    timestamp_style: JdTimestampStyle = Field(
        "seconds",
        description="'seconds' (yyyy-MM-dd HH:mm:ss, JOS's parameter table) or 'millis' "
        "(yyyy-MM-dd HH:mm:ss.SSS+0800, JOS's newer examples).",
    )
    bu_id: str | None = Field(
        None, description="buId (the seller's id) sent with each query, if JD requires it."
    )
    operate_pin: str | None = Field(
        None, description="operatePin (the operator's account) sent with each query, if set."
    )
    page_size: int = Field(20, ge=1, le=50, description="Services per page.")
    overlap_seconds: int = Field(
        120,
        ge=0,
        le=86_400,
        description="Each window starts this long before the last update time taken, "
        "so services JD indexes late are still found.",
    )
    initial_lookback_seconds: int = Field(
        86_400,
        ge=0,
        le=90 * 86_400,
        description="With no cursor yet, the first window starts this long ago.",
    )


def jd_time(moment: datetime) -> str:
    return moment.astimezone(GMT8).strftime(JD_TIME)


def parse_jd_time(value: Any) -> datetime:
    """A JD time: ``yyyy-MM-dd HH:mm:ss`` (optionally ``.SSS``) in GMT+8, or epoch milliseconds.

    Raises ValueError for anything else (a bool, a float, seconds, another format).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if not _MILLIS[0] <= value <= _MILLIS[1]:
            raise ValueError("epoch milliseconds out of range")
        return datetime.fromtimestamp(value / 1000, UTC).astimezone(GMT8)
    if not isinstance(value, str):
        raise ValueError("not a JD time")
    text = value.strip()
    for layout in (JD_TIME, JD_TIME + ".%f"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=GMT8)
        except ValueError:
            continue
    raise ValueError("not a JD time")


def _number(value: Any) -> int:
    """A code or count as a number, -1 when absent or odd."""
    number = whole_number(value)
    return -1 if number is None else number


def classify_error(error: Mapping[str, Any]) -> ChannelError:
    """The exception for one JOS error body; messages carry codes, never secrets or text."""
    code = _number(error.get("code"))
    words = f"{error.get('zh_desc') or ''} {error.get('en_desc') or ''}".lower()
    request_id = label(error.get("request_id") or error.get("requestId"))
    what = f"JOS error {code} (request id {request_id})"
    if code in RATE_LIMIT_CODES or any(w in words for w in _RATE_WORDS):
        return ChannelRateLimited(what)
    if code in AUTH_CODES or any(w in words for w in _AUTH_WORDS):
        return ChannelAuthError(what)
    if code in UNAVAILABLE_CODES or any(w in words for w in _UNAVAILABLE_WORDS):
        return ChannelUnavailable(what)
    log.error(
        "jd request refused as malformed: code %s request id %s; "
        "poll skipped until the next interval",
        code,
        request_id,
    )
    return ChannelError(what + ": request refused, a bug in the gateway")


def _load(cursor: str | None) -> WindowPosition:
    if not cursor:
        return WindowPosition()
    try:
        return WindowPosition.load(json.loads(cursor), "modified", parse_jd_time)
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("jd cursor unreadable; starting from the initial lookback")
        return WindowPosition()


def _service_id(service: Mapping[str, Any]) -> str:
    value = service.get(SERVICE_ID)
    if value is None or value == "":
        raise MalformedPayload(f"a service has no {SERVICE_ID}", "missing_field")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and _SERVICE_ID.fullmatch(value):
        return value
    raise MalformedPayload(f"a service's {SERVICE_ID} is not an id", "invalid_field")


def service_updated(service: Mapping[str, Any]) -> datetime:
    """The service's ``updateTime``; MalformedPayload when absent or unreadable."""
    value = service.get(UPDATE_TIME)
    if value is None or value == "":
        raise MalformedPayload(f"a service has no {UPDATE_TIME}", "missing_field")
    try:
        return parse_jd_time(value)
    except ValueError:
        raise MalformedPayload(
            f"a service's {UPDATE_TIME} is not a JD time", "invalid_field"
        ) from None


def service_event(
    service: Mapping[str, Any], received_at: datetime, connector: str = "jd"
) -> RawEvent:
    """One service (an item of ``pageResult.data``) as a RawEvent; see the module docstring."""
    service_id = _service_id(service)
    updated = service_updated(service)
    status = label(service.get(STATUS) if service.get(STATUS) not in (None, "") else "-")
    return RawEvent(
        channel="jd",
        source_key=f"{service_id}:{jd_time(updated)}:{status}",
        received_at=received_at,
        payload=dict(service),
        body=json.dumps(service, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8"),
        media_type="application/json",
        message_id=service_id,
        connector=connector,
    )


class JdConnector(PollingConnector):
    name = "jd"
    channel = "jd"
    settings_model = JdSettings
    settings: JdSettings

    async def _call(self, business: Mapping[str, object]) -> dict[str, Any]:
        s = self.settings
        request = jd_request_params(
            AFTER_SALE_METHOD,
            business,
            app_key=s.app_key,
            secret=s.app_secret,
            access_token=s.access_token,
            timestamp=self.clock.now(),
            timestamp_style=s.timestamp_style,
        )
        answer = await post_form(
            self.http,
            s.api_base,
            request,
            timeout_seconds=s.timeout_seconds,
            platform="JOS",
            classify=classify_error,
        )
        body = answer.get(ANSWER_KEY)
        if not isinstance(body, dict):
            raise ChannelUnavailable(f"JOS answer holds no {ANSWER_KEY}")
        if str(body.get("code", "0")) != "0":
            raise classify_error(body)
        page = body.get(PAGE_KEY)
        return page if isinstance(page, dict) else {}

    def _query(self, start: datetime, end: datetime, page: int) -> dict[str, object]:
        s = self.settings
        business: dict[str, object] = {
            "updateTimeBegin": jd_time(start),
            "updateTimeEnd": jd_time(end),
            "pageNumber": page,
            "pageSize": s.page_size,
        }
        if s.bu_id:
            business["buId"] = s.bu_id
        if s.operate_pin:
            business["operatePin"] = s.operate_pin
        return business

    async def poll(self, cursor: str | None) -> PollResult:
        at = _load(cursor)
        seen = set(at.seen)
        now = self.clock.now()
        s = self.settings
        start = at.start(now, s.overlap_seconds, s.initial_lookback_seconds)
        events: list[RawEvent] = []
        rejected: list[Rejected] = []
        taken: dict[str, datetime] = {}
        page = 1
        first_total, rewalks = -1, 0
        while True:
            result = await self._call(self._query(start, now, page))
            services = result.get(ITEMS_KEY)
            if not isinstance(services, list):
                services = []
            for service in services:
                self._take(service, now, seen, events, rejected, taken)
            total = _number(result.get(TOTAL_KEY))
            if page == 1:
                first_total = total
            elif 0 <= total < first_total and rewalks < REWALKS:
                # a service left the window while we walked (updated again): those after
                # it moved up a page, so one may have slipped past; walk again from page 1
                page, rewalks = 1, rewalks + 1
                continue
            finished = page * s.page_size >= total if total >= 0 else len(services) < s.page_size
            if finished or not services:
                break
            if page >= MAX_PAGES:
                raise ChannelError(f"JOS still had more services after {MAX_PAGES} pages")
            page += 1
        position = at.after(taken, s.overlap_seconds, _key_time).dump("modified", jd_time)
        next_cursor = json.dumps(position, ensure_ascii=False) if position else None
        return PollResult(events, next_cursor, rejected)

    def _take(
        self,
        service: Any,
        now: datetime,
        seen: set[str],
        events: list[RawEvent],
        rejected: list[Rejected],
        taken: dict[str, datetime],
    ) -> None:
        try:
            if not isinstance(service, Mapping):
                raise MalformedPayload("a service is not an object", "invalid_json")
            event = service_event(service, now, self.name)
        except PayloadError as exc:
            body = json.dumps(service, ensure_ascii=False, default=str).encode("utf-8")
            rejected.append(Rejected(body, exc))
            return
        if event.source_key in seen or event.source_key in taken:
            return
        # to the second, as the key and the cursor write it
        taken[event.source_key] = service_updated(service).replace(microsecond=0)
        events.append(event)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        """Golden-file entry: one service object as JOS lists it."""
        return [service_event(parse_json_object(body), received_at)]


def _key_time(key: str) -> datetime | None:
    """The update time inside a source key (``id:yyyy-MM-dd HH:mm:ss:status``)."""
    parts = key.rsplit(":", 4)
    if len(parts) != 5:
        return None
    try:
        return parse_jd_time(":".join(parts[1:4]))
    except ValueError:
        return None
