"""The dataset schema compiled to a msgspec `Struct` type, so a valid record is vouched for in C.

`CompiledSchema.accept` is a fast path, never a second opinion: it returns the validated record only
when every check of `validation.py` would pass, and `None` otherwise. The caller then runs the
field-by-field checks, which produce the rejection codes and messages. So the fast path can only make
a valid record cheaper; it cannot change what is rejected or why
(`tests/unit/test_ingest_validation.py` compares both paths on mutated records).

What runs where: types, nulls, ranges, categorical domains, lengths and unknown fields in msgspec;
patterns (`fullmatch`, which msgspec's `search` is not) and date-times (`datetime.fromisoformat`,
parsed once, checked against the declared bounds and the arrival time, and the event time is kept)
in Python.
"""

from __future__ import annotations

import math
import re
import sys
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from services.ingest.domain.schema import DatasetSchema, FieldSpec, FieldType

_FLOAT_MAX = sys.float_info.max  # JSON cannot carry inf or NaN; the bound keeps them out regardless


class Accepted(NamedTuple):
    record: dict[str, Any]
    event_time: datetime


class CompiledSchema:
    def __init__(self, schema: DatasetSchema) -> None:
        self.struct = _struct_type(schema)
        self.patterns = [
            (name, spec.regex)
            for name, spec in schema.fields.items()
            if spec.regex is not None and spec.type in (FieldType.STRING, FieldType.TEXT)
        ]
        self.datetimes = [
            (name, spec.lowest, spec.highest, _horizon(spec.max_ahead_s))
            for name, spec in schema.fields.items()
            if spec.type is FieldType.DATETIME
        ]
        self.event_time = schema.event_time
        self.declared = frozenset(schema.fields) if schema.unknown_fields == "drop" else None

    def accept(self, obj: dict[str, Any], received: datetime | None = None) -> Accepted | None:
        """The record to publish (declared fields, input order) and its event time, or None when any
        check would fail. `received` is the record's arrival time, as in `RecordValidator.check`."""
        try:
            msgspec.convert(obj, self.struct)
        except msgspec.ValidationError:
            return None
        for name, regex in self.patterns:
            value = obj.get(name)
            if value is not None and not regex.fullmatch(value):
                return None
        event_time = None
        for name, lowest, highest, horizon in self.datetimes:
            value = obj.get(name)
            if value is None:
                continue
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                return None
            if parsed.tzinfo is None or not lowest <= parsed <= highest:
                return None
            if horizon is not None and received is not None and parsed > received + horizon:
                return None
            if name == self.event_time:
                event_time = parsed
        if event_time is None:
            return None
        if self.declared is not None and not obj.keys() <= self.declared:
            obj = {name: value for name, value in obj.items() if name in self.declared}
        return Accepted(obj, event_time)


def compile_schema(schema: DatasetSchema) -> CompiledSchema | None:
    """None when a schema uses something the Struct cannot express exactly (e.g. infinite bounds):
    every record then takes the field-by-field path."""
    try:
        return CompiledSchema(schema)
    except (TypeError, ValueError, OverflowError):
        return None


def _struct_type(schema: DatasetSchema) -> type[msgspec.Struct]:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for i, (name, spec) in enumerate(schema.fields.items()):
        attr = f"f{i}"
        rename[attr] = name
        kind = _type(spec)
        if spec.nullable:
            kind = kind | None
        fields.append((attr, kind) if spec.required else (attr, kind, None))
    return msgspec.defstruct(
        "Compiled_" + re.sub(r"\W", "_", schema.dataset),
        fields,
        rename=rename,
        forbid_unknown_fields=schema.unknown_fields == "reject",
    )


def _type(spec: FieldSpec) -> Any:
    match spec.type:
        case FieldType.STRING | FieldType.TEXT:
            return Annotated[str, msgspec.Meta(max_length=spec.max_length)]
        case FieldType.INTEGER:
            return _int(spec)
        case FieldType.NUMBER:
            low = -_FLOAT_MAX if spec.min is None else spec.min
            high = _FLOAT_MAX if spec.max is None else spec.max
            return _int(spec) | Annotated[float, msgspec.Meta(ge=_finite(low), le=_finite(high))]
        case FieldType.BOOLEAN:
            return bool
        case FieldType.CATEGORY:
            if not spec.values:
                raise ValueError("an empty domain")
            return Literal[spec.values]
        case FieldType.DATETIME:
            return str  # checked with datetime.fromisoformat in `accept`, as validation.py does
    raise ValueError(f"unsupported field type {spec.type}")


def _horizon(max_ahead_s: float | None) -> timedelta | None:
    return None if max_ahead_s is None else timedelta(seconds=max_ahead_s)


def _int(spec: FieldSpec) -> Any:
    """An int in [min, max]: for an integer, `v >= 1.5` is exactly `v >= 2`."""
    if spec.min is None and spec.max is None:
        return int
    low = None if spec.min is None else math.ceil(_finite(spec.min))
    high = None if spec.max is None else math.floor(_finite(spec.max))
    return Annotated[int, msgspec.Meta(ge=low, le=high)]


def _finite(bound: float) -> float:
    if not math.isfinite(bound):
        raise ValueError("a non-finite bound")
    return bound
