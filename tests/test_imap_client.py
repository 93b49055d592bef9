"""The blocking IMAP client (``connectors/_imap.py``) against a real, private Dovecot.

Mail is put in with :func:`append_message` and changed "by people" through a
second, plain ``imaplib`` session (:func:`person`), as a support agent's mail
client would: reading, answering, moving and deleting while the gateway polls.
"""

from __future__ import annotations

import imaplib
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from connectors._imap import (
    FetchedMail,
    ImapAccount,
    MailboxNotFound,
    _search_new,
    _uid_fetch,
    append_message,
    create_mailbox,
    fetch_new,
)
from connectors._imap_wire import UnreadableResponse, encode_mailbox_name, fetch_responses
from connectors.errors import ChannelAuthError, ChannelUnavailable
from tests.brokers import free_port
from tests.imap_server import (
    INTL_PASSWORD,
    INTL_USERNAME,
    DovecotServer,
    dovecot_server,
    dovecot_tls_files,
)

pytestmark = pytest.mark.imap

__all__ = ["dovecot_server", "dovecot_tls_files"]  # fixtures, imported for pytest


def complaint(
    n: int, body: str = "热水器漏水，已经三天没人处理！", charset: str = "utf-8"
) -> bytes:
    """A complaint mail, 8-bit, CRLF line ends, as an MTA would deliver it."""
    head = (
        f"From: =?UTF-8?B?5byg5LiJ?= <zhang.san{n}@example.cn>\r\n"
        f"To: complaints@example.com\r\n"
        f"Subject: =?UTF-8?B?5oqV6K+J?= #{n}\r\n"
        f"Message-ID: <complaint-{n}@example.cn>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset={charset}\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode("ascii") + f"{body}\r\n第{n}封\r\n".encode(charset)


@contextmanager
def person(server: DovecotServer) -> Iterator[imaplib.IMAP4]:
    """A second session, as a person's mail client (plain imaplib, no gateway code)."""
    conn = imaplib.IMAP4(server.host, server.port, timeout=5)
    conn.login(f'"{server.username}"', server.password)
    try:
        yield conn
    finally:
        conn.logout()


def flags_of(server: DovecotServer, mailbox: str, uid: int) -> bytes:
    with person(server) as conn:
        conn.select(f'"{encode_mailbox_name(mailbox)}"', readonly=True)
        typ, data = conn.uid("FETCH", str(uid), "(FLAGS)")
        assert typ == "OK" and isinstance(data[0], bytes), data
        return data[0]


def login_lines(server: DovecotServer, count: int) -> list[str]:
    """Dovecot's "Login:" log lines, once ``count`` are there (its log process writes late)."""
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in server.log_text().splitlines() if "Login: user=<" in line]
        if len(lines) >= count or time.monotonic() > deadline:
            assert len(lines) == count, lines
            return lines
        time.sleep(0.02)


def uids(messages: tuple[FetchedMail, ...]) -> list[int]:
    return [m.uid for m in messages]


# -- reading ------------------------------------------------------------------------------


def test_fetch_returns_appended_mail_in_uid_order_with_exact_bytes(
    dovecot_server: DovecotServer,
) -> None:
    account = dovecot_server.account()
    raws = [complaint(1), complaint(2, "发票开错了", "gb18030"), complaint(3, "Ünïcödé ✓")]
    appended = [append_message(account, "INBOX", raw) for raw in raws]

    batch = fetch_new(account, "INBOX", None, 0)

    assert appended == sorted(appended)
    assert uids(batch.messages) == appended
    assert [m.raw for m in batch.messages] == raws
    assert batch.mailbox == "INBOX" and batch.uidvalidity > 0
    assert not batch.uidvalidity_changed and not batch.more


def test_the_cursor_resumes_after_last_uid(dovecot_server: DovecotServer) -> None:
    account = dovecot_server.account()
    empty = fetch_new(account, "INBOX", None, 0)
    assert empty.messages == () and not empty.more

    first = [append_message(account, "INBOX", complaint(n)) for n in (1, 2)]
    batch = fetch_new(account, "INBOX", empty.uidvalidity, 0)
    assert uids(batch.messages) == first

    # "n:*" always matches the highest UID, even below n: nothing new must mean nothing.
    again = fetch_new(account, "INBOX", batch.uidvalidity, first[-1])
    assert again.messages == () and not again.more

    later = [append_message(account, "INBOX", complaint(n)) for n in (3, 4)]
    resumed = fetch_new(account, "INBOX", batch.uidvalidity, first[-1])
    assert uids(resumed.messages) == later
    assert [m.raw for m in resumed.messages] == [complaint(3), complaint(4)]


