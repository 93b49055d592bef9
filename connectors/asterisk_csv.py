"""Asterisk ``cdr_csv``: the complaint hotline's ``Master.csv``, tailed by a poller.

Asterisk appends one line per call leg to ``Master.csv`` (no header; the
columns depend on ``[csv]`` in ``cdr.conf``, so they are a setting). The
cursor is the file's (device, inode, byte offset) (:mod:`connectors._tail`):
it survives log rotation (the renamed file is finished first, then the new
one is read from its start) and truncation (read again from 0), and a last
line without its newline yet is left for the next poll.

The call's key is ``uniqueid`` (plus ``sequence`` when Asterisk logs it, as
several CDRs of one call share a uniqueid after transfers); without a
``uniqueid`` column, a hash of the line. The complaint text is the
``text_column`` (default ``userfield``, where the agent's summary is put
with ``Set(CDR(userfield)=...)``). Dates are local time of
``timezone`` (Asterisk writes no zone).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import Field, field_validator, model_validator

from connectors._tail import FileCursor, read_appended
from connectors.base import ConnectorSettings
from connectors.errors import ChannelUnavailable, MalformedPayload, PayloadError
from connectors.polling import PollingConnector, PollingSettings, PollResult, Rejected
from normalizer._cdr import ASTERISK_COLUMNS, parse_asterisk_row
from normalizer.phone import call_payload, complaint_numbers, is_complaint_line
from schemas import RawEvent
from service.clock import Clock

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Asia/Shanghai"


class AsteriskCsvSettings(PollingSettings):
    """Checked at start-up: a misspelt time zone or a text column that is not in the
    columns would otherwise fail every poll, or lose every summary, silently."""

    path: Path = Field(
        Path("/var/log/asterisk/cdr-csv/Master.csv"), description="The cdr_csv file to tail."
    )
    columns: list[str] = Field(
        default_factory=lambda: list(ASTERISK_COLUMNS),
        description="Column order of the file (loguniqueid, loguserfield, newcdrcolumns).",
    )
    text_column: str = Field(
        "userfield", description="Column holding the agent's summary of the complaint."
    )
    complaint_numbers: list[str] = Field(
        default_factory=list,
        description="Dialled numbers or queues that are complaint lines; empty: every call.",
    )
    recording_url: str | None = Field(
        None,
        description="URL of a call's recording, with {uniqueid} and other columns in braces.",
    )
    timezone: str = Field(DEFAULT_TIMEZONE, description="Time zone of the file's dates.")
    start_at: Literal["beginning", "end"] = Field(
        "beginning",
        description="Where the very first poll starts: the whole file, or only calls logged "
        "from then on (for a Master.csv that holds years of history).",
    )
    max_bytes: int = Field(
        256 * 1024,
        ge=4096,
        description="At most this much of the file is read per poll (a backlog is read in "
        "such steps, with the webhooks served in between).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a time zone name such as Asia/Shanghai") from None
        return value

    @model_validator(mode="after")
    def _columns_fit(self) -> AsteriskCsvSettings:
        if len(set(self.columns)) != len(self.columns):
            raise ValueError("columns must be distinct")
        if self.text_column not in self.columns:
            raise ValueError("text_column must be one of columns")
        return self


def _local(value: str, zone: ZoneInfo) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
    except ValueError:
        raise MalformedPayload("a CDR date is not YYYY-MM-DD HH:MM:SS", "invalid_field") from None


def _seconds(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


def line_event(
    line: bytes,
    received_at: datetime,
    settings: AsteriskCsvSettings,
    numbers: frozenset[str] = frozenset(),
) -> RawEvent:
    """One ``Master.csv`` line as a call event (pure)."""
    row = parse_asterisk_row(line, settings.columns)
    zone = ZoneInfo(settings.timezone)
    uniqueid = row.get("uniqueid", "")
    call_id = uniqueid or "line:" + hashlib.sha256(line).hexdigest()[:32]
    if uniqueid and row.get("sequence"):
        call_id = f"{uniqueid}:{row['sequence']}"
    recording = None
    if settings.recording_url and uniqueid:
        try:
            recording = settings.recording_url.format_map(row)
        except (KeyError, ValueError, IndexError):
            recording = None
    payload = call_payload(
        call_id=call_id,
        caller=row.get("src") or row.get("clid") or None,
        callee=row.get("dst") or None,
        started_at=_local(row.get("start", ""), zone),
        answered=row.get("disposition", "").upper() == "ANSWERED",
        talk_seconds=_seconds(row.get("billsec", "")),
        text=row.get(settings.text_column, ""),
        recording_url=recording,
        thread_id=row.get("linkedid") or None,
        complaint_line=is_complaint_line(row.get("dst"), row.get("dcontext"), numbers),
    )
    return RawEvent(
        channel="phone",
        connector=AsteriskCsvConnector.name,
        source_key=call_id,
        received_at=received_at,
        payload=payload,
        body=line,
        media_type="text/csv",
        message_id=uniqueid or None,
    )


class AsteriskCsvConnector(PollingConnector):
    name = "asterisk_csv"
    channel = "phone"
    settings_model = AsteriskCsvSettings
    settings: AsteriskCsvSettings

    def __init__(
        self, settings: AsteriskCsvSettings, clock: Clock, http: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(settings, clock, http)
        self._numbers = complaint_numbers(settings.complaint_numbers)

    async def poll(self, cursor: str | None) -> PollResult:
        start = FileCursor.from_text(cursor) if cursor else None
        path = self.settings.path
        if start is None and self.settings.start_at == "end":
            try:
                status = await asyncio.to_thread(path.stat)
            except FileNotFoundError:
                pass  # no history to skip: read the file from its start once it appears
            except OSError as exc:
                raise ChannelUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None
            else:
                end = FileCursor(status.st_dev, status.st_ino, status.st_size)
                return PollResult(cursor=end.to_text())
        try:
            # reading and parsing run in a worker thread: a backlog of thousands of
            # lines must not hold the event loop, which serves the webhooks
            return await asyncio.to_thread(self._read, path, start, self.clock.now())
        except OSError as exc:  # not mounted yet, no permission: report it, try again later
            raise ChannelUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None

    def _read(self, path: Path, start: FileCursor | None, now: datetime) -> PollResult:
        read = read_appended(path, start, max_bytes=self.settings.max_bytes)
        events: list[RawEvent] = []
        rejected: list[Rejected] = []
        for line, _after in read.lines:
            if not line.strip():
                continue
            try:
                events.append(line_event(line, now, self.settings, self._numbers))
            except PayloadError as exc:
                rejected.append(Rejected(line, exc))
            except Exception as exc:  # a parser bug must not stop the file at this line
                log.exception("asterisk_csv could not read a line")
                error = MalformedPayload(
                    f"cannot read this line ({type(exc).__name__})", "connector_error"
                )
                rejected.append(Rejected(line, error))
        next_cursor = read.cursor.to_text() if read.cursor else None
        # a read that (nearly) filled its budget stopped early: there is more to read now
        consumed = sum(len(line) + 1 for line, _ in read.lines)
        more = consumed >= self.settings.max_bytes * 3 // 4
        return PollResult(events, next_cursor, rejected, more=more)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> Sequence[RawEvent]:
        """Golden-file entry: each line of ``body``."""
        csv_settings = (
            settings if isinstance(settings, AsteriskCsvSettings) else AsteriskCsvSettings()
        )
        numbers = complaint_numbers(csv_settings.complaint_numbers)
        return [
            line_event(line, received_at, csv_settings, numbers)
            for line in body.split(b"\n")
            if line
        ]
