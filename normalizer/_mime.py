"""Read one raw RFC 5322 mail into the facts a complaint needs: pure and bounded.

The IMAP poller and the raw-MIME webhook both hand the email normalizer the
bytes as they came off the wire; :func:`read_mail` turns them into a
:class:`Mail`: ids for threading and dedupe, the sender, the decoded subject,
the customer's *new* words with the quoted history cut off, references to the
attachments, and whether a machine rather than a person sent it. No network,
no clock, no settings.

**Parser.** The stdlib parser with a compat32-based policy
(:class:`_RawHeaders`). ``email.policy.default`` parses each header into an
object when it is first read, and mangles or trips over what real mail holds:
raw GBK bytes in a Subject, an encoded word inside a quoted name, a Message-ID
with spaces. compat32 hands back the text as sent, 8-bit bytes kept as
surrogate escapes, so this module decodes every header once, with the same
charset fallback as the bodies. The policy also unfolds each value and cuts it
to a fixed length, which bounds the stdlib's parameter parsing (quadratic in
the length of a Content-Type, and run by the parser itself to find
boundaries).

**Charsets** (:func:`decode_text`), each tried strictly, first success wins:
the declared charset, widened to its superset (GB2312 and GBK are read as
GB18030; Big5 as Big5, then CP950 and Big5-HKSCS, its vendor extensions);
then UTF-8, GB18030, Big5; and last the first candidate with replacement
characters. A declared Latin-1, CP1252 or ASCII charset never fails, so UTF-8
is tried before it: valid multi-byte UTF-8 does not happen by accident in
Western text. Undeclared Big5 reads as GB18030 (any Big5 pair is a valid GBK
pair); Big5 mail declares its charset in practice. An HTML part without a MIME
charset uses its ``<meta charset>``.

**Body.** multipart/alternative gives its text/plain part unless that part is
blank, then the HTML; the text parts of a multipart/mixed are joined in order;
a multipart/report gives its first, human-readable part. Every other leaf is
an attachment, as is any part with a filename or ``Content-Disposition:
attachment`` (a .txt file too), and every message/* part, which is not
descended into. HTML becomes text through :class:`_HtmlText`, quotes are cut
by :func:`new_words` (see there for the patterns).

**Bounds.** At most :data:`MAX_PARTS` parts are walked and nothing deeper than
:data:`MAX_DEPTH`; what lies beyond is ignored, not refused. Mail nested so
deep that the stdlib parser itself gives up (about 1000 levels) is refused.
Every step is linear in the size of the mail; HTML is tamed first because
``html.parser`` is quadratic on unclosed markup (see :func:`_tame`).

**Errors.** :class:`MalformedPayload` only when there is no mail at all: empty
bytes (``missing_field``), or no header field of a mail (``invalid_field``).
Anything else broken is read as well as it can be.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from connectors.errors import MalformedPayload

MAX_PARTS = 200
MAX_DEPTH = 16
MAX_HEADER_CHARS = 16_384
#: Content-Type and Content-Disposition: the stdlib's parameter parser is
#: quadratic in their length (many ``;`` inside quotes), so they are kept short.
MAX_MIME_HEADER_CHARS = 1_024
MAX_ADDRESSES = 100
#: ``html.parser`` takes about a second per megabyte of dense markup; beyond this the
#: rest of an HTML part (quoted history and footers, in practice) is not read
MAX_HTML_CHARS = 1_000_000

_MIME_HEADERS = frozenset({"content-type", "content-disposition"})
_MAIL_HEADERS = frozenset(
    "from sender to cc date subject message-id in-reply-to references reply-to received "
    "return-path delivered-to mime-version content-type".split()
)


@dataclass(frozen=True)
class MailAttachment:
    """An attachment, referenced by the hash of its decoded bytes, never inlined."""

    name: str | None
    media_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Mail:
    """What the email normalizer needs from one mail; ids are without angle brackets."""

    message_id: str | None
    thread_root: str | None
    in_reply_to: str | None
    from_address: str | None
    from_name: str | None
    to_addresses: tuple[str, ...]
    subject: str
    date: datetime | None
    text: str
    attachments: tuple[MailAttachment, ...]
    automated: str | None
    fallback_key: str


def read_mail(raw: bytes) -> Mail:
    """Read a raw mail leniently; raise :class:`MalformedPayload` only for a non-mail."""
    if not raw.strip():
        raise MalformedPayload("the mail is empty", "missing_field")
    try:
        message = BytesParser(policy=_READING).parsebytes(raw)
    except RecursionError:
        raise MalformedPayload("the mail's parts are nested too deeply", "invalid_field") from None
    if not _MAIL_HEADERS.intersection(name.lower() for name in message.keys()):
        raise MalformedPayload("the bytes are not a mail: no mail header", "invalid_field")

    from_header = message.get("From")
    senders = _addresses(from_header)
    from_name, from_address = senders[0] if senders else (None, None)
    subject = decode_header_text(message.get("Subject") or "")
    date_header = message.get("Date")
    date = _date(date_header)
    walk = _Walk()
    walk.visit(message, 0, True)
    text = new_words("\n".join(walk.texts))
    references = _first_id(message.get("References"))
    in_reply_to = _first_id(message.get("In-Reply-To"))
    fallback = json.dumps(
        [
            from_address or decode_header_text(from_header or ""),
            date.astimezone(UTC).isoformat() if date else (date_header or ""),
            subject,
            " ".join(text.split()),
        ],
        ensure_ascii=False,
    )
    return Mail(
        message_id=_first_id(message.get("Message-ID")),
        thread_root=references or in_reply_to,
        in_reply_to=in_reply_to,
        from_address=from_address,
        from_name=from_name,
        to_addresses=tuple(
            dict.fromkeys(address for _, address in _addresses(message.get("To")) if address)
        ),
        subject=subject,
        date=date,
        text=text,
        attachments=tuple(walk.attachments),
        automated=_automation(message, subject, from_address),
        fallback_key=_sha256(fallback.encode("utf-8", "surrogatepass")),
    )


class _RawHeaders(Compat32):
    """compat32 handing header values back as they were sent, with four changes.

    Unfolded; 8-bit bytes kept as surrogate escapes (compat32 would wrap them
    in a lossy ``Header``); cut to a fixed length so that no header makes the
    stdlib's parsing slow; and with RFC 2231
    ``name*=`` spelled ``name*0*=`` (the same value): the stdlib's
    ``decode_params`` raises ``TypeError`` when a header mixes both spellings,
    and the parser itself calls it to find a multipart's boundary.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        if name.lower() in _MIME_HEADERS:
            value = _UNNUMBERED_PARAMETER.sub(r"\1*0*=", value[: MAX_MIME_HEADER_CHARS + 64])
            limit = MAX_MIME_HEADER_CHARS
        else:
            limit = MAX_HEADER_CHARS
        return value[: limit + 64].replace("\r", "").replace("\n", "")[:limit].strip()


