"""Pattern groups: where a group's patterns match, less what is negated or guarded.

A group (one category; all the triggers; all the rows of the expectations
table) is scanned once (:class:`~triage.scanning.Scanner`). At each position
the first pattern of the group that matches there wins, so within a group
overlapping patterns count once: the one earlier in the group.

The text is the matching form (:func:`triage.text.matching_form`): ``,`` ends a
clause, ``。`` a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import NamedTuple

from triage.ruleset import PatternRule
from triage.scanning import Scanner

_SENTENCE = "。"
_CLAUSE = ","
#: How far before a match a negation cue itself may start (cue length plus gap).
_CUE_REACH = 8


class Hit(NamedTuple):
    """One counted match: its words, and which pattern of the group matched them.

    A named tuple rather than a frozen dataclass: a text has dozens of hits, and
    a tuple is built several times faster.
    """

    start: int
    end: int
    words: str
    rule: int
    weight: int


class NegationCues:
    """Cues that cancel what follows them in the same clause: ``没起火``, ``不是质量问题``."""

    def __init__(self, cues: Sequence[str], exceptions: Sequence[str], max_gap: int) -> None:
        exception = f"(?:{'|'.join(exceptions)})|" if exceptions else ""
        self._pattern = re.compile(f"{exception}(?P<cue>{'|'.join(cues)})")
        self._max_gap = max_gap

    def cancels(self, text: str, start: int) -> bool:
        """Whether a cue ends at most ``max_gap`` characters before ``start``, in its clause."""
        clause_start = max(text.rfind(_CLAUSE, 0, start), text.rfind(_SENTENCE, 0, start)) + 1
        low = max(clause_start, start - self._max_gap - _CUE_REACH)
        return any(
            match.lastgroup == "cue" and start - match.end() <= self._max_gap
            for match in self._pattern.finditer(text, low, start)
        )


class PatternGroup:
    """Patterns compiled together; :meth:`hits` is all a caller needs.

    A caller that scans several groups at once (:class:`~triage.scanning.JointScanner`,
    over :attr:`patterns`) passes each group its matches through :meth:`counted`.
    """

    def __init__(self, rules: Sequence[PatternRule], negation: NegationCues | None) -> None:
        self._rules = tuple(rules)
        self._negation = negation
        self.patterns = tuple(rule.match for rule in rules)
        self._guards = tuple(
            re.compile("|".join(f"(?:{guard})" for guard in rule.unless)) if rule.unless else None
            for rule in rules
        )

    @cached_property
    def _scanner(self) -> Scanner:
        return Scanner(self.patterns)

    def hits(self, text: str) -> list[Hit]:
        """Matches that count: not inside a guard's match, not cancelled by a negation cue."""
        if not self._rules:
            return []
        return self.counted(text, self._scanner.finditer(text))

    def counted(self, text: str, matches: Iterable[tuple[int, int, int]]) -> list[Hit]:
        """The matches (pattern, start, end) of this group's scan that count, as :meth:`hits`."""
        found = []
        for index, start, end in matches:
            if self._guards[index] is not None and self._guarded(index, text, start, end):
                continue
            rule = self._rules[index]
            if rule.negatable and self._negation and self._negation.cancels(text, start):
                continue
            found.append(Hit(start, end, text[start:end], index, rule.weight))
        return found

    def _guarded(self, index: int, text: str, start: int, end: int) -> bool:
        guard = self._guards[index]
        if guard is None:
            return False
        sentence_start = text.rfind(_SENTENCE, 0, start) + 1
        sentence_end = text.find(_SENTENCE, end)
        sentence_end = len(text) if sentence_end < 0 else sentence_end
        return any(
            found.start() < end and start < found.end()
            for found in guard.finditer(text, sentence_start, sentence_end)
        )
