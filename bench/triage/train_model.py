"""Train the learned models: ``triage/category_model.json.gz`` and ``triage/p1_model.json.gz``.

    .venv/bin/python bench/triage/train_model.py           # train on everything allowed, write
    .venv/bin/python bench/triage/train_model.py --cv      # category cross-validation figures
    .venv/bin/python bench/triage/train_model.py --cv-p1   # P1 cross-validation figures

What it learns from: the two training sets (``bench/triage/data/train_a.jsonl``,
``train_b.jsonl``) and the ``tune`` split of ``complaints.jsonl``. Never the
``test`` split: the script does not read it.

The model (:mod:`triage.model`) is a multinomial logistic regression over the
character 1- and 2-grams of each text's matching form (the shipped ruleset's
homophones applied, as the engine does). Training is plain pure Python:
Adagrad over the examples in a seeded order, L2 regularised, a fixed number of
epochs; the same data gives the same file, byte for byte. Then it is pruned:
n-grams seen in fewer than ``MIN_COUNT`` texts are never learned, weights below
``MIN_WEIGHT`` go, and weights are rounded to ``DIGITS`` decimals.

How the engine combines model and rules (``RULE_WEIGHT``, ``DECISIVE_MARGIN``)
was chosen with ``--cv``: five folds of the training sets, stratified by
category, each fold labelled by the rules and by a model trained on the other
four folds and the tune split. The tune split is never a held-out fold (the
rules were written on it, so the rules' figures there say nothing).

The P1 signal (:mod:`triage.p1_model`) is a binary logistic regression (P1 or
not) over the character 2- and 3-grams, trained the same way (Adagrad, seeded,
L2, then pruned below ``P1_MIN_WEIGHT``). An n-gram found in more than
``P1_MOST_SHARED`` of the texts is not learned: generic words (``买的``,
``有股``) weighed for P1 by chance and made ordinary short texts P1; for the
same reason a text is scaled as if it had at least ``P1_FEWEST`` n-grams
(about 30 characters; the texts average about 80). Its threshold was chosen
with ``--cv-p1``: the same five folds, each labelled by the engine with the
rules, a category model and a P1 model both trained on the other four folds
and the tune split; for each candidate threshold it prints the P1 model's own
recall and precision and the engine's P1 recall, P1 precision and priority
accuracy. The rules were written on the training sets, so the engine's P1
recall there is no guide; the threshold is the lowest at which the engine's
P1 precision stays at 0.95 or above (``P1_THRESHOLD``: 0.4; the P1 model
alone then finds 0.54 of the held-out P1 complaints at precision 0.96, and the
engine's P1 precision is 0.96 and its priority accuracy 0.896, against the
rules' 0.98 and 0.898).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from triage.engine import Triage  # noqa: E402
from triage.model import MODEL_FILE, CategoryModel, dump_model, grams  # noqa: E402
from triage.p1_model import P1_MODEL_FILE, P1Model, dump_p1_model, p1_grams  # noqa: E402
from triage.ruleset import CATEGORY_CODES, Ruleset, load_ruleset  # noqa: E402
from triage.text import Homophones, matching_form  # noqa: E402

DATA = ROOT / "bench" / "triage" / "data"
TRAINING_SETS = ("train_a.jsonl", "train_b.jsonl")
OUT = ROOT / "triage" / MODEL_FILE
P1_OUT = ROOT / "triage" / P1_MODEL_FILE

VERSION = "catmodel-2026.12-1"
EPOCHS = 10
LEARNING_RATE = 0.5
BIAS_RATE = 0.1
L2 = 1e-4
MIN_COUNT = 2
MIN_WEIGHT = 0.6
DIGITS = 3
SEED = 20261201
#: Chosen by --cv (see the module docstring).
RULE_WEIGHT = 0.5
DECISIVE_MARGIN = 4
FOLDS = 5

P1_VERSION = "p1model-2026.12-1"
P1_EPOCHS = 20
P1_MIN_WEIGHT = 0.05
P1_MOST_SHARED = 0.05
P1_FEWEST = 60
#: Chosen by --cv-p1 (see the module docstring).
P1_THRESHOLD = 0.4
P1_THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8)

Item = dict[str, Any]
Example = tuple[frozenset[str], int]


def training_items() -> tuple[list[Item], list[Item]]:
    """The training sets' items, and the tune split's; the test split is skipped unread."""
    train = [item for name in TRAINING_SETS for item in _read(DATA / name)]
    tune = [item for item in _read(DATA / "complaints.jsonl") if item["split"] == "tune"]
    return train, tune


def _read(path: Path) -> list[Item]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def examples(items: Iterable[Item], ruleset: Ruleset) -> list[Example]:
    homophones = Homophones(ruleset.homophones)
    return [
        (frozenset(grams(matching_form(item["text"], homophones))), _index(item["category"]))
        for item in items
    ]


def _index(code: str) -> int:
    return CATEGORY_CODES.index(code)


def fit(data: Sequence[Example], *, epochs: int = EPOCHS, seed: int = SEED) -> CategoryModel:
    """A model trained on ``data``: Adagrad on the softmax loss, then pruned."""
    classes = len(CATEGORY_CODES)
    counts = Counter(gram for found, _ in data for gram in found)
    vocabulary = sorted(gram for gram, count in counts.items() if count >= MIN_COUNT)
    column = {gram: number for number, gram in enumerate(vocabulary)}
    rows = [
        ([column[g] for g in sorted(found) if g in column], 1 / math.sqrt(len(found)), label)
        for found, label in data
        if found
    ]
    weights = [[0.0] * classes for _ in vocabulary]
    squares = [[1e-8] * classes for _ in vocabulary]
    bias = [0.0] * classes
    order = list(range(len(rows)))
    shuffle = random.Random(seed).shuffle
    for _ in range(epochs):
        shuffle(order)
        for number in order:
            columns, scale, label = rows[number]
            scores = list(bias)
            for c in columns:
                row = weights[c]
                for k in range(classes):
                    scores[k] += row[k] * scale
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            total = sum(exps)
            errors = [e / total for e in exps]
            errors[label] -= 1
            for k in range(classes):
                bias[k] -= BIAS_RATE * errors[k]
            for c in columns:
                row, square = weights[c], squares[c]
                for k in range(classes):
                    gradient = errors[k] * scale + L2 * row[k]
                    square[k] += gradient * gradient
                    row[k] -= LEARNING_RATE * gradient / math.sqrt(square[k])
    sparse = {}
    for gram, row in zip(vocabulary, weights, strict=True):
        # An n-gram adds to every category: shifting its weights by one constant changes
        # no verdict. Shifted by their median, most of them are near zero and go.
        middle = statistics.median(row)
        kept = [
            (k, round(w - middle, DIGITS))
            for k, w in enumerate(row)
            if abs(w - middle) >= MIN_WEIGHT
        ]
        if kept:
            sparse[gram] = kept
    return CategoryModel(
        VERSION,
        [round(b, DIGITS) for b in bias],
        sparse,
        rule_weight=RULE_WEIGHT,
        decisive_margin=DECISIVE_MARGIN,
    )


def with_combination(model: CategoryModel, rule_weight: float, margin: int) -> CategoryModel:
    return CategoryModel(
        model.version, model.bias, model.weights, rule_weight=rule_weight, decisive_margin=margin
    )


def folds(items: Sequence[Item], count: int = FOLDS, seed: int = SEED) -> list[int]:
    """A fold number per item, stratified by category, seeded."""
    by_category: dict[str, list[int]] = defaultdict(list)
    for number, item in enumerate(items):
        by_category[item["category"]].append(number)
    fold = [0] * len(items)
    rng = random.Random(seed)
    for code in sorted(by_category):
        members = by_category[code]
        rng.shuffle(members)
        for position, number in enumerate(members):
            fold[number] = position % count
    return fold


def cross_validate(ruleset: Ruleset) -> dict[str, float]:
    """Category accuracy and P1 recall on the held-out training folds, per configuration."""
    train, tune = training_items()
    data, tune_data = examples(train, ruleset), examples(tune, ruleset)
    fold = folds(train)
    configurations: dict[str, tuple[float, int] | None] = {"rules only": None}
    configurations["model (rule weight 0)"] = (0.0, 1000)
    for weight in (0.25, 0.5, 1.0):
        for margin in (2, 4, 1000):
            configurations[f"rules + model, weight {weight}, margin {margin}"] = (weight, margin)
    hits: Counter[str] = Counter()
    p1 = Counter[str]()
    # The shipped P1 model learned from these folds: the category figures leave it out.
    rules_only = Triage(ruleset, model=None, p1_model=None)
    for k in range(FOLDS):
        model = fit([d for d, f in zip(data, fold, strict=True) if f != k] + tune_data)
        held_out = [item for item, f in zip(train, fold, strict=True) if f == k]
        for name, combination in configurations.items():
            engine = (
                rules_only
                if combination is None
                else Triage(ruleset, model=with_combination(model, *combination), p1_model=None)
            )
            for item in held_out:
                verdict = engine.triage_text(item["text"], tier=item["tier"])
                hits[name] += verdict.category_code == item["category"]
                if item["priority"] == "P1":
                    p1[name] += verdict.priority == "P1"
    p1_total = sum(item["priority"] == "P1" for item in train)
    figures = {}
    for name in configurations:
        figures[name] = hits[name] / len(train)
        print(
            f"  {name:<44} category accuracy {hits[name] / len(train):.3f}"
            f"  P1 recall {p1[name] / p1_total:.3f}"
        )
    return figures


P1Example = tuple[tuple[str, ...], int]


def p1_examples(items: Iterable[Item], ruleset: Ruleset) -> list[P1Example]:
    """Each text's 2- and 3-grams (:func:`p1_grams`), and 1 for a P1 complaint, 0 for any other."""
    homophones = Homophones(ruleset.homophones)
    return [
        (
            tuple(p1_grams(matching_form(item["text"], homophones))),
            int(item["priority"] == "P1"),
        )
        for item in items
    ]


