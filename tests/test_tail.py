"""Tailing Master.csv-style files: real files in a temporary directory, real renames."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import _tail
from connectors._tail import FileCursor, TailRead, read_appended


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def texts(read: TailRead) -> list[bytes]:
    return [line for line, _ in read.lines]


def identity(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_dev, status.st_ino


# --- the cursor's text form ------------------------------------------------------------


def test_cursor_text_round_trips() -> None:
    cursor = FileCursor(device=2049, inode=1_234_567, offset=88)
    assert cursor.to_text() == "2049:1234567:88"
    assert FileCursor.from_text(cursor.to_text()) == cursor


@pytest.mark.parametrize(
    "text",
    ["", "1:2", "1:2:3:4", "a:b:c", "-1:2:3", " 1:2:3", "1:2:3\n", "１:2:3", "1:2:", "1::3"],
)
def test_cursor_from_text_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        FileCursor.from_text(text)


def test_cursor_refuses_negative_numbers() -> None:
    with pytest.raises(ValueError):
        FileCursor(1, 2, -1)


# --- appends ---------------------------------------------------------------------------


def test_appends_are_read_once_across_calls(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"one\ntwo\n")
    first = read_appended(log, None)
    assert texts(first) == [b"one", b"two"]
    append(log, b"three\n")
    second = read_appended(log, first.cursor)
    assert texts(second) == [b"three"]
    third = read_appended(log, second.cursor)
    assert third.lines == [] and third.cursor == second.cursor


def test_each_line_carries_the_cursor_just_after_it(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"one\ntwo\nthree\n")
    read = read_appended(log, None)
    device, inode = identity(log)
    assert [cursor for _, cursor in read.lines] == [
        FileCursor(device, inode, 4),
        FileCursor(device, inode, 8),
        FileCursor(device, inode, 14),
    ]
    assert read.cursor == read.lines[-1][1]
    # a poller that committed only the first line's cursor gets the rest again
    assert texts(read_appended(log, read.lines[0][1])) == [b"two", b"three"]


def test_a_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"done\nhalf")
    first = read_appended(log, None)
    assert texts(first) == [b"done"]
    assert first.cursor is not None and first.cursor.offset == 5
    assert read_appended(log, first.cursor).lines == []
    append(log, b" written\n")
    assert texts(read_appended(log, first.cursor)) == [b"half written"]


def test_crlf_loses_the_carriage_return_only(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"windows\r\nlone\rreturn\n\r\n")
    assert texts(read_appended(log, None)) == [b"windows", b"lone\rreturn", b""]


def test_a_crlf_split_across_writes_is_one_line_end(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"row\r")
    first = read_appended(log, None)
    assert first.lines == []
    append(log, b"\n")
    assert texts(read_appended(log, first.cursor)) == [b"row"]


def test_blank_lines_are_returned_so_offsets_stay_exact(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"a\n\nb\n")
    read = read_appended(log, None)
    assert texts(read) == [b"a", b"", b"b"]
    assert read.cursor is not None and read.cursor.offset == 5


def test_chinese_and_gbk_bytes_come_back_unchanged(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    utf8 = '"","13812345678","4008123123","from-pstn","""张三"" <13812345678>","漏水,要退货"'
    gbk = "投诉：热水器漏水".encode("gb18030")
    append(log, utf8.encode() + b"\n" + gbk + b"\n")
    assert texts(read_appended(log, None)) == [utf8.encode(), gbk]


# --- a file that is not there ----------------------------------------------------------


def test_a_missing_file_without_cursor_gives_nothing(tmp_path: Path) -> None:
    assert read_appended(tmp_path / "Master.csv", None) == TailRead([], None)


def test_a_missing_file_keeps_the_cursor(tmp_path: Path) -> None:
    cursor = FileCursor(1, 2, 300)
    assert read_appended(tmp_path / "Master.csv", cursor) == TailRead([], cursor)
    assert read_appended(tmp_path / "no-such-dir" / "Master.csv", cursor) == TailRead([], cursor)


def test_max_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        read_appended(tmp_path / "Master.csv", None, max_bytes=0)


# --- rotation --------------------------------------------------------------------------


def test_rotation_finishes_the_old_file_before_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"1\n2\n")
    first = read_appended(log, None)
    old = identity(log)
    append(log, b"3\n")  # written after our read, before the rename: must not be lost
    log.rename(tmp_path / "Master.csv.1")
    append(log, b"4\n5\n")
    second = read_appended(log, first.cursor)
    assert texts(second) == [b"3", b"4", b"5"]
    new = identity(log)
    assert second.lines[0][1] == FileCursor(*old, 6)
    assert second.lines[1][1] == FileCursor(*new, 2)
    assert second.cursor == FileCursor(*new, 4)
    assert read_appended(log, second.cursor).lines == []


