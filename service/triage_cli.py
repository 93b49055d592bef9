"""``complaint-gateway triage``: the triage stage offline, over complaint records as JSON Lines.

Rule authors try a rules file on last month's complaints before deploying
it; the evaluation in ``bench/triage_eval.py`` runs through it too. Each
input line is a complaint record; ``category``, ``priority``,
``expectations``, ``dedupe``, ``received_by``, ``channel_detail`` and
``record_id`` may be left out (``record_id`` is derived from
``source.connector`` and ``source.message_id``, as the gateway derives it).
Records are labelled exactly as the live pipeline labels them
(:class:`service.triage_stage.TriageStage`) and written in input order. A
line that is not a record is reported with its number on stderr and left
out; the exit status is then 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from dedupe.fingerprint import fingerprint
from schemas import ComplaintRecord, record_id_for
from service.logs import mask_text
from service.triage_stage import TriageStage


def complete(line: dict[str, Any]) -> dict[str, Any]:
    """Fill what an input line may leave out, from what it has."""
    record = dict(line)
    source = record.setdefault("source", {})
    connector = source.get("connector") or record.get("channel") or "unknown"
    source.setdefault("connector", connector)
    if "record_id" not in record and source.get("message_id"):
        record["record_id"] = record_id_for(connector, str(source["message_id"]))
    record.setdefault("channel_detail", record.get("channel", connector))
    record.setdefault("received_by", f"gateway/{connector}")
    customer = record.setdefault("customer", {"id": f"{connector}:unknown"})
    order_id = (record.get("product") or {}).get("order_id")
    record.setdefault(
        "dedupe",
        {
            "fingerprint": fingerprint(
                str(customer.get("id", "")), order_id, str(record.get("description", ""))
            )
        },
    )
    return record


def triage_lines(
    stage: TriageStage, lines: Iterable[str], report: Callable[[str], None]
) -> Iterator[ComplaintRecord]:
    """The labelled records of ``lines``; each bad line is reported and skipped."""
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
            if not isinstance(line, dict):
                raise ValueError("not a JSON object")
            record = ComplaintRecord.model_validate(complete(line))
        except (ValueError, ValidationError) as exc:
            problems = (
                [
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                    for e in exc.errors(include_input=False, include_url=False)
                ]
                if isinstance(exc, ValidationError)
                else [str(exc)]
            )
            report(f"line {number}: {'; '.join(problems)}")
            continue
        yield stage.apply(record)


def explain(records: list[ComplaintRecord], console: Console) -> None:
    table = Table(title="Triage", show_lines=True)
    for column in ("record", "words (masked)", "category", "priority", "expectations", "why"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            record.record_id[:13],
            mask_text(record.description)[:80],
            record.category.code,
            record.priority,
            ", ".join(record.expectations) or "-",
            "\n".join(record.triage.reasons if record.triage else ()),
        )
    console.print(table)


def run(stage: TriageStage, source: IO[str], sink: IO[str], *, show: bool) -> int:
    failures: list[str] = []

    def report(problem: str) -> None:
        failures.append(problem)
        print(problem, file=sys.stderr)

    records: list[ComplaintRecord] = []
    for record in triage_lines(stage, source, report):
        sink.write(record.model_dump_json() + "\n")
        if show:
            records.append(record)
    sink.flush()
    if show:
        explain(records, Console(file=sys.stderr if sink is sys.stdout else sys.stdout))
    return 1 if failures else 0
