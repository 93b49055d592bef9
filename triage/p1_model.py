"""The learned P1 signal: a binary logistic regression over character n-grams, shipped as data.

The P1 rules name the words of a safety, batch or public-opinion risk; a
customer uses others (``电源线冒火星子``, ``孩子手被划了个口子``). This model reads
every character pair and triple of the matching form
(:func:`triage.text.matching_form`; digit runs read ``0``) and gives the
probability that the complaint is P1. The engine raises a complaint to P1 when
the probability reaches :attr:`P1Model.threshold` and no P1 trap applies (see
:class:`triage.engine.Triage`); the reason names the n-grams that weighed most:
``P1（模型）：「冒火」「电源线」``.

Trained by ``bench/triage/train_model.py`` on the training sets and the tune
split, pruned and shipped as ``triage/p1_model.json.gz``; the threshold was
chosen by cross-validation on the training sets and is stored with the weights.
It runs offline from that file alone, in pure Python.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from itertools import repeat
from operator import add
from pathlib import Path
from typing import Any

from triage.model import ModelError, distinct_grams

P1_MODEL_FILE = "p1_model.json.gz"
_FORMAT = 1
_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def p1_grams(form: str) -> list[str]:
    """The character pairs, then triples, of a matching form, each as often as it occurs.

    Digit runs read ``0``. Unlike the category model's n-grams: triples, because
    a P1 signal is often one short phrase (``冒火星``, ``上热搜``) in a long text;
    no single characters, because alone they weighed for P1 by chance (``点`` in
    ``几个坏点``) and made short texts P1 in cross-validation; a list, not a set,
    because counting a repeated n-gram again changed little in cross-validation
    and is cheaper than removing it.
    """
    folded = _DIGITS.sub("0", form)
    pairs = list(map(add, folded, folded[1:]))
    pairs.extend(map(add, pairs, folded[2:]))
    return pairs


class P1Model:
    """A weight per n-gram and a bias; the score is scaled like the category model's.

    The log-odds of P1 is the bias plus the sum of the weights of the text's
    n-grams (:func:`p1_grams`) over the square root of their number, or of :attr:`fewest` when
    they are fewer: a text of a few words (``手机偶尔黑屏``) is not made a
    confident verdict by being short.
    """

    def __init__(
        self,
        version: str,
        bias: float,
        weights: Mapping[str, float],
        *,
        threshold: float,
        fewest: int = 1,
    ) -> None:
        if not 0 < threshold < 1:
            raise ModelError(f"threshold {threshold!r} is not a probability strictly inside (0, 1)")
        if fewest < 1:
            raise ModelError(f"fewest {fewest!r} must be at least 1")
        self.version = version
        self.bias = bias
        self.weights = dict(weights)
        #: The probability from which the engine says P1 (chosen by cross-validation).
        self.threshold = threshold
        #: The scaling counts at least this many n-grams.
        self.fewest = fewest

    def probability(self, found: Sequence[str]) -> float:
        """The probability that a text with these n-grams (:func:`p1_grams`) is P1."""
        total = sum(map(self.weights.get, found, repeat(0.0)))
        return _sigmoid(self.bias + total / math.sqrt(max(len(found), self.fewest)))

    def evidence(self, found: Iterable[str], most: int = 3) -> list[str]:
        """The n-grams of ``found`` that weigh most for P1, the longer first on a tie.

        An n-gram inside or around one already named is not named again.
        """
        weights = self.weights
        weighed = sorted(
            (-weights[gram], -len(gram), gram) for gram in set(found) if weights.get(gram, 0.0) > 0
        )
        return distinct_grams(weighed, most)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": self.version,
            "threshold": self.threshold,
            "fewest": self.fewest,
            "bias": self.bias,
            "weights": self.weights,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> P1Model:
        try:
            if data["format"] != _FORMAT:
                raise ModelError(f"P1 model format {data['format']!r}, expected {_FORMAT}")
            weights = {str(gram): float(weight) for gram, weight in data["weights"].items()}
            return cls(
                str(data["version"]),
                float(data["bias"]),
                weights,
                threshold=float(data["threshold"]),
                fewest=int(data["fewest"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"malformed P1 model: {exc!r}") from None


def _sigmoid(value: float) -> float:
    if value >= 0:
        return 1 / (1 + math.exp(-value))
    odds = math.exp(value)
    return odds / (1 + odds)


def dump_p1_model(model: P1Model) -> bytes:
    """The model file's bytes: the same model gives the same bytes (no timestamp)."""
    text = json.dumps(model.to_json(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def read_p1_model(data: bytes, source: str = "<P1 model>") -> P1Model:
    try:
        parsed = json.loads(gzip.decompress(data).decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{source}: not a gzip-compressed JSON model: {exc}") from None
    if not isinstance(parsed, dict):
        raise ModelError(f"{source}: malformed P1 model: not a JSON object")
    return P1Model.from_json(parsed)


@cache
def shipped_p1_model() -> P1Model:
    """The P1 model shipped with the package, read once per process."""
    data = resources.files("triage").joinpath(P1_MODEL_FILE).read_bytes()
    return read_p1_model(data, f"triage/{P1_MODEL_FILE}")


def load_p1_model(path: Path) -> P1Model:
    """A P1 model file other than the shipped one (a retrained model)."""
    return read_p1_model(path.read_bytes(), str(path))
