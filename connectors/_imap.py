"""A blocking IMAP client for mailbox pollers, on the standard library's ``imaplib``.

Each call opens its own connection, logs in, does one job and logs out, so it
can run in a worker thread (``asyncio.to_thread``) without sharing state;
``aioimaplib`` would be async but is GPL-3.0, and ``imaplib`` is enough for
polling. Every socket operation is bounded by :attr:`ImapAccount.timeout`.

Reading new mail (:func:`fetch_new`) follows the UIDVALIDITY/UID cursor recipe
of RFC 3501 §2.3.1.1: the mailbox is opened with EXAMINE, so nothing we do can
change it, and bodies are fetched with ``BODY.PEEK[]``, so ``\\Seen`` stays as
the people reading the mailbox left it. A batch holds the oldest new messages
first, at most ``limit`` of them and about ``max_bytes`` in all (sizes are
asked first), and ``more`` says that the caller should call again at once.

UIDs are searched for in windows bounded by UIDNEXT, the last one open-ended
(``n:*``, which also returns the highest UID when it is below ``n``, so UIDs
are filtered client-side). A first poll of a mailbox with a large backlog
thus never asks the server for one ``SEARCH`` line bigger than ``imaplib``
accepts (1 MB), nor lists the whole backlog again on every call.

A message that was searched but is not returned by FETCH (it was expunged in
between, or the server cannot read it) is never skipped silently: the batch
stops before it, or, when it is the first, :class:`ChannelUnavailable` is
raised and the next call searches again (an expunged message is gone by then).

Errors map onto the gateway's tree (:mod:`connectors.errors`):

* credentials refused (LOGIN or AUTHENTICATE answered NO or BAD) →
  :class:`ChannelAuthError`, unless the server said ``[UNAVAILABLE]``,
  ``[INUSE]`` or ``[SERVERBUG]`` (RFC 5530), which are transient;
* the mailbox does not exist or may not be read → :class:`MailboxNotFound`,
  a :class:`ChannelAuthError`: like wrong credentials, it needs a person to
  fix the settings, and the poll runner stops polling instead of retrying;
* everything else (refused or dropped connections, timeouts, TLS and
  certificate failures, BYE, NO or BAD to any other command, an unreadable
  response) → :class:`ChannelUnavailable`, retried with backoff.

Messages name the server and a masked user name, never the password, and
server texts are scrubbed of both credentials.

Mailbox names are given as Unicode and sent in modified UTF-7 (RFC 3501
§5.1.3), quoted, so ``投诉`` and ``My "Complaints"`` both work; the hierarchy
separator is the server's (``.`` or ``/``). Credentials that are not printable
ASCII are sent with ``AUTHENTICATE PLAIN`` (UTF-8, RFC 4616) instead of LOGIN.
Encoding the names and reading the FETCH and SEARCH replies is the wire format,
in :mod:`connectors._imap_wire`; this module holds the session, the commands
and the mapping of failures onto the error tree.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, NoReturn

from connectors._imap_wire import (
    UnreadableResponse,
    encode_mailbox_name,
    fetch_responses,
    search_uids,
)
from connectors.errors import ChannelAuthError, ChannelError, ChannelUnavailable

Security = Literal["tls", "starttls", "plain"]

MAX_UID = 4_294_967_295
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
_FIRST_SEARCH_SPAN = 4_096
_MAX_SEARCH_SPAN = 65_536  # at most ~720 kB of SEARCH reply, under imaplib's 1 MB line limit
_SIZE_CHUNK = 500
_BODY_CHUNK = 50
_TRANSIENT_CODES = frozenset({"UNAVAILABLE", "INUSE", "SERVERBUG"})
_MISSING_MAILBOX_CODES = frozenset({"NONEXISTENT", "TRYCREATE", "NOPERM"})


class MailboxNotFound(ChannelAuthError):
    """The mailbox does not exist or this account may not read it: the settings need fixing."""


@dataclass(frozen=True)
class ImapAccount:
    """Where and as whom to log in.

    ``security``: ``"tls"`` (implicit TLS, port 993), ``"starttls"`` (port 143,
    upgraded before LOGIN) or ``"plain"`` (no TLS: for tests only).
    ``ca_file`` is a PEM bundle trusted instead of the system's CAs (a private CA).
    """

    host: str
    port: int
    security: Security
    username: str
    password: str = field(repr=False)
    timeout: float = 30.0
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.security not in ("tls", "starttls", "plain"):
            raise ValueError(f"unknown IMAP security {self.security!r}")
        if not 0 < self.port < 65_536 or self.timeout <= 0:
            raise ValueError("an IMAP account needs a port in 1..65535 and a positive timeout")

    @property
    def masked_username(self) -> str:
        """``complaints@example.com`` → ``c***@example.com``."""
        local, at, domain = self.username.partition("@")
        return f"{local[:1]}***{at}{domain}"

    @property
    def who(self) -> str:
        """The account as error messages name it."""
        return f"{self.masked_username} at {self.host}:{self.port}"


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes
    """The full RFC 822 message, fetched with ``BODY.PEEK[]`` so ``\\Seen`` is never set."""


@dataclass(frozen=True)
class MailboxBatch:
    """New messages of one mailbox, ascending by UID, all above the cursor.

    After a UIDVALIDITY change (``uidvalidity_changed``) the old UIDs mean
    nothing and the batch starts again from the mailbox's first message.
    """

    mailbox: str
    uidvalidity: int
    messages: tuple[FetchedMail, ...]
    uidvalidity_changed: bool
    more: bool


def fetch_new(
    account: ImapAccount,
    mailbox: str,
    uidvalidity: int | None,
    last_uid: int,
    *,
    limit: int = 200,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> MailboxBatch:
    """Fetch the messages with a UID above ``last_uid`` (see the module docstring)."""
    if limit < 1 or max_bytes < 1 or last_uid < 0:
        raise ValueError("limit and max_bytes must be positive and last_uid not negative")
    with _session(account) as conn:
        typ, data = conn.select(_quote(mailbox), readonly=True)
        if typ != "OK":
            _raise_mailbox_refused(conn, account, mailbox, "EXAMINE", data)
        current = _response_int(conn, "UIDVALIDITY")
        if current is None:
            raise ChannelUnavailable(f"IMAP {account.who}: EXAMINE gave no UIDVALIDITY")
        changed = uidvalidity is not None and uidvalidity != current
        after = 0 if changed else last_uid
        found = _search_new(conn, account, after, limit + 1, _response_int(conn, "UIDNEXT"))
        wanted = _within_budget(conn, account, found[:limit], max_bytes)
        messages = _fetch_bodies(conn, account, wanted)
        more = len(found) > len(messages)
        return MailboxBatch(mailbox, current, tuple(messages), changed, more)


def append_message(account: ImapAccount, mailbox: str, raw: bytes, flags: str = "") -> int:
    """Store ``raw`` in ``mailbox`` and return its UID (needs UIDPLUS, as Dovecot has).

    ``flags`` is a space-separated list such as ``"\\Seen \\Answered"``. Bare
    LF or CR line ends in ``raw`` are sent as CRLF, as IMAP requires.
    """
    if not flags.isascii() or any(c in flags for c in "\r\n()"):
        raise ValueError("flags must be space-separated ASCII flag names")
    with _session(account) as conn:
        typ, data = conn.append(_quote(mailbox), flags or None, None, raw)
        if typ != "OK":
            _raise_mailbox_refused(conn, account, mailbox, "APPEND", data)
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", _last_bytes(data))
        if match is None:
            raise ChannelError(f"IMAP {account.who}: APPEND gave no APPENDUID (no UIDPLUS)")
        return int(match.group(1))


def create_mailbox(account: ImapAccount, name: str) -> None:
    """Create ``name``; a mailbox that already exists is left as it is."""
    with _session(account) as conn:
        typ, data = conn.create(_quote(name))
        if typ != "OK" and _code(_last_bytes(data)) != "ALREADYEXISTS":
            raise ChannelUnavailable(f"IMAP {account.who}: CREATE refused: {_text(data, account)}")


# -- connection and errors ----------------------------------------------------------------


@contextmanager
def _session(account: ImapAccount) -> Iterator[imaplib.IMAP4]:
    """A logged-in connection, logged out at the end.

    After a transport or protocol failure the socket is just closed: a LOGOUT
    would wait for a server that is gone or out of step.
    """
    try:
        conn = _connect(account)
        try:
            _login(conn, account)
            yield conn
        except ChannelError:  # refused by the server, but the connection is sound
            _logout(conn)
            raise
        except BaseException:
            _close(conn)
            raise
        _logout(conn)
    except (imaplib.IMAP4.error, OSError) as exc:
        # imaplib.IMAP4.abort (dropped connection, BYE) is an IMAP4.error; ssl.SSLError,
        # TimeoutError and ConnectionRefusedError are OSErrors.
        raise ChannelUnavailable(f"IMAP {account.who}: {_scrub(_describe(exc), account)}") from exc


def _connect(account: ImapAccount) -> imaplib.IMAP4:
    if account.security == "tls":
        context = ssl.create_default_context(cafile=account.ca_file)
        return imaplib.IMAP4_SSL(
            account.host, account.port, ssl_context=context, timeout=account.timeout
        )
    conn = imaplib.IMAP4(account.host, account.port, timeout=account.timeout)
    if account.security == "starttls":
        try:
            conn.starttls(ssl.create_default_context(cafile=account.ca_file))
        except BaseException:
            _close(conn)
            raise
    return conn


def _login(conn: imaplib.IMAP4, account: ImapAccount) -> None:
    user, password = account.username, account.password
    if "\0" in user + password:
        raise ChannelAuthError(f"IMAP {account.who}: credentials may not contain NUL")
    try:
        if all(" " <= c <= "~" for c in user + password):
            conn.login(_quote_ascii(user), password)
        else:
            credentials = f"\0{user}\0{password}".encode()
            conn.authenticate("PLAIN", lambda _challenge: credentials)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as exc:
        text = _scrub(_describe(exc), account)
        if _code(text.encode()) in _TRANSIENT_CODES:
            raise ChannelUnavailable(f"IMAP {account.who}: login failed: {text}") from None
        raise ChannelAuthError(f"IMAP {account.who}: login refused: {text}") from None


def _raise_mailbox_refused(
    conn: imaplib.IMAP4, account: ImapAccount, mailbox: str, command: str, data: Sequence[object]
) -> NoReturn:
    """After NO to EXAMINE or APPEND: :class:`MailboxNotFound` unless the mailbox is there."""
    text = _text(data, account)
    code = _code(_last_bytes(data))
    where = f"IMAP {account.who}: {command} {encode_mailbox_name(mailbox)!r}"
    if code not in _TRANSIENT_CODES and (
        code in _MISSING_MAILBOX_CODES or not _selectable(conn, mailbox)
    ):
        raise MailboxNotFound(f"{where}: no such mailbox, or not readable: {text}")
    raise ChannelUnavailable(f"{where} refused: {text}")


def _selectable(conn: imaplib.IMAP4, mailbox: str) -> bool:
    typ, data = conn.list('""', _quote(mailbox))
    return typ == "OK" and any(
        isinstance(line, bytes) and not re.search(rb"\\(?i:noselect|nonexistent)\b", line)
        for line in data
    )


def _logout(conn: imaplib.IMAP4) -> None:
    try:
        conn.logout()
    except (imaplib.IMAP4.error, OSError):
        _close(conn)


def _close(conn: imaplib.IMAP4) -> None:
    try:
        conn.shutdown()
    except OSError:
        pass


def _describe(exc: BaseException) -> str:
    arg = exc.args[0] if len(exc.args) == 1 else exc
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    return str(arg) or type(exc).__name__


def _scrub(text: str, account: ImapAccount) -> str:
    if account.password:
        text = text.replace(account.password, "***")
    if len(account.username) >= 3:  # masking "a" everywhere would garble the text
        text = text.replace(account.username, account.masked_username)
    return text[:300]


def _last_bytes(data: Sequence[object]) -> bytes:
    last = data[-1] if data else b""
    return last if isinstance(last, bytes) else b""


def _text(data: Sequence[object], account: ImapAccount) -> str:
    return _scrub(_last_bytes(data).decode("utf-8", "replace"), account)


def _code(text: bytes) -> str | None:
    match = re.match(rb"\s*\[([A-Za-z-]+)", text)
    return match.group(1).decode().upper() if match else None


def _quote(mailbox: str) -> str:
    return _quote_ascii(encode_mailbox_name(mailbox))


def _quote_ascii(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _response_int(conn: imaplib.IMAP4, code: str) -> int | None:
    _, data = conn.response(code)
    value = _last_bytes(data).strip()
    return int(value) if value.isdigit() else None


# -- searching and fetching ---------------------------------------------------------------


def _search_new(
    conn: imaplib.IMAP4, account: ImapAccount, after: int, wanted: int, uidnext: int | None
) -> list[int]:
    """The first ``wanted`` or more UIDs above ``after``, ascending."""
    found: set[int] = set()
    low, span = after + 1, _FIRST_SEARCH_SPAN
    while low <= MAX_UID:
        final = uidnext is None or low + span >= uidnext
        high = "*" if final else str(low + span - 1)
        typ, data = conn.uid("SEARCH", f"UID {low}:{high}")
        if typ != "OK":
            raise ChannelUnavailable(f"IMAP {account.who}: SEARCH refused: {_text(data, account)}")
        try:
            found.update(uid for uid in search_uids(data) if uid > after)
        except UnreadableResponse as exc:
            raise ChannelUnavailable(f"IMAP {account.who}: {exc}") from None
        if final or len(found) >= wanted:
            break
        low, span = low + span, min(span * 2, _MAX_SEARCH_SPAN)
    return sorted(found)


def _within_budget(
    conn: imaplib.IMAP4, account: ImapAccount, uids: list[int], max_bytes: int
) -> list[int]:
    """The longest prefix of ``uids`` whose sizes add up to ``max_bytes`` (at least one)."""
    sizes: dict[int, bytes] = {}
    for start in range(0, len(uids), _SIZE_CHUNK):
        sizes |= _uid_fetch(conn, account, uids[start : start + _SIZE_CHUNK], "RFC822.SIZE")
    present = _present_prefix(uids, sizes)
    if uids and not present:
        raise _vanished(account, uids[0])
    chosen: list[int] = []
    total = 0
    for uid in present:
        size = int(sizes[uid]) if sizes[uid].isdigit() else 0
        if chosen and total + size > max_bytes:
            break
        chosen.append(uid)
        total += size
    return chosen


def _fetch_bodies(conn: imaplib.IMAP4, account: ImapAccount, uids: list[int]) -> list[FetchedMail]:
    messages: list[FetchedMail] = []
    for start in range(0, len(uids), _BODY_CHUNK):
        chunk = uids[start : start + _BODY_CHUNK]
        bodies = _uid_fetch(conn, account, chunk, "BODY.PEEK[]", answer="BODY[]")
        present = _present_prefix(chunk, bodies)
        if not messages and not present:
            raise _vanished(account, chunk[0])
        messages.extend(FetchedMail(uid, bodies[uid]) for uid in present)
        if len(present) < len(chunk):
            break
    return messages


def _present_prefix(uids: list[int], got: dict[int, bytes]) -> list[int]:
    """``uids`` up to the first one the server did not return (see the module docstring)."""
    for index, uid in enumerate(uids):
        if uid not in got:
            return uids[:index]
    return uids


def _vanished(account: ImapAccount, uid: int) -> ChannelUnavailable:
    return ChannelUnavailable(f"IMAP {account.who}: UID {uid} vanished while being fetched")


def _uid_fetch(
    conn: imaplib.IMAP4, account: ImapAccount, uids: list[int], item: str, answer: str = ""
) -> dict[int, bytes]:
    """UID → the value of ``answer`` (default ``item``) for each requested UID returned."""
    if not uids:
        return {}
    typ, data = conn.uid("FETCH", _uid_set(uids), f"(UID {item})")
    if typ != "OK":  # e.g. NO [EXPUNGEISSUED]: keep what came, missing UIDs stop the batch
        _, data = conn.response("FETCH")
    wanted, key, values = set(uids), (answer or item).encode(), {}
    try:
        for response in fetch_responses(data):
            uid, value = response.get(b"UID"), response.get(key)
            if uid is not None and uid.isdigit() and int(uid) in wanted and value is not None:
                values[int(uid)] = value
    except UnreadableResponse as exc:
        raise ChannelUnavailable(f"IMAP {account.who}: {exc}") from None
    return values


def _uid_set(uids: list[int]) -> str:
    """``[1, 2, 3, 7]`` → ``"1:3,7"`` (ascending UIDs)."""
    runs: list[list[int]] = []
    for uid in uids:
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in runs)
