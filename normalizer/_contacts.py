"""Contact normalization shared by channels: phone numbers to E.164.

A phone number becomes part of a customer id (``tel:+86...``) and so of the
Kafka key, so one number must have exactly one spelling. Chinese keyboards
type full-width digits and punctuation; those are folded to ASCII. Every other
non-ASCII character is refused rather than guessed at: ``phonenumbers`` would
happily read Arabic-Indic or Devanagari digits, giving a look-alike customer.
"""

from __future__ import annotations

import re

import phonenumbers

_FULL_WIDTH = str.maketrans(
    {
        **{chr(0xFF10 + n): str(n) for n in range(10)},
        "＋": "+",
        "\u3000": " ",
        "－": "-",
        "（": "(",
        "）": ")",
        "．": ".",
    }
)
_PHONE_TEXT = re.compile(r"[0-9+\s\-().]+", re.ASCII)


def phone_to_e164(raw: str | None) -> str | None:
    """Chinese mobile and landline numbers, and anything already international, as E.164.

    ``138 1234 5678``, ``+86 138-1234-5678``, ``008613812345678`` and
    ``8613812345678`` all give ``+8613812345678``; ``021-6123 4567`` gives
    ``+862161234567``. Returns None when the text is not a usable number:
    letters, digits of other scripts, or a number no carrier could assign
    (``+86000000000000``), as ``phonenumbers`` judges with its metadata.
    """
    if not raw:
        return None
    text = raw.translate(_FULL_WIDTH).strip()
    if not _PHONE_TEXT.fullmatch(text):
        return None
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
