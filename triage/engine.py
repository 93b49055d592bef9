"""Triage: the category, priority and expectations of a complaint, and the reasons why.

:class:`Triage` is built once from a :class:`~triage.ruleset.Ruleset` (it
compiles every pattern then) and is a pure function afterwards: no I/O, no
clock, the same verdict for the same input. It reads the customer's words and
what the channel knows (the customer's tier, the order amount, whether the
contact repeats an open complaint, whether a batch of customers report the
same failure).

* Category: each category's patterns add their weight (each distinct word
  once; negative weights count against). Words after a focus cue
  (``最重要的是``, ``是因为``) weigh ``focus_multiplier`` times; a voiced remedy
  adds ``remedy_bonus`` to the categories it targets that already have evidence.
  The highest score wins, a tie goes to the category listed first in
  :data:`~triage.ruleset.CATEGORY_CODES`; below ``min_score`` it is ``other``.
  With a learned model (:mod:`triage.model`, the shipped one by default), the
  rules decide alone when they lead the runner-up by ``decisive_margin``
  points; otherwise each category's model score plus ``rule_weight`` times its
  rule score decides (a category the rules have words against, such as
  ``包装完好`` for transit damage, cannot win). When that choice is the rules'
  own, the reason is the rules'; when the model overrules them, or decides where the rules found
  nothing, the reason names the n-grams that weighed most:
  ``类别 product.defect（模型）：「发霉」「异味」``.
* Priority: every trigger that fires gives a level and a reason; the highest
  level wins (P1 over P2 over P3 over P4). Where no P1 trigger fired, the
  learned P1 signal (:mod:`triage.p1_model`, the shipped one by default) gives
  P1 when its probability reaches its threshold, unless the P1 triggers saw
  their own words there and ruled them out (a guard or a negation: ``没起火``,
  ``气炸了``, a camera's ``曝光``) or one of ``[learned_p1] traps`` stands in the
  text (``投诉到平台``); its reason names the n-grams that weighed most:
  ``P1（模型）：「冒火」「电源线」``. Nothing fired: P3. Improvement as
  the only voiced remedy gives P4 when there is no open fault: a category of
  no real fault, a problem the customer says is solved, or category words that
  all stand inside the wish itself (``建议简化开票流程``).
* Expectations: the rows of the expectations table whose phrases are voiced
  and not declined (``不要退款``); in the schema's order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple, cast

from schemas.record import Category, ComplaintRecord, Expectation, Priority
from triage.amounts import find_amounts
from triage.model import SHIPPED, CategoryModel, Shipped, grams, shipped_model
from triage.p1_model import P1Model, p1_grams, shipped_p1_model
from triage.patterns import Hit, NegationCues, PatternGroup
from triage.reach import Reach, describe_reach, read_reach
from triage.ruleset import CATEGORY_CODES, EXPECTATIONS, Ruleset
from triage.scanning import JointScanner
from triage.text import Homophones, fold, simplify

_QUOTED_WORDS = 3
_LONGEST_QUOTE = 16
_RANK: dict[str, int] = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


@dataclass(frozen=True, slots=True)
class TriageResult:
    """The verdict; ``reasons`` name the words that decided it, winning priority first."""

    category_code: str
    category_label: str
    priority: Priority
    expectations: tuple[Expectation, ...]
    reasons: tuple[str, ...]
    ruleset_version: str

    @property
    def category(self) -> Category:
        return Category(code=self.category_code, label=self.category_label)


class Triage:
    """The rules of one ruleset, compiled; :meth:`triage` labels a record."""

    def __init__(
        self,
        ruleset: Ruleset,
        model: CategoryModel | Shipped | None = SHIPPED,
        p1_model: P1Model | Shipped | None = SHIPPED,
    ) -> None:
        """The learned models, the shipped ones by default; None: rules only.

        ``model``: the category model; ``p1_model``: the P1 signal.
        """
        self.ruleset = ruleset
        self.model = shipped_model() if isinstance(model, Shipped) else model
        self.p1_model = shipped_p1_model() if isinstance(p1_model, Shipped) else p1_model
        negation = ruleset.negation
        self._homophones = Homophones(ruleset.homophones)
        facts = NegationCues(negation.cues, negation.exceptions, negation.max_gap)
        wishes = NegationCues(
            (*negation.cues, *negation.wish_cues), negation.exceptions, negation.max_gap
        )
        order = {code: index for index, code in enumerate(CATEGORY_CODES)}
        self._categories = tuple(
            (category.code, PatternGroup(category.patterns, facts))
            for category in sorted(ruleset.categories, key=lambda c: order[c.code])
        )
        self._labels = {category.code: category.label for category in ruleset.categories}
        # All triggers are scanned as one group, the higher levels first, so a
        # position two triggers share goes to the higher one.
        self._triggers = tuple(sorted(ruleset.triggers, key=lambda t: _RANK[t.priority]))
        self._trigger_of = tuple(i for i, t in enumerate(self._triggers) for _ in t.patterns)
        self._trigger_hits = PatternGroup(
            [pattern for trigger in self._triggers for pattern in trigger.patterns], facts
        )
        self._vetoes = tuple(_any_of(t.unless_anywhere) for t in self._triggers)
        self._p1_patterns = frozenset(
            number
            for number, index in enumerate(self._trigger_of)
            if self._triggers[index].priority == "P1"
        )
        self._p1_traps = _any_of(ruleset.learned_p1.traps)
        rows = ruleset.expectations
        self._gives_of = tuple(row.gives for row in rows for _ in row.patterns)
        self._expectation_hits = PatternGroup(
            [pattern for row in rows for pattern in row.patterns], wishes
        )
        # Every group and cue list is scanned in one pass over the text; each
        # gets its own matches back, by its place in this list.
        groups = [group for _, group in self._categories]
        groups += [self._trigger_hits, self._expectation_hits]
        cues = [
            ruleset.scoring.focus_cues,
            ruleset.improvement_only.resolved,
            ruleset.improvement_only.wish_cues,
        ]
        self._scanner = JointScanner([*(group.patterns for group in groups), *cues])
        self._triggers_at = len(self._categories)
        self._expectations_at = self._triggers_at + 1
        self._focus_at = self._expectations_at + 1
        self._resolved_at = self._focus_at + 1
        self._wish_at = self._resolved_at + 1
        self._not_paid = _any_of(ruleset.high_value.not_paid)
        self._not_order_value = _any_of(ruleset.high_value.not_order_value)

    @property
    def version(self) -> str:
        """The ruleset's version and each model's: ``2026.12-4+catmodel-1+p1model-1``."""
        models = (model.version for model in (self.model, self.p1_model) if model is not None)
        return "+".join((self.ruleset.version, *models))

    def triage(
        self, record: ComplaintRecord, *, repeated: bool = False, batch: bool = False
    ) -> TriageResult:
        """The verdict on a record: its description, customer tier and order amount."""
        return self.triage_text(
            record.description,
            tier=record.customer.tier,
            amount_cny=record.product.amount_cny,
            reach=read_reach(record.channel, record.channel_detail),
            repeated=repeated,
            batch=batch,
        )

    def triage_text(
        self,
        description: str,
        *,
        tier: str | None = None,
        amount_cny: Decimal | None = None,
        reach: Reach | None = None,
        repeated: bool = False,
        batch: bool = False,
    ) -> TriageResult:
        """The verdict on the customer's words and what the channel knows about them.

        ``repeated``: the contact is at least the second about the same open issue;
        ``batch``: other customers report the same failure; ``reach``: how far the
        author's words can spread (Weibo followers, verified, reposts).
        """
        simplified = simplify(description)
        text = fold(simplified, self._homophones)
        scan = self._scanner.scan(text)
        expectations, expectation_reasons = self._voiced(text, scan)
        code, category_reason, evidence = self._category(text, scan, expectations)
        fired = self._priorities(text, scan, simplified, code, tier, amount_cny, repeated, batch)
        fired.extend(self._reach_risk(reach))
        fired.extend(self._improvement_only(text, scan, code, expectations, evidence))
        fired.sort(key=lambda level_reason: _RANK[level_reason[0]])
        priority: Priority = fired[0][0] if fired else "P3"
        priority_reasons = [reason for _, reason in fired] or ["P3: 未命中 P1/P2/P4 规则（默认）"]
        return TriageResult(
            category_code=code,
            category_label=self._labels.get(code, code),
            priority=priority,
            expectations=expectations,
            reasons=(*priority_reasons, category_reason, *expectation_reasons),
            ruleset_version=self.version,
        )

    def _reach_risk(self, reach: Reach | None) -> list[tuple[Priority, str]]:
        if not reach:
            return []
        rules = self.ruleset.reach
        level = rules.priority
        followers = reach.followers or 0
        fired: list[tuple[Priority, str]] = []
        if followers >= rules.followers or (
            reach.verified and followers >= rules.verified_followers
        ):
            author = Reach(followers=reach.followers, verified=reach.verified)
            who = "，".join(describe_reach(author))
            fired.append((level, f"{level}: 舆情风险：大号发声（{who}）"))
        if reach.reposts is not None and reach.reposts >= rules.reposts:
            fired.append((level, f"{level}: 舆情风险：转发 {reach.reposts}"))
        return fired

    def _voiced(self, text: str, scan: _Scan) -> tuple[tuple[Expectation, ...], list[str]]:
        words: dict[str, list[str]] = {}
        for hit in self._expectation_hits.counted(text, scan[self._expectations_at]):
            for expectation in self._gives_of[hit.rule]:
                words.setdefault(expectation, []).append(hit.words)
        voiced = tuple(cast(Expectation, e) for e in EXPECTATIONS if e in words)
        return voiced, [f"期望 {e}: {_quote(words[e])}" for e in voiced]

    def _category(
        self, text: str, scan: _Scan, expectations: Sequence[str]
    ) -> tuple[str, str, list[Hit]]:
        """The dominant category, the reason, and the rule words that chose it (if rules did)."""
        scored = self._rule_scores(text, scan, expectations)
        min_score = self.ruleset.scoring.min_score
        ranked = sorted(
            (s for s in scored if s.score >= min_score), key=lambda s: (-s.score, s.order)
        )
        best = ranked[0] if ranked else None
        if self.model is not None:
            runner_up = ranked[1].score if len(ranked) > 1 else 0
            if best is None or best.score - runner_up < self.model.decisive_margin:
                return self._learned(text, scored, best)
        if best is None:
            return "other", "类别 other: 未命中类别规则", []
        return best.code, *_rules_reason(best)

    def _rule_scores(self, text: str, scan: _Scan, expectations: Sequence[str]) -> list[_Scored]:
        """Each category with rule hits, its score, and the words counted."""
        scoring = self.ruleset.scoring
        focus = [(end, _sentence_end(text, end)) for _, _, end in scan[self._focus_at]]
        targeted = {
            code
            for e in expectations
            for code in scoring.remedy_targets.get(cast(Expectation, e), ())
        }
        scored = []
        for order, (code, group) in enumerate(self._categories):
            matches = scan[order]
            if not matches:
                continue
            found = group.counted(text, matches)
            if not found:
                continue
            score, hits, stressed = _score(found, focus, scoring.focus_multiplier)
            if score > 0 and code in targeted:
                score += scoring.remedy_bonus
            scored.append(_Scored(score, order, code, hits, stressed))
        return scored

    def _learned(
        self, text: str, scored: Sequence[_Scored], best: _Scored | None
    ) -> tuple[str, str, list[Hit]]:
        """The model's scores plus the rules' weighed in; the reason names who decided."""
        model = self.model
        assert model is not None
        found = grams(text)
        combined = model.scores(found)
        for rules in scored:
            index = CATEGORY_CODES.index(rules.code)
            if any(hit.weight < 0 for hit in rules.hits):
                combined[index] = -math.inf  # the rules' words against it (包装完好) are a veto
            elif rules.score > 0:
                combined[index] += model.rule_weight * rules.score
        ranked = sorted(range(len(combined)), key=lambda index: -combined[index])
        winner, runner_up = CATEGORY_CODES[ranked[0]], CATEGORY_CODES[ranked[1]]
        if best is not None and winner == best.code:
            return best.code, *_rules_reason(best)
        if best is None and winner == "other":
            return "other", "类别 other: 未命中类别规则", []
        words = _quote(model.evidence(found, winner, runner_up))
        overruled = f"，规则倾向 {best.code}" if best is not None else ""
        return winner, f"类别 {winner}（模型{overruled}）：{words}", []

    def _priorities(
        self,
        text: str,
        scan: _Scan,
        simplified: str,
        code: str,
        tier: str | None,
        amount_cny: Decimal | None,
        repeated: bool,
        batch: bool,
    ) -> list[tuple[Priority, str]]:
        signals, high_value = self.ruleset.signals, self.ruleset.high_value
        fired: list[tuple[Priority, str]] = []
        if batch:
            fired.append((signals.batch, f"{signals.batch}: 批量问题（渠道的批量信号）"))
        by_trigger: dict[int, list[str]] = {}
        matches = scan[self._triggers_at]
        counted = self._trigger_hits.counted(text, matches)
        for hit in counted:
            by_trigger.setdefault(self._trigger_of[hit.rule], []).append(hit.words)
        # P1 words the rules saw and ruled out (没起火, 气炸了): the model must not overrule them.
        ruled_out = sum(index in self._p1_patterns for index, _, _ in matches) > sum(
            hit.rule in self._p1_patterns for hit in counted
        )
        for index, words in sorted(by_trigger.items()):
            trigger, veto = self._triggers[index], self._vetoes[index]
            if trigger.when_tier_unknown and tier is not None:
                continue
            if trigger.categories and code not in trigger.categories:
                continue
            if veto.search(text):
                ruled_out = ruled_out or trigger.priority == "P1"
                continue
            fired.append((trigger.priority, f"{trigger.priority}: {trigger.reason}{_quote(words)}"))
        if (
            self.p1_model is not None
            and not ruled_out
            and not any(level == "P1" for level, _ in fired)
            and not self._p1_traps.search(text)
        ):
            found = p1_grams(text)
            if self.p1_model.probability(found) >= self.p1_model.threshold:
                fired.append(("P1", f"P1（模型）：{_quote(self.p1_model.evidence(found))}"))
        if tier == "vip":
            fired.append((signals.vip_tier, f"{signals.vip_tier}: VIP 客户（渠道会员等级）"))
        threshold = Decimal(high_value.threshold_cny)
        if amount_cny is not None and amount_cny >= threshold:
            level = high_value.priority
            fired.append((level, f"{level}: 高价值订单 {_yuan(amount_cny)} 元"))
        paid = [
            amount
            for amount in find_amounts(simplified)
            if amount.yuan >= threshold
            and not self._not_paid.search(amount.context)
            and not self._not_order_value.search(amount.context)
        ]
        if paid:
            top = max(paid, key=lambda amount: amount.yuan)
            level = high_value.priority
            fired.append((level, f"{level}: 高价值 {_yuan(top.yuan)} 元「{top.quote}」"))
        if repeated:
            fired.append((signals.repeated, f"{signals.repeated}: 重复投诉（渠道标记）"))
        return fired

    def _improvement_only(
        self,
        text: str,
        scan: _Scan,
        code: str,
        expectations: Sequence[str],
        evidence: Sequence[Hit],
    ) -> Iterable[tuple[Priority, str]]:
        rule = self.ruleset.improvement_only
        if not expectations or not set(expectations) <= set(rule.expectations):
            return
        level = rule.priority
        resolved = next(iter(scan[self._resolved_at]), None)
        if code in rule.categories:
            yield level, f"{level}: 仅提改进建议（类别 {code}）"
        elif resolved:
            _, start, end = resolved
            yield level, f"{level}: 仅提改进建议（问题已解决「{text[start:end]}」）"
        elif evidence and self._inside_wishes(text, scan, evidence):
            wished = _quote(h.words for h in evidence)
            yield level, f"{level}: 仅提改进建议（{wished}是建议的内容，不是故障）"

    def _inside_wishes(self, text: str, scan: _Scan, evidence: Sequence[Hit]) -> bool:
        """Whether every hit stands after a wish cue, in the cue's sentence."""
        wishes = [(start, _sentence_end(text, end)) for _, start, end in scan[self._wish_at]]
        return all(any(low <= hit.start < high for low, high in wishes) for hit in evidence)


