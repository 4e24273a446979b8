"""Raw bytes -> a validated record, or a machine-readable rejection. Pure: no Kafka, no I/O.

Every bad input ends in exactly one rejection code (see `Code`); per-field problems are listed as
`FieldError`s that name the field but never echo its value (values may be PII).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import msgspec

from contracts.common import FieldError
from services.ingest.domain.compiled import compile_schema
from services.ingest.domain.schema import DatasetSchema, FieldSpec, FieldType

MAX_ERRORS = 50
_NON_FINITE = re.compile(rb"(?<![\w\"])-?(?:NaN|Infinity)(?![\w\"])")
_decode = msgspec.json.decode


class Code(StrEnum):
    NO_VALUE = "no_value"  # a Kafka record with a key but a null value (tombstone)
    EMPTY = "empty"  # zero bytes, or only whitespace
    TOO_LARGE = "too_large"  # more bytes than the configured maximum
    INVALID_UTF8 = "invalid_utf8"
    NOT_JSON = "not_json"
    NON_FINITE = "non_finite"  # NaN, Infinity, or a number too large for a double
    TOO_DEEP = "too_deep"  # nesting deeper than the schema's max_depth
    NOT_OBJECT = "not_object"  # JSON, but not an object
    SCHEMA_VIOLATION = "schema_violation"  # see the per-field errors
    SCRUB_FAILED = "scrub_failed"  # PII scrubbing failed: refused rather than published unscrubbed
    DUPLICATE = "duplicate_record"  # identical to the entity's last clean record (domain/duplicates.py)


@dataclass(slots=True)
class Verdict:
    """`code is None` means valid; `record` then holds every declared field present. When rejected,
    `record` keeps only fields that passed their own checks (text fields excluded), for a scrubbed copy."""

    code: Code | None
    message: str = ""
    errors: list[FieldError] = field(default_factory=list)
    record: dict[str, Any] | None = None
    entity_id: str | None = None
    event_time: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.code is None


Check = Callable[[Any], str | None]  # value -> error code, or None when fine


class RecordValidator:
    def __init__(self, schema: DatasetSchema, max_bytes: int) -> None:
        self.schema = schema
        self.max_bytes = max_bytes
        self.checks: dict[str, Check] = {name: _checker(spec) for name, spec in schema.fields.items()}
        self.horizons = {  # how far ahead of the record's arrival each date-time may lie
            name: timedelta(seconds=spec.max_ahead_s)
            for name, spec in schema.fields.items()
            if spec.type is FieldType.DATETIME and spec.max_ahead_s is not None
        }
        self.messages = _field_messages(schema)
        self.compiled = compile_schema(schema)  # valid records are vouched for in C (compiled.py)

    def check(self, value: bytes | None, received: datetime | None = None) -> Verdict:
        """`received`: when the record reached Kafka (its timestamp); date-times may not lie further
        ahead of it than their field's `max_ahead_s`. None skips that one check (an unknown time)."""
        if value is None:
            return Verdict(Code.NO_VALUE, "the record has no value (a tombstone)")
        if len(value) > self.max_bytes:
            return Verdict(Code.TOO_LARGE, f"{len(value)} bytes exceed the limit of {self.max_bytes}")
        if not value.strip():
            return Verdict(Code.EMPTY, "the record value is empty")
        try:
            obj = _decode(value)
        except Exception as exc:  # msgspec raises several types; classified below
            return _undecodable(value, exc)
        if not isinstance(obj, dict):
            if _depth(obj, self.schema.max_depth + 1) > self.schema.max_depth:
                return Verdict(Code.TOO_DEEP, f"JSON nested deeper than {self.schema.max_depth} levels")
            return Verdict(Code.NOT_OBJECT, f"JSON {type(obj).__name__}, not an object")
        return self.check_object(obj, received)

    def check_object(self, obj: dict[str, Any], received: datetime | None = None) -> Verdict:
        accepted = self.compiled.accept(obj, received) if self.compiled is not None else None
        if accepted is not None:
            record = accepted.record
            return Verdict(
                None,
                record=record,
                entity_id=record.get(self.schema.entity_key),
                event_time=accepted.event_time,
            )
        return self.explain(obj, received)

    def explain(self, obj: dict[str, Any], received: datetime | None = None) -> Verdict:
        """Field by field: every error with its code. The reference the compiled fast path matches."""
        errors: list[FieldError] = []
        passed: dict[str, Any] = {}
        for name, value in obj.items():
            check = self.checks.get(name)
            if check is None:
                if self.schema.unknown_fields == "reject":
                    errors.append(FieldError(field=name[:64], code="unknown_field", message="not declared"))
                continue
            if (
                isinstance(value, dict | list)
                and _depth(value, self.schema.max_depth) >= self.schema.max_depth
            ):
                return Verdict(Code.TOO_DEEP, f"JSON nested deeper than {self.schema.max_depth} levels")
            problem = check(value)
            if problem is None and received is not None and name in self.horizons:
                problem = _ahead_of(value, received + self.horizons[name])
            if problem is None:
                passed[name] = value
            else:
                message = self.messages.get((name, problem)) or _MESSAGES[problem]
                errors.append(FieldError(field=name, code=problem, message=message))
        for name in self.schema.required - obj.keys():
            errors.append(FieldError(field=name, code="missing", message=_MESSAGES["missing"]))
        entity_id = passed.get(self.schema.entity_key)
        if errors:
            errors.sort(key=lambda e: e.field)
            for name in self.schema.text_fields:
                passed.pop(name, None)
            return Verdict(
                Code.SCHEMA_VIOLATION,
                f"{len(errors)} field(s) do not match schema {self.schema.dataset} v{self.schema.version}",
                errors[:MAX_ERRORS],
                passed,
                entity_id,
            )
        event_time = datetime.fromisoformat(obj[self.schema.event_time])
        return Verdict(None, record=passed, entity_id=entity_id, event_time=event_time)