_UNNUMBERED_PARAMETER = re.compile(r"(;\s*\w+)\*\s*=", re.ASCII)
_READING = _RawHeaders()


# -- charsets ---------------------------------------------------------------------------------

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


def _raw_bytes(text: str) -> bytes:
    """The bytes a header value was read from (8-bit bytes are surrogate escapes)."""
    return text.encode("utf-8", "surrogateescape")


def _raw_text(text: str) -> str:
    return decode_text(_raw_bytes(text), None) if not text.isascii() else text


# -- headers ----------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*")


def _encoded_word_bytes(encoding: str, text: str) -> bytes | None:
    if encoding in "qQ":
        return binascii.a2b_qp(_raw_bytes(text), header=True)
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
            pieces.append((None, _raw_bytes(literal + match.group())))
            continue
        if literal and not (literal.isspace() and pieces and pieces[-1][0] is not None):
            pieces.append((None, _raw_bytes(literal)))
        charset = match.group(1).split("*", 1)[0].lower()
        if pieces and pieces[-1][0] == charset:
            pieces[-1] = (charset, pieces[-1][1] + data)
        else:
            pieces.append((charset, data))
    pieces.append((None, _raw_bytes(value[position:])))
    text = "".join(decode_text(data, charset) for charset, data in pieces)
    return " ".join(text.splitlines()).strip()


