"""Load and validate a triage rules file (TOML) into frozen models.

:func:`load_ruleset` reads the shipped default (``triage/rules.toml``, found
with :mod:`importlib.resources`) or a user's file, and raises
:class:`RulesetError` listing every problem at once: a bad regular expression
with where it is, an unknown category code, expectation or priority, a
missing or misspelt key, a duplicate category or trigger. A ruleset that loads
is one :class:`triage.engine.Triage` can compile without another check.

The file's layout and the meaning of each table are documented at the top of
``triage/rules.toml``.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from schemas.record import Expectation, Priority

#: The policy's categories, in the order that breaks a tie between equal scores.
CATEGORY_CODES: Final = (
    "product.malfunction",
    "product.defect",
    "product.design",
    "product.mismatch",
    "service.attitude",
    "service.competence",
    "service.process",
    "logistics.delay",
    "logistics.damaged_lost",
    "logistics.courier",
    "billing.price",
    "billing.promotion",
    "billing.payment",
    "billing.invoice",
    "billing.refund",
    "policy.dispute",
    "other",
)
EXPECTATIONS: Final[tuple[str, ...]] = get_args(Expectation)
PRIORITIES: Final[tuple[str, ...]] = get_args(Priority)

_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")


class RulesetError(Exception):
    """The rules file cannot be used; :attr:`problems` says every reason, one a line."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        listing = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{listing}")


def _regex(pattern: str) -> str:
    """A pattern that compiles on its own and inside an alternation with others."""
    try:
        compiled = re.compile(f"(?:{pattern})")
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    if compiled.groupindex:
        raise ValueError(f"{pattern!r}: named groups are not allowed (patterns are combined)")
    if _BACKREFERENCE.search(pattern):
        raise ValueError(f"{pattern!r}: backreferences are not allowed (patterns are combined)")
    if compiled.search("") is not None:
        raise ValueError(f"{pattern!r} matches the empty text; it would match everywhere")
    return pattern


def _category_code(code: str) -> str:
    if code not in CATEGORY_CODES:
        raise ValueError(f"unknown category code {code!r}")
    return code