def fit_p1(
    data: Sequence[P1Example],
    *,
    epochs: int = P1_EPOCHS,
    seed: int = SEED,
    threshold: float = P1_THRESHOLD,
    most_shared: float = P1_MOST_SHARED,
) -> P1Model:
    """A P1 model trained on ``data``: Adagrad on the logistic loss, then pruned."""
    counts = Counter(gram for found, _ in data for gram in set(found))
    most = most_shared * len(data)
    vocabulary = sorted(gram for gram, count in counts.items() if MIN_COUNT <= count <= most)
    column = {gram: number for number, gram in enumerate(vocabulary)}
    rows = [
        (
            [column[g] for g in found if g in column],
            1 / math.sqrt(max(len(found), P1_FEWEST)),
            label,
        )
        for found, label in data
    ]
    weights = [0.0] * len(vocabulary)
    squares = [1e-8] * len(vocabulary)
    bias = 0.0
    order = list(range(len(rows)))
    shuffle = random.Random(seed).shuffle
    for _ in range(epochs):
        shuffle(order)
        for number in order:
            columns, scale, label = rows[number]
            score = bias + scale * sum(weights[c] for c in columns)
            error = 1 / (1 + math.exp(-min(max(score, -30.0), 30.0))) - label
            bias -= BIAS_RATE * error
            for c in columns:
                gradient = error * scale + L2 * weights[c]
                squares[c] += gradient * gradient
                weights[c] -= LEARNING_RATE * gradient / math.sqrt(squares[c])
    kept = {
        gram: round(weight, DIGITS)
        for gram, weight in zip(vocabulary, weights, strict=True)
        if abs(weight) >= P1_MIN_WEIGHT
    }
    return P1Model(P1_VERSION, round(bias, DIGITS), kept, threshold=threshold, fewest=P1_FEWEST)