_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+")


def _shallow_comments(value: str) -> str:
    """The value without its parentheses if comments nest deeper than a person writes:
    the stdlib address parser recurses once per level and overflows the stack."""
    depth = deepest = 0
    for char in value:
        depth = depth + 1 if char == "(" else max(0, depth - (char == ")"))
        deepest = max(deepest, depth)
    return value.replace("(", "").replace(")", "") if deepest > 8 else value


def _addresses(value: str | None) -> list[tuple[str | None, str | None]]:
    """(decoded display name, lower-cased addr-spec or None) for each address."""
    if not value:
        return []
    result: list[tuple[str | None, str | None]] = []
    for name, address in getaddresses([_shallow_comments(value)])[:MAX_ADDRESSES]:
        spec = _raw_text(address).strip().lower()
        result.append(
            (
                decode_header_text(name).strip("\"' ") or None,
                spec if _ADDRESS.fullmatch(spec) else None,
            )
        )
    return [pair for pair in result if pair != (None, None)]


def _date(value: str | None) -> datetime | None:
    """An aware time; a zone the stdlib cannot read counts as -0000, UTC (RFC 5322 §4.3)."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_BRACKETED_ID = re.compile(r"<([^<>]+)>")


def _first_id(value: str | None) -> str | None:
    """The first ``<id>`` of a header, without brackets or stray whitespace; an id
    sent without brackets counts when it is the whole value and has an ``@``."""
    if not value:
        return None
    text = _raw_text(value)
    match = _BRACKETED_ID.search(text)
    if match:
        return "".join(match.group(1).split()) or None
    tokens = text.split()
    return tokens[0] if len(tokens) == 1 and "@" in tokens[0] else None


def _param(part: Message, name: str, header: str = "content-type") -> str | None:
    """A MIME parameter as text, RFC 2231 (``name*=UTF-8''%E6...``) and encoded words decoded."""
    value = part.get_param(name, None, header)
    if value is None:
        return None
    if isinstance(value, tuple):
        charset, _, text = value
        try:
            data = text.encode("latin-1", "surrogateescape")  # the stdlib unquotes to latin-1
        except UnicodeEncodeError:
            data = _raw_bytes(text)
        return decode_text(data, charset or None).strip() or None
    return decode_header_text(value) or None


# -- automated mail ---------------------------------------------------------------------------

_AUTOREPLY_SUBJECT = re.compile(
    r"(?:automatic reply|auto[- ]?reply|out of (?:the )?office"
    r"|自动回复|自动答复|自動回覆|自動回復)\s*[:：]",
    re.IGNORECASE,
)


def _automation(message: Message, subject: str, from_address: str | None) -> str | None:
    """A short label when a machine sent the mail (RFC 3834 and common practice), else None.

    In order: a multipart/report (``delivery_report``, or ``read_receipt`` for an
    MDN); ``Auto-Submitted`` other than ``no``; ``X-Autoreply``/``X-Autorespond``;
    ``Precedence: auto_reply|bulk|junk`` (``precedence_<value>``); a sender
    ``mailer-daemon@``/``postmaster@`` (``delivery_report``); an empty
    ``Return-Path: <>`` (``null_sender``); and, weakest, a Subject that starts
    like an out-of-office notice (``autoreply_subject``).
    """
    if message.get_content_type() == "multipart/report":
        report = (_param(message, "report-type") or "").lower()
        return "read_receipt" if report == "disposition-notification" else "delivery_report"
    auto_submitted = (message.get("Auto-Submitted") or "").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return "auto_submitted"
    for name in ("X-Autoreply", "X-Autorespond"):
        if (message.get(name) or "no").strip().lower() not in {"no", "false", "0"}:
            return "autoreply"
    precedence = (message.get("Precedence") or "").strip().lower()
    if precedence in {"auto_reply", "bulk", "junk"}:
        return f"precedence_{precedence}"
    if from_address and from_address.split("@")[0] in {"mailer-daemon", "postmaster"}:
        return "delivery_report"
    if (message.get("Return-Path") or "").replace(" ", "") == "<>":
        return "null_sender"
    if _AUTOREPLY_SUBJECT.match(subject):
        return "autoreply_subject"
    return None


# -- the MIME tree ----------------------------------------------------------------------------

_BODY_TYPES = frozenset({"text/plain", "text/html"})


def _is_attachment(part: Message, media_type: str) -> bool:
    if media_type.startswith("message/"):
        return True
    if part.is_multipart():
        return False
    if part.get_content_disposition() == "attachment" or media_type not in _BODY_TYPES:
        return True
    return _param(part, "filename", "content-disposition") is not None or (
        _param(part, "name") is not None
    )


class _Walk:
    """Depth-first over the parts in document order, within the part and depth budget."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.attachments: list[MailAttachment] = []
        self.budget = MAX_PARTS

    def visit(self, part: Message, depth: int, body: bool) -> None:
        """``body``: whether this part's text is the mail's text (not a rejected alternative)."""
        if self.budget <= 0 or depth > MAX_DEPTH:
            return
        self.budget -= 1
        media_type = part.get_content_type()
        if _is_attachment(part, media_type):
            content = _content(part)
            if content is not None:
                self.attachments.append(_attachment(part, media_type, content))
            return
        if part.is_multipart():
            children = _children(part)
            chosen = _preferred(children) if media_type == "multipart/alternative" else None
            for index, child in enumerate(children):
                child_body = body and chosen in (None, index)
                if media_type == "multipart/report":
                    child_body = body and index == 0
                self.visit(child, depth + 1, child_body)
            return
        if body:
            self.texts.append(_part_text(part, media_type))


