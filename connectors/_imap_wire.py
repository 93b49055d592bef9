"""IMAP's wire format as :mod:`connectors._imap` needs it: mailbox names out, responses in.

``imaplib`` sends and receives raw protocol text and leaves both ends to its
caller. Mailbox names must go out in modified UTF-7 (RFC 3501 §5.1.3), which
no codec in the standard library speaks, or ``投诉`` cannot be opened. FETCH
and SEARCH replies come back as the raw pieces of the response lines (bytes,
and ``(text before, literal)`` tuples where the server sent a literal), so
this module reads them into values: the UIDs of a ``UID SEARCH`` reply and,
for each FETCH response, item name → value (RFC 3501 §7.2.5, §7.4.2).

Everything here is pure: bytes and strings in, values out. A response that
does not parse raises :class:`UnreadableResponse`; :mod:`connectors._imap`
maps it onto the gateway's error tree, naming the account.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Sequence
from typing import Literal


class UnreadableResponse(ValueError):
    """The server's reply does not parse as RFC 3501 says it should."""


def encode_mailbox_name(name: str) -> str:
    """``name`` in modified UTF-7 (RFC 3501 §5.1.3): ``台北`` → ``&U,BTFw-``, ``&`` → ``&-``."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be"))
            out.append("&" + encoded.rstrip(b"=").replace(b"/", b",").decode("ascii") + "-")
            pending.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def search_uids(data: Sequence[object]) -> Iterator[int]:
    """The UIDs of a ``UID SEARCH`` reply, in the server's order (``imaplib`` gives a line each)."""
    for line in data:
        if isinstance(line, bytes):
            for token in line.split():
                if not token.isdigit():
                    raise UnreadableResponse("unreadable SEARCH response")
                yield int(token)


# -- FETCH responses ----------------------------------------------------------------------

_TOKEN = re.compile(
    rb'\s*(?:(?P<paren>[()])|"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<atom>[^\s()"{]+))', re.DOTALL
)
_LITERAL_TAIL = re.compile(rb"\{(\d+)\}\Z")
_Token = tuple[Literal["(", ")", "atom", "string"], bytes]


def fetch_responses(data: Sequence[object]) -> Iterator[dict[bytes, bytes]]:
    """Each FETCH response in ``data`` as item name → value (NIL and lists left out).

    ``imaplib`` gives a response with literals as ``(text before, literal)``
    tuples followed by the closing text as bytes; one without literals
    (an unsolicited flag update from another session) is just bytes.
    """
    tokens: list[_Token] = []
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], bytes):
            head, literal = item
            tail = _LITERAL_TAIL.search(head)
            if tail is None or not isinstance(literal, bytes):
                raise UnreadableResponse("unreadable FETCH response")
            tokens += _tokenize(head[: tail.start()])
            tokens.append(("string", literal))
        elif isinstance(item, bytes):
            tokens += _tokenize(item)
            yield _items(tokens)
            tokens = []


def _tokenize(text: bytes) -> list[_Token]:
    tokens: list[_Token] = []
    position, end = 0, len(text.rstrip())
    while position < end:
        match = _TOKEN.match(text, position)
        if match is None:
            raise UnreadableResponse("unreadable FETCH response")
        if match["paren"]:
            tokens.append(("(" if match["paren"] == b"(" else ")", match["paren"]))
        elif match["quoted"] is not None:
            tokens.append(("string", re.sub(rb"\\(.)", rb"\1", match["quoted"])))
        else:
            tokens.append(("atom", match["atom"]))
        position = match.end()
    return tokens


def _items(tokens: list[_Token]) -> dict[bytes, bytes]:
    """``<seq> ( NAME value NAME (list) ... )`` → {NAME: value}."""
    if len(tokens) < 3 or tokens[0][0] != "atom" or tokens[1][0] != "(":
        raise UnreadableResponse("unreadable FETCH response")
    items: dict[bytes, bytes] = {}
    position = 2
    while position < len(tokens) and tokens[position][0] != ")":
        kind, name = tokens[position]
        if kind != "atom" or position + 1 >= len(tokens):
            raise UnreadableResponse("unreadable FETCH response")
        value_kind, value = tokens[position + 1]
        if value_kind == "string" or (value_kind == "atom" and value.upper() != b"NIL"):
            items[name.upper()] = value
        position = _skip_value(tokens, position + 1)
    return items


def _skip_value(tokens: list[_Token], position: int) -> int:
    """The position after the value (an atom, a string or a nested list) at ``position``."""
    depth = 0
    while position < len(tokens):
        kind = tokens[position][0]
        depth += {"(": 1, ")": -1}.get(kind, 0)
        position += 1
        if depth <= 0:
            return position
    raise UnreadableResponse("unreadable FETCH response")
