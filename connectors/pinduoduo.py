"""Pinduoduo (拼多多) after-sales polled from PDD's router: the ``pinduoduo`` connector.

Each poll walks ``pdd.refund.list.increment.get`` (售后列表增量查询) over
``updated_at`` windows, every request a form POST signed by
:func:`connectors._marketplace_signing.pdd_request_params` (TV-PDD-1). The
reference (channels.md §4.3) marks the API's name UNCONFIRMED; the parameters
and the answer below are our reading of copies of PDD's API page, also
UNCONFIRMED against PDD itself, and :func:`refund_page` is the one place that
reads the answer's shape.

**Request**: public ``type``, ``client_id``, ``access_token``, ``timestamp``
(Unix seconds), ``data_type=JSON``, ``sign``; business ``start_updated_at`` /
``end_updated_at`` (Unix seconds, at most 30 minutes apart: longer spans are
walked as consecutive windows), ``page`` (from 1), ``page_size`` (at most 100),
``after_sales_status`` and ``after_sales_type`` (both 1 = all by default).

**Answer**: ``{"refund_increment_get_response": {"total_count": N,
"refund_list": [...]}}``. There is no ``has_next``: pages are asked for until
one is short or empty, or ``total_count`` is reached.

**Cursor** (JSON): ``{"until": <Unix seconds>, "seen": [source keys]}``.
``until`` is the end of the last window walked. The next poll starts
``overlap_seconds`` before it, so an after-sale PDD indexes a little late is
still found; ``seen`` holds the keys already published whose update time lies
in that overlap, so they are not published again. An after-sale updated in the
boundary second is thus neither missed nor published twice. Consecutive
windows of one poll share one second, since PDD does not say whether the ends
are inclusive. With no cursor the first window starts
``initial_lookback_seconds`` back; a poll walks at most
``max_windows_per_poll`` windows and sets ``more`` when it is still behind.

**Source key**: ``<id>:<updated_time as Unix seconds>:<after_sales_status>``.
Every state PDD reports (the seller agreed, the buyer asked the platform to
step in…) is a NEW event with its own ``record_id``; the normalizer puts the
after-sales ``id`` in ``source.thread_id`` and ``order_sn`` in
``product.order_id``, so the linker ties the states together. The time goes
into the key as Unix seconds, so the key does not depend on which of PDD's two
time formats arrived.

**Times**: the 2018 copies of the API page show ``"2018-04-10 17:03:29"``
(read as Beijing wall clock, GMT+8: no zone is given, UNCONFIRMED), the
current copy ``"1551612204"`` (Unix seconds as text); :func:`parse_pdd_time`
takes both, and nothing else.

**Amounts**: the API page copies say ``refund_amount`` is a STRING,
"退款金额（元）", with examples such as ``"8.00"``; integrations that assume fen
exist. A value with a decimal point is yuan whatever the setting; a whole
number is read in ``refund_amount_unit`` (``yuan`` by default, per those
copies; UNCONFIRMED), which the connector passes to the normalizer in the
event's ``amount_unit`` header.

**Buyer**: the list carries no buyer identity (PDD keeps buyers' data
encrypted or masked; plaintext only inside its cloud). Whatever buyer field does
arrive is kept as it came and nothing is invented.

**Errors** (:func:`classify_error`, PDD's ``error_response``: ``error_code``,
``error_msg``, ``sub_code``, ``sub_msg``, ``request_id``):

* call limits (:data:`RATE_LIMIT_CODES`, or 限流/频繁 in the message) and HTTP
  429 → :class:`ChannelRateLimited` (PDD gives no wait time);
* PDD's own failures (:data:`UNAVAILABLE_CODES`, 服务繁忙/系统错误), HTTP 5xx,
  timeouts and unreadable answers → :class:`ChannelUnavailable`;
* the token, client or signature refused (:data:`AUTH_CODES`, an
  ``access_token`` that 过期/无效) → :class:`ChannelAuthError`: the shop must
  authorise again, or the client secret is wrong;
* anything else is a request we built wrong: logged with PDD's ``request_id``
  and raised as a plain :class:`ChannelError`, so the runner counts a failed
  poll, keeps the cursor and tries again at the next interval.

Only 10019 (access_token已过期) has been seen in captured answers; the rest of
the code table is UNCONFIRMED, hence the message fallbacks. Also UNCONFIRMED:
whether ``after_sales_status=1`` means "all" (the parameter's own list starts
at 0; the SDK examples send 1), the page order, and whether a window's ends are
inclusive (the shared second and ``seen`` make either safe). An after-sale
updated again while a window is paged leaves it and moves the rest up a page;
``total_count`` dropping shows it, and the window is walked again.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, model_validator

from connectors._json import parse_json_object
from connectors._marketplace_signing import GMT8, pdd_request_params
from connectors._platform_api import label, post_form, whole_number
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

PDD_ROUTER = "https://gw-api.pinduoduo.com/api/router"
#: The API's name (UNCONFIRMED in the reference, §4.3).
REFUNDS_TYPE = "pdd.refund.list.increment.get"
#: The object of a successful answer (our reading; UNCONFIRMED).
RESPONSE_KEY = "refund_increment_get_response"
#: The longest window PDD accepts ("开始时间结束时间间距不超过 30 分钟", per copies of its page).
MAX_WINDOW_SECONDS = 1800
PDD_TIME = "%Y-%m-%d %H:%M:%S"
#: A window that needs more pages than this is refused (a platform that never ends paging).
MAX_PAGES = 1000
#: How often one window is walked again because after-sales left it while it was paged.
REWALKS = 3
AmountUnit = Literal["yuan", "fen"]

#: ``error_code`` values by meaning. 10019 is seen in captured answers; the rest UNCONFIRMED.
RATE_LIMIT_CODES = frozenset({70031, 70032, 70033, 70034})
UNAVAILABLE_CODES = frozenset({50000, 50001, 50002})
AUTH_CODES = frozenset({10012, 10016, 10019})
_RATE_WORDS = re.compile(r"限流|频繁|frequen|rate.?limit", re.IGNORECASE)
_BUSY_WORDS = re.compile(r"服务繁忙|系统错误|系统异常|服务超时|busy", re.IGNORECASE)
_TOKEN_WORDS = re.compile(r"access_token.{0,12}(过期|失效|无效|invalid|expired)", re.IGNORECASE)
_UNIX = re.compile(r"[0-9]{9,11}", re.ASCII)
_ID = re.compile(r"[0-9]{1,30}", re.ASCII)
#: Unix seconds a platform time may hold (2001 to 2100).
_EARLIEST, _LATEST = 1_000_000_000, 4_102_444_800


class PinduoduoSettings(PollingSettings):
    client_id: str = Field(description="PDD open-platform client_id of the application.")
    client_secret: SecretStr = Field(description="PDD client_secret; signs every request.")
    access_token: SecretStr = Field(description="The shop's authorisation (access_token).")
    api_base: str = Field(PDD_ROUTER, description="PDD router URL (tests point it at a fake).")
    page_size: int = Field(100, ge=1, le=100, description="After-sales per page (PDD allows 100).")
    after_sales_status: int = Field(
        1, ge=0, description="after_sales_status asked for; 1 = all (UNCONFIRMED)."
    )
    after_sales_type: int = Field(
        1, ge=1, description="after_sales_type asked for: 1 all, 2 仅退款, 3 退货退款, 4 换货."
    )
    overlap_seconds: int = Field(
        120,
        ge=0,
        le=1_799,
        description="Each poll starts this long before the end of the last window walked, "
        "so after-sales PDD indexes late are still found.",
    )
    initial_lookback_seconds: int = Field(
        86_400,
        ge=0,
        le=90 * 86_400,
        description="With no cursor yet, the first window starts this long ago.",
    )
    max_window_seconds: int = Field(
        MAX_WINDOW_SECONDS,
        ge=60,
        le=MAX_WINDOW_SECONDS,
        description="Longest start_updated_at..end_updated_at span per request (PDD: 30 min).",
    )
    max_windows_per_poll: int = Field(
        60,
        ge=1,
        le=10_000,
        description="A poll walks at most this many windows, then asks the runner to poll again.",
    )
    refund_amount_unit: AmountUnit = Field(
        "yuan",
        description="Unit of a whole-number refund_amount: yuan (PDD's page, UNCONFIRMED) or fen.",
    )

    @model_validator(mode="after")
    def _overlap_inside_a_window(self) -> Self:
        if self.overlap_seconds >= self.max_window_seconds:
            raise ValueError("overlap_seconds must be shorter than max_window_seconds")
        return self


def parse_pdd_time(value: Any) -> datetime:
    """A PDD time: Unix seconds (integer or digit text) or ``yyyy-MM-dd HH:mm:ss`` in GMT+8.

    Raises ValueError for anything else, a bool or a time outside 2001–2100 included.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and _UNIX.fullmatch(value):
        seconds = int(value)
    elif isinstance(value, str):
        return datetime.strptime(value, PDD_TIME).replace(tzinfo=GMT8)
    else:
        raise ValueError("not a PDD time")
    if not _EARLIEST <= seconds <= _LATEST:
        raise ValueError("a PDD time out of range")
    return datetime.fromtimestamp(seconds, GMT8)


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _number(value: Any) -> int:
    """A code or count as a number, -1 when absent or odd."""
    number = whole_number(value)
    return -1 if number is None else number