def test_fetching_never_marks_mail_as_read(dovecot_server: DovecotServer) -> None:
    account = dovecot_server.account()
    uid = append_message(account, "INBOX", complaint(1))
    already_read = append_message(account, "INBOX", complaint(2), flags="\\Seen")

    assert len(fetch_new(account, "INBOX", None, 0).messages) == 2

    assert b"\\Seen" not in flags_of(dovecot_server, "INBOX", uid)
    assert b"\\Seen" in flags_of(dovecot_server, "INBOX", already_read)


def test_people_reading_answering_and_moving_mail_cause_no_repeats_or_misses(
    dovecot_server: DovecotServer,
) -> None:
    account = dovecot_server.account()
    create_mailbox(account, "Archive")
    old = [append_message(account, "INBOX", complaint(n)) for n in range(1, 5)]
    batch = fetch_new(account, "INBOX", None, 0)
    assert uids(batch.messages) == old

    with person(dovecot_server) as conn:
        conn.select('"INBOX"')
        conn.uid("STORE", str(old[1]), "+FLAGS", "(\\Seen)")
        conn.uid("STORE", str(old[2]), "+FLAGS", "(\\Answered \\Seen)")
        conn.uid("MOVE", f"{old[0]},{old[3]}", '"Archive"')
    new = [append_message(account, "INBOX", complaint(n)) for n in (5, 6)]
    with person(dovecot_server) as conn:  # moved back in: a new UID, so new to the poller
        conn.select('"Archive"')
        conn.uid("MOVE", "1", '"INBOX"')

    after = fetch_new(account, "INBOX", batch.uidvalidity, old[-1])

    assert uids(after.messages)[:2] == new
    assert [m.raw for m in after.messages] == [complaint(5), complaint(6), complaint(1)]
    assert uids(after.messages) == sorted(uids(after.messages))
    assert min(uids(after.messages)) > old[-1] and not after.uidvalidity_changed


def test_limit_cuts_the_batch_and_more_says_to_call_again(dovecot_server: DovecotServer) -> None:
    account = dovecot_server.account()
    appended = [append_message(account, "INBOX", complaint(n)) for n in range(1, 6)]

    seen: list[int] = []
    batches = []
    last_uid, uidvalidity = 0, None
    while True:
        batch = fetch_new(account, "INBOX", uidvalidity, last_uid, limit=2)
        batches.append(batch)
        seen += uids(batch.messages)
        if not batch.more:
            break
        last_uid, uidvalidity = batch.messages[-1].uid, batch.uidvalidity

    assert seen == appended
    assert [len(b.messages) for b in batches] == [2, 2, 1]
    assert [b.more for b in batches] == [True, True, False]


def test_max_bytes_cuts_the_batch_but_always_returns_one(dovecot_server: DovecotServer) -> None:
    account = dovecot_server.account()
    big = [complaint(n, "投诉内容" * 1000) for n in (1, 2, 3)]  # 12 kB each
    appended = [append_message(account, "INBOX", raw) for raw in big]

    two = fetch_new(account, "INBOX", None, 0, max_bytes=2 * len(big[0]) + 100)
    one = fetch_new(account, "INBOX", None, 0, max_bytes=1)

    assert uids(two.messages) == appended[:2] and two.more
    assert uids(one.messages) == appended[:1] and one.more


def test_a_uidvalidity_change_is_reported_and_everything_is_read_again(
    dovecot_server: DovecotServer,
) -> None:
    account = dovecot_server.account()
    create_mailbox(account, "Complaints")
    for n in (1, 2, 3):
        append_message(account, "Complaints", complaint(n))
    before = fetch_new(account, "Complaints", None, 0)
    assert len(before.messages) == 3

    with person(dovecot_server) as conn:  # an admin restores the folder from a backup
        assert conn.delete('"Complaints"')[0] == "OK"
    create_mailbox(account, "Complaints")
    restored = [append_message(account, "Complaints", complaint(n)) for n in (1, 2, 3, 4)]

    after = fetch_new(account, "Complaints", before.uidvalidity, before.messages[-1].uid)

    assert after.uidvalidity_changed and after.uidvalidity != before.uidvalidity
    assert uids(after.messages) == restored
    assert [m.raw for m in after.messages] == [complaint(n) for n in (1, 2, 3, 4)]
    steady = fetch_new(account, "Complaints", after.uidvalidity, restored[-1])
    assert not steady.uidvalidity_changed and steady.messages == ()


