"""Reading single fields of a platform's JSON: what every marketplace and Weibo normalizer needs.

Each reader takes what arrived or raises :class:`MalformedPayload` naming the
field (``where`` is the object it sits in, ``refund`` or ``data``), so a bad
message is quarantined with a clear reason instead of being guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors.errors import MalformedPayload

_CONTROL_FREE = "[^\\x00-\\x1f\\x7f]"


def identifier(data: Mapping[str, Any], name: str, *, where: str, longest: int = 128) -> str | None:
    """An id as the exact text or digits that came (a JSON integer keeps every digit)."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and re.fullmatch(f"{_CONTROL_FREE}{{1,{longest}}}", value):
        return value
    raise MalformedPayload(f"{where}.{name} must be an id (digits or short text)", "invalid_field")


def optional_text(data: Mapping[str, Any], name: str, *, where: str) -> str | None:
    """Text as it came; None when absent or blank."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedPayload(f"{where}.{name} must be text", "invalid_field")
    return value if value.strip() else None


def text(data: Mapping[str, Any], name: str, *, what: str, required: bool = False) -> str:
    """Text as it came, ``""`` when absent; ``required`` makes absence a missing field."""
    value = data.get(name)
    if value is None:
        if required:
            raise MalformedPayload(f"{what} has no {name}", "missing_field")
        return ""
    if not isinstance(value, str):
        raise MalformedPayload(f"{name} is not text", "invalid_field")
    return value


def unmasked(handle: str | None) -> str | None:
    """A buyer handle that names one buyer, or None for one the platform masked
    (``t**1``, ``jd_1***5``: any ``*``), which many buyers share and so is no identity."""
    return None if handle is None or "*" in handle else handle