def classify_error(error: Mapping[str, Any]) -> ChannelError:
    """The exception for one ``error_response``; messages carry codes, never secrets."""
    code = _number(error.get("error_code"))
    words = " ".join(str(error.get(k) or "") for k in ("error_msg", "sub_code", "sub_msg"))
    request_id = label(error.get("request_id"))
    what = f"PDD error {code} {label(error.get('sub_code'))} (request_id {request_id})"
    if code in RATE_LIMIT_CODES or _RATE_WORDS.search(words):
        return ChannelRateLimited(what)
    if code in AUTH_CODES or _TOKEN_WORDS.search(words):
        return ChannelAuthError(what)
    if code in UNAVAILABLE_CODES or _BUSY_WORDS.search(words):
        return ChannelUnavailable(what)
    log.error(
        "pinduoduo request refused as malformed: error_code %s sub_code %s request_id %s; "
        "poll skipped until the next interval",
        code,
        label(error.get("sub_code")),
        request_id,
    )
    return ChannelError(what + ": request refused, a bug in the gateway")


def refund_page(answer: Mapping[str, Any]) -> tuple[list[Any], int | None]:
    """The items and ``total_count`` of one successful answer: the one reader of its shape."""
    body = answer.get(RESPONSE_KEY)
    if not isinstance(body, Mapping):
        raise ChannelUnavailable(f"PDD answer holds no {RESPONSE_KEY}")
    items = body.get("refund_list")
    total = _number(body.get("total_count"))
    return (items if isinstance(items, list) else []), (total if total >= 0 else None)


