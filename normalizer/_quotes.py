"""The customer's new words in a reply, with the history their client quoted cut off.

A follow-up mail carries the whole conversation below the new words, in
whatever form the customer's client writes it: ``>`` lines, Outlook's header
block, QQ Mail's and NetEase's separators, Gmail's attribution line, in
English and Chinese. A complaint record must carry only the new words, or
every reply would repeat the history. :func:`new_words` holds the patterns and
says which; the HTML quote containers are left out earlier, by
:mod:`._html_text`.
"""

from __future__ import annotations

import re

_LONGEST_MARKER = 300
_SEPARATOR = re.compile(
    r"\s*[-_=]{2,}(?:\s|&nbsp;)*"
    r"(?:original message|original|replied message"
    r"|原始邮件|原始郵件|原邮件|邮件原件|回复的原邮件|回覆的原郵件)"
    r"(?:\s|&nbsp;)*[-_=]{2,}\s*",
    re.IGNORECASE,
)
_FROM_LINE = re.compile(r"\s*\**\s*(?:from|发件人|寄件者)\s*\**\s*[:：]", re.IGNORECASE)
_TIME_LINE = re.compile(
    r"\s*\**\s*(?:sent|sent time|date|发送时间|时间|日期|寄件日期)\s*\**\s*[:：]", re.IGNORECASE
)
_TIME_INLINE = re.compile(r"\b(?:sent|date)\s*:|发送时间\s*[:：]", re.IGNORECASE)
_ATTRIBUTION_START = re.compile(r"\s*(?:(?:on|at)\b|在)", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"(?:wrote|写道|寫道)\s*[:：]\s*$", re.IGNORECASE)
_CLOCK_TIME = re.compile(r"\d{1,2}[:：]\d{2}")
_LEFTOVER = re.compile(r"(?:[-_=\s*]|&nbsp;)*+(?:original|原始邮件)?(?:[-_=\s*]|&nbsp;)*+", re.I)


def _header_block_at(lines: list[str], index: int) -> bool:
    """``From:`` (``发件人:``, ``寄件者:``) then a time within three lines, as Outlook, QQ
    Mail, Foxmail and Gmail's forward write the original's headers; or all on one line."""
    line = lines[index]
    if not _FROM_LINE.match(line):
        return False
    if _TIME_INLINE.search(line):
        return True
    return any(_TIME_LINE.match(next_line) for next_line in lines[index + 1 : index + 4])


def _attribution_length(lines: list[str], index: int) -> int:
    """Lines taken by an ``On <date> <time>, <name> wrote:`` / ``在 <date> <time>，<name>
    写道：`` line at ``index`` (Gmail wraps it over two), or 0.

    Every client writes a time (``15:18``) and either starts with On/At/在 or
    names the address; so the customer's own "客服于11月20日写道：" stays.
    """
    for length in (1, 2):
        span = " ".join(lines[index : index + length])
        if len(span) > _LONGEST_MARKER or index + length > len(lines):
            return 0
        if (
            _ATTRIBUTION_END.search(span)
            and _CLOCK_TIME.search(span)
            and (_ATTRIBUTION_START.match(span) or "@" in span)
        ):
            return length
    return 0


def new_words(text: str) -> str:
    """The customer's new text: the history their mail client quoted is cut off.

    Lines starting with ``>`` are dropped wherever they are (so interleaved
    answers stay). Everything from the first of these on is the quoted original:
    a separator line (``-----Original Message-----``, QQ Mail's ``------------------
    原始邮件 ------------------`` even with the literal ``&nbsp;`` its text part
    has, NetEase's ``---- 回复的原邮件 ----`` / ``---- Replied Message ----``);
    a header block (see :func:`_header_block_at`); an attribution line not
    followed by ``>`` lines (one followed by them is only dropped). Leftover
    separator lines just above a cut (``_____``, QQ's bare ``Original``) go too.
    Otherwise the words are kept verbatim; only surrounding blank lines go.
    """
    lines = text.split("\n")
    kept: list[str] = []
    index = 0
    cut = False
    after_quote = False
    while index < len(lines):
        line = lines[index]
        if line.startswith(">"):
            index += 1
            after_quote = True
            continue
        if len(line) <= _LONGEST_MARKER:
            if _SEPARATOR.fullmatch(line) or _header_block_at(lines, index):
                cut = True
                break
            length = _attribution_length(lines, index)
            if length:
                following = next(
                    (later for later in lines[index + length :] if later.strip()), None
                )
                if following is None or not following.startswith(">"):
                    cut = True
                    break
                index += length
                continue
        if not (after_quote and not line.strip() and kept and not kept[-1].strip()):
            kept.append(line)
        after_quote = False
        index += 1
    while cut and kept and len(kept[-1]) <= _LONGEST_MARKER and _LEFTOVER.fullmatch(kept[-1]):
        kept.pop()
    while kept and not kept[-1].strip():
        kept.pop()
    start = 0
    while start < len(kept) and not kept[start].strip():
        start += 1
    return "\n".join(kept[start:])