def test_a_rotated_file_s_unterminated_last_line_is_complete(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"1\nlast words")
    first = read_appended(log, None)
    assert texts(first) == [b"1"]
    log.rename(tmp_path / "Master-2026-11-23.csv")
    append(log, b"2\n")
    assert texts(read_appended(log, first.cursor)) == [b"last words", b"2"]


def test_during_a_rotation_the_renamed_file_s_complete_lines_are_read(
    tmp_path: Path,
) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"1\n")
    first = read_appended(log, None)
    append(log, b"2\nhalf")
    log.rename(tmp_path / "Master.csv.1")
    # no Master.csv until the next record: "2" need not wait for it, "half" must
    waiting = read_appended(log, first.cursor)
    assert texts(waiting) == [b"2"]
    assert read_appended(log, waiting.cursor) == TailRead([], waiting.cursor)
    append(log, b"3\n")
    assert texts(read_appended(log, waiting.cursor)) == [b"half", b"3"]


def test_a_rotated_file_that_is_gone_restarts_the_new_file_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"1\n")
    first = read_appended(log, None)
    append(log, b"lost\n")
    (tmp_path / "archive").mkdir()
    log.rename(tmp_path / "archive" / "Master.csv.1")  # another directory: not found
    append(log, b"2\n")
    assert texts(read_appended(log, first.cursor)) == [b"2"]


def test_a_rotated_file_is_drained_over_several_calls(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"start\n")
    cursor = read_appended(log, None).cursor
    old = identity(log)
    append(log, b"".join(b"old-%02d\n" % n for n in range(10)))
    log.rename(tmp_path / "Master.csv.1")
    append(log, b"new-00\nnew-01\n")
    seen: list[bytes] = []
    cursors: list[FileCursor | None] = []
    for _ in range(20):
        read = read_appended(log, cursor, max_bytes=15)
        seen += texts(read)
        cursor = read.cursor
        cursors.append(cursor)
    assert seen == [b"old-%02d" % n for n in range(10)] + [b"new-00", b"new-01"]
    assert cursors[0] is not None and cursors[0].points_into(*old)


def test_a_rotated_file_that_fills_max_bytes_leaves_the_new_file_for_the_next_call(
    tmp_path: Path,
) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"start\n")
    first = read_appended(log, None)
    append(log, b"ab\ncd\n")
    log.rename(tmp_path / "Master.csv.1")
    append(log, b"new\n")
    second = read_appended(log, first.cursor, max_bytes=6)
    assert texts(second) == [b"ab", b"cd"]
    assert second.cursor == FileCursor(*identity(log), 0)
    assert texts(read_appended(log, second.cursor, max_bytes=6)) == [b"new"]


def test_a_rotated_file_with_a_symlink_of_the_same_inode_is_not_confused(
    tmp_path: Path,
) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"1\n")
    first = read_appended(log, None)
    append(log, b"2\n")
    log.rename(tmp_path / "Master.csv.1")
    os.symlink(tmp_path / "Master.csv.1", tmp_path / "a-link")
    append(log, b"3\n")
    assert texts(read_appended(log, first.cursor)) == [b"2", b"3"]


def test_a_rotated_file_truncated_below_the_cursor_is_skipped(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"1\n2\n")
    first = read_appended(log, None)
    rotated = tmp_path / "Master.csv.1"
    log.rename(rotated)
    rotated.write_bytes(b"")
    append(log, b"3\n")
    assert texts(read_appended(log, first.cursor)) == [b"3"]


def test_a_renamed_file_truncated_below_the_cursor_is_not_read(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"1\n2\n")
    first = read_appended(log, None)
    rotated = tmp_path / "Master.csv.1"
    log.rename(rotated)
    rotated.write_bytes(b"x\n")
    assert read_appended(log, first.cursor) == TailRead([], first.cursor)


def test_a_rotated_file_renamed_again_while_being_opened_is_retried_next_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory scan found it, then logrotate moved it on: no lines lost, none skipped."""
    log = tmp_path / "Master.csv"
    append(log, b"1\n")
    first = read_appended(log, None)
    append(log, b"2\n")
    log.rename(tmp_path / "Master.csv.1")
    append(log, b"3\n")

    def open_after_another_rename(name: str, mode: str) -> object:
        monkeypatch.undo()
        Path(name).rename(tmp_path / "Master.csv.2")
        return open(name, mode)

    monkeypatch.setattr(_tail, "open", open_after_another_rename, raising=False)
    assert read_appended(log, first.cursor) == TailRead([], first.cursor)
    assert texts(read_appended(log, first.cursor)) == [b"2", b"3"]


def test_a_rotated_file_replaced_while_being_opened_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another file took the rotated name between scan and open: its inode tells it apart."""
    log = tmp_path / "Master.csv"
    append(log, b"1\n")
    first = read_appended(log, None)
    append(log, b"2\n")
    log.rename(tmp_path / "Master.csv.1")
    append(log, b"3\n")

    def open_after_a_replacement(name: str, mode: str) -> object:
        monkeypatch.undo()
        Path(name).rename(tmp_path / "Master.csv.2")
        Path(name).write_bytes(b"somebody else's\n")
        return open(name, mode)

    monkeypatch.setattr(_tail, "open", open_after_a_replacement, raising=False)
    assert read_appended(log, first.cursor) == TailRead([], first.cursor)
    assert texts(read_appended(log, first.cursor)) == [b"2", b"3"]


