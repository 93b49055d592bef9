"""How well same-incident linking and the batch signal work: ``python bench/linking_eval.py``.

The labelled set is ``bench/linking/data/events.jsonl`` (see its README),
written by hand to the "Same incident or not" section of
``shared/reference/triage-policy.md`` without looking at the linker. Each line
is a complaint event (one message on one channel) or a status event (an
incident was resolved). The whole stream goes, in time order, through the
offline CLI ``complaint-gateway triage`` as a subprocess: a complaint event
becomes a complaint record line, a status event a status line.

What is scored:

* linking, pairwise over every unordered pair of complaint records in the
  file: two records are predicted together when ``dedupe.duplicate_of`` links
  chain them into one cluster, and truly together when they share an
  ``incident``. Precision and recall overall and for the pairs inside
  ``same``, ``near_miss`` and ``batch`` groups; false links across groups are
  counted on their own (a pair of different groups is never one incident).
* the batch signal, per record: ``dedupe.batch`` set (non-null) against
  ``batch_expected``.

A CLI that does not link yet (no ``duplicate_of``, no ``batch``, status lines
refused) still gives a report: recall 0, and a note about what was refused.

    .venv/bin/python bench/linking_eval.py [--data F] [--json F] [--misses] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from schemas import record_id_for  # noqa: E402

DATA = ROOT / "bench" / "linking" / "data" / "events.jsonl"
KINDS = ("same", "near_miss", "batch")
#: How many false and missed links ``--misses`` prints of each.
MISSES_SHOWN = 100

Event = dict[str, Any]
Pair = tuple[str, str]


# ---------------------------------------------------------------- the data


def load_events(path: Path) -> list[Event]:
    """The events of a JSON Lines file, in file order (which is time order)."""
    events = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{number}: not JSON: {exc}") from exc
    return events


def is_status(event: Event) -> bool:
    return "status" in event


def utc(at: str) -> str:
    """An RFC 3339 time with an offset, as UTC with a ``Z``."""
    return datetime.fromisoformat(at).astimezone(UTC).isoformat().replace("+00:00", "Z")


def record_id(event: Event) -> str:
    """The record id the CLI derives for a complaint event."""
    return record_id_for(event["channel"], event["id"])


def as_line(event: Event, by_id: Mapping[str, Event]) -> dict[str, Any]:
    """The CLI input line for an event: a complaint record or a status update."""
    if is_status(event):
        first = by_id[event["of"]]
        return {
            "record_id": record_id(first),
            "node": event["status"],
            "occurred_at": utc(event["at"]),
            "ticket_no": f"T-{first['id']}",
        }
    line: dict[str, Any] = {
        "received_at": utc(event["at"]),
        "occurred_at": utc(event["at"]),
        "channel": event["channel"],
        "customer": event["customer"],
    }
    if event.get("product"):
        line["product"] = event["product"]
    line["description"] = event["text"]
    line["source"] = {"connector": event["channel"], "message_id": event["id"]}
    return line


# ----------------------------------------------------------------- the CLI


@dataclass
class CliRun:
    """What the CLI wrote back: records by id, and the input lines it refused."""

    command: list[str]
    records: dict[str, dict[str, Any]]
    refused: dict[int, str] = field(default_factory=dict)
    exit_code: int = 0


def _commands() -> list[list[str]]:
    script = ROOT / ".venv" / "bin" / "complaint-gateway"
    return [[sys.executable, "-m", "gateway", "triage"], [str(script), "triage"]]


def run_cli(lines: list[dict[str, Any]]) -> CliRun:
    """Feed the lines to ``complaint-gateway triage`` and collect the records it writes.

    The CLI reports a line it cannot read as ``line N: ...`` on stderr, goes on
    with the next one and exits 1 at the end; that is not fatal here.
    """
    stdin = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    for command in _commands():
        try:
            done = subprocess.run(
                command,
                cwd=ROOT,
                input=stdin,
                capture_output=True,
                encoding="utf-8",
                check=False,
            )
        except FileNotFoundError:
            continue
        if done.returncode != 0 and not done.stdout and "No module named" in done.stderr:
            continue
        break
    else:
        raise SystemExit("cannot run the CLI: neither `python -m gateway` nor complaint-gateway")
    records = {}
    for line in done.stdout.splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["record_id"]] = record
    refused = {}
    for line in done.stderr.splitlines():
        head, _, reason = line.partition(":")
        if head.startswith("line ") and head[5:].isdigit():
            refused[int(head[5:])] = reason.strip()
    if done.returncode != 0 and not records:
        raise SystemExit(f"the CLI failed ({done.returncode}):\n{done.stderr}")
    return CliRun(command, records, refused, done.returncode)


# ------------------------------------------------------------- the scoring


def clusters(items: Iterable[str], links: Iterable[Pair]) -> dict[str, str]:
    """Each item's cluster (a representative item), joining every linked pair (union-find)."""
    parent: dict[str, str] = {item: item for item in items}

    def find(item: str) -> str:
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for a, b in links:
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[root_b] = root_a
    return {item: find(item) for item in list(parent)}


