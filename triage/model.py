"""The learned category model: a linear model over character n-grams, shipped as data.

The rules name the words a category needs; a customer uses others. The model
reads every character and character pair (n-grams of 1 and 2) of the matching
form (:func:`triage.text.matching_form`), every run of digits read as ``0``,
and adds each known n-gram's weight to the categories it has one for: a
multinomial logistic regression, trained by ``bench/triage/train_model.py`` on
the training sets and the tune split, pruned to the weights that matter and
shipped as ``triage/category_model.json.gz``.

It runs offline from that file alone (pure Python, no numerical library) and
explains itself: :meth:`CategoryModel.evidence` names the n-grams that weigh
most for a category, so a verdict can say which words decided.

How the engine combines it with the rules (``rule_weight``, ``decisive_margin``)
was chosen by cross-validation on the training sets and is stored with the
weights: it belongs to this model, not to a rules file.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from operator import add
from pathlib import Path
from typing import Any

from triage.ruleset import CATEGORY_CODES

MODEL_FILE = "category_model.json.gz"
_FORMAT = 1
_DIGITS = re.compile(r"\d+(?:\.\d+)?")
#: Weights are added as fixed-point integers, all categories in one integer (see _pack).
_UNIT = 1000
_FIELD = 48
_OFFSET = 1 << 20
_MASK = (1 << _FIELD) - 1


class Shipped:
    """The type of :data:`SHIPPED`: "the model shipped with the package", as a default."""


SHIPPED = Shipped()


class ModelError(Exception):
    """The model file cannot be used: unreadable, another format, or inconsistent."""


def grams(form: str) -> set[str]:
    """The distinct characters and character pairs of a matching form.

    A pair may span a clause boundary (``了,``): boundaries are characters like
    any other here. Digit runs read ``0``: an amount or an order number says
    nothing about the category. (Three-character n-grams were tried: they made
    the model worse in cross-validation, and slower.)
    """
    folded = _DIGITS.sub("0", form)
    return {*folded, *map(add, folded, folded[1:])}


def distinct_grams(weighed: Iterable[tuple[float, int, str]], most: int) -> list[str]:
    """The first ``most`` n-grams of ``weighed`` (best first), none inside another named one.

    A character inside a pair already named (``霉`` inside ``发霉``) says nothing new.
    """
    named: list[str] = []
    for _, _, gram in weighed:
        if any(gram in other or other in gram for other in named):
            continue
        named.append(gram)
        if len(named) == most:
            break
    return named


class CategoryModel:
    """Weights per n-gram, sparse: each n-gram keeps only the categories it weighs for.

    The score of a category is its bias plus the sum of the weights of the
    text's n-grams, scaled by one over the square root of the number of
    n-grams (a long text does not outvote a short one).
    """

    def __init__(
        self,
        version: str,
        bias: Sequence[float],
        weights: Mapping[str, Sequence[tuple[int, float]]],
        *,
        rule_weight: float,
        decisive_margin: int,
    ) -> None:
        if len(bias) != len(CATEGORY_CODES):
            raise ModelError(f"{len(bias)} biases for {len(CATEGORY_CODES)} categories")
        self.version = version
        self.bias = tuple(bias)
        self.weights = {gram: tuple(pairs) for gram, pairs in weights.items()}
        self._packed = {gram: _pack(pairs) for gram, pairs in self.weights.items()}
        self._by_category = {gram: dict(pairs) for gram, pairs in self.weights.items()}
        #: Per category, the n-grams that weigh for it: what :meth:`evidence` may name.
        self._positive: list[dict[str, float]] = [{} for _ in CATEGORY_CODES]
        for gram, pairs in self.weights.items():
            for index, weight in pairs:
                if weight > 0:
                    self._positive[index][gram] = weight
        #: Each point of a category's rule score adds this much to its model score.
        self.rule_weight = rule_weight
        #: Rules ahead of the runner-up by at least this many points decide alone.
        self.decisive_margin = decisive_margin

    def scores(self, found: Collection[str]) -> list[float]:
        """The score of each category of :data:`~triage.ruleset.CATEGORY_CODES`, in order.

        ``found``: the text's n-grams, :func:`grams` of its matching form.
        """
        known = list(filter(None, map(self._packed.get, found)))
        if not known:
            return list(self.bias)
        totals = _unpack(sum(known), len(known))
        scale = 1 / (_UNIT * math.sqrt(len(found)))
        return [bias + total * scale for bias, total in zip(self.bias, totals, strict=True)]

    def evidence(
        self, found: Iterable[str], code: str, runner_up: str | None = None, most: int = 3
    ) -> list[str]:
        """The n-grams of ``found`` that did most to put ``code`` ahead of ``runner_up``.

        An n-gram's share is its weight for ``code`` less its weight for the
        runner-up (or its weight alone without one); the largest shares are named,
        the longer first on a tie. A character inside a pair already named (``霉``
        inside ``发霉``) is not named again.
        """
        index = CATEGORY_CODES.index(code)
        other = CATEGORY_CODES.index(runner_up) if runner_up is not None else -1
        positive, by_category = self._positive[index], self._by_category
        shares = []
        for gram in found:  # a text has far fewer n-grams than a category has weights
            weight = positive.get(gram)
            if weight is None:
                continue
            share = weight - by_category[gram].get(other, 0.0)
            if share > 0:
                shares.append((-share, -len(gram), gram))
        return distinct_grams(sorted(shares), most)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": self.version,
            "categories": list(CATEGORY_CODES),
            "rule_weight": self.rule_weight,
            "decisive_margin": self.decisive_margin,
            "bias": list(self.bias),
            "weights": {
                gram: [list(pair) for pair in pairs] for gram, pairs in self.weights.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CategoryModel:
        try:
            if data["format"] != _FORMAT:
                raise ModelError(f"model format {data['format']!r}, expected {_FORMAT}")
            if tuple(data["categories"]) != CATEGORY_CODES:
                raise ModelError("the model's categories are not the policy's")
            weights = {
                str(gram): [(int(index), float(weight)) for index, weight in pairs]
                for gram, pairs in data["weights"].items()
            }
            if any(
                not 0 <= i < len(CATEGORY_CODES) for pairs in weights.values() for i, _ in pairs
            ):
                raise ModelError("a weight names a category the model does not have")
            return cls(
                str(data["version"]),
                [float(b) for b in data["bias"]],
                weights,
                rule_weight=float(data["rule_weight"]),
                decisive_margin=int(data["decisive_margin"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed model: {exc!r}") from None


def dump_model(model: CategoryModel) -> bytes:
    """The model file's bytes: the same model gives the same bytes (no timestamp)."""
    text = json.dumps(model.to_json(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def read_model(data: bytes, source: str = "<model>") -> CategoryModel:
    try:
        parsed = json.loads(gzip.decompress(data).decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{source}: not a gzip-compressed JSON model: {exc}") from None
    return CategoryModel.from_json(parsed)


@cache
def shipped_model() -> CategoryModel:
    """The model shipped with the package, read once per process."""
    data = resources.files("triage").joinpath(MODEL_FILE).read_bytes()
    return read_model(data, f"triage/{MODEL_FILE}")


def load_model(path: Path) -> CategoryModel:
    """A model file other than the shipped one (a retrained model)."""
    return read_model(path.read_bytes(), str(path))


def _pack(pairs: Sequence[tuple[int, float]]) -> int:
    """An n-gram's weights as one integer: a 48-bit field per category, in thousandths.

    Adding the integers of a text's n-grams adds every category's weights at
    once, in C (``sum``), several times faster than a Python loop over the
    pairs. Each field holds its weight plus ``_OFFSET`` so it never goes
    negative; :func:`_unpack` takes the offsets off again. A field stays in its
    48 bits for a text of up to 2**27 n-grams; a weight must stay below 1000 in size.
    """
    fields = [_OFFSET] * len(CATEGORY_CODES)
    for index, weight in pairs:
        if not abs(weight) < _UNIT:
            raise ModelError(f"weight {weight!r} out of range (below {_UNIT} in size)")
        fields[index] += round(weight * _UNIT)
    return sum(value << (_FIELD * index) for index, value in enumerate(fields))


def _unpack(total: int, count: int) -> list[int]:
    """The per-category sums, in thousandths, of ``count`` packed n-grams."""
    offset = _OFFSET * count
    return [((total >> (_FIELD * index)) & _MASK) - offset for index in range(len(CATEGORY_CODES))]
