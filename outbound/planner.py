"""From a status update to the notifications it causes: to whom, on which channel, saying what.

Routing. The customer is answered on the ground they came from when that
works at that moment (``reply_channels``: a WeChat complaint on WeChat, an
e-mail by e-mail, a phone call by SMS to the calling number, a Weibo
private message by a fans-service reply); otherwise along ``route``
(default WeChat → SMS → e-mail), using whatever contacts the record holds.
An update's own ``channels`` replaces both.

Channels with no reply path of their own follow the route from the start:
a store's paper form or tablet, and the marketplaces (``taobao``, ``jd``,
``pinduoduo``, ``douyin_shop``), whose buyer-message APIs the gateway does
not use, so a refund complaint is answered by SMS or e-mail when the record
holds a phone or an address, and not at all otherwise.

Reply windows. WeChat and Weibo let an account message a customer freely
only for a while after the customer wrote (:data:`REPLY_WINDOWS`): 48 hours
by default (``wechat_window_hours``, ``weibo_window_hours``), counted from
the customer's last message on that channel as the directory recorded it.
For Weibo only private messages (complaint channel ``weibo_dm``) open the
window. A Weibo comment or @mention (``weibo``) is answered on Weibo only
when the same uid also wrote to us privately inside the window; otherwise
Weibo is passed over (``outside_reply_window``) and the route is used.
Status notifications are never posted as public comment replies
(``comments/reply`` is UNCONFIRMED, and a ticket's progress is not for
everyone to read).

A channel is passed over when it has no provider configured, the record has
no handle for it, the customer opted out of it (unless the node is
mandatory), its reply window is closed and the provider has no other way
(WeChat without a template for the node, Weibo always), or the values break
the SMS providers' variable rules. The first channel left gets the job; the
others ride along as its fallback, used in order if the provider says the
customer cannot be reached there.

Texts are rendered here, once, so a retry or a restart sends the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from outbound.base import Notifier
from outbound.outcomes import outcome_json
from outbound.settings import NotificationSettings
from outbound.state import Contact, Job, NotificationStore, StatusChange, notification_key, stamp
from outbound.templates import (
    COMMON_VARIABLES,
    DEFAULT_SMS_TEXTS,
    DEFAULT_SUBJECTS,
    DEFAULT_TEXTS,
    NODE_VARIABLES,
    placeholders,
    render,
    template_problems,
)
from schemas.record import Contacts
from schemas.status import Node, StatusUpdate, node_rank

#: The contact field that reaches a customer on each delivery channel.
HANDLES = {"wechat": "wechat_openid", "sms": "phone", "email": "email", "weibo": "weibo_uid"}

#: Delivery channels that may message a customer only inside a reply window, and the
#: complaint channel whose messages open it (see ``NotificationStore.reply_window``).
REPLY_WINDOWS = {"wechat": "wechat", "weibo": "weibo_dm"}


class StatusRejected(Exception):
    """A status update the gateway will not act on; ``status`` is the HTTP answer."""

    def __init__(self, status: int, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.status = status
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Draft:
    """One channel's rendering of a notification."""

    channel: str
    recipient: str
    text: str
    subject: str
    params: dict[str, str]
    window_open: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "recipient": self.recipient,
            "text": self.text,
            "subject": self.subject,
            "params": self.params,
            "window_open": self.window_open,
        }


