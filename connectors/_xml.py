"""Safe XML parsing for XML-speaking platforms (WeChat and its relatives).

DTDs, entity declarations and external references are refused outright, so no
payload can expand entities ("billion laughs") or make us fetch a URL (XXE).
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from connectors.errors import MalformedPayload


def _element_to_value(element: Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    result: dict[str, Any] = {}
    for child in children:
        value = _element_to_value(child)
        if child.tag in result:
            existing = result[child.tag]
            result[child.tag] = (
                [*existing, value]
                if isinstance(existing, list)
                else [
                    existing,
                    value,
                ]
            )
        else:
            result[child.tag] = value
    return result


def parse_xml_document(body: bytes | str) -> dict[str, Any]:
    """Parse ``<xml>...</xml>`` into a dict of its children (nested elements become dicts).

    Raises :class:`MalformedPayload` for anything that is not a well-formed,
    DTD-free document whose root has children.
    """
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise MalformedPayload(
            f"XML with a DTD or entity declarations is refused ({type(exc).__name__})",
            "xml_dtd_refused",
        ) from None
    except (ParseError, ValueError) as exc:
        raise MalformedPayload(f"body is not well-formed XML: {exc}", "invalid_xml") from None
    value = _element_to_value(root)
    if not isinstance(value, dict):
        raise MalformedPayload("XML document has no fields", "invalid_xml")
    return value
