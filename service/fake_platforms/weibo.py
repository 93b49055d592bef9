"""A fake Weibo: the comment and @mention lists, and the fans-service reply.

Two APIs of one platform (channels.md §3), answered from memory:

* the Open API lists the ``weibo`` poller reads, ``GET /2/comments/to_me.json``,
  ``/2/comments/mentions.json`` and ``/2/statuses/mentions.json``, with the
  token in ``Authorization: OAuth2 <token>``: newest first, ``since_id``
  exclusive, ``max_id`` inclusive, ``count`` per page (default 50);
* the fans-service reply, ``POST /2/messages/reply.json``, form-encoded with
  ``access_token``, ``type=text``, ``data`` (URL-encoded JSON ``{"text": ...}``),
  ``receiver_id`` and ``save_sender_box``. It takes a reply only inside the
  window the receiver opened: unlimited for 48 hours after they wrote or
  followed (:meth:`FakeWeibo.message_from`), one reply within 48 hours after
  an @mention (:meth:`FakeWeibo.mention_from`), none once they unfollowed.
  Every reply it took is kept in :attr:`FakeWeibo.replies`, so a demo can
  show what the customer received.

Errors come in Weibo's envelope ``{"error", "error_code", "request"}``. The
codes for a refused receiver are the ones :mod:`outbound.weibo` reads, which
are UNCONFIRMED; so are the shape of a successful reply's answer and
whether Weibo decodes ``data`` once or twice (this fake wants it URL-encoded
inside the form, as Weibo's page reads).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx

from outbound.weibo import NO_MESSAGE_QUOTA, NOT_FOLLOWED, TEXT_LIMIT, USER_DOES_NOT_EXIST
from service.fake_platforms import Clock, real_clock

#: The endpoints the poller reads, and the name of the list in each answer.
LISTS = {
    "comments/to_me": "comments",
    "comments/mentions": "comments",
    "statuses/mentions": "statuses",
}
REPLY = "messages/reply"
#: Comment ids today are about 5.2e15; older float-bound clients round above 2^53.
FIRST_ID = 5231847760000000
#: The brand account's uid: the sender of every reply.
BRAND_UID = 7781234567
BRAND_POST = {"id": 5231500000000001, "idstr": "5231500000000001", "text": "双十一返场！"}
REPLY_WINDOW = timedelta(hours=48)
WEIBO_TIME = "%a %b %d %H:%M:%S %z %Y"
_GMT8 = timezone(timedelta(hours=8))

_PRODUCTS = ("空气炸锅", "扫地机器人", "电热水壶", "吹风机", "洗碗机", "蓝牙耳机", "电饭煲")
_PROBLEMS = (
    "用了三天就坏了",
    "收到时外包装破损",
    "客服一直不回复",
    "发货比说好的晚了一周",
    "噪音特别大",
    "和详情页描述的不一样",
    "充不进电",
    "退款申请被拒绝了",
    "漏水😡",
)
_ASKS = (
    "请尽快处理！",
    "要求换新。",
    "希望给个说法。",
    "再不处理就去12315投诉了",
    "麻烦私信我。",
    "已经第二次了，很失望。",
    "@客服 在吗？",
    "求退款",
    "这就是大品牌的售后？",
    "等了好几天了",
    "",
)


def weibo_user(uid: int, followers: int = 120, verified: bool = False) -> dict[str, Any]:
    return {
        "id": uid,
        "idstr": str(uid),
        "screen_name": f"用户{uid % 1000}",
        "followers_count": followers,
        "verified": verified,
    }


def weibo_comment(
    ident: int,
    text: str,
    *,
    as_number_only: bool = False,
    uid: int | None = None,
    created_at: str = "Mon Nov 23 10:12:31 +0800 2026",
) -> dict[str, Any]:
    """A comment as Weibo lists it; ``as_number_only`` leaves out ``idstr`` and ``mid``."""
    comment: dict[str, Any] = {
        "created_at": created_at,
        "id": ident,
        "text": text,
        "source": '<a href="http://app.weibo.com/t/feed/6vtZb0" rel="nofollow">微博 weibo.com</a>',
        "user": weibo_user(uid if uid is not None else 6000000000 + ident % 1000),
        "status": BRAND_POST,
    }
    if not as_number_only:
        comment["idstr"] = comment["mid"] = str(ident)
    return comment


def error_envelope(code: int, error: str, endpoint: str, status: int = 400) -> httpx.Response:
    """Weibo's error answer for ``/2/<endpoint>.json``."""
    body = {"error": error, "error_code": code, "request": f"/2/{endpoint}.json"}
    return httpx.Response(status, json=body)


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply the fake took: what the customer ``receiver_id`` received."""

    message_id: str
    receiver_id: str
    text: str
    at: datetime
    save_sender_box: bool


@dataclass(slots=True)
class _Window:
    opened_at: datetime
    by_mention: bool
    replies: int = 0


class FakeWeibo:
    """Weibo's lists and fans-service reply in memory; see the module docstring.

    ``tokens`` are the access tokens it accepts (one string or several); both
    APIs take any of them. Tests add list items with :meth:`add` and
    :meth:`add_backlog`, open reply windows with :meth:`message_from` and
    :meth:`mention_from`, read :attr:`requests` (endpoint and parameters, never
    the token) and :attr:`urls`, and break it with :attr:`failure` (this
    answer to every request) or :meth:`expire`.
    """

    def __init__(self, tokens: str | Iterable[str], *, clock: Clock = real_clock) -> None:
        self._tokens = {tokens} if isinstance(tokens, str) else set(tokens)
        self._expired: set[str] = set()
        self.clock = clock
        self.items: dict[str, list[dict[str, Any]]] = {endpoint: [] for endpoint in LISTS}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.urls: list[str] = []
        self.failure: httpx.Response | None = None
        self.next_id = FIRST_ID
        self.replies: list[Reply] = []
        #: Uids Weibo knows; a reply to any other is "User does not exists". None: every uid.
        self.users: set[str] | None = None
        self._windows: dict[str, _Window] = {}
        self._unfollowed: set[str] = set()
        self._message_ids = itertools.count(5231900000000001, 3)

    def __repr__(self) -> str:
        counts = ", ".join(f"{len(v)} {k}" for k, v in self.items.items())
        return f"FakeWeibo({counts}, {len(self.replies)} replies)"

    # -- data ------------------------------------------------------------------------

    def add(self, endpoint: str, text: str, **kwargs: Any) -> dict[str, Any]:
        """One new comment (or post, for ``statuses/mentions``) with the next id."""
        self.next_id += 7
        item = weibo_comment(self.next_id, text, **kwargs)
        if endpoint == "statuses/mentions":
            item.pop("status")
            item["reposts_count"] = 0
        self.items[endpoint].append(item)
        return item

    def add_backlog(self, endpoint: str, n: int) -> list[dict[str, Any]]:
        """``n`` distinct complaints from distinct users, the newest a minute old (a benchmark's
        load); the texts vary by product, problem and demand, and each names its order."""
        added = []
        now = self.clock()
        for i in range(n):
            text = (
                f"{_PRODUCTS[i % len(_PRODUCTS)]}{_PROBLEMS[(i * 5) % len(_PROBLEMS)]}，"
                f"订单尾号{(i * 7919) % 10000:04d}-{i}。{_ASKS[(i * 3) % len(_ASKS)]}"
            )
            created = now - timedelta(seconds=60 + 3600 * (n - i) / (n + 1))
            added.append(
                self.add(
                    endpoint,
                    text,
                    uid=6100000000 + i * 37,
                    created_at=created.astimezone(_GMT8).strftime(WEIBO_TIME),
                )
            )
        return added

    def message_from(self, uid: str, at: datetime | None = None) -> None:
        """``uid`` wrote to the account (or followed it): unlimited replies for 48 hours."""
        self._unfollowed.discard(uid)
        self._windows[uid] = _Window(at or self.clock(), by_mention=False)

    def mention_from(self, uid: str, at: datetime | None = None) -> None:
        """``uid`` @mentioned the account: one reply within 48 hours."""
        self._windows[uid] = _Window(at or self.clock(), by_mention=True)

    def unfollow(self, uid: str) -> None:
        self._unfollowed.add(uid)

    def expire(self, token: str) -> None:
        """``token`` is answered ``expired_token`` (21327) from now on."""
        self._expired.add(token)

    def received(self, uid: str) -> list[str]:
        """The texts ``uid`` received, oldest first."""
        return [reply.text for reply in self.replies if reply.receiver_id == uid]

    # -- the API ---------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        endpoint = request.url.path.removeprefix("/2/").removesuffix(".json")
        self.urls.append(str(request.url))
        if request.method == "POST" and endpoint == REPLY:
            return self._reply(request)
        params = dict(request.url.params)
        self.requests.append((endpoint, params))
        if self.failure is not None:
            return self.failure
        if request.method != "GET" or endpoint not in LISTS:
            return error_envelope(10020, "Request Api not found!", endpoint, status=404)
        header = request.headers.get("authorization", "")
        refused = self._token_refused(header.removeprefix("OAuth2 "), endpoint)
        if refused is not None or not header.startswith("OAuth2 "):
            return refused or error_envelope(21332, "invalid_access_token", endpoint)
        return self._list(endpoint, params)

    def _token_refused(self, token: str, endpoint: str) -> httpx.Response | None:
        if token in self._expired:
            return error_envelope(21327, "expired_token", endpoint, status=403)
        if token not in self._tokens:
            return error_envelope(21332, "invalid_access_token", endpoint, status=403)
        return None

    def _list(self, endpoint: str, params: dict[str, str]) -> httpx.Response:
        try:
            since = int(params.get("since_id", "0"))
            max_id = int(params.get("max_id", "0"))
            count = int(params.get("count", "50"))
        except ValueError:
            return error_envelope(10017, "parameter's value invalid", endpoint)
        found = sorted(self.items[endpoint], key=lambda i: -int(i["id"]))
        found = [
            i for i in found if int(i["id"]) > since and (not max_id or int(i["id"]) <= max_id)
        ]
        page = found[:count]
        body = {
            LISTS[endpoint]: page,
            "hasvisible": False,
            "previous_cursor": 0,
            "next_cursor": int(page[-1]["id"]) - 1 if len(found) > count else 0,
            "total_number": len(found),
        }
        return httpx.Response(200, content=json.dumps(body, ensure_ascii=False).encode())

    def _reply(self, request: httpx.Request) -> httpx.Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        try:
            form = dict(parse_qsl(request.content.decode("ascii"), strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            form = {}
        self.requests.append((REPLY, {k: v for k, v in form.items() if k != "access_token"}))
        if self.failure is not None:
            return self.failure
        if content_type != "application/x-www-form-urlencoded" or not form:
            return error_envelope(10008, "param error, see doc for more info", REPLY)
        if "access_token" not in form:
            return error_envelope(10006, "source paramter(appkey) is missing", REPLY)
        refused = self._token_refused(form["access_token"], REPLY)
        if refused is not None:
            return refused
        for name in ("type", "data", "receiver_id"):
            if not form.get(name):
                return error_envelope(10016, f"miss required parameter ({name})", REPLY)
        text = _reply_text(form["data"])
        receiver = form["receiver_id"]
        if form["type"] != "text" or text is None or len(text) >= TEXT_LIMIT:
            return error_envelope(10017, "parameter (data)'s value invalid", REPLY)
        if not (receiver.isascii() and receiver.isdigit()):
            return error_envelope(10017, "parameter (receiver_id)'s value invalid", REPLY)
        if form.get("save_sender_box", "1") not in ("0", "1"):
            return error_envelope(10017, "parameter (save_sender_box)'s value invalid", REPLY)
        refusal = self._receiver_refused(receiver)
        if refusal is not None:
            return refusal
        self._windows[receiver].replies += 1
        now = self.clock()
        reply = Reply(
            str(next(self._message_ids)), receiver, text, now, form.get("save_sender_box") != "0"
        )
        self.replies.append(reply)
        body = {
            "id": int(reply.message_id),
            "idstr": reply.message_id,
            "created_at": now.astimezone(_GMT8).strftime(WEIBO_TIME),
            "text": text,
            "sender_id": BRAND_UID,
            "recipient_id": int(receiver),
        }
        return httpx.Response(200, content=json.dumps(body, ensure_ascii=False).encode())

    def _receiver_refused(self, receiver: str) -> httpx.Response | None:
        if self.users is not None and receiver not in self.users:
            return error_envelope(USER_DOES_NOT_EXIST, "User does not exists!", REPLY)
        if receiver in self._unfollowed:
            return error_envelope(NOT_FOLLOWED, "Not followed!", REPLY, status=403)
        window = self._windows.get(receiver)
        closed = window is None or self.clock() - window.opened_at > REPLY_WINDOW
        if closed or (window is not None and window.by_mention and window.replies >= 1):
            return error_envelope(
                NO_MESSAGE_QUOTA, "no message quota for this receiver", REPLY, status=403
            )
        return None


def _reply_text(data: str) -> str | None:
    """The text of a reply's ``data``: URL-encoded JSON ``{"text": ...}``, else None."""
    if data.lstrip().startswith("{"):
        return None  # JSON not URL-encoded
    try:
        value = json.loads(unquote(data, errors="strict"))
    except (UnicodeDecodeError, ValueError):
        return None
    text = value.get("text") if isinstance(value, dict) else None
    return text if isinstance(text, str) and text else None
