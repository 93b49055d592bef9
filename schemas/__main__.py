"""``python -m schemas`` writes the record's JSON Schema beside this file."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.record import ComplaintRecord

SCHEMA_PATH = Path(__file__).with_name("complaint_record.schema.json")


def render() -> str:
    schema = ComplaintRecord.model_json_schema(mode="serialization")
    schema["$id"] = "https://complaint-gateway.dev/schemas/complaint_record.v1.json"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
