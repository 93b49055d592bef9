"""WeChat Official Account (公众号) notifier: customer-service, template and subscribe messages.

A status reaches a follower, identified by the OpenID in ``Message.recipient``,
in one of three ways, tried in this order:

1. Inside the 48-hour customer-service window (``Message.reply_window_open``,
   the customer wrote to us lately) and with ``customer_service`` on: a free
   text message, ``POST /cgi-bin/message/custom/send``, carrying the whole
   rendered text. WeChat answers 45015 when the window has in fact closed and
   45047 when its reply quota (5 messages per 48 h today, 20 in older rules)
   is used up; the same send then goes on to step 2.
2. The node's configured template (``templates[node]``): a template message
   (``kind = "template"``, ``/cgi-bin/message/template/send``) or a
   subscription notification (``kind = "subscribe"``,
   ``/cgi-bin/message/subscribe/bizsend``, which needs the customer's
   opt-in). Each data field is a text with placeholders: the node's variables,
   ``{text}`` (the whole rendered message) and ``{node_label}`` (已受理...).
3. Neither: :class:`RecipientUnreachable` (``no_template_outside_window``),
   and the router tries the customer's next channel.

Template messages carry ``client_msg_id = Message.key``. Newer copies of
WeChat's page describe it as an anti-reentry id (one message per OpenID and
id within 10 minutes), but the reference this was built from could not
confirm it (channels.md §2.2, UNCONFIRMED): it is sent anyway, as WeChat
ignores fields it does not know, and nothing here depends on the dedupe.
A subscription notification's answer has no ``msgid`` in the docs (some
accounts get one): the receipt then holds ``subscribe:<key>``.

Subscription values have length limits by data type, named by the key
without its number (``thing2`` is a thing): thing ≤ 20 characters, number
≤ 32, symbol ≤ 5 (the service-account doc); phrase ≤ 5 comes from the
mini-program rules and is UNCONFIRMED for service accounts, as is how WeChat
counts a "character" (here: a Unicode code point). A value over its limit is
refused before the call (``wechat_value_too_long``) instead of letting WeChat
answer 47003. Template messages are not checked unless
``check_value_lengths`` says so: their limits are unconfirmed.

A refused access token (40001, 40014, 42001) is reported to the shared
:class:`AccessTokenCache` and the call is made once more with the token it
answers; refused again, it is :class:`ChannelAuthError`. Every other errcode
is mapped by :func:`send_error`. No error carries the OpenID, the token, the
AppSecret or a URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
    DeliveryInDoubt,
    DeliveryRefused,
    RecipientUnreachable,
)
from outbound._http import send_request
from outbound._wechat_token import (
    API_FREQ_OUT_OF_LIMIT,
    INVALID_APPID,
    INVALID_APPSECRET,
    SYSTEM_BUSY,
    TOKEN_REFUSED,
    AccessTokenCache,
    errcode_of,
    read_answer,
    request_id,
)
from outbound.base import Message, Notifier, NotifierSettings, Receipt
from outbound.templates import NODE_LABELS, NODE_VARIABLES, placeholders, render
from schemas.status import Node
from service.clock import Clock

#: "invalid openid": not an OpenID of this account.
INVALID_OPENID = 40003
#: "invalid template_id"
INVALID_TEMPLATE_ID = 40037
#: "require subscribe": the customer does not follow the account.
REQUIRE_SUBSCRIBE = 43004
#: "user refuse to accept the msg": no subscription opt-in left, or cancelled.
USER_REFUSED = 43101
#: "response out of time limit or subscription is canceled": the 48-hour window closed.
OUT_OF_RESPONSE_TIME_LIMIT = 45015
#: "out of response count limit": the window's reply quota is used up.
OUT_OF_RESPONSE_COUNT_LIMIT = 45047
#: "argument invalid!": a data value WeChat would not take.
INVALID_TEMPLATE_ARGUMENT = 47003
#: "api unauthorized": the account may not call this API (not a service account...).
API_UNAUTHORIZED = 48001

#: A customer-service answer that sends the message on to the node's template.
WINDOW_CLOSED = frozenset({OUT_OF_RESPONSE_TIME_LIMIT, OUT_OF_RESPONSE_COUNT_LIMIT})

#: The most characters a subscription value of each data type takes (see the module docstring).
VALUE_LIMITS: dict[str, int] = {"thing": 20, "number": 32, "symbol": 5, "phrase": 5}

#: Placeholders every template field may use besides the node's variables.
MESSAGE_PLACEHOLDERS = frozenset({"text", "node_label"})

CUSTOM_SEND = "/cgi-bin/message/custom/send"
TEMPLATE_SEND = "/cgi-bin/message/template/send"
SUBSCRIBE_SEND = "/cgi-bin/message/subscribe/bizsend"


def send_error(errcode: int, errmsg: str, what: str) -> ChannelError:
    """The error for a nonzero errcode from a message API (``what`` names the API)."""
    what = f"{what}: errcode {errcode}{request_id(errmsg)}"
    if errcode in TOKEN_REFUSED:
        return ChannelAuthError(f"{what}: access token refused again after a refresh")
    if errcode in (INVALID_APPID, INVALID_APPSECRET):
        return ChannelAuthError(f"{what}: credentials refused")
    if errcode == API_UNAUTHORIZED:
        return ChannelAuthError(f"{what}: the account may not use this API")
    if errcode == API_FREQ_OUT_OF_LIMIT:
        return ChannelRateLimited(f"{what}: api freq out of limit")
    if errcode == SYSTEM_BUSY:
        return ChannelUnavailable(f"{what}: system busy")
    if errcode == INVALID_OPENID:
        return RecipientUnreachable(f"{what}: invalid openid", reason="wechat_invalid_openid")
    if errcode == REQUIRE_SUBSCRIBE:
        return RecipientUnreachable(f"{what}: not a follower", reason="wechat_not_following")
    if errcode == USER_REFUSED:
        return RecipientUnreachable(f"{what}: the customer refused", reason="wechat_user_refused")
    if errcode == OUT_OF_RESPONSE_TIME_LIMIT:
        return RecipientUnreachable(
            f"{what}: outside the reply window", reason="wechat_out_of_window"
        )
    if errcode == OUT_OF_RESPONSE_COUNT_LIMIT:
        return RecipientUnreachable(f"{what}: reply quota used up", reason="wechat_reply_quota")
    if errcode == INVALID_TEMPLATE_ID:
        return DeliveryRefused(f"{what}: invalid template_id", reason="wechat_invalid_template")
    if errcode == INVALID_TEMPLATE_ARGUMENT:
        return DeliveryRefused(f"{what}: a value was refused", reason="wechat_invalid_argument")
    return DeliveryRefused(what, reason="wechat_error")


def value_type(key: str) -> str:
    """A subscription data key's type, its name without the number: ``thing2`` → ``thing``."""
    return key.rstrip("0123456789")


DataKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]


class WeChatTemplate(BaseModel):
    """One node's template message or subscription notification."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template_id: str = Field(
        min_length=1, description="The template's id in the account's template library."
    )
    kind: Literal["template", "subscribe"] = Field(
        "template",
        description='"template": a template message (模板消息); "subscribe": a subscription '
        "notification (订阅通知), which needs the customer's opt-in.",
    )
    url: str | None = Field(
        None,
        description="Link opened from the message (a subscription's page); placeholders allowed.",
    )
    fields: dict[DataKey, str] = Field(
        min_length=1,
        description="The template's data keys and their texts, e.g. "
        '{"thing1": "{node_label}", "character_string2": "{ticket_no}"}: placeholders are the '
        "node's variables, {text} (the whole message) and {node_label}.",
    )
    check_value_lengths: bool | None = Field(
        None,
        description="Refuse thing/number/symbol/phrase values over WeChat's limits before "
        "sending. Unset: on for subscription notifications, off for template messages.",
    )

    @property
    def checks_lengths(self) -> bool:
        if self.check_value_lengths is None:
            return self.kind == "subscribe"
        return self.check_value_lengths


class WeChatNotifierSettings(NotifierSettings):
    """``[notifiers.wechat]``: the account's credentials and each node's template."""

    app_id: str = Field(min_length=1, description="The account's AppID (wx…).")
    app_secret: SecretStr = Field(
        description="The account's AppSecret; used only to fetch access tokens."
    )
    base_url: str = Field(
        "https://api.weixin.qq.com", description="WeChat's API origin; tests point it at a fake."
    )
    use_stable_token: bool = Field(
        False,
        description="Fetch tokens with POST /cgi-bin/stable_token, isolated from other "
        "programs that call /cgi-bin/token with the same AppID.",
    )
    token_margin_seconds: float = Field(
        300.0, ge=0, description="Fetch a new access token this long before the old one expires."
    )
    customer_service: bool = Field(
        True,
        description="Inside the 48-hour window send the text as a customer-service message.",
    )
    templates: dict[Node, WeChatTemplate] = Field(
        default_factory=dict,
        description="Each node's template; a node without one is sent only inside the window.",
    )

    @field_validator("base_url")
    @classmethod
    def _origin(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        return value.rstrip("/")


class WeChatNotifier(Notifier):
    """Status notifications to WeChat followers; see the module docstring."""

    name: ClassVar[str] = "wechat"
    channel: ClassVar[str] = "wechat"
    settings_model: ClassVar[type[NotifierSettings]] = WeChatNotifierSettings
    settings: WeChatNotifierSettings

    def __init__(self, settings: WeChatNotifierSettings, http: httpx.AsyncClient, clock: Clock):
        super().__init__(settings, http, clock)
        self.tokens = AccessTokenCache(
            http,
            clock,
            base_url=settings.base_url,
            app_id=settings.app_id,
            app_secret=settings.app_secret,
            use_stable_token=settings.use_stable_token,
            margin_seconds=settings.token_margin_seconds,
            timeout_seconds=settings.timeout_seconds,
        )

    def problems(self, texts: Mapping[Node, str]) -> list[str]:
        found: list[str] = []
        for node in texts:
            if node not in self.settings.templates and not self.settings.customer_service:
                found.append(
                    f"notifiers.wechat: node {node} has no template"
                    " and customer-service messages are off"
                )
        for node, template in self.settings.templates.items():
            found.extend(_template_problems(node, template, texts.get(node)))
        return found

    def unreachable_reason(self, node: Node, *, reply_window_open: bool) -> str | None:
        if reply_window_open and self.settings.customer_service:
            return None
        return None if node in self.settings.templates else "no_template_outside_window"

    def value_problems(self, params: Mapping[str, str]) -> list[str]:
        """Nothing is known before sending: which template applies depends on the node and
        on whether the reply window is open, neither of which ``params`` tell. Over-long
        subscription values are refused by :meth:`send` (``wechat_value_too_long``)."""
        return []

    async def send(self, message: Message) -> Receipt:
        if self.settings.customer_service and message.reply_window_open:
            what = "wechat customer-service message"
            body = {
                "touser": message.recipient,
                "msgtype": "text",
                "text": {"content": message.text},
            }
            answer, errcode = await self._call(CUSTOM_SEND, body, what)
            if errcode == 0:
                return self._receipt(answer, f"custom:{message.key}", "customer_service")
            if errcode not in WINDOW_CLOSED or message.node not in self.settings.templates:
                raise send_error(errcode, str(answer.get("errmsg", "")), what)
        template = self.settings.templates.get(message.node)
        if template is None:
            raise RecipientUnreachable(
                f"wechat: node {message.node} has no template and the reply window is closed",
                reason="no_template_outside_window",
            )
        data, url = _fill(message, template)
        if template.kind == "subscribe":
            what = "wechat subscription notification"
            body = {"touser": message.recipient, "template_id": template.template_id, "data": data}
            if url:
                body["page"] = url
            answer, errcode = await self._call(SUBSCRIBE_SEND, body, what)
            fallback_id = f"subscribe:{message.key}"
        else:
            what = "wechat template message"
            body = {
                "touser": message.recipient,
                "template_id": template.template_id,
                "client_msg_id": message.key,
                "data": data,
            }
            if url:
                body["url"] = url
            answer, errcode = await self._call(TEMPLATE_SEND, body, what)
            fallback_id = f"template:{message.key}"
        if errcode != 0:
            raise send_error(errcode, str(answer.get("errmsg", "")), what)
        return self._receipt(answer, fallback_id, template.kind)

    async def aclose(self) -> None:
        await self.tokens.aclose()

    def _receipt(self, answer: Mapping[str, Any], fallback_id: str, detail: str) -> Receipt:
        msgid = answer.get("msgid")
        if isinstance(msgid, bool) or not isinstance(msgid, int | str) or not str(msgid):
            message_id = fallback_id
        else:
            message_id = str(msgid)
        return Receipt(provider=self.name, message_id=message_id, detail=detail)

    async def _call(self, path: str, body: dict[str, Any], what: str) -> tuple[dict[str, Any], int]:
        """POST ``body`` with the shared token, once more with a new token if it was refused."""
        token = await self.tokens.get()
        answer, errcode = await self._post(path, token, body, what)
        if errcode in TOKEN_REFUSED:
            token = await self.tokens.invalidate(token)
            answer, errcode = await self._post(path, token, body, what)
        return answer, errcode

    async def _post(
        self, path: str, token: str, body: dict[str, Any], what: str
    ) -> tuple[dict[str, Any], int]:
        request = self.http.build_request(
            "POST",
            self.settings.base_url + path,
            params={"access_token": token},
            json=body,
            timeout=self.settings.timeout_seconds,
        )
        response = await send_request(self.http, request, what)
        if not response.is_success:
            raise ChannelUnavailable(f"{what}: HTTP {response.status_code}")
        answer = read_answer(response)
        errcode = None if answer is None or "errcode" not in answer else errcode_of(answer)
        if answer is None or errcode is None:
            # WeChat took the request and answered something else: it may have sent it.
            raise DeliveryInDoubt(f"{what}: unreadable answer")
        return answer, errcode


def _values(message: Message) -> dict[str, str]:
    values = dict(message.params)
    values.setdefault("ticket_no", message.ticket_no)
    values["text"] = message.text
    values["node_label"] = NODE_LABELS[message.node]
    return values


def _fill(message: Message, template: WeChatTemplate) -> tuple[dict[str, dict[str, str]], str]:
    """The template's data and URL for ``message``; DeliveryRefused for what WeChat would refuse."""
    values = _values(message)
    where = f"wechat templates.{message.node}"
    data: dict[str, dict[str, str]] = {}
    for key, text in template.fields.items():
        value = _render(where, key, text, values)
        limit = VALUE_LIMITS.get(value_type(key))
        if template.checks_lengths and limit is not None and len(value) > limit:
            raise DeliveryRefused(
                f"{where}.fields.{key}: {len(value)} characters,"
                f" a {value_type(key)} value takes at most {limit}",
                reason="wechat_value_too_long",
            )
        data[key] = {"value": value}
    url = _render(where, "url", template.url, values) if template.url else ""
    return data, url


