"""``complaint-gateway triage``: the triage stage offline, over complaint records as JSON Lines.

Rule authors try a rules file on last month's complaints before deploying
it; the evaluation in ``bench/triage_eval.py`` runs through it too. Each
input line is a complaint record; ``category``, ``priority``,
``expectations``, ``dedupe``, ``received_by``, ``channel_detail`` and
``record_id`` may be left out (``record_id`` is derived from
``source.connector`` and ``source.message_id``, as the gateway derives it).
Records are labelled and linked exactly as the live pipeline does it
(:class:`service.triage_stage.TriageStage`, then
:class:`service.linking_stage.LinkingStage`), in input order, with the
identity map and link index carried from line to line: in a fresh temporary
state file, or in ``--state FILE``, which a later run goes on from. A line
holding a status update (``record_id`` and ``node``, no ``description``) is
applied as the gateway applies it (``resolved`` closes the incident, so a
later report of the same order opens a new one) and not written out. A record
whose ``record_id`` was already seen is a redelivery: skipped, as the gateway
skips it. A line that is neither is reported with its number on stderr and
left out; the exit status is then 1.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from dedupe.fingerprint import fingerprint
from dedupe.identity_sqlite import SQLiteIdentityMap
from dedupe.index_memory import MemoryLinkIndex
from dedupe.linking import Linker, LinkSettings
from schemas import ComplaintRecord, record_id_for
from schemas.status import StatusUpdate
from service.linking_stage import LinkingStage
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


def _problems(exc: ValueError | ValidationError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
    return str(exc)


def _parse(text: str) -> ComplaintRecord | StatusUpdate:
    line = json.loads(text)
    if not isinstance(line, dict):
        raise ValueError("not a JSON object")
    if "node" in line and "description" not in line:
        return StatusUpdate.model_validate(line)
    return ComplaintRecord.model_validate(complete(line))


def triage_lines(
    stage: TriageStage, lines: Iterable[str], report: Callable[[str], None]
) -> Iterator[ComplaintRecord]:
    """The labelled records of ``lines`` (triage only); each bad line is reported and skipped."""
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            parsed = _parse(text)
        except (ValueError, ValidationError) as exc:
            report(f"line {number}: {_problems(exc)}")
            continue
        if isinstance(parsed, ComplaintRecord):
            yield stage.apply(parsed)


class OfflineState:
    """The identity map and link index of one ``triage`` run, in a file that may outlive it."""

    def __init__(self, path: Path | None, settings: LinkSettings) -> None:
        self._temporary = tempfile.TemporaryDirectory() if path is None else None
        self.path = path or Path(self._temporary.name) / "state.sqlite3"  # type: ignore[union-attr]
        self.identity = SQLiteIdentityMap(self.path)
        self.index = MemoryLinkIndex(
            max(settings.window, settings.open_window).total_seconds(),
            on_close=self.identity.remember_resolved,
            closed=self.identity.resolved_since_epoch(),
        )
        for entry in self.identity.load_entries(0):
            self.index.put(entry)
        self.seen = {entry.record_id for entry in self.index.entries()}
        self.linker = Linker(self.identity, self.index, settings)

    def close(self) -> None:
        self.identity.save_entries(self.index.entries())
        self.identity.close()
        if self._temporary is not None:
            self._temporary.cleanup()


async def process_lines(
    stage: TriageStage | None,
    state: OfflineState,
    lines: Iterable[str],
    report: Callable[[str], None],
) -> AsyncIterator[ComplaintRecord]:
    """Triage and link ``lines`` in order, as the gateway would; bad lines are reported."""
    linking = LinkingStage(state.linker)
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            parsed = _parse(text)
        except (ValueError, ValidationError) as exc:
            report(f"line {number}: {_problems(exc)}")
            continue
        if isinstance(parsed, StatusUpdate):
            if parsed.node == "resolved":
                await state.index.close(parsed.record_id, parsed.occurred_at)
            continue
        if parsed.record_id in state.seen:
            print(f"line {number}: {parsed.record_id} already taken in (skipped)", file=sys.stderr)
            continue
        state.seen.add(parsed.record_id)
        record = stage.apply(parsed) if stage is not None else parsed
        yield await linking.apply(record)


def explain(records: list[ComplaintRecord], console: Console) -> None:
    table = Table(title="Triage", show_lines=True)
    for column in (
        "record",
        "words (masked)",
        "category",
        "priority",
        "expectations",
        "why",
        "linked to",
    ):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            record.record_id[:13],
            mask_text(record.description)[:80],
            record.category.code,
            record.priority,
            ", ".join(record.expectations) or "-",
            "\n".join(record.triage.reasons if record.triage else ()),
            _linked(record),
        )
    console.print(table)


def _linked(record: ComplaintRecord) -> str:
    parts = []
    if record.dedupe.duplicate_of:
        parts.append(f"{record.dedupe.duplicate_of[:13]}\n{record.dedupe.reason}")
    if record.dedupe.batch:
        parts.append(f"batch {record.dedupe.batch}")
    return "\n".join(parts) or "-"


async def run(
    stage: TriageStage | None,
    state: OfflineState,
    source: IO[str],
    sink: IO[str],
    *,
    show: bool,
) -> int:
    failures: list[str] = []

    def report(problem: str) -> None:
        failures.append(problem)
        print(problem, file=sys.stderr)

    records: list[ComplaintRecord] = []
    async for record in process_lines(stage, state, source, report):
        sink.write(record.model_dump_json() + "\n")
        if show:
            records.append(record)
    sink.flush()
    if show:
        explain(records, Console(file=sys.stderr if sink is sys.stdout else sys.stdout))
    return 1 if failures else 0
