"""Weibo comments and @mention posts (the ``weibo`` poller) → complaint records.

The complaint is the comment's or post's ``text``, verbatim, from
``weibo:<user.idstr>``; ``occurred_at`` is its ``created_at``. The post a
comment was made on is context, not the complaint: its id is
``source.thread_id`` (so every comment under one post shares a thread) and
the start of its text is quoted in ``channel_detail``. A post that
@mentions the brand is its own thread.

How far a complaint can spread is what makes it urgent on Weibo, so the
author's follower count and verified flag, and a post's repost count, are
kept where the record can carry them without a schema change: in
``channel_detail``, e.g. ``微博评论（粉丝 12.3 万，认证；原微博「…」）``, where
people read it and the triage rules read it back (:mod:`triage.reach`,
``[reach]`` in the rules: a large or verified account, or a widely reposted
post, is a public-opinion risk).
"""

from __future__ import annotations

from typing import Any

from connectors.errors import MalformedPayload
from connectors.weibo import item_id
from connectors.weibo_dm import parse_created_at, weibo_uid
from normalizer._fields import text as read_text
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent
from triage.reach import Reach, describe_reach
from triage.reach import followers_label as followers_label  # read by tests and callers

COMMENT_DETAIL = "微博评论"
MENTION_DETAIL = "微博@提及"
#: How much of the commented post ``channel_detail`` quotes.
QUOTE_CHARS = 40


def _count(value: Any) -> int | None:
    """A count as Weibo sends it (a number, sometimes a string); None when absent or odd."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _text(item: dict[str, Any], name: str, *, required: bool = False) -> str:
    return read_text(item, name, what="Weibo item", required=required)


def _user(item: dict[str, Any]) -> dict[str, Any]:
    user = item.get("user")
    if not isinstance(user, dict):
        raise MalformedPayload("Weibo item has no user", "missing_field")
    return user


def _uid(user: dict[str, Any]) -> str:
    value = user.get("idstr")
    return weibo_uid(value if value not in (None, "") else user.get("id"), "user.idstr")


def _reach(user: dict[str, Any], item: dict[str, Any]) -> list[str]:
    reach = Reach(
        followers=_count(user.get("followers_count")),
        verified=user.get("verified") is True,
        reposts=_count(item.get("reposts_count")),
    )
    return describe_reach(reach)


def _quote(post: dict[str, Any]) -> str:
    text = post.get("text")
    if not isinstance(text, str) or not text.strip():
        return ""
    text = " ".join(text.split())
    cut = text[:QUOTE_CHARS] + ("…" if len(text) > QUOTE_CHARS else "")
    return f"原微博「{cut}」"


class WeiboFeedNormalizer(Normalizer):
    channel = "weibo"

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        kind = event.payload.get("kind")
        item = event.payload.get("item")
        if kind not in ("comment", "status") or not isinstance(item, dict):
            raise MalformedPayload("not a Weibo comment or post", "invalid_field")
        description = _text(item, "text", required=True)
        user = _user(item)
        uid = _uid(user)
        created_at = _text(item, "created_at")
        occurred_at = parse_created_at(created_at) if created_at else None

        quote = ""
        if kind == "comment":
            detail = COMMENT_DETAIL
            post = item.get("status")
            thread_id = None
            if isinstance(post, dict):
                thread_id = str(item_id(post))
                quote = _quote(post)
        else:
            detail = MENTION_DETAIL
            thread_id = str(item_id(item))
        notes = [note for note in ("，".join(_reach(user, item)), quote) if note]
        if notes:
            detail += "（" + "；".join(notes) + "）"

        return build_record(
            event,
            customer={"id": f"weibo:{uid}", "contacts": {"weibo_uid": uid}},
            description=description,
            channel_detail=detail,
            occurred_at=occurred_at,
            thread_id=thread_id,
        )