def _undecodable(value: bytes, exc: Exception) -> Verdict:
    if isinstance(exc, RecursionError):
        return Verdict(Code.TOO_DEEP, "JSON nested too deeply to decode")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as err:
        return Verdict(Code.INVALID_UTF8, f"not valid UTF-8 (byte {err.start})")
    if isinstance(exc, msgspec.ValidationError) or _NON_FINITE.search(value):
        return Verdict(Code.NON_FINITE, "NaN, Infinity or an out-of-range number is not valid JSON")
    return Verdict(Code.NOT_JSON, "not valid JSON")


def _ahead_of(value: Any, horizon: datetime) -> str | None:
    """`value` passed its field's own check, so it parses."""
    return "date_ahead_of_arrival" if datetime.fromisoformat(value) > horizon else None


def _field_messages(schema: DatasetSchema) -> dict[tuple[str, str], str]:
    """Messages that name a field's declared bounds (never the value: values may be PII)."""
    out: dict[tuple[str, str], str] = {}
    for name, spec in schema.fields.items():
        if spec.type is FieldType.DATETIME:
            out[name, "wrong_type"] = "a date-time is an ISO 8601 string, not a number or epoch"
            out[name, "date_too_early"] = f"date-time is before {spec.lowest.isoformat()}"
            out[name, "date_too_late"] = f"date-time is after {spec.highest.isoformat()}"
            if spec.max_ahead_s is not None:
                out[name, "date_ahead_of_arrival"] = (
                    f"date-time is more than {spec.max_ahead_s:g} s ahead of when the record arrived"
                )
    return out


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value (scalars are 0), counted no further than `limit`."""
    if limit <= 0 or not isinstance(value, dict | list):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


_MESSAGES = {
    "missing": "required field is missing",
    "null_not_allowed": "null is not allowed",
    "wrong_type": "value has the wrong JSON type",
    "non_finite": "number is not finite",
    "out_of_range": "number is outside the declared range",
    "not_in_domain": "value is not one of the declared categories",
    "too_long": "string is longer than allowed",
    "pattern_mismatch": "string does not match the declared pattern",
    "invalid_datetime": "not an ISO 8601 date-time with a timezone (a real calendar date, seconds 0-59)",
    "date_too_early": "date-time is before the declared earliest",
    "date_too_late": "date-time is after the declared latest",
    "date_ahead_of_arrival": "date-time lies further ahead of the record's arrival than allowed",
}


def _checker(spec: FieldSpec) -> Check:
    typed = _TYPE_CHECKS[spec.type](spec)

    def check(value: Any) -> str | None:
        if value is None:
            return None if spec.nullable else "null_not_allowed"
        return typed(value)

    return check


def _number(spec: FieldSpec, integer: bool) -> Check:
    low = -math.inf if spec.min is None else spec.min
    high = math.inf if spec.max is None else spec.max

    def check(value: Any) -> str | None:
        if type(value) is not int and (integer or type(value) is not float):
            return "wrong_type"
        if type(value) is float and not math.isfinite(value):
            return "non_finite"
        return None if low <= value <= high else "out_of_range"

    return check


def _string(spec: FieldSpec) -> Check:
    regex, max_length = spec.regex, spec.max_length

    def check(value: Any) -> str | None:
        if type(value) is not str:
            return "wrong_type"
        if len(value) > max_length:
            return "too_long"
        return "pattern_mismatch" if regex is not None and not regex.fullmatch(value) else None

    return check


def _category(spec: FieldSpec) -> Check:
    domain = frozenset(spec.values or ())
    return lambda v: "wrong_type" if type(v) is not str else None if v in domain else "not_in_domain"


def _datetime(spec: FieldSpec) -> Check:
    lowest, highest = spec.lowest, spec.highest

    def check(value: Any) -> str | None:
        if type(value) is not str:
            return "wrong_type"
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return "invalid_datetime"
        if parsed.tzinfo is None:
            return "invalid_datetime"
        if parsed < lowest:
            return "date_too_early"
        return "date_too_late" if parsed > highest else None

    return check


_TYPE_CHECKS: dict[FieldType, Callable[[FieldSpec], Check]] = {
    FieldType.STRING: _string,
    FieldType.TEXT: _string,
    FieldType.INTEGER: lambda spec: _number(spec, integer=True),
    FieldType.NUMBER: lambda spec: _number(spec, integer=False),
    FieldType.BOOLEAN: lambda spec: lambda v: None if type(v) is bool else "wrong_type",
    FieldType.CATEGORY: _category,
    FieldType.DATETIME: _datetime,
}
