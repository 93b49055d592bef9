"""Tailing an append-only log file by byte offset, for pollers (Asterisk ``Master.csv``...).

The protocol: a poller keeps a :class:`FileCursor` as its checkpoint (stored
with :meth:`FileCursor.to_text`) and on each poll calls :func:`read_appended`
with it. It gets back every *complete* line written since, each paired with
the cursor just past that line, and the cursor where the next read starts.
The poller publishes a batch and then commits the cursor of the batch's last
line; a crash in between reads those lines again, so delivery is
at-least-once and the channel dedupes on its own key (Asterisk ``uniqueid``).

What a line is: bytes up to ``\\n``, returned without it (and without a ``\\r``
before it). Blank lines are returned too, so offsets stay exact; the caller
skips them. A last line with no newline yet is still being written and is left
for a later read, except in a rotated file (below).

What can happen to the file between two reads, and what this module does:

* **appended** — read from the cursor's offset.
* **rotated** — the path now names another file (another ``st_dev``/``st_ino``),
  e.g. ``Master.csv`` was renamed ``Master.csv.1`` and a new ``Master.csv``
  created. The old file is found again by scanning the path's directory for a
  regular file with the cursor's device and inode; its remaining lines are
  read first, and then the new file from offset 0, in the same call if
  ``max_bytes`` allows or in the following ones. A final line without newline
  in the old file counts as complete: the writer has moved on. If the old file
  is gone (deleted, or moved to another directory such as logrotate's
  ``olddir``), what it still held is lost and the new file is read from 0.
* **truncated** — same file, shorter than the cursor's offset: read from 0.
* **missing** — the writer has not created the file yet, or a rotation is in
  progress (renamed, the new file not created until the next record). If the
  cursor's file is found in the directory under another name, its newly
  completed lines are read from it; otherwise no lines and the cursor is kept.

Limits, all of them documented rather than guessed around:

* one rotation between reads is handled; if the file rotates twice before the
  old one is drained, the middle file is skipped (it cannot be ordered from
  names in general). Poll more often than the file rotates.
* ``copytruncate`` rotation loses whatever was appended between the copy and
  the truncation, and a file deleted and recreated with the same inode and at
  least the old size looks like an append: inode numbers are all a cursor has.
* a call reads at most about ``max_bytes``, always stopping at a line end;
  a single line longer than that is read whole, so memory is bounded by the
  larger of ``max_bytes`` and the longest line (Asterisk writes records of at
  most 1 KiB). An unfinished line is scanned in chunks, never held.

The functions do blocking file I/O: an async poller runs them in a thread.
Errors other than a missing file (permissions, a directory at the path) are
raised as the ``OSError`` they are; the runner decides whether to retry.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
_SCAN_CHUNK = 64 * 1024
_CURSOR_TEXT = re.compile(r"([0-9]{1,20}):([0-9]{1,20}):([0-9]{1,20})")


@dataclass(frozen=True)
class FileCursor:
    """A position in one particular file: its device and inode, and a byte offset."""

    device: int
    inode: int
    offset: int

    def __post_init__(self) -> None:
        if min(self.device, self.inode, self.offset) < 0:
            raise ValueError("a file cursor holds non-negative integers")

    def to_text(self) -> str:
        """The stable text form ``device:inode:offset``, for checkpoint stores."""
        return f"{self.device}:{self.inode}:{self.offset}"

    @classmethod
    def from_text(cls, text: str) -> FileCursor:
        """Read back :meth:`to_text`; ``ValueError`` for anything else."""
        match = _CURSOR_TEXT.fullmatch(text)
        if match is None:
            raise ValueError("a file cursor reads 'device:inode:offset' in decimal digits")
        device, inode, offset = (int(part) for part in match.groups())
        return cls(device, inode, offset)

    def points_into(self, device: int, inode: int) -> bool:
        """Whether this cursor is a position in the file with this device and inode."""
        return self.device == device and self.inode == inode


@dataclass(frozen=True)
class TailRead:
    """What one :func:`read_appended` call found.

    ``lines`` pairs each complete line with the cursor just after it;
    ``cursor`` is where the next read starts (None only when there was no
    cursor and the file does not exist yet).
    """

    lines: list[tuple[bytes, FileCursor]]
    cursor: FileCursor | None


class _MovedWhileOpening(Exception):
    """The rotated file changed name between the directory scan and the open."""


def read_appended(
    path: Path, cursor: FileCursor | None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> TailRead:
    """The complete lines appended to ``path`` since ``cursor`` (from offset 0 when None)."""
    if max_bytes < 1:
        raise ValueError("max_bytes must be at least 1")
    try:
        current = path.open("rb")
    except FileNotFoundError:
        return _read_renamed(path, cursor, max_bytes)
    with current:
        status = os.fstat(current.fileno())
        device, inode = status.st_dev, status.st_ino
        lines: list[tuple[bytes, FileCursor]] = []
        if cursor is None or cursor.points_into(device, inode):
            start = 0 if cursor is None or status.st_size < cursor.offset else cursor.offset
            end = _read_lines(current, device, inode, start, max_bytes, lines)
            return TailRead(lines, FileCursor(device, inode, end))

        try:
            unfinished, used = _drain_rotated(path.parent, cursor, max_bytes, lines)
        except _MovedWhileOpening:
            return TailRead([], cursor)
        if unfinished is not None:
            return TailRead(lines, unfinished)
        fresh = FileCursor(device, inode, 0)
        if used >= max_bytes:
            return TailRead(lines, fresh)
        end = _read_lines(
            current, device, inode, 0, max_bytes - used, lines, long_line_ok=not lines
        )
        return TailRead(lines, FileCursor(device, inode, end))


def _read_renamed(path: Path, cursor: FileCursor | None, max_bytes: int) -> TailRead:
    """The path is missing: read on in the cursor's file if it was only renamed.

    Between a rename and the writer's next record there is no file at the path;
    the lines appended before the rename need not wait for that record. The
    writer may not have moved on yet, so an unterminated last line still waits.
    """
    if cursor is None:
        return TailRead([], None)
    try:
        renamed = _open_by_identity(path.parent, cursor.device, cursor.inode)
    except _MovedWhileOpening:
        return TailRead([], cursor)
    if renamed is None:
        return TailRead([], cursor)
    with renamed:
        if os.fstat(renamed.fileno()).st_size < cursor.offset:
            return TailRead([], cursor)
        lines: list[tuple[bytes, FileCursor]] = []
        end = _read_lines(renamed, cursor.device, cursor.inode, cursor.offset, max_bytes, lines)
    return TailRead(lines, FileCursor(cursor.device, cursor.inode, end))


def _drain_rotated(
    directory: Path, cursor: FileCursor, budget: int, lines: list[tuple[bytes, FileCursor]]
) -> tuple[FileCursor | None, int]:
    """Read the rest of the rotated file; (its cursor if not finished, bytes read)."""
    old = _open_by_identity(directory, cursor.device, cursor.inode)
    if old is None:
        return None, 0
    with old:
        size = os.fstat(old.fileno()).st_size
        if size < cursor.offset:
            # truncated after it was rotated: nothing of it is ours to read any more
            return None, 0
        end = _read_lines(
            old, cursor.device, cursor.inode, cursor.offset, budget, lines, rotated=True
        )
    used = end - cursor.offset
    if end >= size:
        return None, used
    return FileCursor(cursor.device, cursor.inode, end), used


def _open_by_identity(directory: Path, device: int, inode: int) -> BinaryIO | None:
    """Open the regular file in ``directory`` with this device and inode, if there is one."""
    found: str | None = None
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.inode() != inode:
                    continue
                try:
                    status = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if status.st_dev == device and stat.S_ISREG(status.st_mode):
                    found = entry.path
                    break
    except FileNotFoundError:
        return None
    if found is None:
        return None
    try:
        handle = open(found, "rb")
    except FileNotFoundError:
        raise _MovedWhileOpening from None
    opened = os.fstat(handle.fileno())
    if opened.st_dev != device or opened.st_ino != inode:
        handle.close()
        raise _MovedWhileOpening
    return handle


def _read_lines(
    handle: BinaryIO,
    device: int,
    inode: int,
    start: int,
    budget: int,
    lines: list[tuple[bytes, FileCursor]],
    *,
    rotated: bool = False,
    long_line_ok: bool = True,
) -> int:
    """Append the complete lines from ``start`` within about ``budget`` bytes; return the end.

    ``rotated`` makes an unterminated last line complete. ``long_line_ok``
    lets a first line longer than the budget be read whole, so a call always
    makes progress; it is off when earlier lines of this call already did.
    """
    handle.seek(start)
    data = handle.read(budget)
    at_eof = len(data) < budget
    end = data.rfind(b"\n") + 1
    if end == 0 and not at_eof:
        if not long_line_ok:
            return start
        newline = _find_newline(handle, start + len(data))
        if newline is None and not rotated:
            return start
        handle.seek(start)
        data = handle.read() if newline is None else handle.read(newline + 1 - start)
        end = len(data)
    elif rotated and at_eof:
        end = len(data)
    if end == 0:
        return start

    block = data[:end]
    parts = block.split(b"\n")
    if block.endswith(b"\n"):
        parts.pop()
    stop = start + end
    offset = start
    for part in parts:
        offset = min(offset + len(part) + 1, stop)
        lines.append(
            (part[:-1] if part.endswith(b"\r") else part, FileCursor(device, inode, offset))
        )
    return stop


def _find_newline(handle: BinaryIO, position: int) -> int | None:
    """The offset of the next ``\\n`` at or after ``position``, scanning in chunks; None at EOF."""
    handle.seek(position)
    while chunk := handle.read(_SCAN_CHUNK):
        found = chunk.find(b"\n")
        if found != -1:
            return position + found
        position += len(chunk)
    return None