def _preferred(children: list[Message]) -> int | None:
    """The alternative to read: a non-blank text/plain, else the first HTML or container."""
    fallback = None
    for index, child in enumerate(children):
        media_type = child.get_content_type()
        if _is_attachment(child, media_type):
            continue
        if media_type == "text/plain" and _part_text(child, media_type).strip():
            return index
        if fallback is None and (media_type == "text/html" or child.is_multipart()):
            fallback = index
    return fallback


def _content(part: Message) -> bytes | None:
    """The decoded bytes of a leaf.

    A message/* part (a forwarded mail, a delivery status) is written back from
    its parts: headers as sent, decoded bodies, CRLF. That is stable for the
    same mail but not its bytes on the wire, which the stdlib does not keep;
    its generator is not used because it raises on broken parts. None when the
    part is nested too deep to write.
    """
    if not part.is_multipart():
        payload = part.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else b""
    if not _shallow(part):
        return None
    return b"\r\n".join(_written(child) for child in _children(part))


def _written(message: Message) -> bytes:
    head = b"".join(_raw_bytes(f"{name}: {value}\r\n") for name, value in message.raw_items())
    if not message.is_multipart():
        return head + b"\r\n" + (_content(message) or b"")
    children = [_written(child) for child in _children(message)]
    boundary = _raw_bytes(message.get_boundary() or "")
    if not boundary:
        return head + b"\r\n" + b"\r\n".join(children)
    delimiter = b"--" + boundary
    body = b"".join(delimiter + b"\r\n" + child + b"\r\n" for child in children)
    return head + b"\r\n" + body + delimiter + b"--\r\n"


def _children(part: Message) -> list[Message]:
    return [child for child in part.get_payload() if isinstance(child, Message)]


