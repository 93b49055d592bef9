"""How well triage labels complaints, and what it costs: ``python bench/triage_eval.py``.

The labelled set is ``bench/triage/data/complaints.jsonl``, written by hand
to ``shared/reference/triage-policy.md`` independently of the rules, split
into ``tune`` (rule authors may look at it) and ``test`` (never used to
change a rule; the figures that count). Each item becomes a complaint record
and goes through :func:`service.triage_cli.triage_lines`, the path of
``complaint-gateway triage`` and, record by record, of the live gateway.

Reported per split: category accuracy, per-category precision and recall,
priority accuracy, P1 recall and precision, expectations F1 (micro over
every (item, expectation) pair), and the tricky items' accuracy; then the
cost of one record's triage, measured over repeated passes in this process
next to the cost of validating the same record (pydantic), the baseline.

    .venv/bin/python bench/triage_eval.py [--split test|tune|all] [--rules F] [--json F] [--misses]
                                          [--markdown] [--rules-only]

``--markdown`` prints the figures as a Markdown section for ``bench/RESULTS.md``.

Two configurations are measured the same way: the shipped rules with the
shipped learned models (the category model, :mod:`triage.model`, and the P1
signal, :mod:`triage.p1_model`; the headline figures) and the rules alone
(``--rules-only`` makes them the headline); the comparison is printed after
the headline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from schemas import ComplaintRecord  # noqa: E402
from service.triage_cli import triage_lines  # noqa: E402
from service.triage_stage import TriageStage  # noqa: E402
from triage.engine import Triage  # noqa: E402
from triage.ruleset import load_ruleset  # noqa: E402

DATA = ROOT / "bench" / "triage" / "data" / "complaints.jsonl"


def as_record(item: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "received_at": "2026-11-30T02:00:00Z",
        "channel": item["channel"],
        "customer": {"id": f"{item['channel']}:{item['id']}", "tier": item.get("tier")},
        "description": item["text"],
        "source": {"connector": item["channel"], "message_id": item["id"]},
    }
    if item.get("amount_cny"):
        record["product"] = {"amount_cny": item["amount_cny"]}
    return record


def score(items: list[dict[str, Any]], records: list[ComplaintRecord]) -> dict[str, Any]:
    n = len(items)
    category_hits = sum(
        i["category"] == r.category.code for i, r in zip(items, records, strict=True)
    )
    priority_hits = sum(i["priority"] == r.priority for i, r in zip(items, records, strict=True))
    p1_true = sum(i["priority"] == "P1" for i in items)
    p1_said = sum(r.priority == "P1" for r in records)
    p1_both = sum(
        i["priority"] == "P1" and r.priority == "P1" for i, r in zip(items, records, strict=True)
    )
    gold = {(i["id"], e) for i in items for e in i["expectations"]}
    said = {(i["id"], e) for i, r in zip(items, records, strict=True) for e in r.expectations}
    tp = len(gold & said)
    precision = tp / len(said) if said else 1.0
    recall = tp / len(gold) if gold else 1.0
    per_category: dict[str, dict[str, float]] = {}
    for code in sorted({i["category"] for i in items} | {r.category.code for r in records}):
        true = sum(i["category"] == code for i in items)
        guessed = sum(r.category.code == code for r in records)
        both = sum(
            i["category"] == code and r.category.code == code
            for i, r in zip(items, records, strict=True)
        )
        per_category[code] = {
            "support": true,
            "precision": both / guessed if guessed else 0.0,
            "recall": both / true if true else 0.0,
        }
    tricky = [(i, r) for i, r in zip(items, records, strict=True) if i.get("tricky")]
    return {
        "items": n,
        "category_accuracy": category_hits / n,
        "priority_accuracy": priority_hits / n,
        "p1_recall": p1_both / p1_true if p1_true else 1.0,
        "p1_precision": p1_both / p1_said if p1_said else 1.0,
        "expectations_precision": precision,
        "expectations_recall": recall,
        "expectations_f1": 2 * precision * recall / (precision + recall) if tp else 0.0,
        "tricky_items": len(tricky),
        "tricky_category_accuracy": (
            sum(i["category"] == r.category.code for i, r in tricky) / len(tricky)
            if tricky
            else 1.0
        ),
        "tricky_priority_accuracy": (
            sum(i["priority"] == r.priority for i, r in tricky) / len(tricky) if tricky else 1.0
        ),
        "per_category": per_category,
    }


def cost(stage: TriageStage, records: list[ComplaintRecord], passes: int = 7) -> dict[str, float]:
    """Median µs per record of triage, and of validating the record (the baseline), same process."""
    dumped = [r.model_dump(mode="json") for r in records]
    triage_runs, validate_runs = [], []
    for _ in range(passes):
        start = time.perf_counter()
        for record in records:
            stage.rules.triage(record)
        triage_runs.append((time.perf_counter() - start) / len(records) * 1e6)
        start = time.perf_counter()
        for data in dumped:
            ComplaintRecord.model_validate(data)
        validate_runs.append((time.perf_counter() - start) / len(records) * 1e6)
    triage_us, validate_us = statistics.median(triage_runs), statistics.median(validate_runs)
    return {
        "triage_us_per_record": triage_us,
        "validate_us_per_record": validate_us,
        "ratio_triage_to_validate": triage_us / validate_us,
    }


_HEADLINE = (
    ("category accuracy", "category_accuracy"),
    ("priority accuracy", "priority_accuracy"),
    ("P1 recall", "p1_recall"),
    ("P1 precision", "p1_precision"),
    ("expectations F1", "expectations_f1"),
    ("tricky items: category accuracy", "tricky_category_accuracy"),
    ("tricky items: priority accuracy", "tricky_priority_accuracy"),
)


def markdown(figures: dict[str, Any]) -> str:
    """The figures as a Markdown section: headline, per-category table, cost."""
    lines = [
        f"### Triage, {figures['split']} split ({figures['items']} items, "
        f"ruleset {figures['ruleset_version']})",
        "",
        "| figure | value |",
        "|---|---:|",
        *(f"| {name} | {figures[key]:.3f} |" for name, key in _HEADLINE),
        "",
        "| category | support | precision | recall |",
        "|---|---:|---:|---:|",
        *(
            f"| `{code}` | {row['support']} | {row['precision']:.2f} | {row['recall']:.2f} |"
            for code, row in figures["per_category"].items()
        ),
        "",
        f"Cost: {figures['triage_us_per_record']:.1f} µs per record for triage, "
        f"{figures['validate_us_per_record']:.1f} µs to validate the same record "
        f"(ratio {figures['ratio_triage_to_validate']:.2f}).",
    ]
    compared = figures.get("configurations", {})
    if compared:
        lines += [
            "",
            "| configuration | category | priority | P1 recall | P1 precision "
            "| expectations F1 | µs/record |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {name} | {row['category_accuracy']:.3f} | {row['priority_accuracy']:.3f} "
                f"| {row['p1_recall']:.3f} | {row['p1_precision']:.3f} "
                f"| {row['expectations_f1']:.3f} | {row['triage_us_per_record']:.1f} |"
                for name, row in compared.items()
            ),
        ]
    return "\n".join(lines)


def configurations(rules: Path | None, rules_only: bool) -> dict[str, Triage]:
    """The engines to compare, the headline first."""
    ruleset = load_ruleset(rules)
    engines = {
        "rules + models": Triage(ruleset),
        "rules only": Triage(ruleset, model=None, p1_model=None),
    }
    if rules_only:
        return dict(reversed(engines.items()))
    return engines


def evaluate(
    items: list[dict[str, Any]], engine: Triage
) -> tuple[list[ComplaintRecord], dict[str, Any]]:
    stage = TriageStage(engine)
    problems: list[str] = []
    records = list(triage_lines(stage, (json.dumps(as_record(i)) for i in items), problems.append))
    if problems:
        raise SystemExit("\n".join(problems))
    return records, score(items, records) | cost(stage, records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--split", choices=("test", "tune", "all"), default="test")
    parser.add_argument("--rules", type=Path, help="a rules file instead of the shipped one")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--misses", action="store_true", help="list every mislabelled item")
    parser.add_argument(
        "--markdown", action="store_true", help="print a Markdown section for bench/RESULTS.md"
    )
    parser.add_argument(
        "--rules-only", action="store_true", help="headline the rules without the learned model"
    )
    args = parser.parse_args(argv)

    items = [json.loads(line) for line in DATA.read_text("utf-8").splitlines() if line.strip()]
    if args.split != "all":
        items = [i for i in items if i["split"] == args.split]
    engines = configurations(args.rules, args.rules_only)
    results = {name: evaluate(items, engine) for name, engine in engines.items()}
    headline = next(iter(engines))
    records, figures = results[headline]
    figures["split"] = args.split
    figures["ruleset_version"] = engines[headline].version
    figures["configurations"] = {
        name: {key: value for key, value in found.items() if key != "per_category"}
        for name, (_, found) in results.items()
    }
    if args.markdown:
        print(markdown(figures))
        if args.json:
            args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n")
        return 0
    print(f"split {args.split}: {figures['items']} items, ruleset {figures['ruleset_version']}")
    for key in (
        "category_accuracy",
        "priority_accuracy",
        "p1_recall",
        "p1_precision",
        "expectations_f1",
        "tricky_category_accuracy",
        "tricky_priority_accuracy",
    ):
        print(f"  {key:<26} {figures[key]:.3f}")
    print(
        f"  triage {figures['triage_us_per_record']:.1f} µs/record; validating the record "
        f"{figures['validate_us_per_record']:.1f} µs "
        f"(ratio {figures['ratio_triage_to_validate']:.2f})"
    )
    print(f"  {'category':<24} {'n':>4} {'precision':>9} {'recall':>7}")
    for code, row in figures["per_category"].items():
        print(f"  {code:<24} {row['support']:>4} {row['precision']:>9.2f} {row['recall']:>7.2f}")
    for name, row in figures["configurations"].items():
        print(
            f"  {name:<14} category {row['category_accuracy']:.3f}  priority "
            f"{row['priority_accuracy']:.3f}  P1 recall {row['p1_recall']:.3f}  P1 precision "
            f"{row['p1_precision']:.3f}  expectations F1 {row['expectations_f1']:.3f}  "
            f"{row['triage_us_per_record']:.1f} µs/record"
        )
    if args.misses:
        for item, record in zip(items, records, strict=True):
            wrong = [
                f"{what} {want} → {got}"
                for what, want, got in (
                    ("category", item["category"], record.category.code),
                    ("priority", item["priority"], record.priority),
                    ("expectations", sorted(item["expectations"]), sorted(record.expectations)),
                )
                if want != got
            ]
            if wrong:
                print(f"{item['id']} {item['text'][:60]!r}: {'; '.join(map(str, wrong))}")
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n")
    counts = Counter(r.priority for r in records)
    print(f"  priorities said: {dict(sorted(counts.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
