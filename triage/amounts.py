"""Money amounts in a complaint's words: ``订单4599元``, ``花了两千多``, ``¥4,599``.

:func:`find_amounts` finds what reads as money and returns each amount with the
words before it in its clause (:attr:`Amount.context`), so the caller's rules
can tell an order value (``订单``, ``花了``, ``一年消费``) from a price seen but not
paid (``看到标价3000元``) or a claim (``赔偿3000元``).

What reads as money:

* a number with a currency word or sign: ``4599元``, ``4599.00 块``, ``¥4599``,
  ``1.5万元``, ``两千多块``, ``三万二元``;
* a number right after a money word, even without a unit: ``订单4599``,
  ``花了两千多``, ``消费2万多``, ``实付 4599``;
* a number grouped in thousands: ``4,599``.

Limits: ``多`` / ``余`` / ``来`` / ``几`` give the lower bound (``两千多`` is 2000), and
so do ranges (``两三千`` is 2000); digits read one by one (``四五九九元``) are read;
a bare number with no money word (``4599``) is not an amount, nor is a number
that is part of a longer run of digits (an order number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from triage.scanning import Scanner
from triage.text import read_spoken_digits

_CHINESE_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CHINESE_UNITS = {"十": 10, "百": 100, "千": 1000}
_MAGNITUDES = {"万": Decimal(10000), "w": Decimal(10000), "千": Decimal(1000), "k": Decimal(1000)}

_NUMBER = r"(?<![\d.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d])"
_CHINESE = r"[零〇一二两三四五六七八九十][零〇一二两三四五六七八九十百千万]*"
_ABOUT = r"(?:多|余|来|几)?"
_UNIT = r"(?:元|块钱|块|圆|rmb|人民币)"
#: After a money word without a unit, a counter word means it was not money: 买了两台.
_NOT_MONEY = r"(?!\s*[台个件只双套次天年月日号瓶盒箱袋斤克张部本份根条位人])"
_CHINESE_WITH_UNIT = r"[零〇一二两三四五六七八九十]*[十百千万][零〇一二两三四五六七八九十百千万]*"
_MONEY_WORD = (
    r"花了|花|消费了?|付了|支付了?|实付(?:款)?|付款|金额|价值|货款|总价|总共|一共|共计"
    r"|订单(?!号|编号)|买的|买了|收了|收我|扣了|扣我|刷了|充了|充值了?|储值了?"
)
_MAGNITUDE = r"(万|千|w|k)?"
#: The forms of an amount, tried in this order where two start at one place. Each
#: captures (number, magnitude) or a Chinese numeral, in the groups named by _FORMS.
_FORMS: tuple[tuple[str, tuple[int | None, int | None, int | None]], ...] = (
    # ¥4599, rmb 4599
    (rf"(?:¥|rmb|人民币)\s*({_NUMBER}){_MAGNITUDE}", (1, 2, None)),
    # 4599元, 1.5万元, 4599.00 块
    (rf"({_NUMBER})\s*{_MAGNITUDE}{_ABOUT}\s*{_UNIT}", (1, 2, None)),
    # 两千多块
    (rf"({_CHINESE}){_ABOUT}{_UNIT}", (None, None, 1)),
    # 订单4599, 花了两千多, 消费2万多
    (
        rf"(?:{_MONEY_WORD})[:\s]*(?:({_NUMBER}){_MAGNITUDE}|({_CHINESE_WITH_UNIT}))"
        rf"{_ABOUT}(?:\s*{_UNIT}|{_NOT_MONEY})",
        (1, 2, 3),
    ),
    # 4,599
    (r"(?<![\d.,])(\d{1,3}(?:,\d{3})+(?:\.\d+)?)(?![\d])", (1, None, None)),
)
_FORM_PATTERNS = tuple(re.compile(form) for form, _ in _FORMS)
_SCANNER = Scanner([form for form, _ in _FORMS])
#: Where the words before an amount stop: a sentence end, or a comma that is not a
#: thousands separator.
_CLAUSE_END = re.compile(r"[。!?;\n]|,(?!\d{3})|(?<!\d),")
_QUOTE_CONTEXT = 4
_ANY_NUMBER = re.compile(r"[\d零〇一二两三四五六七八九十]")


@dataclass(frozen=True, slots=True)
class Amount:
    """An amount of money found in the text, in yuan."""

    yuan: Decimal
    #: The words before the amount in its clause, after any earlier amount.
    context: str
    #: The amount as written, with up to four characters before it: ``订单4599元``.
    quote: str


def chinese_number(numeral: str) -> int | None:
    """The value of a Chinese numeral: ``四千五百九十九`` → 4599, ``两千五`` → 2500.

    Colloquial tails count (``两千五`` is 2500, ``三万二`` is 32000); a range
    gives its lower end (``两三千`` → 2000). ``None`` if it is not a numeral.
    """
    total = section = 0
    digit: int | None = None
    last_unit = 1
    seen = False
    for char in numeral:
        if char in _CHINESE_DIGITS:
            if digit is None:
                digit = _CHINESE_DIGITS[char]
            if digit == 0:
                digit, last_unit = None, 1
            seen = True
        elif char in _CHINESE_UNITS:
            unit = _CHINESE_UNITS[char]
            section += (1 if digit is None else digit) * unit
            digit, last_unit, seen = None, unit, True
        elif char == "万":
            total += (section + (digit or 0) or 1) * 10000
            section, digit, last_unit, seen = 0, None, 10000, True
        else:
            return None
    if not seen:
        return None
    if digit is not None:
        section += digit * (last_unit // 10 if last_unit >= 10 else 1)
    return total + section


def find_amounts(simplified: str) -> tuple[Amount, ...]:
    """Every amount of money in a text :func:`~triage.text.simplify` returned, in order."""
    if not _ANY_NUMBER.search(simplified):
        return ()
    folded = read_spoken_digits(simplified)
    amounts: list[Amount] = []
    previous_end = 0
    for form, start, end in _SCANNER.finditer(folded):
        match = _FORM_PATTERNS[form].match(folded, start)
        yuan = _yuan(match, _FORMS[form][1]) if match else None
        if yuan is None or yuan <= 0:
            continue
        clause_start = previous_end
        for boundary in _CLAUSE_END.finditer(folded, previous_end, start):
            clause_start = boundary.end()
        quote_start = max(clause_start, start - _QUOTE_CONTEXT)
        amounts.append(
            Amount(
                yuan=yuan,
                context=folded[clause_start:start],
                quote=folded[quote_start:end].strip(),
            )
        )
        previous_end = end
    return tuple(amounts)


def _yuan(
    match: re.Match[str], groups: tuple[int | None, int | None, int | None]
) -> Decimal | None:
    number, magnitude, numeral = (None if g is None else match.group(g) for g in groups)
    if number is not None:
        scale = _MAGNITUDES.get(magnitude or "", Decimal(1))
        return Decimal(number.replace(",", "")) * scale
    value = chinese_number(numeral) if numeral else None
    return None if value is None else Decimal(value)