def test_mailboxes_are_read_separately_including_non_ascii_names(
    dovecot_server: DovecotServer,
) -> None:
    account = dovecot_server.account()
    names = ["INBOX", "投诉", 'Kunden "Beschwerden" & Co']
    for name in names[1:]:
        create_mailbox(account, name)
        create_mailbox(account, name)  # already there: left as it is
    for n, name in enumerate(names):
        append_message(account, name, complaint(n))

    for n, name in enumerate(names):
        batch = fetch_new(account, name, None, 0)
        assert batch.mailbox == name
        assert [m.raw for m in batch.messages] == [complaint(n)]

    with person(dovecot_server) as conn:
        _, listed = conn.list()
    assert any(line.endswith(b"&YpWLyQ-") for line in listed if isinstance(line, bytes))


def test_mailbox_names_are_encoded_in_modified_utf7() -> None:
    # RFC 3501 §5.1.3's example, and "&" which must be escaped.
    assert encode_mailbox_name("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert encode_mailbox_name("R&D") == "R&-D"
    assert encode_mailbox_name("投诉") == "&YpWLyQ-"


# -- security -----------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_read_mail(dovecot_server: DovecotServer, security: str) -> None:
    account = dovecot_server.account(security)  # type: ignore[arg-type]
    uid = append_message(account, "INBOX", complaint(1))

    batch = fetch_new(account, "INBOX", None, 0)

    assert uids(batch.messages) == [uid] and batch.messages[0].raw == complaint(1)
    logins = login_lines(dovecot_server, 2)
    assert all(", TLS," in line for line in logins), logins


def test_plain_logs_in_without_tls(dovecot_server: DovecotServer) -> None:
    append_message(dovecot_server.account("plain"), "INBOX", complaint(1))

    (login,) = login_lines(dovecot_server, 1)
    assert ", TLS," not in login, login


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_an_untrusted_certificate_is_refused(dovecot_server: DovecotServer, security: str) -> None:
    account = dovecot_server.account(security, ca_file=None)  # type: ignore[arg-type]

    with pytest.raises(ChannelUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        fetch_new(account, "INBOX", None, 0)


def test_non_ascii_credentials_log_in_with_authenticate_plain(
    dovecot_server: DovecotServer,
) -> None:
    account = dovecot_server.account(username=INTL_USERNAME, password=INTL_PASSWORD)
    uid = append_message(account, "INBOX", complaint(1))
    assert uids(fetch_new(account, "INBOX", None, 0).messages) == [uid]

    wrong = dovecot_server.account(username=INTL_USERNAME, password="错误的密码")
    with pytest.raises(ChannelAuthError) as refused:
        fetch_new(wrong, "INBOX", None, 0)
    assert "错误的密码" not in str(refused.value) and INTL_USERNAME not in str(refused.value)


# -- errors -------------------------------------------------------------------------------


def test_a_wrong_password_is_an_auth_error_that_names_no_secret(
    dovecot_server: DovecotServer,
) -> None:
    account = dovecot_server.account(password="wrong-Secret-4711")

    with pytest.raises(ChannelAuthError) as refused:
        fetch_new(account, "INBOX", None, 0)

    message = str(refused.value)
    assert type(refused.value) is ChannelAuthError
    assert "AUTHENTICATIONFAILED" in message and "c***@example.com" in message
    assert "wrong-Secret-4711" not in message and dovecot_server.username not in message
    assert "wrong-Secret-4711" not in repr(account)


def test_nothing_listening_is_unavailable() -> None:
    account = ImapAccount("127.0.0.1", free_port(), "tls", "someone", "secret-pw", 2.0)

    with pytest.raises(ChannelUnavailable) as down:
        fetch_new(account, "INBOX", None, 0)

    assert "refused" in str(down.value).lower() and "secret-pw" not in str(down.value)


def test_a_server_that_never_answers_times_out_as_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts, never greets
        account = ImapAccount(
            "127.0.0.1", listener.getsockname()[1], "plain", "u", "secret-pw", 0.3
        )
        started = time.monotonic()

        with pytest.raises(ChannelUnavailable, match="timed out"):
            fetch_new(account, "INBOX", None, 0)

    assert time.monotonic() - started < 2


def test_a_server_saying_bye_is_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def greet_bye() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"* BYE Server shutting down for maintenance\r\n")

        thread = threading.Thread(target=greet_bye, daemon=True)
        thread.start()
        account = ImapAccount("127.0.0.1", listener.getsockname()[1], "plain", "u", "pw", 2.0)

        with pytest.raises(ChannelUnavailable, match="shutting down"):
            fetch_new(account, "INBOX", None, 0)
        thread.join(2)


def test_a_missing_mailbox_is_a_configuration_error(dovecot_server: DovecotServer) -> None:
    account = dovecot_server.account()

    with pytest.raises(MailboxNotFound):
        fetch_new(account, "Beschwerden", None, 0)
    with pytest.raises(MailboxNotFound):
        append_message(account, "Beschwerden", complaint(1))

    assert issubclass(MailboxNotFound, ChannelAuthError)  # the runner stops, not retries


# -- searching in windows ------------------------------------------------------------------


class FakeSearch:
    """Answers ``UID SEARCH UID a:b`` over a set of UIDs as RFC 3501 says; records requests."""

    def __init__(self, uids: list[int]) -> None:
        self.uids = sorted(uids)
        self.requests: list[tuple[int, int | None]] = []

    def uid(self, command: str, criteria: str) -> tuple[str, list[bytes]]:
        match = re.fullmatch(r"UID (\d+):(\d+|\*)", criteria)
        assert command == "SEARCH" and match, criteria
        low, high = int(match[1]), None if match[2] == "*" else int(match[2])
        self.requests.append((low, high))
        top = self.uids[-1] if self.uids else 0
        if high is None:  # n:* always includes the highest UID, even below n
            low, high = min(low, top), top
        hits = [uid for uid in self.uids if low <= uid <= high]
        return "OK", [" ".join(map(str, hits)).encode()]


def test_a_large_or_sparse_backlog_is_searched_in_bounded_windows() -> None:
    account = ImapAccount("imap.example.com", 993, "tls", "u", "p")
    uids_ = [3, 4, 10_000, 70_000, 300_000, 300_001]
    uidnext = 300_002

    first = FakeSearch(uids_)
    assert _search_new(first, account, 0, 3, uidnext) == [3, 4, 10_000]  # type: ignore[arg-type]
    assert first.requests == [(1, 4_096), (4_097, 12_288)]  # stops once enough are found

    every = FakeSearch(uids_)
    assert _search_new(every, account, 4, 100, uidnext) == uids_[2:]  # type: ignore[arg-type]
    assert every.requests[-1][1] is None  # the last window is open-ended: new mail counts
    assert all(high - low < 65_536 for low, high in every.requests[:-1] if high is not None)
    covered = [every.requests[0][0]] + [high + 1 for _, high in every.requests[:-1] if high]
    assert covered == [low for low, _ in every.requests]  # no gap between windows

    nothing = FakeSearch(uids_)
    assert _search_new(nothing, account, 300_001, 3, uidnext) == []  # type: ignore[arg-type]
    assert nothing.requests == [(300_002, None)]


# -- FETCH responses as imaplib hands them over -------------------------------------------


def test_fetch_responses_with_literals_flags_and_unsolicited_updates_are_read() -> None:
    data: list[object] = [
        (b"1 (UID 7 BODY[] {5}", b"a)b\r\n"),
        b" FLAGS (\\Seen))",  # flags after the literal, in the same response
        b"2 (FLAGS (\\Answered) UID 3)",  # an unsolicited update from another session
        (b"3 (FLAGS () BODY[] {3}", b"xyz"),
        b" UID 9)",  # the UID after the body
        b'4 (UID 10 BODY[] "quoted \\"body\\"")',
        b"5 (UID 11 BODY[] NIL)",
    ]

    responses = list(fetch_responses(data))

    assert [(r.get(b"UID"), r.get(b"BODY[]")) for r in responses] == [
        (b"7", b"a)b\r\n"),
        (b"3", None),
        (b"9", b"xyz"),
        (b"10", b'quoted "body"'),
        (b"11", None),
    ]
    with pytest.raises(UnreadableResponse):
        list(fetch_responses([b"garbage {"]))


class FakeFetch:
    """Answers every ``UID FETCH`` with the raw ``data`` given."""

    def __init__(self, data: list[object]) -> None:
        self.data = data

    def uid(self, command: str, uids: str, items: str) -> tuple[str, list[object]]:
        assert command == "FETCH", command
        return "OK", self.data


def test_an_unreadable_fetch_response_is_a_transient_channel_error() -> None:
    account = ImapAccount("imap.example.com", 993, "tls", "u", "p")
    conn = FakeFetch([b"garbage {"])

    expected = "IMAP u*** at imap.example.com:993: unreadable FETCH response"
    with pytest.raises(ChannelUnavailable, match=f"^{re.escape(expected)}$"):
        _uid_fetch(conn, account, [1], "RFC822.SIZE")  # type: ignore[arg-type]
