"""Contact normalization shared by channels: phone numbers to E.164."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().]")
_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_CN_LANDLINE = re.compile(r"^0([1-9]\d{1,2})(\d{7,8})$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def phone_to_e164(raw: str | None) -> str | None:
    """Chinese mobile and landline numbers, and anything already international, as E.164.

    ``138 1234 5678``, ``+86 138-1234-5678``, ``008613812345678`` and
    ``8613812345678`` all give ``+8613812345678``; ``021-6123 4567`` gives
    ``+862161234567``. Returns None when the text is not a usable number.
    """
    if not raw:
        return None
    digits = _SEPARATORS.sub("", raw.strip())
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if digits.startswith("+"):
        if digits.startswith("+86"):
            national = digits[3:]
            if national.startswith("0"):
                national = national[1:]
            return "+86" + national if national.isdigit() and 7 <= len(national) <= 11 else None
        return digits if _E164.match(digits) else None
    if not digits.isdigit():
        return None
    if digits.startswith("86") and _CN_MOBILE.match(digits[2:]):
        return "+" + digits
    if _CN_MOBILE.match(digits):
        return "+86" + digits
    landline = _CN_LANDLINE.match(digits)
    if landline:
        return "+86" + landline.group(1) + landline.group(2)
    return None
