"""JSON Schemas of the catalogue, generated from the pydantic models.

One schema per event type describes the whole CloudEvent a producer sends
(the envelope with ``type`` fixed and ``data`` from the type's model), so a
producer can validate before sending. The same dicts are served at
``GET /v1/schemas`` and written by ``practice-events schemas --out DIR``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import orjson

from practice_events.contracts.base import EventData, catalogue

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "urn:practice-events:schema:"


def data_schema(model: type[EventData]) -> dict[str, Any]:
    """Return the JSON Schema of a type's ``data``."""
    return model.model_json_schema(mode="validation")


def event_schema(event_type: str, model: type[EventData]) -> dict[str, Any]:
    """Return the JSON Schema of a whole structured-mode CloudEvent of ``event_type``."""
    data = data_schema(model)
    defs = data.pop("$defs", {})
    doc = (model.__doc__ or "").strip()
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "$id": f"{ID_BASE}{event_type}",
        "title": event_type,
        "description": doc,
        "type": "object",
        "required": ["specversion", "id", "source", "type", "subject", "time", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "maxLength": 256},
            "source": {"type": "string", "minLength": 1, "maxLength": 256},
            "type": {"const": event_type},
            "subject": {
                "type": "string",
                "minLength": 1,
                "maxLength": 256,
                "description": f"The id of the {model.AGGREGATE} this event is about.",
            },
            "time": {
                "type": "string",
                "format": "date-time",
                "description": "When it happened, RFC 3339 with offset.",
            },
            "datacontenttype": {"enum": ["application/json"]},
            "data": data,
        },
        "x-aggregate": model.AGGREGATE,
        "x-creates": model.CREATES,
        "x-system": model.SYSTEM,
    }
    if defs:
        schema["$defs"] = defs
    return schema


def all_schemas() -> dict[str, dict[str, Any]]:
    """Return every event type's schema, by type name (sorted)."""
    return {name: event_schema(name, model) for name, model in sorted(catalogue().items())}


def index() -> dict[str, Any]:
    """Return the index: every type with its aggregate, flags and summary."""
    entries = []
    for name, model in sorted(catalogue().items()):
        doc = (model.__doc__ or "").strip().splitlines()
        entries.append(
            {
                "type": name,
                "aggregate": model.AGGREGATE,
                "creates": model.CREATES,
                "system": model.SYSTEM,
                "summary": doc[0] if doc else "",
                "schema": f"{name}.schema.json",
            }
        )
    return {"count": len(entries), "types": entries}


def write_schemas(out: Path) -> int:
    """Write ``<type>.schema.json`` for every type plus ``index.json``; return the count."""
    out.mkdir(parents=True, exist_ok=True)
    schemas = all_schemas()
    option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    for name, schema in schemas.items():
        (out / f"{name}.schema.json").write_bytes(orjson.dumps(schema, option=option) + b"\n")
    (out / "index.json").write_bytes(orjson.dumps(index(), option=option) + b"\n")
    return len(schemas)


def _field_type(spec: dict[str, Any]) -> str:  # noqa: PLR0911 - one return per schema form
    """A short human name of a JSON Schema property's type."""
    if "$ref" in spec:
        return str(spec["$ref"]).rsplit("/", 1)[-1]
    if "enum" in spec:
        return " \\| ".join(f"`{v}`" for v in spec["enum"])
    if "const" in spec:
        return f"`{spec['const']}`"
    if "anyOf" in spec:
        parts = [_field_type(s) for s in spec["anyOf"] if s.get("type") != "null"]
        return " \\| ".join(parts) or "null"
    kind = spec.get("type", "any")
    if kind == "array":
        return f"list of {_field_type(spec.get('items', {}))}"
    if kind == "string" and spec.get("format"):
        return f"string ({spec['format']})"
    return str(kind)


def catalogue_markdown() -> str:
    """Render the event catalogue as Markdown (docs/event-catalogue.md is this output)."""
    from practice_events.contracts import AREAS

    types = catalogue()
    lines = [
        "# Event catalogue",
        "",
        "Generated from the contracts by `practice-events schemas --markdown "
        "docs/event-catalogue.md`; do not edit by hand.",
        "",
        f"{len(types)} event types. Each is a CloudEvent whose `subject` names the aggregate "
        "in the *aggregate* column. *System* types are emitted by practice-events itself "
        "(producers may not send them). Times are RFC 3339 with an offset.",
        "",
    ]
    for area in AREAS:
        names = sorted(n for n in types if n.split(".")[1] == area)
        if not names:
            continue
        lines += [f"## {area}", ""]
        for name in names:
            model = types[name]
            doc = inspect.cleandoc(model.__doc__ or "")
            flags = []
            if model.CREATES:
                flags.append("creates")
            if model.SYSTEM:
                flags.append("system")
            suffix = f" ({', '.join(flags)})" if flags else ""
            lines += [f"### `{name}`{suffix}", "", f"Aggregate: `{model.AGGREGATE}`.", ""]
            if doc:
                lines += [doc, ""]
            schema = data_schema(model)
            required = set(schema.get("required", []))
            props = schema.get("properties", {})
            if props:
                lines += ["| field | type | required | description |", "|---|---|---|---|"]
                for field, spec in props.items():
                    desc = str(spec.get("description", "")).replace("\n", " ").replace("|", "\\|")
                    ref = model.REFERENCES.get(field)
                    if ref:
                        desc += f" (must name an existing `{ref}`)"
                    mark = "yes" if field in required else ""
                    lines.append(f"| `{field}` | {_field_type(spec)} | {mark} | {desc} |")
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"