def _shallow(part: Message) -> bool:
    stack = [(part, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if depth > MAX_DEPTH or seen > MAX_PARTS:
            return False
        if node.is_multipart():
            stack.extend((child, depth + 1) for child in _children(node))
    return True


def _attachment(part: Message, media_type: str, content: bytes) -> MailAttachment:
    name = _param(part, "filename", "content-disposition") or _param(part, "name")
    return MailAttachment(
        name=name, media_type=media_type, size=len(content), sha256=_sha256(content)
    )


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?([A-Za-z0-9._:+-]{1,40})", re.I)


def _part_text(part: Message, media_type: str) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset()
    if media_type == "text/html":
        if charset is None:
            meta = _META_CHARSET.search(data[:4096])
            charset = meta.group(1).decode("ascii") if meta else None
        return html_to_text(decode_text(data, charset))
    text = decode_text(data, charset).replace("\r\n", "\n").replace("\r", "\n")
    if (_param(part, "format") or "").lower() == "flowed":
        text = _unflow(text, delsp=(_param(part, "delsp") or "").lower() == "yes")
    return text


def _unflow(text: str, *, delsp: bool) -> str:
    """RFC 3676 format=flowed: a line ending in a space continues on the next line of the
    same quote depth, so the customer's paragraphs come back as they typed them."""
    lines: list[str] = []
    pending: tuple[int, str] | None = None  # (quote depth, text so far)
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:].removeprefix(" ")  # space-stuffing
        if pending is not None and pending[0] == depth:
            content = pending[1] + content
        elif pending is not None:
            lines.append(_quoted(*pending))
        pending = None
        if content.endswith(" ") and content != "-- ":
            pending = (depth, content[:-1] if delsp else content)
        else:
            lines.append(_quoted(depth, content))
    if pending is not None:
        lines.append(_quoted(*pending))
    return "\n".join(lines)


def _quoted(depth: int, content: str) -> str:
    return ">" * depth + " " + content if depth else content


# -- HTML to text -----------------------------------------------------------------------------

_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_DECLARATION = re.compile(r"<[!?][^<>]*>")
_WELL_FORMED_TAG = re.compile(
    r"</?[A-Za-z][^\s/>]*+"
    r"(?:\s++[^\s\"'=<>/]++(?:\s*+=\s*+(?:\"[^\"]*+\"|'[^']*+'|[^\s\"'=<>`]++))?+)*+"
    r"\s*+/?>"
)


def _tame(markup: str) -> str:
    """Markup ``html.parser`` reads in linear time.

    CPython 3.11's parser rescans the rest of the document for each unclosed
    ``<a``, comment, CDATA section or attribute quote: quadratic, so 100 kB of
    ``<a`` takes seconds. Here comments, declarations and processing
    instructions are dropped (an unclosed comment hides the rest, as in a
    browser), a ``<`` that opens no complete tag becomes ``&lt;``, and quotes
    are removed from a tag whose quotes do not pair up. One pass, each
    character looked at a bounded number of times.
    """
    out: list[str] = []
    position = 0
    while True:
        start = markup.find("<", position)
        if start < 0:
            out.append(markup[position:])
            return "".join(out)
        out.append(markup[position:start])
        if markup.startswith("<!--", start):
            end = markup.find("-->", start + 4)
            if end < 0:
                return "".join(out)
            position = end + 3
            continue
        tag = _TAG.match(markup, start) or _DECLARATION.match(markup, start)
        if tag is None:
            out.append("&lt;")
            position = start + 1
            continue
        position = tag.end()
        text = tag.group()
        if text[1] in "!?":
            continue
        if ('"' in text or "'" in text) and not _WELL_FORMED_TAG.fullmatch(text):
            text = text.replace('"', "").replace("'", "")
        out.append(text)


#: not ``head``: mail often leaves it unclosed, and it holds no text but the title
_SKIPPED = frozenset({"script", "style", "title", "template", "xml", "noscript"})
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base"})
_BLOCKS = frozenset(
    "address article aside blockquote center dd div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody thead tfoot "
    "tr ul".split()
)
_QUOTE_CLASSES = frozenset(
    "gmail_quote gmail_quote_container gmail_extra yahoo_quoted protonmail_quote "
    "ntes-mailmaster-quote moz-cite-prefix zmail_extra".split()
)
#: elements after which the rest of the document is the quoted original: Outlook's
#: From/Sent block and the empty div above it, 139.com's <hr id="replySplit"> and its
#: container, NetEase 163/126's quote and the empty card div above "在 … 写道："
_CUT_IDS = frozenset(
    "divrplyfwdmsg appendonsend replysplit reply139content isreplycontent "
    "divneteasemailcard".split()
)
_HIDDEN = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)
_BORDERLESS = re.compile(r"border\s*:\s*none", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\n\r\f\u00a0]+")


