"""Safe, bounded XML parsing for XML-speaking platforms (WeChat and its relatives).

Documents with a DTD, entity declarations or external references are refused
outright, so no payload can expand entities ("billion laughs") or make us
fetch a URL (XXE). Parsing uses expat directly with those handlers raising,
as defusedxml does, and builds the flat dict WeChat messages need without an
element tree. The work is linear in the size of the document, and the
document is capped in elements and depth (a WeChat push has about ten
elements, two levels deep), so a hostile body is refused early and cheaply.

Values are text (a leaf element), a dict (an element with children) or a
list (a repeated element). Code that needs a field to be text asks for it
with :func:`text_field`, so ``<Content>a<b>x</b></Content>`` is refused
rather than read as the text of a Python dict.
"""

from __future__ import annotations

import re
from typing import Any
from xml.parsers import expat

from connectors.errors import MalformedPayload

MAX_ELEMENTS = 1000
MAX_DEPTH = 16


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _refuse_dtd(*_: object) -> Any:
    raise _Refused("xml_dtd_refused", "XML with a DTD or entity declarations is refused")


class _Builder:
    """Elements with children become dicts; leaves become their text (verbatim)."""

    def __init__(self, max_elements: int, max_depth: int) -> None:
        self.stack: list[tuple[dict[str, Any], list[str]]] = []
        self.root: dict[str, Any] | None = None
        self.elements = 0
        self.max_elements = max_elements
        self.max_depth = max_depth

    def start(self, _tag: str, _attrs: object) -> None:
        self.elements += 1
        if self.elements > self.max_elements:
            raise _Refused("xml_too_large", f"XML has more than {self.max_elements} elements")
        if len(self.stack) >= self.max_depth:
            raise _Refused("xml_too_large", f"XML is nested deeper than {self.max_depth}")
        self.stack.append(({}, []))

    def end(self, tag: str) -> None:
        children, text = self.stack.pop()
        if not self.stack:
            self.root = children
            return
        if children:
            if any(part.strip() for part in text):
                # mixed content: text and elements side by side is not a field value
                children = {"": "".join(text), **children}
            value: Any = children
        else:
            value = "".join(text)
        parent = self.stack[-1][0]
        existing = parent.get(tag)
        if existing is None:
            parent[tag] = value
        elif isinstance(existing, _Repeated):
            existing.append(value)
        else:
            parent[tag] = _Repeated((existing, value))

    def text(self, data: str) -> None:
        if self.stack:
            self.stack[-1][1].append(data)


class _Repeated(list[Any]):
    """The values of an element that occurs more than once (appended in place)."""


def parse_xml_document(
    body: bytes | str, *, max_elements: int = MAX_ELEMENTS, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """Parse ``<xml>...</xml>`` into a dict of its children (nested elements become dicts).

    The document is read as UTF-8 whatever its declaration says (WeChat sends
    UTF-8). Raises :class:`MalformedPayload` for anything that is not a
    well-formed, DTD-free document whose root has children, or that exceeds
    the element or depth cap (``xml_too_large``).
    """
    builder = _Builder(max_elements, max_depth)
    parser = expat.ParserCreate(encoding="UTF-8")
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.text
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    try:
        parser.Parse(body, True)
    except _Refused as refused:
        raise MalformedPayload(str(refused), refused.reason) from None
    except (expat.ExpatError, ValueError) as exc:
        raise MalformedPayload(f"body is not well-formed XML: {exc}", "invalid_xml") from None
    if not builder.root:
        raise MalformedPayload("XML document has no fields", "invalid_xml")
    return builder.root


def text_field(fields: dict[str, Any], name: str) -> str | None:
    """The text of field ``name``, None when absent; a nested or repeated field is malformed."""
    value = fields.get(name)
    if value is None or isinstance(value, str):
        return value
    raise MalformedPayload(f"{name} must be text, not nested or repeated", "invalid_field")


def extract_element_text(body: bytes, tag: bytes, allowed: bytes) -> str | None:
    """The text of the one ``<tag>`` element of ``body``, without parsing the document.

    For checking a signature before anything else is read: one linear scan,
    the text (optionally in CDATA) limited to the characters in the regex class
    ``allowed``. None when the element is absent, repeated or holds anything else.
    """
    pattern = re.compile(
        rb"<"
        + tag
        + rb">\s*(?:<!\[CDATA\[(["
        + allowed
        + rb"]*)\]\]>|(["
        + allowed
        + rb"]*))\s*</"
        + tag
        + rb">"
    )
    if body.count(b"<" + tag + b">") != 1:
        return None
    match = pattern.search(body)
    if match is None:
        return None
    return (match.group(1) or match.group(2) or b"").decode("ascii")
