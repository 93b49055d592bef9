"""Bytes and header values of a mail as text, whatever charset they claim or lack.

Real complaint mail is often GBK or Big5 and often mislabelled: a declared
GB2312 that holds GBK characters, no charset at all, raw 8-bit bytes in a
Subject. The MIME reader decodes every body and every header through this one
fallback, so a mail reads the same whichever part its words are in. Pure,
never raises.

**Charsets** (:func:`decode_text`), each tried strictly, first success wins:
the declared charset, widened to its superset (GB2312 and GBK are read as
GB18030; Big5 as Big5, then CP950 and Big5-HKSCS, its vendor extensions);
then UTF-8, GB18030, Big5; and last the first candidate with replacement
characters. A declared Latin-1, CP1252 or ASCII charset never fails, so UTF-8
is tried before it: valid multi-byte UTF-8 does not happen by accident in
Western text. Undeclared Big5 reads as GB18030 (any Big5 pair is a valid GBK
pair); Big5 mail declares its charset in practice.

**Headers** (:func:`decode_header_text`) arrive as sent, 8-bit bytes kept as
surrogate escapes (:func:`raw_bytes` gets them back): RFC 2047 encoded words
and raw text go through the same fallback.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

_CHARSET_NAME = re.compile(r"[a-z0-9][a-z0-9._:+-]{0,39}")
_GB_FAMILY = frozenset(
    "gb2312 gb_2312 gb_2312-80 gb2312-80 csgb2312 euc-cn x-euc-cn gbk x-gbk csgbk cp936 ms936 "
    "windows-936 chinese iso-ir-58 gb18030".split()
)
_BIG5_FAMILY = frozenset(
    "big5 big-5 csbig5 cn-big5 x-x-big5 x-big5 cp950 ms950 windows-950".split()
)
_WESTERN = frozenset({"ascii", "latin-1", "iso8859-1", "cp1252"})
#: text codecs that are no mail charset and would rewrite the text instead of decoding it
_NOT_MAIL = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})
_FALLBACKS = ("utf-8", "gb18030", "big5")


def _candidates(declared: str | None) -> list[str]:
    name = (declared or "").strip().strip("\"'").lower()
    first: list[str] = []
    if name in _GB_FAMILY:
        first = ["gb18030"]
    elif name in _BIG5_FAMILY or name.startswith("big5"):
        first = ["big5", "cp950", "big5hkscs"]
    elif _CHARSET_NAME.fullmatch(name):
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            codec = ""
        if codec in _WESTERN:
            first = ["utf-8", codec]
        elif codec and codec not in _NOT_MAIL:
            first = [codec]
    return list(dict.fromkeys([*first, *_FALLBACKS]))


def decode_text(data: bytes, declared: str | None) -> str:
    """Bytes as text by the fallback order in the module docstring; never raises."""
    candidates = _candidates(declared)
    for codec in candidates:
        try:
            text = data.decode(codec)
        except (UnicodeError, LookupError):
            continue
        break
    else:
        try:
            text = data.decode(candidates[0], "replace")
        except LookupError:
            text = data.decode("utf-8", "replace")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from an exotic codec
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.removeprefix("\ufeff")


def raw_bytes(text: str) -> bytes:
    """The bytes a header value was read from (8-bit bytes are surrogate escapes)."""
    return text.encode("utf-8", "surrogateescape")


def raw_text(text: str) -> str:
    """A header value as text: its 8-bit bytes, if any, through the charset fallback."""
    return decode_text(raw_bytes(text), None) if not text.isascii() else text


_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*")


def _encoded_word_bytes(encoding: str, text: str) -> bytes | None:
    if encoding in "qQ":
        return binascii.a2b_qp(raw_bytes(text), header=True)
    clean = "".join(text.split()).rstrip("=")
    if not _BASE64.fullmatch(clean):
        return None
    clean = clean[: len(clean) - (len(clean) % 4 == 1)]
    try:
        return base64.b64decode(clean + "=" * (-len(clean) % 4))
    except binascii.Error:
        return None


def decode_header_text(value: str) -> str:
    """RFC 2047 encoded words (adjacent ones joined before decoding, so a character
    split across two words survives) and raw 8-bit text, through one charset fallback."""
    pieces: list[tuple[str | None, bytes]] = []  # (charset, bytes); None for plain text
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        literal = value[position : match.start()]
        position = match.end()
        data = _encoded_word_bytes(match.group(2), match.group(3))
        if data is None:
            pieces.append((None, raw_bytes(literal + match.group())))
            continue
        if literal and not (literal.isspace() and pieces and pieces[-1][0] is not None):
            pieces.append((None, raw_bytes(literal)))
        charset = match.group(1).split("*", 1)[0].lower()
        if pieces and pieces[-1][0] == charset:
            pieces[-1] = (charset, pieces[-1][1] + data)
        else:
            pieces.append((charset, data))
    pieces.append((None, raw_bytes(value[position:])))
    text = "".join(decode_text(data, charset) for charset, data in pieces)
    return " ".join(text.splitlines()).strip()