Regex = Annotated[str, AfterValidator(_regex)]
CategoryCode = Annotated[str, AfterValidator(_category_code)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PatternRule(_Rules):
    """One pattern: a regular expression (a plain word is one) over the matching form."""

    match: Regex
    #: Evidence for a category (triggers and expectations ignore it); negative = against.
    weight: int = 1
    #: Guards: the match does not count when one of these matches over it, in its sentence.
    unless: tuple[Regex, ...] = ()
    #: A negation cue just before the match (没有, 不是...) cancels it.
    negatable: bool = True


def _pattern_table(value: Any) -> Any:
    return {"match": value} if isinstance(value, str) else value


#: A pattern is a table or, when it needs no option, just its regular expression.
Pattern = Annotated[PatternRule, BeforeValidator(_pattern_table)]


class CategoryRules(_Rules):
    code: CategoryCode
    label: str = Field(min_length=1)
    patterns: tuple[Pattern, ...] = ()


class Trigger(_Rules):
    """A priority rule: any pattern that matches (and is not guarded or negated) fires it."""

    name: Name
    priority: Priority
    #: What the supervisor reads, before the quoted words: ``安全隐患``.
    reason: str = Field(min_length=1)
    patterns: tuple[Pattern, ...]
    #: The whole trigger is off when one of these matches anywhere in the text.
    unless_anywhere: tuple[Regex, ...] = ()
    #: Only when the channel does not know the customer's tier (a claim to be a VIP).
    when_tier_unknown: bool = False
    #: Only when the complaint's category is one of these (empty: any category).
    categories: tuple[CategoryCode, ...] = ()


class ExpectationRules(_Rules):
    """A row of the expectations table: these phrases voice these remedies."""

    gives: tuple[Expectation, ...]
    patterns: tuple[Pattern, ...]


class Negation(_Rules):
    #: Cues that deny a fact (没有, 不是): they cancel categories, triggers, expectations.
    cues: tuple[Regex, ...] = Field(min_length=1)
    #: Cues that decline a remedy (不要, 不用): they cancel expectations only.
    wish_cues: tuple[Regex, ...] = ()
    #: Phrases that look like a cue but deny nothing (没想到, 是不是).
    exceptions: tuple[Regex, ...] = ()
    #: Characters allowed between the cue and the words it cancels, in one clause.
    max_gap: int = Field(3, ge=0, le=20)


class Scoring(_Rules):
    #: Below this, no category has evidence enough: ``other``.
    min_score: int = Field(1, ge=1)
    #: The customer marks the main issue (最重要的是...): to the end of the sentence.
    focus_cues: tuple[Regex, ...] = ()
    focus_multiplier: int = Field(3, ge=1)
    #: A voiced remedy adds this to each category it targets that has evidence already.
    remedy_bonus: int = Field(1, ge=0)
    remedy_targets: dict[Expectation, tuple[CategoryCode, ...]] = Field(default_factory=dict)


class HighValue(_Rules):
    priority: Priority = "P2"
    threshold_cny: int = Field(2000, gt=0)
    #: Words before an amount in the text that mean it was not paid: 标价, 看到.
    not_paid: tuple[Regex, ...] = ()
    #: Words before an amount that make it something else than an order value: 赔偿, 差价.
    not_order_value: tuple[Regex, ...] = ()


class ReachRules(_Rules):
    """Public-opinion risk from the channel's reach data (:mod:`triage.reach`).

    The policy puts a post going viral (上千转发) at P1; a large account, or a
    verified one with an audience, can make it go viral at any moment.
    """

    priority: Priority = "P1"
    #: An author with at least this many followers.
    followers: int = Field(100_000, gt=0)
    #: A verified author with at least this many followers.
    verified_followers: int = Field(10_000, ge=0)
    #: A post reposted at least this often.
    reposts: int = Field(1_000, gt=0)


class Signals(_Rules):
    """Priorities of what the channel knows rather than what the customer wrote."""

    vip_tier: Priority = "P2"
    repeated: Priority = "P2"
    batch: Priority = "P1"


class ImprovementOnly(_Rules):
    """The only voiced remedies are improvements, and there is no open fault to fix.

    No open fault: the category is one of no real fault (``categories``), or the
    customer says the problem is solved already (``resolved``), or every word that
    chose the category stands inside the wish itself (after a ``wish_cues`` cue,
    in its sentence: 建议简化开票流程 names invoices without reporting a problem).
    """

    priority: Priority = "P4"
    expectations: tuple[Expectation, ...] = ("improvement",)
    categories: tuple[CategoryCode, ...] = ()
    #: The problem is behind the customer: 已经解决, 已经到账.
    resolved: tuple[Regex, ...] = ()
    #: Where a wish starts; the rest of its sentence is what is wished, not a fault.
    wish_cues: tuple[Regex, ...] = ()


class LearnedP1(_Rules):
    """When the learned P1 signal (:mod:`triage.p1_model`) may not raise a complaint to P1.

    Besides these, the signal stays quiet wherever the P1 rules saw their own
    words and ruled them out (a guard, a negation cue, ``unless_anywhere``):
    ``没起火``, a camera's ``曝光``, ``气炸了``.
    """

    #: The policy's P1 traps no P1 rule sees: 投诉到平台, 退一赔三 without a regulator.
    traps: tuple[Regex, ...] = ()


class Ruleset(_Rules):
    version: str = Field(min_length=1)
    #: Speech-recognition slips and what they stand for, fixed for matching only.
    homophones: dict[Annotated[str, Field(min_length=1)], str] = Field(default_factory=dict)
    negation: Negation
    scoring: Scoring = Scoring()
    categories: tuple[CategoryRules, ...] = Field(alias="category")
    triggers: tuple[Trigger, ...] = Field(default=(), alias="trigger")
    high_value: HighValue = HighValue()
    signals: Signals = Signals()
    reach: ReachRules = ReachRules()
    improvement_only: ImprovementOnly = ImprovementOnly()
    learned_p1: LearnedP1 = LearnedP1()
    expectations: tuple[ExpectationRules, ...] = Field(default=(), alias="expectation")

    def category(self, code: str) -> CategoryRules:
        return next(rules for rules in self.categories if rules.code == code)


def load_ruleset(path: Path | None = None) -> Ruleset:
    """The rules in ``path``, or the shipped default when ``path`` is None."""
    if path is None:
        source = "triage/rules.toml"
        text = resources.files("triage").joinpath("rules.toml").read_text(encoding="utf-8")
    else:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RulesetError(source, [f"cannot read the file: {exc}"]) from None
    return parse_ruleset(text, source)


def parse_ruleset(text: str, source: str = "<rules>") -> Ruleset:
    """The rules in a TOML text; :class:`RulesetError` names ``source``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesetError(source, [f"not valid TOML: {exc}"]) from None
    problems: list[str] = []
    ruleset: Ruleset | None = None
    try:
        ruleset = Ruleset.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(error, data) for error in exc.errors(include_url=False))
    problems.extend(_cross_checks(data))
    if problems or ruleset is None:
        raise RulesetError(source, problems)
    return ruleset


def _cross_checks(data: Mapping[str, Any]) -> list[str]:
    """What no single entry shows: duplicates, empty lists, the missing fallback.

    Run on the raw data, beside the model's validation, so these are reported
    together with the entries' own problems.
    """
    problems = []
    if not any(_get(entry, "code") == "other" for entry in _list(data.get("category"))):
        problems.append("category: the 'other' category is required (the fallback)")
    for table, key in (
        ("trigger", "patterns"),
        ("expectation", "patterns"),
        ("expectation", "gives"),
    ):
        for number, entry in enumerate(_list(data.get(table)), start=1):
            if _get(entry, key) == []:
                name = _get(entry, "name")
                where = f"[{name}]" if isinstance(name, str) else f"#{number}"
                problems.append(f"{table}{where}.{key}: must not be empty")
    for table, key in (("category", "code"), ("trigger", "name")):
        names = Counter(_get(entry, key) for entry in _list(data.get(table)))
        problems.extend(
            f"{table}: {key} {name!r} appears {count} times"
            for name, count in names.items()
            if isinstance(name, str) and count > 1
        )
    return problems


_MESSAGES = {
    "extra_forbidden": "unknown key (misspelt?)",
    "missing": "required key is missing",
}


def _describe(error: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """``category[product.defect].patterns#2.match: bad regular expression ...``."""
    where = ""
    node: Any = data
    for part in error["loc"]:
        child = node[part] if _fits(node, part) else None
        if isinstance(part, int):
            name = _get(child, "code") or _get(child, "name")
            where += f"[{name}]" if isinstance(name, str) else f"#{part + 1}"
        else:
            where += f".{part}" if where else str(part)
        node = child
    message = _MESSAGES.get(error["type"], str(error["msg"]).removeprefix("Value error, "))
    return f"{where or '(file)'}: {message}"


def _fits(node: Any, part: int | str) -> bool:
    if isinstance(part, int):
        return isinstance(node, list) and 0 <= part < len(node)
    return isinstance(node, dict) and part in node


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else None


def _list(node: Any) -> list[Any]:
    return node if isinstance(node, list) else []