def pairs_within(label: Mapping[str, Hashable]) -> set[Pair]:
    """Every unordered pair of items that share a label, as sorted tuples."""
    members: dict[Hashable, list[str]] = defaultdict(list)
    for item, value in label.items():
        members[value].append(item)
    return {
        (a, b) if a < b else (b, a) for group in members.values() for a, b in combinations(group, 2)
    }


@dataclass(frozen=True)
class Score:
    """Counts of true positives, false positives and false negatives."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
        }


def pairwise(truth: Mapping[str, Hashable], predicted: Mapping[str, Hashable]) -> Score:
    """Pairwise precision and recall of a clustering against the true one.

    Both map item -> cluster label; an item missing from ``predicted`` is a
    cluster of its own. Pairs are counted over the items of ``truth`` only.
    """
    items = set(truth)
    said = {pair for pair in pairs_within(predicted) if pair[0] in items and pair[1] in items}
    true = pairs_within(truth)
    return Score(tp=len(true & said), fp=len(said - true), fn=len(true - said))


@dataclass
class Report:
    figures: dict[str, Any]
    false_links: list[Pair]
    missed_links: list[Pair]


def score(events: list[Event], run: CliRun) -> Report:
    complaints = [e for e in events if not is_status(e)]
    ids = [e["id"] for e in complaints]
    by_record = {record_id(e): e["id"] for e in complaints}
    truth = {e["id"]: e["incident"] for e in complaints}

    links = []
    for rid, record in run.records.items():
        target = (record.get("dedupe") or {}).get("duplicate_of")
        if target:
            links.append((by_record.get(rid, rid), by_record.get(target, target)))
    predicted = clusters(ids, links)

    group_of = {e["id"]: e["group"] for e in complaints}
    kind_of = {e["group"]: e["kind"] for e in complaints}

    def scope(pair: Pair) -> str:
        a, b = pair
        return kind_of[group_of[a]] if group_of[a] == group_of[b] else "across_groups"

    true_pairs = pairs_within(truth)
    said_pairs = {p for p in pairs_within(predicted) if p[0] in truth and p[1] in truth}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for pair in true_pairs | said_pairs:
        outcome = (
            "tp"
            if pair in true_pairs and pair in said_pairs
            else ("fn" if pair in true_pairs else "fp")
        )
        counts[scope(pair)][outcome] += 1
    overall = pairwise(truth, predicted)
    linking: dict[str, Any] = {"overall": overall.as_dict()}
    for kind in KINDS:
        c = counts[kind]
        linking[kind] = Score(c["tp"], c["fp"], c["fn"]).as_dict()
    linking["across_groups"] = {"false_links": counts["across_groups"]["fp"]}

    batch = Counter[str]()
    for event in complaints:
        record = run.records.get(record_id(event)) or {}
        said = (record.get("dedupe") or {}).get("batch") is not None
        expected = bool(event.get("batch_expected", False))
        batch["tp" if said and expected else "fp" if said else "fn" if expected else "tn"] += 1
    batch_score = Score(batch["tp"], batch["fp"], batch["fn"])

    groups = {kind: len({e["group"] for e in complaints if e["kind"] == kind}) for kind in KINDS}
    missing = [e["id"] for e in complaints if record_id(e) not in run.records]
    figures = {
        "counts": {
            "complaint_events": len(complaints),
            "status_events": len(events) - len(complaints),
            "groups": groups,
            "incidents": len(set(truth.values())),
            "true_pairs": len(true_pairs),
            "predicted_pairs": len(said_pairs),
            "batch_expected": sum(bool(e.get("batch_expected")) for e in complaints),
        },
        "linking": linking,
        "batch_signal": {**batch_score.as_dict(), "tn": batch["tn"]},
        "cli": {
            "command": run.command[1:] if run.command[0] == sys.executable else run.command,
            "exit_code": run.exit_code,
            "records_out": len(run.records),
            "missing_records": missing,
            "refused_lines": len(run.refused),
        },
    }
    return Report(
        figures,
        false_links=sorted(said_pairs - true_pairs),
        missed_links=sorted(true_pairs - said_pairs),
    )


# ------------------------------------------------------------- the output


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def print_report(report: Report, refused_status: int) -> None:
    f = report.figures
    c = f["counts"]
    print(
        f"events: {c['complaint_events']} complaints, {c['status_events']} status; groups "
        + ", ".join(f"{k} {n}" for k, n in c["groups"].items())
        + f"; {c['incidents']} incidents, {c['true_pairs']} true pairs"
    )
    print(f"CLI: {f['cli']['records_out']} records out, exit {f['cli']['exit_code']}")
    if f["cli"]["missing_records"]:
        print(
            f"  warning: no record for {len(f['cli']['missing_records'])} events: "
            + ", ".join(f["cli"]["missing_records"][:10])
        )
    if refused_status:
        print(
            f"  note: the CLI refused {refused_status} status lines, so no incident was "
            "resolved (a new problem on a resolved order looks like the open one)"
        )
    print()
    print(f"{'linking (pairwise)':<22}{'precision':>10}{'recall':>9}{'tp':>6}{'fp':>6}{'fn':>6}")
    for name in ("overall", *KINDS):
        s = f["linking"][name]
        print(
            f"  {name:<20}{pct(s['precision']):>10}{pct(s['recall']):>9}"
            f"{s['tp']:>6}{s['fp']:>6}{s['fn']:>6}"
        )
    print(
        f"  {'across groups':<20}{'':>19}{'':>6}{f['linking']['across_groups']['false_links']:>6}"
    )
    b = f["batch_signal"]
    print(
        f"{'batch signal':<22}{pct(b['precision']):>10}{pct(b['recall']):>9}"
        f"{b['tp']:>6}{b['fp']:>6}{b['fn']:>6}   ({c['batch_expected']} records expected)"
    )


def _flat(text: str) -> str:
    return text.replace("\n", " ⏎ ")


def print_misses(report: Report, by_id: Mapping[str, Event]) -> None:
    for title, pairs in (
        ("false links", report.false_links),
        ("missed links", report.missed_links),
    ):
        print(f"\n## {title}: {len(pairs)}")
        for a, b in pairs[:MISSES_SHOWN]:
            print()
            for event in (by_id[a], by_id[b]):
                print(
                    f"  {event['id']} {event['group']}/{event['incident']} {event['at']} "
                    f"{event['channel']} {event['customer']['id']}"
                )
                print(f"      {_flat(event['text'])}")
                print(f"      note: {event.get('note', '')}")
        if len(pairs) > MISSES_SHOWN:
            print(f"\n  ... and {len(pairs) - MISSES_SHOWN} more")


def markdown(report: Report) -> str:
    f = report.figures
    c = f["counts"]
    rows = []
    for name in ("overall", *KINDS):
        s = f["linking"][name]
        rows.append(
            f"| {name} | {pct(s['precision'])} | {pct(s['recall'])} "
            f"| {s['tp']} | {s['fp']} | {s['fn']} |"
        )
    b = f["batch_signal"]
    return "\n".join(
        [
            f"## Same-incident linking ({datetime.now(UTC):%d %b %Y})",
            "",
            "```",
            "cd /work/main && .venv/bin/python bench/linking_eval.py --markdown",
            "```",
            "",
            f"{c['complaint_events']} complaint events and {c['status_events']} resolutions, "
            f"{c['groups']['same']} same-incident groups, {c['groups']['near_miss']} near misses, "
            f"{c['groups']['batch']} batches; {c['true_pairs']} true pairs "
            "(`bench/linking/data/`).",
            "",
            "| pairs | precision | recall | tp | fp | fn |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            f"| across groups | | | | {f['linking']['across_groups']['false_links']} | |",
            "",
            "| batch signal (per record) | precision | recall | tp | fp | fn |",
            "|---|---:|---:|---:|---:|---:|",
            f"| `dedupe.batch` set | {pct(b['precision'])} | {pct(b['recall'])} "
            f"| {b['tp']} | {b['fp']} | {b['fn']} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DATA, help="labelled events (JSON Lines)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--misses", action="store_true", help="list false and missed links")
    parser.add_argument("--markdown", action="store_true", help="print a section for RESULTS.md")
    args = parser.parse_args(argv)

    events = load_events(args.data)
    by_id = {e["id"]: e for e in events}
    lines = [as_line(e, by_id) for e in events]
    run = run_cli(lines)
    refused_status = sum(is_status(events[n - 1]) for n in run.refused if 0 < n <= len(events))
    report = score(events, run)
    report.figures = {"data": str(args.data), **report.figures}
    report.figures["cli"]["refused_status_lines"] = refused_status

    print_report(report, refused_status)
    if args.misses:
        print_misses(report, by_id)
    if args.markdown:
        print()
        print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report.figures, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
