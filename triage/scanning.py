"""Fast scanning of many patterns at once: go straight to where a match can start.

Python's regex engine skips ahead quickly only when a pattern starts with a
literal or a character class; an alternation whose branches start with groups
or lookbehinds (``(插座|插头)...``, ``(?<!以旧)换新``) makes it try every branch
at every position, ten times slower on Chinese text. A :class:`Scanner` reads
the characters each pattern can start with (:func:`first_chars`, with the
standard library's own regex parser) and compiles one regex keyed by them::

    [插换](?<=[插](?<=(?=(插座|插头)...).)|[换](?<=(?=((?<!以旧)换新)).))

The engine jumps to the next character that starts some pattern (the leading
class), steps back onto it and tries only the patterns that can start with it
(the branch whose class holds it), in their order, inside a lookahead, so a
pattern still sees the text before it, for its lookbehinds. The scanner yields
the leftmost non-overlapping matches, like ``finditer`` over the alternation of
the patterns in order: at a position the first pattern that matches wins.
Where a pattern's first characters cannot be known (it starts with ``.`` or
``[^,]``), the patterns are scanned as a plain alternation; same result, slower.
"""

from __future__ import annotations

import re
import re._constants as regex_constants
import re._parser as regex_parser  # the parser re.compile itself uses
from collections.abc import Iterable, Iterator, Sequence, Set
from typing import Any

#: A character range wider than this in a leading class gives up the prefilter.
_WIDEST_RANGE = 512
_DIGITS = frozenset("0123456789")
_MOST_PREFIXES = 4096