def _load(cursor: str | None) -> tuple[int | None, set[str]]:
    if not cursor:
        return None, set()
    try:
        raw = json.loads(cursor)
        until = raw["until"]
        if not isinstance(until, int) or isinstance(until, bool):
            raise TypeError
        return until, {str(k) for k in raw.get("seen", [])}
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("pinduoduo cursor unreadable; starting from the initial lookback")
        return None, set()


def refund_event(
    refund: Mapping[str, Any],
    received_at: datetime,
    connector: str = "pinduoduo",
    amount_unit: AmountUnit = "yuan",
) -> RawEvent:
    """One after-sale (an item of ``refund_list``) as a RawEvent; see the module docstring."""
    after_sales_id = refund.get("id")
    if after_sales_id in (None, "") or "updated_time" not in refund:
        raise MalformedPayload("an after-sale has no id or updated_time", "missing_field")
    if isinstance(after_sales_id, int) and not isinstance(after_sales_id, bool):
        after_sales_id = str(after_sales_id)
    if not isinstance(after_sales_id, str) or not _ID.fullmatch(after_sales_id):
        raise MalformedPayload("an after-sale's id is not PDD's number", "invalid_field")
    try:
        updated = parse_pdd_time(refund["updated_time"])
    except ValueError:
        raise MalformedPayload(
            "an after-sale's updated_time is not a PDD time", "invalid_field"
        ) from None
    status = refund.get("after_sales_status")
    key = f"{after_sales_id}:{_unix(updated)}:{label(status if status is not None else '-')}"
    return RawEvent(
        channel="pinduoduo",
        source_key=key,
        received_at=received_at,
        payload=dict(refund),
        body=json.dumps(refund, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8"),
        media_type="application/json",
        message_id=after_sales_id,
        headers={"amount_unit": amount_unit},
        connector=connector,
    )


def _key_time(key: str) -> int | None:
    """The Unix seconds inside a source key (``id:seconds:status``)."""
    parts = key.split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return int(parts[1])


class PinduoduoConnector(PollingConnector):
    name = "pinduoduo"
    channel = "pinduoduo"
    settings_model = PinduoduoSettings
    settings: PinduoduoSettings

    async def _call(self, params: Mapping[str, str]) -> dict[str, Any]:
        s = self.settings
        request = pdd_request_params(
            REFUNDS_TYPE,
            params,
            client_id=s.client_id,
            client_secret=s.client_secret,
            access_token=s.access_token,
            timestamp=self.clock.now(),
        )
        return await post_form(
            self.http,
            s.api_base,
            request,
            timeout_seconds=s.timeout_seconds,
            platform="PDD",
            classify=classify_error,
        )

    async def _walk(
        self,
        start: int,
        end: int,
        seen: set[str],
        events: list[RawEvent],
        rejected: list[Rejected],
        taken: set[str],
    ) -> None:
        """Every page of one window, until a short or empty page or ``total_count``.

        When ``total_count`` drops between pages, an after-sale left the window
        (it was updated again while we walked) and those after it moved up a
        page: the window is walked again from page 1, up to :data:`REWALKS`
        times; what was already taken is not taken twice.
        """
        s = self.settings
        received_at = self.clock.now()
        page, first_total, rewalks = 1, None, 0
        while True:
            answer = await self._call(
                {
                    "start_updated_at": str(start),
                    "end_updated_at": str(end),
                    "page": str(page),
                    "page_size": str(s.page_size),
                    "after_sales_status": str(s.after_sales_status),
                    "after_sales_type": str(s.after_sales_type),
                }
            )
            items, total = refund_page(answer)
            for item in items:
                self._take(item, received_at, seen, events, rejected, taken)
            if first_total is None:
                first_total = total
            elif total is not None and total < first_total and rewalks < REWALKS:
                page, first_total, rewalks = 1, None, rewalks + 1
                continue
            if len(items) < s.page_size or (total is not None and page * s.page_size >= total):
                return
            if page >= MAX_PAGES:
                raise ChannelError(f"PDD still had more after-sales after {MAX_PAGES} pages")
            page += 1

    async def poll(self, cursor: str | None) -> PollResult:
        until, seen = _load(cursor)
        now = _unix(self.clock.now())
        s = self.settings
        start = now - s.initial_lookback_seconds if until is None else until - s.overlap_seconds
        events: list[RawEvent] = []
        rejected: list[Rejected] = []
        taken: set[str] = set()
        position = until
        for _ in range(s.max_windows_per_poll):
            if start >= now:
                break
            end = min(start + s.max_window_seconds, now)
            await self._walk(start, end, seen, events, rejected, taken)
            position = end if position is None else max(position, end)
            if end >= now:
                break
            start = end - 1  # windows share a second: PDD does not say if the ends are inclusive
        if position is None:
            position = now
        floor = position - s.overlap_seconds
        keep = sorted(k for k in seen | taken if (_key_time(k) or floor - 1) >= floor)
        next_cursor = json.dumps({"until": position, "seen": keep}, ensure_ascii=False)
        return PollResult(events, next_cursor, rejected, more=position < now)

    def _take(
        self,
        refund: Any,
        received_at: datetime,
        seen: set[str],
        events: list[RawEvent],
        rejected: list[Rejected],
        taken: set[str],
    ) -> None:
        body = json.dumps(refund, ensure_ascii=False, default=str).encode("utf-8")
        try:
            if not isinstance(refund, Mapping):
                raise MalformedPayload("an after-sale is not an object", "invalid_json")
            event = refund_event(refund, received_at, self.name, self.settings.refund_amount_unit)
        except PayloadError as exc:
            rejected.append(Rejected(body, exc))
            return
        if event.source_key in seen or event.source_key in taken:
            return
        taken.add(event.source_key)
        events.append(event)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        """Golden-file entry: one after-sale object as ``refund_list`` holds it."""
        unit: AmountUnit = "yuan"
        if isinstance(settings, PinduoduoSettings):
            unit = settings.refund_amount_unit
        return [refund_event(parse_json_object(body), received_at, amount_unit=unit)]
