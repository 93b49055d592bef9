"""Which parts of a mail are its text and which its attachments: the MIME tree walk.

A customer's words may sit in a text/plain part, only in an HTML
alternative, or in several text parts of a multipart/mixed; everything else
(photos of the product, a forwarded receipt) is evidence to reference, never
to inline. :func:`read_parts` walks the tree once, in document order, and
decides for each part.

**Body.** multipart/alternative gives its text/plain part unless that part is
blank, then the HTML; the text parts of a multipart/mixed are joined in order;
a multipart/report gives its first, human-readable part. Every other leaf is
an attachment, as is any part with a filename or ``Content-Disposition:
attachment`` (a .txt file too), and every message/* part, which is not
descended into. An HTML part without a MIME charset uses its ``<meta
charset>``; HTML becomes text through :func:`normalizer._html_text.html_to_text`;
a ``format=flowed`` part is unflowed (RFC 3676).

**Bounds.** At most :data:`MAX_PARTS` parts are walked and nothing deeper than
:data:`MAX_DEPTH`; what lies beyond is ignored, not refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.message import Message

from normalizer._charsets import decode_header_text, decode_text, raw_bytes
from normalizer._html_text import html_to_text

MAX_PARTS = 200
MAX_DEPTH = 16


@dataclass(frozen=True)
class MailAttachment:
    """An attachment, referenced by the hash of its decoded bytes, never inlined."""

    name: str | None
    media_type: str
    size: int
    sha256: str


def read_parts(message: Message) -> tuple[list[str], list[MailAttachment]]:
    """The text of each body part in document order, and every attachment."""
    walk = _Walk()
    walk.visit(message, 0, True)
    return walk.texts, walk.attachments


def mime_param(part: Message, name: str, header: str = "content-type") -> str | None:
    """A MIME parameter as text, RFC 2231 (``name*=UTF-8''%E6...``) and encoded words decoded."""
    value = part.get_param(name, None, header)
    if value is None:
        return None
    if isinstance(value, tuple):
        charset, _, text = value
        try:
            data = text.encode("latin-1", "surrogateescape")  # the stdlib unquotes to latin-1
        except UnicodeEncodeError:
            data = raw_bytes(text)
        return decode_text(data, charset or None).strip() or None
    return decode_header_text(value) or None


_BODY_TYPES = frozenset({"text/plain", "text/html"})


def _is_attachment(part: Message, media_type: str) -> bool:
    if media_type.startswith("message/"):
        return True
    if part.is_multipart():
        return False
    if part.get_content_disposition() == "attachment" or media_type not in _BODY_TYPES:
        return True
    return mime_param(part, "filename", "content-disposition") is not None or (
        mime_param(part, "name") is not None
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
    head = b"".join(raw_bytes(f"{name}: {value}\r\n") for name, value in message.raw_items())
    if not message.is_multipart():
        return head + b"\r\n" + (_content(message) or b"")
    children = [_written(child) for child in _children(message)]
    boundary = raw_bytes(message.get_boundary() or "")
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
    name = mime_param(part, "filename", "content-disposition") or mime_param(part, "name")
    return MailAttachment(
        name=name, media_type=media_type, size=len(content), sha256=sha256_ref(content)
    )


def sha256_ref(data: bytes) -> str:
    """``sha256:<hex>``, the form in which a mail and its attachments are referenced."""
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
    if (mime_param(part, "format") or "").lower() == "flowed":
        text = _unflow(text, delsp=(mime_param(part, "delsp") or "").lower() == "yes")
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
