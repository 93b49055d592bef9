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

**Reading.** Charsets and encoded words are decoded by :mod:`._charsets`; the
body text and the attachments are chosen by :mod:`._mail_parts` (HTML through
:mod:`._html_text`); quoted replies are cut by :func:`._quotes.new_words`.
This module reads the headers and says whether a machine sent the mail.

**Bounds.** Mail nested so deep that the stdlib parser itself gives up (about
1000 levels) is refused; the part walk has its own bounds. Every step is
linear in the size of the mail.

**Errors.** :class:`MalformedPayload` only when there is no mail at all: empty
bytes (``missing_field``), or no header field of a mail (``invalid_field``).
Anything else broken is read as well as it can be.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime

from connectors.errors import MalformedPayload
from normalizer._charsets import decode_header_text, raw_text
from normalizer._mail_parts import MailAttachment, mime_param, read_parts, sha256_ref
from normalizer._quotes import new_words

MAX_HEADER_CHARS = 16_384
#: Content-Type and Content-Disposition: the stdlib's parameter parser is
#: quadratic in their length (many ``;`` inside quotes), so they are kept short.
MAX_MIME_HEADER_CHARS = 1_024
MAX_ADDRESSES = 100

_MIME_HEADERS = frozenset({"content-type", "content-disposition"})
_MAIL_HEADERS = frozenset(
    "from sender to cc date subject message-id in-reply-to references reply-to received "
    "return-path delivered-to mime-version content-type".split()
)


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
    texts, attachments = read_parts(message)
    text = new_words("\n".join(texts))
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
        attachments=tuple(attachments),
        automated=_automation(message, subject, from_address),
        fallback_key=sha256_ref(fallback.encode("utf-8", "surrogatepass")),
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
        spec = raw_text(address).strip().lower()
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
    text = raw_text(value)
    match = _BRACKETED_ID.search(text)
    if match:
        return "".join(match.group(1).split()) or None
    tokens = text.split()
    return tokens[0] if len(tokens) == 1 and "@" in tokens[0] else None


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
        report = (mime_param(message, "report-type") or "").lower()
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
