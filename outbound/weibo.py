"""Weibo fans-service (粉丝服务) notifier: a private-message reply to the customer.

A status reaches a Weibo user, identified by their uid in
``Message.recipient`` (kept as text: uids exceed 2^53), as one
``POST /2/messages/reply.json`` (channels.md §3.2), form-encoded:

* ``access_token``: the fans-service token of the brand account;
* ``type=text`` and ``data``: the JSON ``{"text": ...}``, URL-encoded as the
  reference says ("必须为json做URLEncode后的字符串格式"), inside a form that
  encodes it once more. Whether Weibo reads it with one decoding or two is
  UNCONFIRMED; ``url_encode_data = false`` sends the JSON as a plain form value;
* ``receiver_id``: the uid, sent digit for digit;
* ``save_sender_box``: 1 keeps the reply in the account's own message box.

Weibo lets an account message a user only inside a window the user opened:
unlimited replies for 48 hours after the user wrote to us (or followed,
subscribed, clicked a menu, scanned a code), one reply within 48 hours after
an @mention, none to a user who unfollowed. The planner computes the window
from the customer's private messages (``Message.reply_window_open``); outside
it, :meth:`WeiboNotifier.unreachable_reason` passes Weibo over before any
call. :meth:`WeiboNotifier.send` itself always asks Weibo, which knows of
window-opening events the gateway does not count (follows, menu clicks);
when Weibo refuses the receiver, it raises :class:`RecipientUnreachable` and
the router tries the next channel.

The text must be shorter than 300 Chinese characters. How Weibo counts
(code points, UTF-16 units, two Latin letters as one character like its
posts) is UNCONFIRMED: here a character is a code point, which is never
more generous than the others for Chinese text. A longer text is refused
before the call (``weibo_text_too_long``) rather than cut.

Weibo answers errors as ``{"error", "error_code", "request"}``, mapped by
:func:`reply_error`: the token, rate-limit and system codes are the Open
API's (shared with the ``weibo`` poller); the codes for "cannot receive" are
plausible picks from Weibo's public error table, UNCONFIRMED for this
endpoint, backed by the words of its quota rule ("配额"/"quota") in the error
text. No error carries the token or the uid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr, field_validator

from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
    DeliveryInDoubt,
    DeliveryRefused,
    RecipientUnreachable,
)
from connectors.weibo import AUTH_ERRORS, RATE_LIMIT_ERRORS, SYSTEM_ERRORS
from outbound._http import send_request
from outbound.base import Message, Notifier, NotifierSettings, Receipt
from outbound.templates import placeholders
from schemas.status import Node

NAME = "weibo"
REPLY = "/messages/reply.json"

#: The text must have fewer characters than this ("文本大小必须小于300个汉字").
TEXT_LIMIT = 300

#: "User does not exists" (Weibo's common error table; UNCONFIRMED for this endpoint).
USER_DOES_NOT_EXIST = 20003
#: "Not followed" (the friendships family: the user does not follow the account;
#: UNCONFIRMED that messages/reply answers it).
NOT_FOLLOWED = 20522
#: The account has no message quota for this user: the 48-hour window closed, or
#: the one reply an @mention allows was used (the code is a guess: UNCONFIRMED).
NO_MESSAGE_QUOTA = 20609
#: "Parameter value invalid" / "miss required parameter": our request was wrong.
INVALID_PARAMETER = frozenset({10008, 10016, 10017})

_QUOTA_WORDS = ("quota", "配额")


class WeiboNotifierSettings(NotifierSettings):
    """``[notifiers.weibo]``: the fans-service token of the brand account."""

    access_token: SecretStr = Field(
        description="The fans-service access_token (粉丝服务平台 → 高级功能 → 开发模式), "
        "from GATEWAY_NOTIFIERS__WEIBO__ACCESS_TOKEN."
    )
    base_url: str = Field(
        "https://m.api.weibo.com/2",
        description="The fans-service API base (the newer c.api.weibo.com/2 biz endpoint "
        "is not used); tests point it at a fake.",
    )
    save_sender_box: bool = Field(
        True, description="Keep each reply in the account's own private-message box."
    )
    url_encode_data: bool = Field(
        True,
        description="URL-encode the data JSON before form encoding, as Weibo's page says "
        "(UNCONFIRMED); false sends the JSON as a plain form value.",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        return value.rstrip("/")


def reply_error(code: int, error: str) -> ChannelError:
    """The error for Weibo's envelope ``{"error_code": code, "error": error}``."""
    what = f"{NAME}: messages/reply error_code {code}"
    if code in AUTH_ERRORS:
        return ChannelAuthError(f"{what}: the access token or the account was refused")
    if code in RATE_LIMIT_ERRORS:
        return ChannelRateLimited(f"{what}: out of rate limit")
    if code in SYSTEM_ERRORS:
        return ChannelUnavailable(f"{what}: Weibo is busy or failing")
    if code == USER_DOES_NOT_EXIST:
        return RecipientUnreachable(f"{what}: no such user", reason="weibo_no_such_user")
    if code == NOT_FOLLOWED:
        return RecipientUnreachable(
            f"{what}: the user does not follow the account", reason="weibo_not_following"
        )
    if code == NO_MESSAGE_QUOTA or any(word in error.lower() for word in _QUOTA_WORDS):
        return RecipientUnreachable(
            f"{what}: no message quota for this user (outside the reply window)",
            reason="weibo_out_of_window",
        )
    if code in INVALID_PARAMETER:
        return DeliveryRefused(f"{what}: a parameter was refused", reason="weibo_bad_parameter")
    return DeliveryRefused(what, reason="weibo_error")