class _HtmlText(HTMLParser):
    """Readable text: no tags, no script/style/hidden content, no quote containers;
    entities decoded; block elements and ``<br>`` break lines; runs of whitespace
    collapse to one space except in ``<pre>``; cells of a row are joined by a space."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line: list[str] = []
        self.line_has_text = False
        self.skip_tag: str | None = None
        self.skip_depth = 0
        self.pre = 0
        self.cut = False

    def _break(self, *, force: bool = False) -> None:
        line = "".join(self.line).rstrip()
        if force or line:
            self.lines.append(line)
            self.line = []
            self.line_has_text = False

    def _is_quote_or_hidden(self, tag: str, attributes: dict[str, str]) -> bool:
        classes = {name.removeprefix("x_") for name in attributes.get("class", "").split()}
        style = attributes.get("style", "")
        if tag == "blockquote":
            # Gmail's "indent more" is a borderless blockquote of the writer's own text
            return not _BORDERLESS.search(style)
        return bool(classes & _QUOTE_CLASSES) or bool(_HIDDEN.search(style))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.cut:
            return
        if self.skip_tag is not None:
            self.skip_depth += tag == self.skip_tag
            return
        attributes = {name: value or "" for name, value in attrs}
        if attributes.get("id", "").lower().removeprefix("x_") in _CUT_IDS:
            self.cut = True
            return
        if tag not in _VOID and (tag in _SKIPPED or self._is_quote_or_hidden(tag, attributes)):
            self.skip_tag, self.skip_depth = tag, 1
            return
        if tag == "br":
            self._break(force=True)
        elif tag in _BLOCKS:
            self._break()
        elif tag in {"td", "th"} and self.line_has_text:
            self.line.append(" ")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if self.cut:
            return
        if self.skip_tag is not None:
            self.skip_depth -= tag == self.skip_tag
            if self.skip_depth <= 0:
                self.skip_tag = None
            return
        if tag in _BLOCKS:
            self._break()
        if tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.cut or self.skip_tag is not None:
            return
        if self.pre:
            first, *rest = data.replace("\r\n", "\n").split("\n")
            self.line.append(first)
            for line in rest:
                self._break(force=True)
                self.line.append(line)
            self.line_has_text = True
            return
        text = _SPACES.sub(" ", data)
        if not self.line_has_text:
            text = text.lstrip()
        self.line.append(text)
        self.line_has_text = self.line_has_text or bool(text)

    def text(self) -> str:
        self._break()
        return re.sub(r"\n{3,}", "\n\n", "\n".join(self.lines))


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body, quote containers left out (see :class:`_HtmlText`)."""
    parser = _HtmlText()
    parser.feed(_tame(markup[:MAX_HTML_CHARS]))
    parser.close()
    return parser.text()


# -- quoted replies ---------------------------------------------------------------------------

