"""HTML mail bodies as readable text, without the quoted history: pure and linear.

Many clients (Outlook, QQ Mail, NetEase, Gmail) send the customer's words only
as HTML, or put the quoted original only in the HTML's quote containers.
:func:`html_to_text` drops tags, script, style, hidden content and those
containers, so what is left is what the customer wrote; :mod:`._quotes` then
cuts what was quoted as plain text.

``html.parser`` is quadratic on unclosed markup and takes about a second per
megabyte of dense markup, so the markup is first made linear to parse
(:func:`_tame`) and cut to :data:`MAX_HTML_CHARS`.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: ``html.parser`` takes about a second per megabyte of dense markup; beyond this the
#: rest of an HTML part (quoted history and footers, in practice) is not read
MAX_HTML_CHARS = 1_000_000

_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_DECLARATION = re.compile(r"<[!?][^<>]*>")
_WELL_FORMED_TAG = re.compile(
    r"</?[A-Za-z][^\s/>]*+"
    r"(?:\s++[^\s\"'=<>/]++(?:\s*+=\s*+(?:\"[^\"]*+\"|'[^']*+'|[^\s\"'=<>`]++))?+)*+"
    r"\s*+/?>"
)


def _tame(markup: str) -> str:
    """Markup ``html.parser`` reads in linear time.

    CPython 3.11's parser rescans the rest of the document for each unclosed
    ``<a``, comment, CDATA section or attribute quote: quadratic, so 100 kB of
    ``<a`` takes seconds. Here comments, declarations and processing
    instructions are dropped (an unclosed comment hides the rest, as in a
    browser), a ``<`` that opens no complete tag becomes ``&lt;``, and quotes
    are removed from a tag whose quotes do not pair up. One pass, each
    character looked at a bounded number of times.
    """
    out: list[str] = []
    position = 0
    while True:
        start = markup.find("<", position)
        if start < 0:
            out.append(markup[position:])
            return "".join(out)
        out.append(markup[position:start])
        if markup.startswith("<!--", start):
            end = markup.find("-->", start + 4)
            if end < 0:
                return "".join(out)
            position = end + 3
            continue
        tag = _TAG.match(markup, start) or _DECLARATION.match(markup, start)
        if tag is None:
            out.append("&lt;")
            position = start + 1
            continue
        position = tag.end()
        text = tag.group()
        if text[1] in "!?":
            continue
        if ('"' in text or "'" in text) and not _WELL_FORMED_TAG.fullmatch(text):
            text = text.replace('"', "").replace("'", "")
        out.append(text)


#: not ``head``: mail often leaves it unclosed, and it holds no text but the title
_SKIPPED = frozenset({"script", "style", "title", "template", "xml", "noscript"})
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base"})
_BLOCKS = frozenset(
    "address article aside blockquote center dd div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody thead tfoot "
    "tr ul".split()
)
_QUOTE_CLASSES = frozenset(
    "gmail_quote gmail_quote_container gmail_extra yahoo_quoted protonmail_quote "
    "ntes-mailmaster-quote moz-cite-prefix zmail_extra".split()
)
#: elements after which the rest of the document is the quoted original: Outlook's
#: From/Sent block and the empty div above it, 139.com's <hr id="replySplit"> and its
#: container, NetEase 163/126's quote and the empty card div above "在 … 写道："
_CUT_IDS = frozenset(
    "divrplyfwdmsg appendonsend replysplit reply139content isreplycontent "
    "divneteasemailcard".split()
)
_HIDDEN = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)
_BORDERLESS = re.compile(r"border\s*:\s*none", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\n\r\f\u00a0]+")


class _HtmlText(HTMLParser):
    """Readable text: no tags, no script/style/hidden content, no quote containers;
    entities decoded; block elements and ``<br>`` break lines; runs of whitespace
    collapse to one space except in ``<pre>``; cells of a row are joined by a space."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line: list[str] = []
        self.line_has_text = False
        self.skip_tag: str | None = None
        self.skip_depth = 0
        self.pre = 0
        self.cut = False

    def _break(self, *, force: bool = False) -> None:
        line = "".join(self.line).rstrip()
        if force or line:
            self.lines.append(line)
            self.line = []
            self.line_has_text = False

    def _is_quote_or_hidden(self, tag: str, attributes: dict[str, str]) -> bool:
        classes = {name.removeprefix("x_") for name in attributes.get("class", "").split()}
        style = attributes.get("style", "")
        if tag == "blockquote":
            # Gmail's "indent more" is a borderless blockquote of the writer's own text
            return not _BORDERLESS.search(style)
        return bool(classes & _QUOTE_CLASSES) or bool(_HIDDEN.search(style))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.cut:
            return
        if self.skip_tag is not None:
            self.skip_depth += tag == self.skip_tag
            return
        attributes = {name: value or "" for name, value in attrs}
        if attributes.get("id", "").lower().removeprefix("x_") in _CUT_IDS:
            self.cut = True
            return
        if tag not in _VOID and (tag in _SKIPPED or self._is_quote_or_hidden(tag, attributes)):
            self.skip_tag, self.skip_depth = tag, 1
            return
        if tag == "br":
            self._break(force=True)
        elif tag in _BLOCKS:
            self._break()
        elif tag in {"td", "th"} and self.line_has_text:
            self.line.append(" ")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if self.cut:
            return
        if self.skip_tag is not None:
            self.skip_depth -= tag == self.skip_tag
            if self.skip_depth <= 0:
                self.skip_tag = None
            return
        if tag in _BLOCKS:
            self._break()
        if tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.cut or self.skip_tag is not None:
            return
        if self.pre:
            first, *rest = data.replace("\r\n", "\n").split("\n")
            self.line.append(first)
            for line in rest:
                self._break(force=True)
                self.line.append(line)
            self.line_has_text = True
            return
        text = _SPACES.sub(" ", data)
        if not self.line_has_text:
            text = text.lstrip()
        self.line.append(text)
        self.line_has_text = self.line_has_text or bool(text)

    def text(self) -> str:
        self._break()
        return re.sub(r"\n{3,}", "\n\n", "\n".join(self.lines))


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body, quote containers left out (see :class:`_HtmlText`)."""
    parser = _HtmlText()
    parser.feed(_tame(markup[:MAX_HTML_CHARS]))
    parser.close()
    return parser.text()