def test_a_renamed_file_moved_while_being_opened_keeps_the_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"1\n")
    first = read_appended(log, None)
    append(log, b"2\n")
    log.rename(tmp_path / "Master.csv.1")

    def open_after_another_rename(name: str, mode: str) -> object:
        monkeypatch.undo()
        Path(name).rename(tmp_path / "Master.csv.2")
        return open(name, mode)

    monkeypatch.setattr(_tail, "open", open_after_another_rename, raising=False)
    assert read_appended(log, first.cursor) == TailRead([], first.cursor)
    assert texts(read_appended(log, first.cursor)) == [b"2"]


# --- truncation ------------------------------------------------------------------------


def test_truncation_restarts_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"aaaa\nbbbb\n")
    first = read_appended(log, None)
    with log.open("r+b") as handle:
        handle.truncate(0)
    append(log, b"c\n")
    second = read_appended(log, first.cursor)
    assert texts(second) == [b"c"]
    assert second.cursor is not None and second.cursor.offset == 2


# --- how much one call reads -----------------------------------------------------------


def test_max_bytes_stops_at_a_line_end(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"123456789\n" * 5)
    read = read_appended(log, None, max_bytes=25)
    assert texts(read) == [b"123456789"] * 2
    assert read.cursor is not None and read.cursor.offset == 20
    rest = read_appended(log, read.cursor, max_bytes=1000)
    assert texts(rest) == [b"123456789"] * 3


def test_a_line_longer_than_max_bytes_is_read_whole(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    long = b"x" * 200_000
    append(log, long + b"\nshort\n")
    first = read_appended(log, None, max_bytes=10)
    assert texts(first) == [long]
    assert texts(read_appended(log, first.cursor, max_bytes=10)) == [b"short"]


def test_an_unfinished_long_line_is_not_consumed(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    append(log, b"y" * 200_000)
    read = read_appended(log, None, max_bytes=10)
    assert read.lines == [] and read.cursor is not None and read.cursor.offset == 0
    append(log, b"\n")
    assert texts(read_appended(log, read.cursor, max_bytes=10)) == [b"y" * 200_000]


# --- any interleaving ------------------------------------------------------------------

_TOKENS = st.sampled_from([b"a", b"7", b",", "中".encode(), b'"', b"\n", b"\r\n"])
_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(_TOKENS, max_size=12).map(b"".join)),
        st.tuples(st.just("read"), st.integers(1, 40), st.booleans()),
        st.tuples(st.just("rotate"), st.booleans()),
    ),
    max_size=40,
)


def _expected(generations: list[bytes], current: bytes) -> list[bytes]:
    lines: list[bytes] = []
    for content in generations:
        parts = content.split(b"\n")
        if parts[-1] == b"":
            parts.pop()
        lines += parts  # a rotated file's last line counts even without newline
    lines += current.split(b"\n")[:-1]
    return [line.removesuffix(b"\r") for line in lines]


@settings(max_examples=150, deadline=None)
@given(_OPERATIONS)
def test_any_interleaving_yields_every_complete_line_once_in_order(
    operations: list[tuple[object, ...]],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "Master.csv"
        log.write_bytes(b"")
        cursor = read_appended(log, None).cursor
        rotated: list[bytes] = []
        current = b""
        seen: list[bytes] = []
        for operation in operations:
            if operation[0] == "append":
                data = operation[1]
                assert isinstance(data, bytes)
                append(log, data)
                current += data
            elif operation[0] == "read":
                max_bytes, through_text = operation[1], operation[2]
                assert isinstance(max_bytes, int)
                read = read_appended(log, cursor, max_bytes=max_bytes)
                seen += texts(read)
                cursor = read.cursor
                if through_text and cursor is not None:
                    cursor = FileCursor.from_text(cursor.to_text())
            elif log.exists() and cursor is not None and cursor.points_into(*identity(log)):
                # one rotation at a time: the reader has reached the current file
                log.rename(Path(directory) / f"Master.csv.{len(rotated) + 1}")
                rotated.append(current)
                current = b""
                if operation[1]:
                    log.write_bytes(b"")
        for _ in range(10_000):
            read = read_appended(log, cursor, max_bytes=64)
            seen += texts(read)
            if not read.lines and read.cursor == cursor:
                break
            cursor = read.cursor
        if not log.exists() and rotated:
            # renamed with no new file yet: the renamed file may still be written to
            rotated, current = rotated[:-1], rotated[-1]
        assert seen == _expected(rotated, current)