def too_long(text: str) -> str | None:
    """Why Weibo would refuse ``text`` for its length (None if it would not)."""
    if len(text) < TEXT_LIMIT:
        return None
    return f"{len(text)} characters, Weibo takes fewer than {TEXT_LIMIT}"


class WeiboNotifier(Notifier):
    """Status notifications as fans-service replies; see the module docstring."""

    name: ClassVar[str] = NAME
    channel: ClassVar[str] = "weibo"
    settings_model: ClassVar[type[NotifierSettings]] = WeiboNotifierSettings
    settings: WeiboNotifierSettings

    def problems(self, texts: Mapping[Node, str]) -> list[str]:
        found: list[str] = []
        for node, text in texts.items():
            try:
                shortest = text.format_map(dict.fromkeys(placeholders(text), ""))
            except (ValueError, KeyError):
                continue  # reported by the planner's own template checks
            reason = too_long(shortest)
            if reason is not None:
                found.append(f"the weibo text of node {node} is too long: {reason}")
        return found

    def unreachable_reason(self, node: Node, *, reply_window_open: bool) -> str | None:
        return None if reply_window_open else "outside_reply_window"

    async def send(self, message: Message) -> Receipt:
        reason = too_long(message.text)
        if reason is not None:
            raise DeliveryRefused(
                f"{NAME}: the text of node {message.node} is too long: {reason}",
                reason="weibo_text_too_long",
            )
        if not message.recipient.isascii() or not message.recipient.isdigit():
            raise RecipientUnreachable(f"{NAME}: not a Weibo uid", reason="weibo_invalid_uid")
        data = json.dumps({"text": message.text}, ensure_ascii=False, separators=(",", ":"))
        form = {
            "access_token": self.settings.access_token.get_secret_value(),
            "type": "text",
            "data": quote(data, safe="") if self.settings.url_encode_data else data,
            "receiver_id": message.recipient,
            "save_sender_box": "1" if self.settings.save_sender_box else "0",
        }
        request = self.http.build_request(
            "POST",
            self.settings.base_url + REPLY,
            data=form,
            timeout=self.settings.timeout_seconds,
        )
        response = await send_request(self.http, request, f"{NAME} reply")
        answer = _answer(response)
        status = response.status_code
        if answer is None:
            if status in (401, 403):
                raise ChannelAuthError(f"{NAME} reply: HTTP {status}")
            if 400 <= status < 500:
                raise DeliveryRefused(f"{NAME} reply: HTTP {status}", reason="weibo_http_error")
            # Weibo took the request and answered something else: it may have sent it.
            raise DeliveryInDoubt(f"{NAME} reply: unreadable answer (HTTP {status})")
        code = answer.get("error_code")
        if code is not None:
            if isinstance(code, str) and code.isdigit():
                code = int(code)
            if isinstance(code, bool) or not isinstance(code, int):
                raise DeliveryInDoubt(f"{NAME} reply: unreadable error_code")
            raise reply_error(code, str(answer.get("error", "")))
        if not response.is_success:
            raise DeliveryInDoubt(f"{NAME} reply: HTTP {status} without an error_code")
        return Receipt(provider=NAME, message_id=_message_id(answer, message.key))


def _answer(response: httpx.Response) -> dict[str, Any] | None:
    try:
        answer = json.loads(response.content)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _message_id(answer: Mapping[str, Any], key: str) -> str:
    """Weibo's id of the sent message (``idstr``, else ``id``), else our key.

    What the answer holds is not in the reference (UNCONFIRMED); the direct
    message APIs answer the message object, ids as ``id`` and ``idstr``.
    """
    for name in ("idstr", "id", "msg_id"):
        value = answer.get(name)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return f"reply:{key}"
