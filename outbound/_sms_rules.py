"""What the SMS notifiers share: the providers' rules on texts, variables and numbers.

Aliyun and Tencent Cloud both send only templates registered and approved in
their consoles, and both check the variables filled in at send time. These
functions report what either would refuse before anything is sent, so a bad
text stops the gateway at start (:meth:`Notifier.problems`) and a bad value
stops one notification (:meth:`Notifier.value_problems`), each with a reason
an operator can act on, instead of a refusal code from the provider.

* Texts: every node sent needs an approved template id; both providers refuse
  a template that is nothing but variables and two variables side by side
  (Aliyun: "不支持组合变量、变量相邻、全变量模板"; Tencent: "模板中的两个变量不能相邻");
  Aliyun also allows each variable once per template ("同一个变量在模板中仅可出现一次").
  Whether a placeholder is a plain ``{name}`` of the node is the gateway's
  check for every channel (:func:`outbound.templates.template_problems`).
* Values: no longer than the account's per-variable limit, and no link
  (``http://``, ``https://``, ``www.``) unless the account is approved for them.
  A problem names the variable and the length, never the value, which may be
  the customer's own data.
* Answers: an HTTP answer with no readable code is mapped by
  :func:`unreadable_answer`; a provider's own code is shown only when it looks
  like one (:func:`shown_code`), never its message, which may echo the
  recipient's number or the string that was signed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import pairwise
from string import Formatter
from typing import ClassVar, Protocol

import httpx

from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelUnavailable,
    DeliveryInDoubt,
    DeliveryRefused,
    RecipientUnreachable,
)
from outbound.base import Notifier
from outbound.templates import placeholders
from schemas.status import Node
from service.logs import mask_phone

#: A link in a variable: both providers refuse them unless the account is approved.
LINK = re.compile(r"https?://|www\.", re.IGNORECASE)

#: An E.164 number: ``+``, a country code, at most 15 digits in all.
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,79}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def text_problems(text: str, *, each_variable_once: bool) -> list[str]:
    """Why a provider would refuse a template of ``text`` (empty if it would not)."""
    try:
        placeholders(text)
    except ValueError:
        return []  # the gateway reports it for every channel (outbound.templates.template_problems)
    parts = list(Formatter().parse(text))
    fields = [field for _, field, _, _ in parts if field is not None]
    if not fields:
        return []
    problems: list[str] = []
    if not "".join(literal for literal, _, _, _ in parts).strip():
        problems.append("the text is nothing but variables, which the provider refuses")
    else:
        for (_, before, _, _), (literal, field, _, _) in pairwise(parts):
            if before is not None and field is not None and not literal.strip():
                problems.append(
                    f"{{{before}}} and {{{field}}} are side by side; "
                    "the provider wants text between variables"
                )
    if each_variable_once:
        problems.extend(
            f"{{{name}}} is used more than once; the provider allows each variable once"
            for name in sorted({name for name in fields if fields.count(name) > 1})
        )
    return problems


def template_problems(
    texts: Mapping[Node, str], templates: Mapping[Node, str], *, each_variable_once: bool
) -> list[str]:
    """Every text of a node with a provider template that the provider would refuse.

    A node without a template id is not a problem: SMS is passed over for it
    (``no_template``), and the route goes on to the next channel.
    """
    problems: list[str] = []
    for node, text in texts.items():
        if not templates.get(node):
            continue
        problems.extend(
            f"the text of node {node!r}: {problem}"
            for problem in text_problems(text, each_variable_once=each_variable_once)
        )
    return problems


class SmsSettings(Protocol):
    @property
    def templates(self) -> Mapping[Node, str]: ...
    @property
    def max_variable_chars(self) -> int | None: ...
    @property
    def allow_urls_in_variables(self) -> bool: ...


class TemplatedSmsNotifier(Notifier):
    """What both SMS providers do alike: a registered template per node, checked variables."""

    #: Aliyun allows a variable once per template, Tencent any number of times
    each_variable_once: ClassVar[bool] = False
    settings: SmsSettings

    def problems(self, texts: Mapping[Node, str]) -> list[str]:
        return template_problems(
            texts, self.settings.templates, each_variable_once=self.each_variable_once
        )

    def unreachable_reason(self, node: Node, *, reply_window_open: bool) -> str | None:
        return None if self.settings.templates.get(node) else "no_template"

    def value_problems(self, params: Mapping[str, str]) -> list[str]:
        return variable_problems(
            params,
            max_chars=self.settings.max_variable_chars,
            allow_links=self.settings.allow_urls_in_variables,
        )

    def template(self, node: Node) -> str:
        """The provider's template id for ``node``; :class:`DeliveryRefused` if there is none."""
        template = self.settings.templates.get(node)
        if not template:
            raise DeliveryRefused(f"{self.name}: no template for node {node!r}", "no_template")
        return template


def variable_problems(
    params: Mapping[str, str], *, max_chars: int | None, allow_links: bool
) -> list[str]:
    """What the provider would refuse in these values; names and lengths only, never a value."""
    problems: list[str] = []
    for name, value in params.items():
        if max_chars is not None and len(value) > max_chars:
            problems.append(
                f"{{{name}}} has {len(value)} characters,"
                f" more than the {max_chars} a variable may have (max_variable_chars)"
            )
        if not allow_links and LINK.search(value):
            problems.append(
                f"{{{name}}} holds a link, which the provider refuses in variables"
                " (allow_urls_in_variables)"
            )
    return problems


def require_e164(provider: str, recipient: str) -> str:
    """``recipient`` if it is E.164; otherwise refused here, before a paid request is made."""
    if not E164.match(recipient):
        raise RecipientUnreachable(
            f"{provider}: {mask_phone(recipient)} is not an E.164 number", "invalid_number"
        )
    return recipient


def shown_code(code: object) -> str:
    """The provider's error code fit for a message and a log line, or a placeholder."""
    return code if isinstance(code, str) and _CODE.match(code) else "<unrecognised code>"


def shown_request_id(request_id: object) -> str:
    """`` (request <id>)`` for support tickets, when the provider gave a sane one."""
    if isinstance(request_id, str) and _REQUEST_ID.match(request_id):
        return f" (request {request_id})"
    return ""


def unreadable_answer(provider: str, response: httpx.Response) -> ChannelError:
    """The error for an answer that carries no code we can read.

    A 2xx may mean the message was taken, so it is in doubt rather than
    resent. A 401 or 403 is a credentials problem; any other status
    (a proxy's 404, an HTML error page) is treated as the provider being
    unavailable, never as a refusal of this message.
    """
    status = response.status_code
    if response.is_success:
        return DeliveryInDoubt(f"{provider}: HTTP {status} with an answer that cannot be read")
    if status in (401, 403):
        return ChannelAuthError(f"{provider}: HTTP {status} without an error code")
    return ChannelUnavailable(f"{provider}: HTTP {status} without an error code")


def json_object(response: httpx.Response) -> dict[str, object] | None:
    """The answer's JSON object, or None if it is not one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