def with_threshold(model: P1Model, threshold: float) -> P1Model:
    return P1Model(
        model.version, model.bias, model.weights, threshold=threshold, fewest=model.fewest
    )


def cross_validate_p1(ruleset: Ruleset) -> None:
    """P1 figures on the held-out training folds, per candidate threshold."""
    train, tune = training_items()
    data, tune_data = examples(train, ruleset), examples(tune, ruleset)
    p1_data, p1_tune = p1_examples(train, ruleset), p1_examples(tune, ruleset)
    fold = folds(train)
    said: dict[float, list[str]] = {t: [""] * len(train) for t in P1_THRESHOLDS}
    alone: dict[float, list[bool]] = {t: [False] * len(train) for t in P1_THRESHOLDS}
    rules_said = [""] * len(train)
    for k in range(FOLDS):
        model = fit([d for d, f in zip(data, fold, strict=True) if f != k] + tune_data)
        p1_model = fit_p1([d for d, f in zip(p1_data, fold, strict=True) if f != k] + p1_tune)
        held_out = [number for number, f in enumerate(fold) if f == k]
        rules = Triage(ruleset, model=model, p1_model=None)
        for number in held_out:
            rules_said[number] = _priority(rules, train[number])
        for threshold in P1_THRESHOLDS:
            engine = Triage(ruleset, model=model, p1_model=with_threshold(p1_model, threshold))
            for number in held_out:
                said[threshold][number] = _priority(engine, train[number])
                probability = p1_model.probability(p1_data[number][0])
                alone[threshold][number] = probability >= threshold
    gold = [item["priority"] for item in train]
    print(f"  {'':<22} {'model alone':>20}   {'engine':>32}")
    print(
        f"  {'':<22} {'recall':>9} {'precision':>10}   {'P1 recall':>10} {'precision':>10} "
        f"{'priority':>9}"
    )
    print(f"  {'rules alone':<22} {'':>20}   {_p1_figures(rules_said, gold)}")
    for threshold in P1_THRESHOLDS:
        flagged = ["P1" if flag else "" for flag in alone[threshold]]
        recall, precision, _ = _p1_rates(flagged, gold)
        print(
            f"  {f'threshold {threshold}':<22} {recall:>9.3f} {precision:>10.3f}   "
            f"{_p1_figures(said[threshold], gold)}"
        )