_LONGEST_MARKER = 300
_SEPARATOR = re.compile(
    r"\s*[-_=]{2,}(?:\s|&nbsp;)*"
    r"(?:original message|original|replied message"
    r"|原始邮件|原始郵件|原邮件|邮件原件|回复的原邮件|回覆的原郵件)"
    r"(?:\s|&nbsp;)*[-_=]{2,}\s*",
    re.IGNORECASE,
)
_FROM_LINE = re.compile(r"\s*\**\s*(?:from|发件人|寄件者)\s*\**\s*[:：]", re.IGNORECASE)
_TIME_LINE = re.compile(
    r"\s*\**\s*(?:sent|sent time|date|发送时间|时间|日期|寄件日期)\s*\**\s*[:：]", re.IGNORECASE
)
_TIME_INLINE = re.compile(r"\b(?:sent|date)\s*:|发送时间\s*[:：]", re.IGNORECASE)
_ATTRIBUTION_START = re.compile(r"\s*(?:(?:on|at)\b|在)", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"(?:wrote|写道|寫道)\s*[:：]\s*$", re.IGNORECASE)
_CLOCK_TIME = re.compile(r"\d{1,2}[:：]\d{2}")
_LEFTOVER = re.compile(r"(?:[-_=\s*]|&nbsp;)*+(?:original|原始邮件)?(?:[-_=\s*]|&nbsp;)*+", re.I)


def _header_block_at(lines: list[str], index: int) -> bool:
    """``From:`` (``发件人:``, ``寄件者:``) then a time within three lines, as Outlook, QQ
    Mail, Foxmail and Gmail's forward write the original's headers; or all on one line."""
    line = lines[index]
    if not _FROM_LINE.match(line):
        return False
    if _TIME_INLINE.search(line):
        return True
    return any(_TIME_LINE.match(next_line) for next_line in lines[index + 1 : index + 4])


def _attribution_length(lines: list[str], index: int) -> int:
    """Lines taken by an ``On <date> <time>, <name> wrote:`` / ``在 <date> <time>，<name>
    写道：`` line at ``index`` (Gmail wraps it over two), or 0.

    Every client writes a time (``15:18``) and either starts with On/At/在 or
    names the address; so the customer's own "客服于11月20日写道：" stays.
    """
    for length in (1, 2):
        span = " ".join(lines[index : index + length])
        if len(span) > _LONGEST_MARKER or index + length > len(lines):
            return 0
        if (
            _ATTRIBUTION_END.search(span)
            and _CLOCK_TIME.search(span)
            and (_ATTRIBUTION_START.match(span) or "@" in span)
        ):
            return length
    return 0


def new_words(text: str) -> str:
    """The customer's new text: the history their mail client quoted is cut off.

    Lines starting with ``>`` are dropped wherever they are (so interleaved
    answers stay). Everything from the first of these on is the quoted original:
    a separator line (``-----Original Message-----``, QQ Mail's ``------------------
    原始邮件 ------------------`` even with the literal ``&nbsp;`` its text part
    has, NetEase's ``---- 回复的原邮件 ----`` / ``---- Replied Message ----``);
    a header block (see :func:`_header_block_at`); an attribution line not
    followed by ``>`` lines (one followed by them is only dropped). Leftover
    separator lines just above a cut (``_____``, QQ's bare ``Original``) go too.
    Otherwise the words are kept verbatim; only surrounding blank lines go.
    """
    lines = text.split("\n")
    kept: list[str] = []
    index = 0
    cut = False
    after_quote = False
    while index < len(lines):
        line = lines[index]
        if line.startswith(">"):
            index += 1
            after_quote = True
            continue
        if len(line) <= _LONGEST_MARKER:
            if _SEPARATOR.fullmatch(line) or _header_block_at(lines, index):
                cut = True
                break
            length = _attribution_length(lines, index)
            if length:
                following = next(
                    (later for later in lines[index + length :] if later.strip()), None
                )
                if following is None or not following.startswith(">"):
                    cut = True
                    break
                index += length
                continue
        if not (after_quote and not line.strip() and kept and not kept[-1].strip()):
            kept.append(line)
        after_quote = False
        index += 1
    while cut and kept and len(kept[-1]) <= _LONGEST_MARKER and _LEFTOVER.fullmatch(kept[-1]):
        kept.pop()
    while kept and not kept[-1].strip():
        kept.pop()
    start = 0
    while start < len(kept) and not kept[start].strip():
        start += 1
    return "\n".join(kept[start:])