class Planner:
    def __init__(
        self,
        settings: NotificationSettings,
        notifiers: Mapping[str, Notifier],
    ) -> None:
        self.settings = settings
        self.providers: dict[str, list[Notifier]] = {}
        for notifier in notifiers.values():
            self.providers.setdefault(notifier.channel, []).append(notifier)
        for channel, chain in self.providers.items():
            order = settings.providers.get(channel, ())
            chain.sort(key=lambda n: order.index(n.name) if n.name in order else len(order))
        self.texts: dict[str, dict[Node, str]] = {}
        for channel in {*self.providers, *settings.texts}:
            defaults = DEFAULT_SMS_TEXTS if channel == "sms" else DEFAULT_TEXTS
            self.texts[channel] = {**defaults, **settings.texts.get(channel, {})}
        self.subjects: dict[Node, str] = {**DEFAULT_SUBJECTS, **settings.subjects}

    # -- start-up checks -----------------------------------------------------------------

    def problems(self) -> list[str]:
        """Every reason the texts and providers cannot work; the gateway refuses to start on any."""
        problems: list[str] = []
        for channel, texts in sorted(self.texts.items()):
            if channel not in self.providers:
                problems.append(f"notifications.texts.{channel}: no [notifiers.*] sends {channel}")
            for node, text in texts.items():
                problems += template_problems(f"notifications.texts.{channel}.{node}", node, text)
        for node, text in self.subjects.items():
            problems += template_problems(f"notifications.subjects.{node}", node, text)
        for chain in self.providers.values():
            for notifier in chain:
                problems += [
                    f"notifiers.{notifier.name}: {p}"
                    for p in notifier.problems(self.texts[notifier.channel])
                ]
        timer_nodes: dict[Node, frozenset[str]] = {}
        if self.settings.sla.enabled:
            timer_nodes["overdue_warning"] = COMMON_VARIABLES
        if self.settings.survey_delay_minutes is not None:
            timer_nodes["survey"] = COMMON_VARIABLES | {"survey_url"}
        for node, allowed in timer_nodes.items():
            for channel, texts in self.texts.items():
                for name in _safe_placeholders(texts[node]):
                    if name not in allowed:
                        problems.append(
                            f"notifications.texts.{channel}.{node}: {{{name}}} has no value when "
                            f"the gateway sends {node} by itself (timers fill only "
                            f"{', '.join(sorted(allowed))})"
                        )
        return problems

    # -- planning ------------------------------------------------------------------------

    def order(self, update: StatusUpdate, contact: Contact | None) -> list[str]:
        if update.channels:
            return list(dict.fromkeys(update.channels))
        own = self.settings.reply_channels.get(contact.channel) if contact else None
        return list(dict.fromkeys([c for c in (own, *self.settings.route) if c]))

    async def plan(
        self,
        update: StatusUpdate,
        contact: Contact | None,
        store: NotificationStore,
        *,
        now: datetime,
    ) -> StatusChange:
        """The jobs (or the skip) for ``update``.

        Raises :class:`StatusRejected` (400) listing every bad or missing variable.
        """
        node = update.node
        values = {"ticket_no": update.ticket_no, "brand": self.settings.brand, **update.variables}
        problems = [
            f"variables.{name}: not a variable of node {node!r} "
            f"(it has {', '.join(sorted(NODE_VARIABLES[node]))})"
            for name in update.variables
            if name not in NODE_VARIABLES[node]
        ]
        handles = update.recipient or _contacts_of(contact)
        drafts: list[Draft] = []
        passed_over: list[str] = []
        for channel in self.order(update, contact):
            reason, draft = await self._draft(store, channel, node, handles, values, problems, now)
            if draft is not None:
                drafts.append(draft)
            else:
                passed_over.append(f"{channel}: {reason}")
        if problems:
            raise StatusRejected(400, problems)
        node_key = node if not update.reopens else f"{node}@{stamp(update.occurred_at)}"
        priority = contact.priority if contact else "P3"
        jobs: list[Job] = []
        outcomes: list[bytes] = []
        if drafts:
            first, *rest = drafts
            jobs.append(
                job_for(
                    first,
                    record_id=update.record_id,
                    node=node,
                    node_key=node_key,
                    ticket_no=update.ticket_no,
                    priority=priority,
                    fallback=rest,
                    due_at=now,
                )
            )
        else:
            outcomes.append(
                outcome_json(
                    record_id=update.record_id,
                    ticket_no=update.ticket_no,
                    node=node,
                    channel="",
                    recipient="",
                    status="skipped",
                    reason="no_reachable_channel",
                    detail="; ".join(passed_over),
                    at=now,
                )
            )
        delay = self.settings.survey_delay_minutes
        return StatusChange(
            record_id=update.record_id,
            node=node,
            rank=node_rank(node),
            ticket_no=update.ticket_no,
            reopens=update.reopens,
            jobs=jobs,
            outcomes=outcomes,
            survey_due_at=now + timedelta(minutes=delay)
            if node == "resolved" and delay is not None
            else None,
            clear_sla=node != "accepted",
            clear_survey=node == "survey",
            advances=node != "overdue_warning",
        )

    async def _draft(
        self,
        store: NotificationStore,
        channel: str,
        node: Node,
        handles: Contacts,
        values: Mapping[str, str],
        problems: list[str],
        now: datetime,
    ) -> tuple[str, Draft | None]:
        chain = self.providers.get(channel)
        if not chain:
            return "no_provider", None
        field = HANDLES.get(channel)
        recipient = getattr(handles, field) if field else None
        if not recipient:
            return "no_contact", None
        if node not in self.settings.mandatory_nodes:
            if await store.opted_out([f"{channel}:{recipient}"]):
                return "opted_out", None
        try:
            text, params = render(self.texts[channel][node], values)
            subject = render(self.subjects[node], values)[0] if channel == "email" else ""
        except KeyError as missing:
            problems.append(
                f"variables.{missing.args[0]}: the {channel} text of node {node!r} needs it"
            )
            return "missing_variable", None
        window_open = await self._window_open(store, channel, recipient, now)
        reason = chain[0].unreachable_reason(node, reply_window_open=window_open)
        if reason is not None:
            return reason, None
        if chain[0].value_problems(params):
            return "variable_rules", None
        return "", Draft(channel, recipient, text, subject, params, window_open)

    async def _window_open(
        self, store: NotificationStore, channel: str, recipient: str, now: datetime
    ) -> bool:
        """Whether ``recipient`` opened ``channel``'s reply window lately (False if it has none)."""
        opened_by = REPLY_WINDOWS.get(channel)
        if opened_by is None:
            return False
        if channel == "weibo":  # unlimited replies inside Weibo's window
            hours, quota = self.settings.weibo_window_hours, None
        else:
            hours, quota = self.settings.wechat_window_hours, self.settings.wechat_window_quota
        since = now - timedelta(hours=hours)
        last, sent = await store.reply_window(recipient, since, channel=opened_by)
        return last is not None and (quota is None or sent < quota)


