"""Logging that never shows a customer's phone number or full id.

Code logs masked values explicitly (:func:`mask_phone`, :func:`mask_id`); the
:class:`MaskingFilter` is a safety net that masks anything shaped like a
Chinese mobile number or a WeChat OpenID left in a message.
"""

from __future__ import annotations

import logging
import re

_PHONE = re.compile(r"(?<!\d)(\+?86)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_OPENID = re.compile(r"\b(o[A-Za-z0-9_-]{3})[A-Za-z0-9_-]{20,}([A-Za-z0-9_-]{4})\b")


def mask_phone(phone: str | None) -> str:
    """``+8613812345678`` → ``+86138****5678``."""
    if not phone:
        return "-"
    if len(phone) < 8:
        return "*" * len(phone)
    return phone[:-8] + "****" + phone[-4:]


def mask_id(value: str | None) -> str:
    """``wechat:oyORnuP8q7ou2gfYjqLzSIWZf0rs`` → ``wechat:oyOR…f0rs``; ``tel:`` ids as phones."""
    if not value:
        return "-"
    prefix, sep, rest = value.rpartition(":")
    if prefix == "tel":
        return "tel:" + mask_phone(rest)
    head = prefix + sep
    return head + (rest[:4] + "…" + rest[-4:] if len(rest) > 10 else rest[:2] + "…")


def mask_text(text: str) -> str:
    text = _PHONE.sub(lambda m: (m.group(1) or "") + m.group(2) + "****" + m.group(4), text)
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
