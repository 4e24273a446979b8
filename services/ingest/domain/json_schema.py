"""The dataset schema as JSON Schema, for the OpenAPI document of POST /records.

It declares what a JSON Schema can say of the validator's rules (types, ranges, lengths, patterns,
categories, required and unknown fields); the rest (date bounds relative to the record's arrival,
PII-shaped identifiers, depth, bytes per record) is said in the descriptions and still checked by
the validator, which answers 422 with a reason per record.
"""

from __future__ import annotations

from typing import Any

from services.ingest.domain.schema import DatasetSchema, FieldSpec, FieldType

_TYPES = {
    FieldType.STRING: "string",
    FieldType.TEXT: "string",
    FieldType.INTEGER: "integer",
    FieldType.NUMBER: "number",
    FieldType.BOOLEAN: "boolean",
    FieldType.CATEGORY: "string",
    FieldType.DATETIME: "string",
}


def field_json_schema(spec: FieldSpec) -> dict[str, Any]:
    """
    >>> field_json_schema(FieldSpec(type="integer", min=1, max=4))
    {'type': 'integer', 'minimum': 1.0, 'maximum': 4.0}
    >>> field_json_schema(FieldSpec(type="category", values=("a", "b"), nullable=True))
    {'type': ['string', 'null'], 'enum': ['a', 'b', None]}
    """
    out: dict[str, Any] = {"type": _TYPES[spec.type]}
    if spec.type in (FieldType.INTEGER, FieldType.NUMBER):
        if spec.min is not None:
            out["minimum"] = spec.min
        if spec.max is not None:
            out["maximum"] = spec.max
    elif spec.type is FieldType.CATEGORY:
        out["enum"] = list(spec.values or ())
    elif spec.type is FieldType.DATETIME:
        out["format"] = "date-time"
        out["description"] = _dates(spec)
    elif spec.type in (FieldType.STRING, FieldType.TEXT):
        out["maxLength"] = spec.max_length
        if spec.pattern:
            out["pattern"] = spec.pattern
    if spec.description:
        out["description"] = " ".join(filter(None, (spec.description, out.get("description"))))
    if spec.nullable:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"].append(None)
    return out


def _dates(spec: FieldSpec) -> str:
    ahead = "" if spec.max_ahead_s is None else f", at most {spec.max_ahead_s:g} s after its arrival"
    return f"with a timezone, from {spec.lowest.isoformat()} to {spec.highest.isoformat()}{ahead}"


def record_json_schema(schema: DatasetSchema, max_record_bytes: int) -> dict[str, Any]:
    """One record of the dataset."""
    out: dict[str, Any] = {
        "type": "object",
        "title": f"{schema.dataset} v{schema.version}",
        "description": (
            f"{schema.description} At most {max_record_bytes} bytes and {schema.max_depth} levels deep; "
            "values shaped like PII in an identifier field are refused."
        ).strip(),
        "properties": {name: field_json_schema(spec) for name, spec in schema.fields.items()},
        "required": sorted(schema.required),
    }
    if schema.unknown_fields == "reject":
        out["additionalProperties"] = False
    return out


def batch_json_schema(schema: DatasetSchema, max_record_bytes: int, max_records: int) -> dict[str, Any]:
    """The body of POST /records: a non-empty array of records."""
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": max_records,
        "items": record_json_schema(schema, max_record_bytes),
    }