class Scanner:
    """The leftmost non-overlapping matches of several patterns, as (pattern, start, end)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        starts = [first_chars(pattern) for pattern in patterns]
        groups = [re.compile(pattern).groups for pattern in patterns]
        #: The capturing group that wraps each occurrence of a pattern -> the pattern.
        self._pattern_of: dict[int, int] = {}
        number = 1
        if any(chars is None for chars in starts):
            self.prefiltered = False
            branches = []
            for index, pattern in enumerate(patterns):
                self._pattern_of[number] = index
                number += 1 + groups[index]
                branches.append(f"({pattern})")
            self._regex = re.compile("|".join(branches))
            return
        self.prefiltered = True
        by_char: dict[str, list[int]] = {}
        for index, pattern_starts in enumerate(starts):
            for char in pattern_starts or ():
                by_char.setdefault(char, []).append(index)
        # Characters that start the same patterns share one branch.
        by_patterns: dict[tuple[int, ...], list[str]] = {}
        for char, indices in sorted(by_char.items()):
            by_patterns.setdefault(tuple(indices), []).append(char)
        keyed = []
        for shared, leading in by_patterns.items():
            branches = []
            for index in shared:
                self._pattern_of[number] = index
                number += 1 + groups[index]
                branches.append(f"({patterns[index]})")
            keyed.append(f"{_char_class(leading)}(?<=(?={'|'.join(branches)}).)")
        self._regex = re.compile(f"{_char_class(by_char)}(?<={'|'.join(keyed)})", re.DOTALL)

    def finditer(
        self, text: str, pos: int = 0, endpos: int | None = None
    ) -> Iterator[tuple[int, int, int]]:
        """(index of the pattern, start, end) of each match, left to right."""
        covered = pos
        for match in self._regex.finditer(text, pos, len(text) if endpos is None else endpos):
            group = match.lastindex or 0
            start, end = match.span(group)
            if start >= covered:
                covered = max(end, start + 1)
                yield self._pattern_of[group], start, end


class JointScanner:
    """Several groups of patterns scanned in one pass; per group, what its :class:`Scanner` finds.

    A :class:`Scanner` per group runs the regex engine over the text once per
    group, and each run tries, at every character that starts some pattern of
    the group, a branch per starting character until one holds it: a group of
    several hundred starting characters pays for that at every position. Here
    the text is walked once, in Python, and a table says, for the pair of
    characters at each position (:func:`prefixes` of length 2, or the first
    character alone where a pattern's second one cannot be listed), which
    groups have a pattern that can start there and, for each such group, one
    regex of just those patterns, in the group's order: the same first pattern
    wins at a position, and each group keeps its leftmost non-overlapping matches.
    """

    def __init__(self, groups: Sequence[Sequence[str]]) -> None:
        self._count = len(groups)
        by_pair: dict[str, set[tuple[int, int]]] = {}
        by_char: dict[str, set[tuple[int, int]]] = {}
        anywhere: set[tuple[int, int]] = set()
        for group, patterns in enumerate(groups):
            for index, pattern in enumerate(patterns):
                found = prefixes(pattern, 2)
                if found is None:
                    anywhere.add((group, index))
                    continue
                for prefix in found:
                    table = by_pair if len(prefix) == 2 else by_char
                    for key in _cases(prefix):
                        table.setdefault(key, set()).add((group, index))
        compiled: dict[tuple[tuple[int, int], ...], tuple[_Candidates, ...]] = {}

        def entry(members: set[tuple[int, int]]) -> tuple[_Candidates, ...]:
            key = tuple(sorted(members))
            if key not in compiled:
                compiled[key] = _candidates(groups, key)
            return compiled[key]

        self._anywhere = entry(anywhere)
        self._everywhere = bool(anywhere)
        self._by_char = {char: entry(members | anywhere) for char, members in by_char.items()}
        self._by_pair = {
            pair: entry(members | by_char.get(pair[0], set()) | anywhere)
            for pair, members in by_pair.items()
        }
        self._starts = frozenset(key[0] for key in (*by_pair, *by_char))

    def scan(self, text: str) -> list[list[tuple[int, int, int]]]:
        """Per group, (index of the pattern, start, end) of each match, left to right."""
        found: list[list[tuple[int, int, int]]] = [[] for _ in range(self._count)]
        covered = [0] * self._count
        by_pair, by_char, anywhere = self._by_pair, self._by_char, self._anywhere
        starts, everywhere = self._starts, self._everywhere
        for position, char in enumerate(text):
            if char not in starts and not everywhere:
                continue
            candidates = by_pair.get(text[position : position + 2]) or by_char.get(char) or anywhere
            for group, regex, pattern_of in candidates:
                if position < covered[group]:
                    continue
                match = regex.match(text, position)
                if match is not None:
                    number = match.lastindex or 0
                    end = match.end()
                    covered[group] = end if end > position else position + 1
                    found[group].append((pattern_of[number], position, end))
        return found


#: One group's patterns that can start at a position: (group, their regex, group number -> index).
_Candidates = tuple[int, re.Pattern[str], dict[int, int]]


def _candidates(
    groups: Sequence[Sequence[str]], members: Sequence[tuple[int, int]]
) -> tuple[_Candidates, ...]:
    by_group: dict[int, list[int]] = {}
    for group, index in members:
        by_group.setdefault(group, []).append(index)
    made = []
    for group, indices in sorted(by_group.items()):
        pattern_of: dict[int, int] = {}
        branches, number = [], 1
        for index in indices:
            pattern = groups[group][index]
            pattern_of[number] = index
            number += 1 + re.compile(pattern).groups
            branches.append(f"({pattern})")
        made.append((group, re.compile("|".join(branches)), pattern_of))
    return tuple(made)


def _cases(prefix: str) -> set[str]:
    """A prefix in every mix of cases, for a pattern with ``(?i:...)``."""
    found = {""}
    for char in prefix:
        found = {start + case for start in found for case in {char, char.lower(), char.upper()}}
    return found


def _char_class(chars: Iterable[str]) -> str:
    return "[" + "".join(re.escape(char) for char in sorted(chars)) + "]"


def first_chars(pattern: str) -> frozenset[str] | None:
    """The characters a match of ``pattern`` can start with; None when any could.

    A digit class counts as 0-9 (the matching form has only ASCII digits); a
    letter counts in both cases, for a pattern with ``(?i:...)``.
    """
    found = prefixes(pattern, 1)
    if found is None:
        return None
    return frozenset(case for char in found for case in (char, char.lower(), char.upper()))


def prefixes(pattern: str, length: int) -> frozenset[str] | None:
    """What a match of ``pattern`` can start with: strings of up to ``length`` characters.

    Shorter where a match can be shorter or what follows cannot be listed. None
    when even the first character cannot be known (``.``, ``[^,]``, ``\\w`` at
    the start) or there would be too many to list.
    """
    try:
        parsed = regex_parser.parse(pattern)
    except re.error:
        return None
    found = _prefixes(tuple(parsed), length)
    return None if found is None or "" in found else frozenset(found)


def _prefixes(items: tuple[tuple[Any, Any], ...], want: int) -> set[str] | None:
    if want == 0 or not items:
        return {""}
    (op, value), rest = items[0], items[1:]
    name = str(op)
    if name in ("AT", "ASSERT", "ASSERT_NOT"):
        return _prefixes(rest, want)
    if name in ("LITERAL", "IN"):
        chars = {chr(value)} if name == "LITERAL" else _class(value)
        if chars is None:
            return None
        tails = _prefixes(rest, want - 1)
        if tails is None or len(chars) * len(tails) > _MOST_PREFIXES:
            return chars  # what follows is unknown: the first character alone still must be there
        return {char + tail for char in chars for tail in tails}
    if name == "SUBPATTERN":
        return _prefixes(tuple(value[-1]) + rest, want)
    if name == "ATOMIC_GROUP":
        return _prefixes(tuple(value) + rest, want)
    if name == "BRANCH":
        return _union(_prefixes(tuple(branch) + rest, want) for branch in value[1])
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        return _repeat(op, value, rest, want)
    return None


def _repeat(op: Any, value: Any, rest: tuple[Any, ...], want: int) -> set[str] | None:
    """``item{low,high} rest``: ``rest`` when low is 0, or ``item item{low-1,high-1} rest``."""
    low, high, item = value
    body = tuple(item)
    body_starts = _prefixes(body, 1)
    if body_starts is None or "" in body_starts:
        return None  # an item that can match empty would never shorten ``want``
    options = [_prefixes(rest, want)] if low == 0 else []
    if high != 0:
        again = (
            op,
            (max(low - 1, 0), high if high == regex_constants.MAXREPEAT else high - 1, item),
        )
        options.append(_prefixes((*body, again, *rest), want))
    return _union(options)


def _union(options: Iterable[Set[str] | None]) -> set[str] | None:
    found: set[str] = set()
    for option in options:
        if option is None:
            return None
        found |= option
        if len(found) > _MOST_PREFIXES:
            return None
    return found


def _class(items: Sequence[tuple[Any, Any]]) -> set[str] | None:
    chars: set[str] = set()
    for op, value in items:
        name = str(op)
        if name == "LITERAL":
            chars.add(chr(value))
        elif name == "RANGE" and value[1] - value[0] <= _WIDEST_RANGE:
            chars.update(chr(point) for point in range(value[0], value[1] + 1))
        elif name == "CATEGORY" and str(value) == "CATEGORY_DIGIT":
            chars |= _DIGITS
        else:
            return None
    return chars
