"""Logging that never shows a customer's phone number or full id.

Code logs masked values explicitly (:func:`mask_phone`, :func:`mask_id`); the
:class:`MaskingFilter` is a safety net that masks anything shaped like a
Chinese mobile number, a WeChat OpenID or a customer id (``tel:``,
``member:``, ``wechat:``) left in a message. :func:`mask_text` also masks the
previews ``complaint-gateway quarantine`` prints of bodies nobody could read,
so it takes phone numbers as customers type them: spaced, hyphenated, or in
full-width (or any other script's) digits.
"""

from __future__ import annotations

import logging
import re

_SEP = r"[ \-\u3000\uff0d]?"
# ``\d`` is any Unicode digit here; _mask_phone checks the number is a mobile one.
_PHONE = re.compile(rf"(?<!\d)(?:[+＋]?\d\d{_SEP})?(\d{{3}}){_SEP}(\d{{4}}){_SEP}(\d{{4}})(?!\d)")
_CUSTOMER_ID = re.compile(r"\b(?:tel|member|wechat):[^\s\"'<>&,;\\]+")
_OPENID = re.compile(r"\b(o[A-Za-z0-9_-]{3})[A-Za-z0-9_-]{20,}([A-Za-z0-9_-]{4})\b")


def mask_phone(phone: str | None) -> str:
    """``+8613812345678`` → ``+86138****5678``."""
    if not phone:
        return "-"
    if len(phone) < 8:
        return "*" * len(phone)
    return phone[:-8] + "****" + phone[-4:]


def mask_id(value: str | None) -> str:
    """``wechat:oyORnuP8q7ou2gfYjqLzSIWZf0rs`` → ``wechat:oyOR…f0rs``; ``tel:`` ids as phones.

    Only the scheme, up to the first colon, is kept whole: what follows is the
    customer's own identity even when it has colons of its own
    (``member:110101198801011234:a`` → ``member:1101…34:a``).
    """
    if not value:
        return "-"
    scheme, sep, rest = value.partition(":")
    if not sep:
        scheme, rest = "", value
    if scheme == "tel":
        return "tel:" + mask_phone(rest)
    return scheme + sep + (rest[:4] + "…" + rest[-4:] if len(rest) > 10 else rest[:2] + "…")


def mask_email(address: str | None) -> str:
    """``zhang.wei@example.com`` → ``z***@example.com``."""
    if not address:
        return "-"
    local, at, domain = address.rpartition("@")
    if not at:
        return address[:1] + "***"
    return local[:1] + "***@" + domain


def mask_recipient(channel: str, recipient: str) -> str:
    """A notification's recipient as logs and outcomes show it."""
    if channel == "sms":
        return mask_phone(recipient)
    if channel == "email":
        return mask_email(recipient)
    return mask_id(recipient)


def _mask_customer_id(match: re.Match[str]) -> str:
    value = match.group(0)
    return value if "…" in value else mask_id(value)  # already masked by the caller


def _mask_phone(match: re.Match[str]) -> str:
    if not 130 <= int(match.group(1)) <= 199:
        return match.group(0)
    start, end = match.span()
    middle_start, middle_end = match.span(2)
    text = match.string
    return text[start:middle_start] + "****" + text[middle_end:end]


def mask_text(text: str) -> str:
    text = _CUSTOMER_ID.sub(_mask_customer_id, text)
    text = _PHONE.sub(_mask_phone, text)
    return _OPENID.sub(lambda m: m.group(1) + "…" + m.group(2), text)


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request's full URL at INFO, and WeChat puts the AppSecret and the
    # access_token in query strings: its request lines never reach the log.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
