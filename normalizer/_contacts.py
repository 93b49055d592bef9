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
    return _valid_e164(raw.translate(_FULL_WIDTH).strip())


# Call-centre logs: caller ids as PBXs and contact-centre platforms write them.
_CALL_PARTY_PUNCTUATION = str.maketrans({"，": ",", "＃": "#", "＜": "<", "＞": ">", "：": ":"})
_CLID_NUMBER = re.compile(r"<([^<>]*)>\s*$")
_URI_USER = re.compile(r"(?:sips?|tel):([^@;]*)", re.IGNORECASE)
_ANONYMOUS = frozenset(
    {"anonymous", "unknown", "private", "restricted", "unavailable", "withheld", "blocked"}
)
_MARKED_EXTENSION = re.compile(
    r"\s*(?:[,;#]+|ext(?:ension|n)?\.?|x|转|分机)\s*([0-9]{1,6})\s*$", re.IGNORECASE | re.ASCII
)
_DASHED_EXTENSION = re.compile(r"\s*-\s*([0-9]{1,6})\s*$", re.ASCII)


def call_party_to_e164(raw: str | None) -> tuple[str | None, str | None]:
    """A caller or callee as a call-centre system logs it: (E.164 number, extension).

    Accepted spellings, after folding full-width digits and punctuation:

    * the number alone, or inside Asterisk's clid form ``"Zhang San" <13812345678>``
      or a SIP/tel URI (``sip:13812345678@10.0.0.1``);
    * ``+86``/``0086``/``86`` prefixes, landlines with their area code
      (``02161234567``, ``021-61234567``), mobiles with the ``0`` some
      switches put before out-of-town mobiles (``013812345678``);
    * service numbers ``400``/``800`` (``400-812-3123``). ``phonenumbers``
      accepts them itself, so no rule of ours is needed: 400 numbers are
      ``SHARED_COST``, 800 numbers ``TOLL_FREE``, and both format as
      ``+864008123123``. (They cannot be dialled from abroad, but the +86
      form is still the one spelling of the number, which is what a key needs.)
    * an extension after ``ext``, ``x``, ``#``, ``,`` (a dial-string pause),
      ``;``, ``转`` or ``分机`` (``02161234567,8001``, ``400-812-3123转8001``),
      or after a final dash when the number without it is valid and with it
      is not (``021-61234567-8001``; ``021-6123-4567`` stays one number).

    Everything else gives ``(None, None)``: empty or anonymous callers, internal
    extensions and queue numbers (``1001``, ``8001``), short service codes
    (``95588``), local numbers logged without their area code (``61234567``:
    which city is not in the text), and digits of other scripts, refused as in
    :func:`phone_to_e164`. An extension is only returned with a valid number.
    """
    if not raw:
        return None, None
    text = raw.translate(_FULL_WIDTH).translate(_CALL_PARTY_PUNCTUATION).strip()
    clid = _CLID_NUMBER.search(text)
    if clid:
        text = clid.group(1).strip()
    uri = _URI_USER.match(text)
    if uri:
        text = uri.group(1).strip()
    if not text or text.lower() in _ANONYMOUS:
        return None, None
    marked = _MARKED_EXTENSION.search(text)
    if marked:
        return _number_with_extension(text[: marked.start()], marked.group(1))
    number = _valid_e164(text)
    if number is not None:
        return number, None
    dashed = _DASHED_EXTENSION.search(text)
    if dashed:
        return _number_with_extension(text[: dashed.start()], dashed.group(1))
    return None, None


def _number_with_extension(text: str, extension: str) -> tuple[str | None, str | None]:
    number = _valid_e164(text)
    return (number, extension) if number is not None else (None, None)


def _valid_e164(text: str) -> str | None:
    if not _PHONE_TEXT.fullmatch(text):
        return None
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