def _render(where: str, key: str, text: str, values: Mapping[str, str]) -> str:
    try:
        return render(text, values)[0]
    except KeyError as missing:
        raise DeliveryRefused(
            f"{where}.{key}: the message carries no {{{missing.args[0]}}}",
            reason="wechat_missing_variable",
        ) from None


def _template_problems(node: Node, template: WeChatTemplate, text: str | None) -> list[str]:
    """What keeps ``template`` from being filled for ``node``, whose text is ``text`` if known.

    Besides unknown placeholders: the notifier gets only the variables the
    node's text uses (``Message.params``), so a field using another one would
    have no value; and a limited subscription field that is too long even with
    every variable empty could never be sent.
    """
    where = f"notifiers.wechat.templates.{node}"
    allowed = NODE_VARIABLES[node] | MESSAGE_PLACEHOLDERS
    text_names = _names(text) if text is not None else None
    shortest = dict.fromkeys(NODE_VARIABLES[node], "") | {"node_label": NODE_LABELS[node]}
    if text is not None and text_names is not None:
        shortest["text"] = text.format_map(dict.fromkeys(text_names, ""))
    parts: list[tuple[str, str | None, str]] = [
        (f"{where}.fields.{key}", key, part) for key, part in template.fields.items()
    ]
    if template.url:
        parts.append((f"{where}.url", None, template.url))
    found: list[str] = []
    for at, key, part in parts:
        names = _names(part)
        if names is None:
            found.append(f"{at}: only plain {{name}} placeholders are allowed")
            continue
        found.extend(
            f"{at}: {{{name}}} is not a variable of node {node!r}"
            f" (it has {', '.join(sorted(allowed))})"
            for name in names
            if name not in allowed
        )
        if text_names is not None:
            found.extend(
                f"{at}: {{{name}}} would have no value: the node's text does not use it"
                for name in names
                if name in NODE_VARIABLES[node] and name != "ticket_no" and name not in text_names
            )
        limit = VALUE_LIMITS.get(value_type(key)) if key is not None else None
        if template.checks_lengths and limit is not None and set(names) <= shortest.keys():
            length = len(part.format_map({name: shortest[name] for name in names}))
            if length > limit:
                found.append(
                    f"{at}: at least {length} characters,"
                    f" a {value_type(key or '')} value takes at most {limit}"
                )
    return found


def _names(text: str) -> list[str] | None:
    try:
        return placeholders(text)
    except ValueError:
        return None
