"""What the customer reads at each node: the default texts, and the checks on users' own.

A text is a ``str.format`` template with plain named fields only
(``{ticket_no}``): no attribute access, index, conversion or format spec, so
a template from the settings can never reach into Python objects. Each node
provides a fixed set of variables (:data:`NODE_VARIABLES`); a template that
uses any other is refused when the gateway starts, not when it sends.

Channels read differently. E-mail has a subject; SMS goes through templates
registered with the provider, whose variables may not carry a URL (Aliyun
and Tencent both refuse links in variables unless the account is approved
for them), so the default survey asks for a reply instead of linking; a
deployment with a survey page sets ``survey_url`` and its own texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from string import Formatter

from schemas.status import NODES, Node

#: Variables every node has: the ticket number, and the brand from the settings.
COMMON_VARIABLES = frozenset({"ticket_no", "brand"})

#: What each node's status update may carry besides the common variables.
NODE_VARIABLES: dict[Node, frozenset[str]] = {
    "accepted": COMMON_VARIABLES | {"eta"},
    "in_progress": COMMON_VARIABLES | {"eta", "agent"},
    "solution_proposed": COMMON_VARIABLES | {"solution", "eta"},
    "overdue_warning": COMMON_VARIABLES | {"eta"},
    "resolved": COMMON_VARIABLES | {"result"},
    "survey": COMMON_VARIABLES | {"survey_url"},
}

#: The nodes' names as a customer reads them.
NODE_LABELS: dict[Node, str] = {
    "accepted": "已受理",
    "in_progress": "处理中",
    "solution_proposed": "方案已确定",
    "overdue_warning": "处理进度说明",
    "resolved": "已处理完成",
    "survey": "服务评价邀请",
}

#: The default text of each node, for WeChat and the body of e-mails.
DEFAULT_TEXTS: dict[Node, str] = {
    "accepted": "尊敬的客户，您的反馈我们已收到（编号：{ticket_no}），"
    "正在为您分配专属客服跟进，请您耐心等待。",
    "in_progress": "尊敬的客户，您的反馈（编号：{ticket_no}）已由专属客服跟进处理，"
    "我们会尽快给您答复，感谢您的耐心。",
    "solution_proposed": "尊敬的客户，您的反馈（编号：{ticket_no}）处理方案已确定：{solution}。"
    "如有疑问，请随时联系我们。",
    "overdue_warning": "尊敬的客户，非常抱歉让您久等了。您的反馈（编号：{ticket_no}）"
    "仍在加紧处理中，我们将尽快给您答复，感谢您的理解与耐心。",
    "resolved": "尊敬的客户，您的反馈（编号：{ticket_no}）已处理完成，感谢您的耐心与支持。"
    "如仍有问题，欢迎随时联系我们。",
    "survey": "尊敬的客户，您的反馈（编号：{ticket_no}）已处理完成，"
    "诚邀您为本次服务评分，回复1至5即可，感谢您的支持。",
}

#: SMS has its own table so a deployment can differ there; by default it is the same,
#: and no default puts a link in a variable.
DEFAULT_SMS_TEXTS: dict[Node, str] = dict(DEFAULT_TEXTS)

DEFAULT_SUBJECTS: dict[Node, str] = {
    node: f"您的反馈{NODE_LABELS[node]}（编号：{{ticket_no}}）" for node in NODES
}
DEFAULT_SUBJECTS["survey"] = "邀请您评价本次服务（编号：{ticket_no}）"
DEFAULT_SUBJECTS["overdue_warning"] = "关于您的反馈的处理进度（编号：{ticket_no}）"


def placeholders(text: str) -> list[str]:
    """The variables ``text`` uses, in order of first use; ValueError for all but ``{name}``."""
    names: list[str] = []
    for _, field, spec, conversion in Formatter().parse(text):
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise ValueError(f"only plain {{name}} placeholders are allowed, not {{{field}...}}")
        if field not in names:
            names.append(field)
    return names


def template_problems(where: str, node: Node, text: str) -> list[str]:
    """Why ``text`` cannot be the template of ``node`` (empty if it can)."""
    try:
        names = placeholders(text)
    except ValueError as exc:
        return [f"{where}: {exc}"]
    unknown = [name for name in names if name not in NODE_VARIABLES[node]]
    return [
        f"{where}: {{{name}}} is not a variable of node {node!r}"
        f" (it has {', '.join(sorted(NODE_VARIABLES[node]))})"
        for name in unknown
    ]


def render(text: str, values: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """``text`` filled in from ``values``, and the values it used in order (KeyError: one lacks)."""
    names = placeholders(text)
    used = {name: values[name] for name in names}
    return text.format_map(used), used
