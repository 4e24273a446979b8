"""Every bad-input case of issue #3 ends in one machine-readable rejection code, values never echoed."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from services.ingest.demo_data import ApplicationStream
from services.ingest.domain.schema import DatasetSchema, load_schema
from services.ingest.domain.validation import Code, RecordValidator
from services.ingest.errors import IngestConfigError
from services.ingest.settings import SCHEMAS_DIR

SCHEMA = load_schema(SCHEMAS_DIR / "loan_applications.yaml")
VALIDATOR = RecordValidator(SCHEMA, max_bytes=1024 * 1024)


def good_record() -> dict[str, Any]:
    return dict(ApplicationStream(seed=1).take(1)[0].record)


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_a_demo_record_is_valid() -> None:
    for app in ApplicationStream(seed=3).take(300):
        verdict = VALIDATOR.check(msgspec.json.encode(app.record))
        assert verdict.ok, verdict.errors
        assert verdict.entity_id == app.record["application_id"]
        assert verdict.event_time is not None and verdict.event_time.tzinfo is not None


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


BAD_INPUTS: dict[str, tuple[bytes | None, Code]] = {
    "not json": (b"this is {not json", Code.NOT_JSON),
    "json but not an object": (b"[1, 2, 3]", Code.NOT_OBJECT),
    "json string": (b'"hello"', Code.NOT_OBJECT),
    "NaN": (b'{"credit_amount": NaN}', Code.NON_FINITE),
    "Infinity": (b'{"credit_amount": -Infinity}', Code.NON_FINITE),
    "overflow to infinity": (b'{"credit_amount": 1e999}', Code.NON_FINITE),
    "invalid utf-8": (b'{"notes": "\xff\xfe"}', Code.INVALID_UTF8),
    "5 MB message": (b'{"notes": "' + b"x" * (5 * 1024 * 1024) + b'"}', Code.TOO_LARGE),
    "deeply nested (beyond the decoder)": (nested(100_000), Code.TOO_DEEP),
    "deeply nested (beyond max_depth)": (nested(40), Code.TOO_DEEP),
    "empty": (b"", Code.EMPTY),
    "whitespace only": (b"  \n ", Code.EMPTY),
    "a key without a value": (None, Code.NO_VALUE),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_rejected_with_its_code(case: str) -> None:
    value, code = BAD_INPUTS[case]
    verdict = VALIDATOR.check(value)
    assert verdict.code is code
    assert verdict.message and verdict.record is None


def field_codes(record: dict[str, Any]) -> dict[str, str]:
    verdict = VALIDATOR.check(encode(record))
    assert verdict.code is Code.SCHEMA_VIOLATION
    return {e.field: e.code for e in verdict.errors}


def test_wrong_types() -> None:
    record = good_record() | {"duration_in_month": "12", "credit_amount": True, "email": 42}
    record["age_in_years"] = 30.0  # an integer field refuses floats
    assert field_codes(record) == {
        "age_in_years": "wrong_type",
        "credit_amount": "wrong_type",
        "duration_in_month": "wrong_type",
        "email": "wrong_type",
    }


def test_missing_required_and_unknown_fields() -> None:
    record = good_record()
    del record["applicant_name"], record["applied_at"]
    record["favourite_colour"] = "blue"
    assert field_codes(record) == {
        "applicant_name": "missing",
        "applied_at": "missing",
        "favourite_colour": "unknown_field",
    }


def test_out_of_range_and_outside_the_domain() -> None:
    record = good_record() | {"age_in_years": 12, "housing": "castle", "duration_in_month": 0}
    record["applied_at"] = "2026-01-01T00:00:00"  # no timezone
    assert field_codes(record) == {
        "age_in_years": "out_of_range",
        "applied_at": "invalid_datetime",
        "duration_in_month": "out_of_range",
        "housing": "not_in_domain",
    }


def test_nulls_and_pattern() -> None:
    record = good_record() | {"card_number": None, "email": None, "application_id": "has spaces"}
    assert field_codes(record) == {"application_id": "pattern_mismatch", "email": "null_not_allowed"}


def test_a_nested_value_in_a_field_is_a_type_error() -> None:
    assert field_codes(good_record() | {"notes": {"a": [1]}}) == {"notes": "wrong_type"}


def test_reasons_never_echo_values() -> None:
    secret = "Jane Secret-Person 555-867-5309"
    record = good_record() | {"housing": secret, "age_in_years": secret, "notes": 7}
    verdict = VALIDATOR.check(encode(record))
    assert secret not in repr(verdict.errors) + verdict.message
    assert verdict.record is not None and secret not in repr(verdict.record)
    assert "notes" not in verdict.record  # free text never rides along on a rejection


def test_schema_file_is_data_another_dataset_needs_no_code(tmp_path: Any) -> None:
    path = tmp_path / "sensors.yaml"
    path.write_text(
        "dataset: sensors\nversion: 1\nentity_key: sensor\nevent_time: at\n"
        "fields:\n  sensor: {type: string}\n  at: {type: datetime}\n"
        "  reading: {type: number, min: -50, max: 150}\n  ok: {type: boolean, required: false}\n"
    )
    validator = RecordValidator(load_schema(path), 4096)
    assert validator.check(b'{"sensor": "s1", "at": "2026-01-01T00:00:00Z", "reading": 21.5}').ok
    assert validator.check(b'{"sensor": "s1", "at": "2026-01-01T00:00:00Z", "reading": 200}').errors[
        0
    ].code == ("out_of_range")


def test_invalid_schema_files_are_refused(tmp_path: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: x\nversion: 1\nentity_key: id\nevent_time: at\nfields:\n  id: {type: string}\n")
    with pytest.raises(IngestConfigError, match="event_time"):
        load_schema(path)


def test_the_demo_schema_declares_the_issue_s_roles() -> None:
    assert isinstance(SCHEMA, DatasetSchema)
    assert SCHEMA.entity_key == "application_id" and SCHEMA.event_time == "applied_at"
    assert set(SCHEMA.sensitive) == {"personal_status_and_sex", "age_in_years", "foreign_worker"}
    assert set(SCHEMA.structured_pii) == {"applicant_name", "email", "phone", "card_number", "ssn"}
    assert SCHEMA.text_fields == ("notes",)
    assert SCHEMA.label is not None and SCHEMA.label.field == "creditability"


# The compiled fast path (domain/compiled.py) may only vouch for records the field-by-field checks
# accept, with the same record and event time; everything else must fall through to those checks.
EDGE_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    3.0,
    2.5,
    1e300,
    -1e300,
    2**70,
    -(2**70),
    "",
    "x",
    "yes",
    "bad",
    "a" * 64,
    "a" * 65,
    "a" * 300,
    "has spaces",
    "ab\n",
    "\U0001f600" * 200,
    "\U0001f600" * 300,
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00",
    "2026-01-01 00:00:00+02:00",
    "20260101T000000Z",
    "2026-13-01T00:00:00Z",
    "2026-01-01T00:00:00.1234567+00:00",
    [],
    {},
    [1],
    {"a": 1},
    120,
    121,
    18,
    17,
    1000000,
    1000000.0,
    1000000.5,
    "no checking account",
    "own",
    "castle",
]


def mutations() -> list[dict[str, Any]]:
    base = good_record()
    out = [base]
    for name in [*base, "not_declared"]:
        out.append({k: v for k, v in base.items() if k != name})
        out += [base | {name: value} for value in EDGE_VALUES]
    return out


@pytest.mark.parametrize("unknown_fields", ["reject", "drop"])
def test_the_compiled_fast_path_agrees_with_the_field_by_field_checks(unknown_fields: str) -> None:
    schema = SCHEMA.model_copy(update={"unknown_fields": unknown_fields})
    validator = RecordValidator(schema, max_bytes=1024 * 1024)
    assert validator.compiled is not None
    accepted = 0
    for record in mutations():
        value = msgspec.json.encode(record)
        fast, reference = validator.check(value), validator.explain(msgspec.json.decode(value))
        assert fast == reference, record
        assert fast.record is None or list(fast.record) == list(reference.record or {})  # same order
        accepted += fast.ok
    assert 50 < accepted < len(mutations())


def test_schemas_the_struct_cannot_express_take_the_field_by_field_path(tmp_path: Any) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(
        "dataset: odd\nversion: 1\nentity_key: id\nevent_time: at\n"
        "fields:\n  id: {type: string}\n  at: {type: datetime}\n  x: {type: number, min: -.inf}\n"
    )
    validator = RecordValidator(load_schema(path), 4096)
    assert validator.compiled is None
    assert validator.check(b'{"id": "a", "at": "2026-01-01T00:00:00Z", "x": -1e308}').ok
