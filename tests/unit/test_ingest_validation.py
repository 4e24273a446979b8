"""Every bad-input case of issue #3 ends in one machine-readable rejection code, values never echoed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pandas as pd
import pytest

from services.ingest.domain.schema import DatasetSchema, FieldType, load_schema
from services.ingest.domain.validation import Code, RecordValidator
from services.ingest.errors import IngestConfigError
from services.ingest.settings import SCHEMAS_DIR
from workbench.demo_data import ApplicationStream

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
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2026-01-01T00:05:00Z",
    "2026-01-01T00:05:00.000001Z",
    "2100-01-01T00:00:00Z",
    "2100-01-01T00:00:00-00:01",
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


@pytest.mark.parametrize("received", [None, datetime(2026, 1, 1, tzinfo=UTC)])
@pytest.mark.parametrize("unknown_fields", ["reject", "drop"])
def test_the_compiled_fast_path_agrees_with_the_field_by_field_checks(
    unknown_fields: str, received: datetime | None
) -> None:
    schema = SCHEMA.model_copy(update={"unknown_fields": unknown_fields})
    validator = RecordValidator(schema, max_bytes=1024 * 1024)
    assert validator.compiled is not None
    accepted = 0
    for record in mutations():
        value = msgspec.json.encode(record)
        fast = validator.check(value, received)
        reference = validator.explain(msgspec.json.decode(value), received)
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


# Issue 18, defect 1: dates and numbers outside plausible ranges, declared in the dataset schema.
ARRIVAL = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # when Kafka received the record


def date_verdict(applied_at: Any, received: datetime | None = ARRIVAL) -> tuple[str | None, str]:
    verdict = VALIDATOR.check(encode(good_record() | {"applied_at": applied_at}), received)
    errors = {e.field: e for e in verdict.errors}
    if "applied_at" not in errors:
        assert verdict.ok, verdict.errors
        return None, ""
    return errors["applied_at"].code, errors["applied_at"].message


ODD_DATES: dict[str, tuple[Any, str | None]] = {
    "year 9999": ("9999-12-31T23:59:59Z", "date_too_late"),
    "year 9999 west of UTC (past year 9999 in UTC)": ("9999-12-31T23:59:59-01:00", "date_too_late"),
    "year 0001": ("0001-01-01T00:00:00Z", "date_too_early"),
    "year 0001 east of UTC (before year 1 in UTC)": ("0001-01-01T00:00:00+01:00", "date_too_early"),
    "a second before 1970": ("1969-12-31T23:59:59Z", "date_too_early"),
    "1970 exactly": ("1970-01-01T00:00:00Z", None),
    "past pandas' range (2262)": ("2263-01-01T00:00:00Z", "date_too_late"),
    "more than 5 minutes ahead of arrival": ("2026-06-01T12:05:00.000001Z", "date_ahead_of_arrival"),
    "5 minutes ahead of arrival (clock skew)": ("2026-06-01T12:05:00Z", None),
    "ahead of arrival by its offset only": ("2026-06-01T14:04:00+02:00", None),
    "no timezone": ("2026-06-01T12:00:00", "invalid_datetime"),
    "a date without a time": ("2026-06-01", "invalid_datetime"),
    "February 30": ("2026-02-30T00:00:00Z", "invalid_datetime"),
    "February 29 in a common year": ("2025-02-29T00:00:00Z", "invalid_datetime"),
    "February 29 in a leap year": ("2024-02-29T00:00:00Z", None),
    "a leap second": ("2016-12-31T23:59:60Z", "invalid_datetime"),
    "an offset of 25 hours": ("2026-06-01T00:00:00+25:00", "invalid_datetime"),
    "epoch seconds as a number": (1_780_000_000, "wrong_type"),
    "epoch milliseconds as a number": (1_780_000_000_000, "wrong_type"),
    "epoch seconds as a string": ("1780000000", "invalid_datetime"),
    "ISO 8601 basic format with a timezone": ("20260601T120000Z", None),
    "nanoseconds (truncated to microseconds)": ("2026-06-01T11:00:00.123456789Z", None),
}


@pytest.mark.parametrize("case", list(ODD_DATES))
def test_every_odd_date_gets_a_clear_decision(case: str) -> None:
    applied_at, expected = ODD_DATES[case]
    code, message = date_verdict(applied_at)
    assert code == expected
    if code is not None:
        assert message and str(applied_at) not in message  # a reason, never the value


def test_date_reasons_name_the_declared_bound() -> None:
    assert "1970-01-01" in date_verdict("1969-01-01T00:00:00Z")[1]
    assert "2100-01-01" in date_verdict("2200-01-01T00:00:00Z")[1]
    assert "300 s" in date_verdict("2027-01-01T00:00:00Z")[1]


def test_without_an_arrival_time_only_the_fixed_bounds_apply() -> None:
    assert date_verdict("2099-01-01T00:00:00Z", received=None) == (None, "")
    assert date_verdict("2101-01-01T00:00:00Z", received=None)[0] == "date_too_late"


def test_every_accepted_date_fits_pandas() -> None:
    """Downstream (features, Feast, training) turns event times into pandas timestamps."""
    for spec in SCHEMA.fields.values():
        if spec.type is FieldType.DATETIME:
            for bound in (spec.lowest, spec.highest):
                assert pd.Timestamp(bound).to_pydatetime() == bound


def test_the_dataset_schema_bounds_every_number_and_date() -> None:
    for name, spec in SCHEMA.fields.items():
        if spec.type in (FieldType.INTEGER, FieldType.NUMBER):
            assert spec.min is not None and spec.max is not None, name
        if spec.type is FieldType.DATETIME:
            assert spec.earliest is not None and spec.latest is not None, name
            assert spec.max_ahead_s is not None, name


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("credit_amount", 0),
        ("credit_amount", -1e18),
        ("credit_amount", 1e30),
        ("credit_amount", 2**70),
        ("duration_in_month", -1),
        ("duration_in_month", 10**18),
        ("age_in_years", 200),
        ("number_of_existing_credits_at_this_bank", -(2**63)),
    ],
)
def test_implausible_numbers_are_out_of_range(field: str, value: Any) -> None:
    assert field_codes(good_record() | {field: value}) == {field: "out_of_range"}


@pytest.mark.parametrize(
    ("declaration", "complaint"),
    [
        ('{type: datetime, earliest: "1970-01-01T00:00:00"}', "timezone"),
        ('{type: datetime, earliest: "2030-01-01T00:00:00Z", latest: "2020-01-01T00:00:00Z"}', "ordered"),
        ('{type: datetime, latest: "9999-01-01T00:00:00Z"}', "within"),
        ("{type: datetime, min: 0}", "earliest"),
        ("{type: datetime, max_ahead_s: -1}", "max_ahead_s"),
    ],
)
def test_implausible_date_declarations_are_refused(tmp_path: Any, declaration: str, complaint: str) -> None:
    path = tmp_path / "dates.yaml"
    path.write_text(
        "dataset: d\nversion: 1\nentity_key: id\nevent_time: at\n"
        f"fields:\n  id: {{type: string}}\n  at: {declaration}\n"
    )
    with pytest.raises(IngestConfigError, match=complaint):
        load_schema(path)


def test_date_bounds_are_for_dates_only(tmp_path: Any) -> None:
    path = tmp_path / "n.yaml"
    path.write_text(
        "dataset: d\nversion: 1\nentity_key: id\nevent_time: at\nfields:\n  id: {type: string}\n"
        '  at: {type: datetime}\n  n: {type: number, earliest: "2020-01-01T00:00:00Z"}\n'
    )
    with pytest.raises(IngestConfigError, match="datetime fields only"):
        load_schema(path)
