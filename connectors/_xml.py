"""Safe XML parsing for XML-speaking platforms (WeChat and its relatives).

Documents with a DTD, entity declarations or external references are refused
outright, so no payload can expand entities ("billion laughs") or make us
fetch a URL (XXE). Parsing uses expat directly with those handlers raising,
as defusedxml does, but builds the flat dict WeChat messages need without an
element tree: this runs once per webhook, so it is kept cheap.
"""

from __future__ import annotations

from typing import Any
from xml.parsers import expat

from connectors.errors import MalformedPayload


class _Refused(Exception):
    pass


def _refuse(*_: object) -> Any:
    raise _Refused


class _Builder:
    """Elements with children become dicts; leaves become their text (verbatim)."""

    def __init__(self) -> None:
        self.stack: list[tuple[str, dict[str, Any], list[str]]] = []
        self.root: dict[str, Any] | None = None

    def start(self, tag: str, _attrs: object) -> None:
        self.stack.append((tag, {}, []))

    def end(self, tag: str) -> None:
        _, children, text = self.stack.pop()
        value: Any = children if children else "".join(text)
        if not self.stack:
            self.root = children
            return
        parent = self.stack[-1][1]
        if tag in parent:
            existing = parent[tag]
            parent[tag] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            parent[tag] = value

    def text(self, data: str) -> None:
        if self.stack:
            self.stack[-1][2].append(data)


def parse_xml_document(body: bytes | str) -> dict[str, Any]:
    """Parse ``<xml>...</xml>`` into a dict of its children (nested elements become dicts).

    Raises :class:`MalformedPayload` for anything that is not a well-formed,
    DTD-free document whose root has children.
    """
    builder = _Builder()
    parser = expat.ParserCreate()
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.text
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    try:
        parser.Parse(body, True)
    except _Refused:
        raise MalformedPayload(
            "XML with a DTD or entity declarations is refused", "xml_dtd_refused"
        ) from None
    except expat.ExpatError as exc:
        raise MalformedPayload(f"body is not well-formed XML: {exc}", "invalid_xml") from None
    if not builder.root:
        raise MalformedPayload("XML document has no fields", "invalid_xml")
    return builder.root
