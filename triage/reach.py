"""How far a complaint can spread: a Weibo author's audience and a post's reposts.

The record has no field for reach (schema 1.1), so the Weibo normalizer writes
it into ``channel_detail`` in one fixed form, the way Weibo shows it
(``粉丝 12.3 万，认证，转发 1500``), and the triage rules read it back from
there with :func:`read_reach`. :func:`describe_reach` and :func:`read_reach`
are the two ends of that form; keep them together.

A follower count shown as ``12.3 万`` reads back as 123,000. The label cuts
rather than rounds (99,999 is ``9.9 万``, not ``10 万``), so a threshold in
whole thousands compares the same on the label as on the exact count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

#: Channels whose normalizer writes reach notes; other channels' details are never read.
CHANNELS = frozenset({"weibo"})
_UNITS = (("亿", 100_000_000), ("万", 10_000))
_FOLLOWERS = re.compile(r"粉丝 ([0-9]+(?:\.[0-9])?)(?: (万|亿))?")
_REPOSTS = re.compile(r"转发 ([0-9]+)")
_VERIFIED = re.compile(r"(?:^|[（，；])认证(?=[），；]|$)")


@dataclass(frozen=True, slots=True)
class Reach:
    followers: int | None = None
    verified: bool = False
    reposts: int | None = None

    def __bool__(self) -> bool:
        return self.followers is not None or self.verified or bool(self.reposts)


def followers_label(count: int) -> str:
    """``粉丝 12.3 万``: a follower count as Weibo shows it, cut (not rounded) to 0.1 万."""
    for unit, size in _UNITS:
        if count >= size:
            tenths = (Decimal(count) / size).quantize(Decimal("0.1"), rounding=ROUND_DOWN)
            shown = str(tenths).removesuffix(".0")
            return f"粉丝 {shown} {unit}"
    return f"粉丝 {count}"


def describe_reach(reach: Reach) -> list[str]:
    """The notes ``channel_detail`` carries: ``["粉丝 12.3 万", "认证", "转发 1500"]``."""
    parts: list[str] = []
    if reach.followers is not None:
        parts.append(followers_label(reach.followers))
    if reach.verified:
        parts.append("认证")
    if reach.reposts:
        parts.append(f"转发 {reach.reposts}")
    return parts


def read_reach(channel: str, channel_detail: str) -> Reach:
    """The reach :func:`describe_reach` wrote into a ``channel_detail``; empty when none."""
    if channel not in CHANNELS:
        return Reach()
    followers: int | None = None
    found = _FOLLOWERS.search(channel_detail)
    if found:
        size = dict(_UNITS).get(found.group(2) or "", 1)
        followers = int(Decimal(found.group(1)) * size)
    reposts = _REPOSTS.search(channel_detail)
    return Reach(
        followers=followers,
        verified=bool(_VERIFIED.search(channel_detail)),
        reposts=int(reposts.group(1)) if reposts else None,
    )
