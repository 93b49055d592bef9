"""What a record offers as evidence that it repeats an earlier one.

Pure functions of the record: the order ids it names (structured, or in the
text: spaced in groups, read out in Chinese digits with 杠 for the dash), the
phone numbers and phone tails it gives, its product, and a sketch of its
words for text similarity. :func:`lookups` lists the keys an entry is filed
under and a new record looks for.

The text sketch is a bottom-k MinHash over character bigrams of the
simplified text (traditional folded to simplified, punctuation and spacing
dropped): the ``SKETCH_SIZE`` smallest CRC-32 values of the bigram set. The
Jaccard similarity of two texts is estimated from the two sketches alone,
and two similar texts share their smallest values, which is how the index
finds them.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable

from triage.text import read_spoken_digits, simplify

#: How many minimum hashes a sketch keeps, and how many of them an entry is filed under.
SKETCH_SIZE = 24
SKETCH_LOOKUPS = 4

#: An order id has at least this many digits (a date has eight, a phone eleven).
_MIN_ORDER_DIGITS = 9
_DIGIT_RUN = re.compile(r"[A-Za-z]{0,4}\d[\d\s\-_/—－]{5,}\d")
_NOT_DIGIT = re.compile(r"\D")
_MOBILE = re.compile(r"^(?:86)?(1[3-9]\d{9})$")
_MASKED = re.compile(r"(1[3-9]\d)\s*[*＊xX×]{4}\s*(\d{4})")
_TAIL = re.compile(r"(?:尾号|后四位|末四位|尾数|後四位|尾號)(?:是|为|為)?\s*[:：]?\s*(\d{4})(?!\d)")
_WORD = re.compile(r"[^\w]|_", re.UNICODE)
#: A Weibo account named in the words (``微博id 4667141825``): that account's key.
_WEIBO_UID = re.compile(r"(?:微博|weibo)\s*(?:id|uid|号|账号|帐号)?\s*[:：]?\s*@?(\d{6,12})(?!\d)")
#: Dates and clock times are cut out before digit runs are read: ``2026-11-03 14:20`` is no order.
_DATE_OR_TIME = re.compile(
    r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}日?"
    r"|\d{1,2}\s*[:：]\s*\d{2}(?:[:：]\d{2})?"
)


# Every function below takes the customer's text as written; ``simplified=True`` says it
# already went through :func:`triage.text.simplify` (the linker simplifies once per record).


def mentions_in(text: str, *, simplified: bool = False) -> set[str]:
    """Channel keys the customer names in their words: ``weibo:<uid>``."""
    text = text if simplified else simplify(text)
    return {f"weibo:{m.group(1)}" for m in _WEIBO_UID.finditer(text)}


def text_numbers(
    text: str, *, simplified: bool = False
) -> tuple[set[str], set[str], set[str], set[str]]:
    """Order ids, mobile numbers, masked numbers (``138*5120``) and tails in ``text``."""
    text = text if simplified else simplify(text)
    readable = _DATE_OR_TIME.sub("|", read_spoken_digits(text))
    readable = _WEIBO_UID.sub("|", readable)
    orders: set[str] = set()
    phones: set[str] = set()
    for match in _DIGIT_RUN.finditer(readable):
        digits = _NOT_DIGIT.sub("", match.group())
        mobile = _MOBILE.match(digits)
        if mobile:
            phones.add(mobile.group(1))
        elif len(digits) >= _MIN_ORDER_DIGITS:
            orders.add(digits)
    masked = {f"{m.group(1)}*{m.group(2)}" for m in _MASKED.finditer(readable)}
    tails = {m.group(1) for m in _TAIL.finditer(readable)}
    return orders, phones, masked, tails


def order_key(order_id: str) -> str:
    """The comparable form of an order id: its digits, or its letters and digits if few digits."""
    simplified = read_spoken_digits(simplify(order_id))
    digits = _NOT_DIGIT.sub("", simplified)
    if len(digits) >= 6:
        return digits
    return _WORD.sub("", simplified).upper()


def phone_number(e164: str | None) -> str | None:
    """A mainland mobile number without ``+86``, the form a customer writes it in."""
    if not e164:
        return None
    digits = _NOT_DIGIT.sub("", e164)
    mobile = _MOBILE.match(digits)
    return mobile.group(1) if mobile else digits


def same_order(a: str, b: str) -> bool:
    """The same order id, also when one of the two lost its last digit (never two neighbours)."""
    if a == b:
        return True
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return len(long) == len(short) + 1 and len(short) >= _MIN_ORDER_DIGITS and long[:-1] == short


def sketch(text: str, *, simplified: bool = False) -> tuple[int, ...]:
    """The bottom-k MinHash of the text's character bigrams (sorted ascending).

    Each bigram is hashed as its 8 bytes of UTF-32, sliced from one encoding
    of the whole text (one ``encode`` instead of one per bigram).
    """
    words = _WORD.sub("", text if simplified else simplify(text))
    if len(words) < 2:
        return ()
    raw = words.encode("utf-32-le")
    crc = zlib.crc32
    hashes = {crc(raw[i : i + 8]) for i in range(0, len(raw) - 4, 4)}
    return tuple(sorted(hashes)[:SKETCH_SIZE])


def similarity(a: tuple[int, ...], b: tuple[int, ...], *, at_least: float = 0.0) -> float:
    """Estimated Jaccard similarity of two texts from their sketches (0 when either is empty).

    The bottom-k estimate: of the k smallest values of both sketches together,
    the share that is in both. It can be no more than the share of values the
    two sketches have in common, so below ``at_least`` that bound is returned
    without computing the estimate.
    """
    if not a or not b:
        return 0.0
    both = set(a).intersection(b)
    k = min(len(a), len(b))
    if len(both) < at_least * k or not both:
        return len(both) / k
    union = sorted(set(a).union(b))[:k]
    return sum(1 for value in union if value in both) / k


def lookups(
    *,
    person: str,
    keys: Iterable[str] = (),
    orders: Iterable[str],
    phones: Iterable[str],
    masked: Iterable[str],
    tails: Iterable[str],
    text_sketch: tuple[int, ...],
    product: str | None,
    faults: Iterable[str] = (),
) -> tuple[str, ...]:
    """The keys an entry is filed under; a new record looks up the same keys.

    An order id is filed under itself and under itself without its last
    digit, so a report that lost the last digit finds the full id and the
    other way round (neighbours find each other too, and :func:`same_order`
    then tells them apart). Phones of every form are filed under their last
    four digits; similarity of text under the sketch's smallest values.
    """
    keys = [f"p:{person}", *(f"k:{key}" for key in keys)]
    for order in orders:
        keys.append(f"o:{order}")
        if len(order) > _MIN_ORDER_DIGITS:
            keys.append(f"o:{order[:-1]}")
    tails_all = {p[-4:] for p in phones} | {m[-4:] for m in masked} | set(tails)
    keys.extend(f"t:{tail}" for tail in sorted(tails_all))
    keys.extend(f"h:{value}" for value in text_sketch[:SKETCH_LOOKUPS])
    keys.extend(f"f:{fault}" for fault in sorted(faults))
    return tuple(dict.fromkeys(keys))
