"""The demo's second half: one complaint's journey through the six nodes, as its customer sees it.

The ticket system is played by ``POST /status``; the WeChat and SMS
providers by :mod:`service.fake_providers` (a real HTTP server that checks
Aliyun's signature and WeChat's access token). Each node is posted, the
message the customer received is shown beside it; a redelivered update and
one that goes backwards show what the gateway refuses to send; the survey
comes by itself, a moment after ``resolved``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from rich.table import Table

from outbound.templates import DEFAULT_SMS_TEXTS
from service.fake_providers import FakeProviders

FAKE_KEY_ID = "LTAI5tDemoKeyId0000"
SMS_TEMPLATES = {f"SMS_DEMO_{node.upper()}": text for node, text in DEFAULT_SMS_TEXTS.items()}

#: (node, variables) as a ticket system would post them
JOURNEY: tuple[tuple[str, dict[str, str]], ...] = (
    ("accepted", {}),
    ("in_progress", {}),
    ("solution_proposed", {"solution": "为您办理退货并全额退款 299.00 元"}),
    ("overdue_warning", {}),
    ("resolved", {}),
)


def notifier_settings(base: str, aliyun_secret: str, wechat_app: str, wechat_secret: str) -> Any:
    return {
        "wechat": {
            "app_id": wechat_app,
            "app_secret": wechat_secret,
            "base_url": f"{base}/wechat",
            # five customer-service messages use up the window's quota: the survey,
            # sixth, goes as the account's template message
            "templates": {
                "survey": {
                    "template_id": "TPL_DEMO_SURVEY",
                    "fields": {"first": "{text}", "keyword1": "{ticket_no}"},
                }
            },
        },
        "aliyun_sms": {
            "access_key_id": FAKE_KEY_ID,
            "access_key_secret": aliyun_secret,
            "sign_name": "示例家电",
            "templates": {node: f"SMS_DEMO_{node.upper()}" for node in DEFAULT_SMS_TEXTS},
            "base_url": f"{base}/aliyun",
        },
    }


async def follow_journey(
    client: httpx.AsyncClient, token: str, record_id: str, fake: FakeProviders
) -> Table:
    """Post the journey's updates for ``record_id``; a table of what the customer got."""
    headers = {"Authorization": f"Bearer {token}"}
    table = Table(title=f"One complaint's journey ({record_id[:20]}…): what the customer received")
    for column in ("ticket system posts", "HTTP", "customer received"):
        table.add_column(column, overflow="fold")

    async def post(node: str, variables: dict[str, str], **extra: Any) -> httpx.Response:
        body = {
            "record_id": record_id,
            "node": node,
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "ticket_no": "TS20240520",
            "variables": variables,
            **extra,
        }
        return await client.post("/status", json=body, headers=headers)

    for node, variables in JOURNEY:
        seen = len(fake.messages)
        answer = await post(node, variables)
        received = await _next_message(fake, seen)
        table.add_row(node, str(answer.status_code), received)
        if node == "in_progress":
            again = await post(node, variables)
            table.add_row(
                "in_progress [dim](delivered again)[/]",
                str(again.status_code),
                f"[cyan]nothing: already queued ({again.json().get('already_queued')})[/]",
            )
    backwards = await post("in_progress", {})
    table.add_row(
        "in_progress [dim](after resolved)[/]",
        str(backwards.status_code),
        f"[red]nothing[/]: {backwards.json().get('error', '')}",
    )
    seen = len(fake.messages)
    table.add_row(
        "[dim](nothing: the gateway's own timer, 3 s after resolved)[/]",
        "-",
        await _next_message(fake, seen, wait=15),
    )
    return table


async def _next_message(fake: FakeProviders, seen: int, wait: float = 10) -> str:
    deadline = time.monotonic() + wait
    while len(fake.messages) <= seen:
        if time.monotonic() > deadline:
            return "[yellow](nothing yet)[/]"
        await asyncio.sleep(0.05)
    message = fake.messages[seen]
    how = {"custom/send": "WeChat message", "template/send": "WeChat template"}.get(
        str(message.get("kind")), "SMS"
    )
    return f"[green]{how}[/]: {message['text']}"


async def answer_on_their_channels(
    client: httpx.AsyncClient, token: str, records: list[tuple[str, str]], weibo: Any
) -> Table:
    """Post ``accepted`` for each ``(label, record_id)``; what each customer got, and where.

    ``weibo`` is the demo's fake Weibo API (:class:`service.fake_platforms.weibo.FakeWeibo`):
    a private-message complaint is answered there, inside the fans-service window.
    """
    table = Table(title="Answered on the customer's own channel (status accepted)")
    for column in ("complaint", "HTTP", "customer received"):
        table.add_column(column, overflow="fold")
    headers = {"Authorization": f"Bearer {token}"}
    for label, record_id in records:
        replies = len(weibo.replies)
        answer = await client.post(
            "/status",
            json={
                "record_id": record_id,
                "node": "accepted",
                "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "ticket_no": "TS20241111",
            },
            headers=headers,
        )
        deadline = time.monotonic() + 3
        while len(weibo.replies) <= replies and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if len(weibo.replies) > replies:
            received = f"[green]Weibo private reply[/]: {weibo.replies[replies].text}"
        else:
            received = "[dim]nothing on the platform: no buyer-message API, no usable contact[/]"
        table.add_row(label, str(answer.status_code), received)
    return table
