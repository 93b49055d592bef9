"""Reach as a public-opinion risk: a Weibo complaint from a large or verified account,
or on a widely reposted post, reaches the desk as P1 with the reason in words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.weibo import item_event
from normalizer.weibo_feed import WeiboFeedNormalizer
from schemas import ComplaintRecord
from service.triage_stage import TriageStage
from triage.engine import Triage
from triage.reach import Reach, describe_reach, read_reach
from triage.ruleset import load_ruleset

RECEIVED = datetime(2026, 11, 23, 2, 13, tzinfo=UTC)
WORDS = "@某品牌官方微博 买的电饭煲用了三天就坏了，客服一直不回"


@pytest.fixture(scope="module")
def stage() -> TriageStage:
    return TriageStage(Triage(load_ruleset()))


def weibo_record(followers: Any, verified: bool = False, reposts: Any = 0) -> ComplaintRecord:
    item = {
        "created_at": "Mon Nov 23 10:12:31 +0800 2026",
        "id": 5231847760000123,
        "idstr": "5231847760000123",
        "text": WORDS,
        "reposts_count": reposts,
        "user": {
            "id": 6000000123,
            "idstr": "6000000123",
            "screen_name": "数码 小王 ✨",
            "followers_count": followers,
            "verified": verified,
        },
    }
    event = item_event("status", item, RECEIVED, "statuses/mentions")
    record = WeiboFeedNormalizer().normalize(event)
    assert isinstance(record, ComplaintRecord)
    return record


@pytest.mark.parametrize(
    ("followers", "verified", "reposts", "reason"),
    [
        (1_234_567, False, 0, "P1: 舆情风险：大号发声（粉丝 123.4 万）"),
        (25_000, True, 0, "P1: 舆情风险：大号发声（粉丝 2.5 万，认证）"),
        (80, False, 3_200, "P1: 舆情风险：转发 3200"),
    ],
)
def test_a_complaint_that_can_spread_is_p1_with_the_reach_as_its_reason(
    stage: TriageStage, followers: int, verified: bool, reposts: int, reason: str
) -> None:
    labelled = stage.apply(weibo_record(followers, verified, reposts))
    assert labelled.priority == "P1"
    assert labelled.triage is not None and reason in labelled.triage.reasons


@pytest.mark.parametrize(
    ("followers", "verified", "reposts"),
    [(350, False, 2), (25_000, False, 0), (9_000, True, 0), (99_999, False, 999)],
)
def test_an_ordinary_account_is_not_raised_by_its_reach(
    stage: TriageStage, followers: int, verified: bool, reposts: int
) -> None:
    labelled = stage.apply(weibo_record(followers, verified, reposts))
    assert labelled.priority != "P1"
    assert labelled.triage is not None
    assert not any("舆情风险" in reason for reason in labelled.triage.reasons)


def test_the_thresholds_are_the_rules_files_to_change(stage: TriageStage) -> None:
    rules = load_ruleset()
    lowered = rules.model_copy(update={"reach": rules.reach.model_copy(update={"followers": 300})})
    labelled = TriageStage(Triage(lowered)).apply(weibo_record(350))
    assert labelled.priority == "P1"
    assert stage.apply(weibo_record(350)).priority != "P1"


def test_other_channels_details_are_never_read_as_reach(stage: TriageStage) -> None:
    record = weibo_record(1_000_000).model_copy(update={"channel": "store"})
    assert read_reach("store", record.channel_detail) == Reach()
    assert stage.apply(record).priority != "P1"


@pytest.mark.parametrize(
    "reach",
    [
        Reach(followers=0),
        Reach(followers=9_999, verified=True),
        Reach(followers=10_000),
        Reach(followers=100_000_000, verified=True, reposts=12),
        Reach(reposts=1),
    ],
)
def test_what_the_normalizer_writes_the_rules_read_back(reach: Reach) -> None:
    detail = "微博评论（" + "，".join(describe_reach(reach)) + "；原微博「认证好难」）"
    back = read_reach("weibo", detail)
    assert back.verified == reach.verified and back.reposts == reach.reposts
    # 粉丝 1.2 万 is how Weibo shows it: exact below ten thousand, within 0.5% above
    if reach.followers is not None and back.followers is not None:
        assert abs(back.followers - reach.followers) <= reach.followers * 0.005
    assert (back.followers is None) == (reach.followers is None)
