"""Golden files: every ``tests/fixtures/<channel>/<case>.raw.*`` against ``<case>.expected.json``.

The raw file is an authenticated, decrypted body in the platform's own
format; it goes through the connector's pure ``parse`` (with the settings in
``tests/fixtures/<connector>/settings.json``, if there is one) and the
connector's normalizer. Expected files hold the record, ``{"not_a_complaint": reason}``
or ``{"error": reason}``. Set ``UPDATE_GOLDEN=1`` to rewrite them, then review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import PayloadError
from normalizer.base import NotAComplaint
from service.registry import Registry

FIXTURES = Path(__file__).parent / "fixtures"
RECEIVED_AT = datetime(2026, 11, 23, 2, 15, 0, tzinfo=UTC)
CASES = sorted(FIXTURES.glob("*/*.raw.*"))


def settings_for(registry: Registry, name: str) -> Any:
    """``tests/fixtures/<name>/settings.json``: what the connector's fixtures assume, if anything."""
    path = FIXTURES / name / "settings.json"
    if not path.exists():
        return None
    model = registry.connectors[name].settings_model
    return model.model_validate(json.loads(path.read_text(encoding="utf-8")))


def outcome(registry: Registry, channel: str, body: bytes) -> dict[str, Any]:
    try:
        (event,) = registry.connectors[channel].parse(
            body, RECEIVED_AT, settings_for(registry, channel)
        )
        result = registry.normalizers[channel].normalize(event)
    except PayloadError as exc:
        return {"error": exc.reason}
    if isinstance(result, NotAComplaint):
        return {"not_a_complaint": result.reason}
    return result.model_dump(mode="json")


@pytest.mark.parametrize("raw", CASES, ids=lambda p: f"{p.parent.name}/{p.name.split('.')[0]}")
def test_golden(registry: Registry, raw: Path) -> None:
    expected_path = raw.with_name(raw.name.split(".")[0] + ".expected.json")
    actual = outcome(registry, raw.parent.name, raw.read_bytes())
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_text(
            json.dumps(actual, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    assert actual == json.loads(expected_path.read_text(encoding="utf-8"))


def test_every_case_has_an_expected_file() -> None:
    for raw in CASES:
        assert raw.with_name(raw.name.split(".")[0] + ".expected.json").exists(), raw