def _priority(engine: Triage, item: Item) -> str:
    amount = item.get("amount_cny")
    verdict = engine.triage_text(
        item["text"], tier=item.get("tier"), amount_cny=Decimal(amount) if amount else None
    )
    return verdict.priority


def _p1_rates(said: Sequence[str], gold: Sequence[str]) -> tuple[float, float, float]:
    both = sum(s == "P1" and g == "P1" for s, g in zip(said, gold, strict=True))
    flagged, true = said.count("P1"), list(gold).count("P1")
    accuracy = sum(s == g for s, g in zip(said, gold, strict=True)) / len(gold)
    return both / true if true else 1.0, both / flagged if flagged else 1.0, accuracy


def _p1_figures(said: Sequence[str], gold: Sequence[str]) -> str:
    recall, precision, accuracy = _p1_rates(said, gold)
    return f"{recall:>10.3f} {precision:>10.3f} {accuracy:>9.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--cv", action="store_true", help="print cross-validation figures only")
    parser.add_argument(
        "--cv-p1", action="store_true", help="print the P1 model's cross-validation figures only"
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    parser.add_argument(
        "--p1-out",
        type=Path,
        default=P1_OUT,
        help=f"where to write the P1 model (default {P1_OUT})",
    )
    args = parser.parse_args(argv)
    ruleset = load_ruleset()
    if args.cv:
        print(f"{FOLDS}-fold cross-validation on the training sets (ruleset {ruleset.version}):")
        cross_validate(ruleset)
        return 0
    if args.cv_p1:
        print(f"{FOLDS}-fold cross-validation of the P1 model (ruleset {ruleset.version}):")
        cross_validate_p1(ruleset)
        return 0
    train, tune = training_items()
    model = fit(examples([*train, *tune], ruleset))
    payload = dump_model(model)
    args.out.write_bytes(payload)
    kept = sum(len(pairs) for pairs in model.weights.values())
    print(
        f"{args.out}: {model.version}, {len(train) + len(tune)} texts, "
        f"{len(model.weights)} n-grams, {kept} weights, {len(payload) / 1024:.0f} KiB"
    )
    p1_model = fit_p1(p1_examples([*train, *tune], ruleset))
    p1_payload = dump_p1_model(p1_model)
    args.p1_out.write_bytes(p1_payload)
    print(
        f"{args.p1_out}: {p1_model.version}, threshold {p1_model.threshold}, "
        f"{len(p1_model.weights)} n-grams, {len(p1_payload) / 1024:.0f} KiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