def job_for(
    draft: Draft,
    *,
    record_id: str,
    node: Node,
    node_key: str,
    ticket_no: str,
    priority: str,
    fallback: list[Draft] | list[dict[str, Any]],
    due_at: datetime,
) -> Job:
    return Job(
        key=notification_key(record_id, node_key, draft.channel, draft.recipient),
        record_id=record_id,
        node=node,
        channel=draft.channel,
        recipient=draft.recipient,
        content={
            "text": draft.text,
            "subject": draft.subject,
            "params": draft.params,
            "window_open": draft.window_open,
            "ticket_no": ticket_no,
            "priority": priority,
            "node_key": node_key,
            "fallback": [d.as_dict() if isinstance(d, Draft) else d for d in fallback],
        },
        due_at=due_at,
    )


def follow_up(job: Job, now: datetime) -> Job | None:
    """The job for the next channel of ``job``'s fallback, if any is left."""
    fallback = list(job.content.get("fallback", ()))
    if not fallback:
        return None
    first, *rest = fallback
    draft = Draft(
        first["channel"],
        first["recipient"],
        first["text"],
        first["subject"],
        dict(first["params"]),
        bool(first.get("window_open")),
    )
    return job_for(
        draft,
        record_id=job.record_id,
        node=job.node,
        node_key=str(job.content.get("node_key", job.node)),
        ticket_no=str(job.content.get("ticket_no", "")),
        priority=str(job.content.get("priority", "P3")),
        fallback=rest,
        due_at=now,
    )


def _contacts_of(contact: Contact | None) -> Contacts:
    if contact is None:
        return Contacts()
    return Contacts(
        phone=contact.phone,
        email=contact.email,
        wechat_openid=contact.wechat_openid,
        weibo_uid=contact.weibo_uid,
        buyer_nick=contact.buyer_nick,
    )


def _safe_placeholders(text: str) -> list[str]:
    try:
        return placeholders(text)
    except ValueError:
        return []  # reported by template_problems
