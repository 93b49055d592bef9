"""Bounded JSON parsing for JSON-speaking platforms (store apps, and later Weibo, Douyin...).

The standard library's decoder is linear, but a body of 1 MiB can still nest
deeply enough to exhaust the interpreter's recursion, hold numbers of
hundreds of thousands of digits (whose conversion is quadratic, and refused
past 4,300 digits), or spell ``NaN``. Each is a :class:`MalformedPayload`
with its own reason here. Non-integral numbers become :class:`~decimal.Decimal`,
so money is never rounded through a float.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from connectors.errors import MalformedPayload

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40


class _NumberTooLong(Exception):
    pass


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberTooLong
    return int(text)


def _decimal(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberTooLong
    return Decimal(text)


def _constant(name: str) -> Any:
    raise MalformedPayload(f"JSON does not allow {name}", "invalid_json")


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return depth
        following: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                following.extend(v for v in item.values() if isinstance(v, dict | list))
            elif isinstance(item, list):
                following.extend(v for v in item if isinstance(v, dict | list))
        level = following
    return depth


def parse_json_value(body: bytes) -> Any:
    """Parse a body that must be JSON (UTF-8), within the caps above; any top-level value."""
    try:
        value = json.loads(body, parse_int=_int, parse_float=_decimal, parse_constant=_constant)
    except _NumberTooLong:
        raise MalformedPayload(
            f"a JSON number is longer than {MAX_NUMBER_CHARS} characters", "json_number_too_long"
        ) from None
    except RecursionError:
        raise MalformedPayload(f"JSON is nested deeper than {MAX_DEPTH}", "json_too_deep") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayload(f"body is not JSON: {exc}", "invalid_json") from None
    if _depth(value) > MAX_DEPTH:
        raise MalformedPayload(f"JSON is nested deeper than {MAX_DEPTH}", "json_too_deep")
    return value


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a body that must be one JSON object (UTF-8), within the caps above."""
    value = parse_json_value(body)
    if not isinstance(value, dict):
        raise MalformedPayload("body must be a JSON object", "invalid_json")
    return value
