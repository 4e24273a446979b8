"""Render the Markdown event catalogue from the models' JSON Schemas."""

import json
from typing import Any

from contracts.envelope import Event
from contracts.topics import TOPICS

Schema = dict[str, Any]

HEADER = """# Event catalogue

Generated from the models in `contracts/` by `python -m contracts.export`; do not edit by hand.
Each event's full JSON Schema is in `schemas/<EventType>.v<N>.json`.

Every message except those on `records.raw` is a JSON envelope around a typed payload. Consumers
ignore fields they do not know, so producers may add optional fields without a version bump; any
other change bumps `schema_version` and registers an upcaster from the previous version.
"""


def render_catalogue(events: tuple[type[Event[Any]], ...]) -> str:
    """The whole catalogue page: topics, envelope, events and the shared value types."""
    parts = [HEADER, _topics(), _envelope()]
    shared: dict[str, Schema] = {}
    parts.append("## Events\n")
    for cls in events:
        schema = cls.model_json_schema()
        defs = schema.get("$defs", {})
        payload_name = schema["properties"]["payload"]["$ref"].split("/")[-1]
        parts.append(_event(cls, defs[payload_name]))
        shared.update({name: d for name, d in defs.items() if name != payload_name})
    parts.append("## Shared types\n")
    parts.extend(
        _fields_section(f"### {name}", d, intro=d.get("description", ""))
        for name, d in sorted(shared.items())
    )
    return "\n".join(parts).rstrip("\n") + "\n"


def _topics() -> str:
    rows = [
        [f"`{t.name}`", t.key, ", ".join(f"`{e}`" for e in t.event_types) or "plain JSON", t.description]
        for t in TOPICS
    ]
    return "## Topics\n\n" + _table(["topic", "key", "event types", "description"], rows)


def _envelope() -> str:
    schema = Event.model_json_schema()
    schema["properties"].pop("payload")
    return _fields_section("## Envelope", schema, intro="Fields common to every event.")


def _event(cls: type[Event[Any]], payload: Schema) -> str:
    key = ", else ".join(f"`{k}`" for k in cls.key_fields) or "none"
    intro = (
        f"{cls.__doc__ or ''}\n\ntopic `{cls.topic}` · key {key} · "
        f"[schema](schemas/{cls.type_name()}.v{cls.version()}.json)"
    )
    return _fields_section(f"### {cls.type_name()} (v{cls.version()})", payload, intro=intro)


def _fields_section(title: str, model: Schema, intro: str = "") -> str:
    required = set(model.get("required", []))
    rows = [
        [f"`{name}`", _type(prop), "yes" if name in required else "no", prop.get("description", "")]
        for name, prop in model.get("properties", {}).items()
    ]
    head = f"{title}\n\n" + (f"{intro.strip()}\n\n" if intro else "")
    return head + _table(["field", "type", "required", "description"], rows)


def _type(schema: Schema) -> str:
    """A compact, Python-like rendering of a JSON Schema type, with its constraints."""
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " | ".join(_type(branch) for branch in schema["anyOf"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        text = f"list[{_type(schema.get('items', {}))}]"
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        text = f"dict[string, {_type(schema['additionalProperties'])}]"
    else:
        text = str(kind)
    return text + _constraints(schema)


def _constraints(schema: Schema) -> str:
    notes = [f"format {schema['format']}"] if "format" in schema else []
    symbols = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    notes += [f"{symbol} {schema[key]}" for key, symbol in symbols.items() if key in schema]
    for unit, low, high in (("chars", "minLength", "maxLength"), ("items", "minItems", "maxItems")):
        if low in schema and high in schema:
            notes.append(f"{schema[low]}..{schema[high]} {unit}")
        elif low in schema or high in schema:
            notes.append(f"min {schema[low]} {unit}" if low in schema else f"max {schema[high]} {unit}")
    if "pattern" in schema:
        notes.append(f"pattern `{schema['pattern']}`")
    return f" ({', '.join(notes)})" if notes else ""


def _table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return "\n".join([line(header), "| " + " | ".join("---" for _ in header) + " |", *map(line, rows)]) + "\n"
