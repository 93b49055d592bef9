"""``python -m schemas`` writes the JSON Schemas beside this file.

``complaint_record.schema.json`` is the stream's record (now 1.1);
``complaint_record.v1.schema.json`` is version 1 as published, kept for consumers
that still validate against it and never regenerated. ``status_update.schema.json``
is what ticket systems send back (``complaint-status.v1``, ``POST /status``).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.record import ComplaintRecord
from schemas.status import StatusUpdate

SCHEMAS: dict[Path, tuple[type[BaseModel], str]] = {
    Path(__file__).with_name("complaint_record.schema.json"): (
        ComplaintRecord,
        "https://complaint-gateway.dev/schemas/complaint_record.v1.1.json",
    ),
    Path(__file__).with_name("status_update.schema.json"): (
        StatusUpdate,
        "https://complaint-gateway.dev/schemas/status_update.v1.json",
    ),
}
SCHEMA_PATH = next(iter(SCHEMAS))


def render(model: type[BaseModel] = ComplaintRecord, schema_id: str | None = None) -> str:
    schema = model.model_json_schema(mode="serialization")
    schema["$id"] = schema_id or SCHEMAS[SCHEMA_PATH][1]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    for path, (model, schema_id) in SCHEMAS.items():
        path.write_text(render(model, schema_id), encoding="utf-8")
        print(f"wrote {path}")