#: What :meth:`JointScanner.scan` found: per group, (pattern, start, end) of each match.
_Scan = list[list[tuple[int, int, int]]]


class _Scored(NamedTuple):
    """A category the rules found words for: its score and the words counted."""

    score: int
    order: int
    code: str
    hits: list[Hit]
    stressed: bool


def _rules_reason(best: _Scored) -> tuple[str, list[Hit]]:
    positive = sorted((h for h in best.hits if h.weight > 0), key=lambda h: (-h.weight, h.start))
    emphasis = "（客户强调）" if best.stressed else ""
    return f"类别 {best.code}: {_quote(h.words for h in positive)}{emphasis}", positive


def _any_of(patterns: Sequence[str]) -> re.Pattern[str]:
    """Plain patterns (cues, vetoes) as one regex; none at all never matches."""
    return re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)")


def _score(
    hits: Sequence[Hit], focus: Sequence[tuple[int, int]], multiplier: int
) -> tuple[int, list[Hit], bool]:
    """Each distinct word once; words inside a focus span weigh ``multiplier`` times."""
    score, seen, counted, stressed = 0, set(), [], False
    for hit in hits:
        if hit.words in seen:
            continue
        seen.add(hit.words)
        counted.append(hit)
        in_focus = hit.weight > 0 and any(low <= hit.start < high for low, high in focus)
        stressed = stressed or in_focus
        score += hit.weight * (multiplier if in_focus else 1)
    return score, counted, stressed


def _sentence_end(text: str, position: int) -> int:
    end = text.find("。", position)
    return len(text) if end < 0 else end


def _quote(words: Iterable[str]) -> str:
    """The first few distinct words, each cut to a readable length: 「插座烧黑」「焦味」."""
    distinct = list(dict.fromkeys(words))[:_QUOTED_WORDS]
    return "".join(
        f"「{word if len(word) <= _LONGEST_QUOTE else word[: _LONGEST_QUOTE - 1] + '…'}」"
        for word in distinct
    )


def _yuan(amount: Decimal) -> str:
    """``4599`` for 4599.00, ``4599.5`` for 4599.50: how a supervisor writes it."""
    return format(amount.normalize(), "f")
