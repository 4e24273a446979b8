"""Issue 20: the OpenAPI document of POST /records declares what the validator enforces. Records the
validator accepts fit the documented schema, and records that break a documented constraint are
refused by both, so a client generated from the document sends what ingest accepts."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import msgspec
import pytest

from servicekit.auth import generate_key, hash_key
from services.ingest.app import create_app
from services.ingest.domain.json_schema import record_json_schema
from services.ingest.domain.schema import load_schema
from services.ingest.domain.validation import RecordValidator
from services.ingest.settings import SCHEMAS_DIR, IngestSettings
from tests.unit.test_ingest_handler import FakePublisher, MarkingScrubber, records

SCHEMA = load_schema(SCHEMAS_DIR / "loan_applications.yaml")
VALIDATOR = RecordValidator(SCHEMA, max_bytes=1024 * 1024)
DOCUMENTED = jsonschema_rs.validator_for(record_json_schema(SCHEMA, 1024 * 1024), validate_formats=True)


def accepted_by_ingest(record: dict[str, Any]) -> bool:
    return VALIDATOR.check(msgspec.json.encode(record)).ok


def test_every_record_ingest_accepts_fits_the_document() -> None:
    for record in records(300):
        assert accepted_by_ingest(record)
        assert DOCUMENTED.is_valid(record), list(DOCUMENTED.iter_errors(record))[:3]


BREAKS: dict[str, tuple[str, Any]] = {
    "integer below its minimum": ("age_in_years", 17),
    "integer above its maximum": ("duration_in_month", 121),
    "a fraction for an integer": ("age_in_years", 30.5),
    "number above its maximum": ("credit_amount", 1_000_001),
    "category outside its values": ("housing", "castle"),
    "string longer than max_length": ("applicant_name", "x" * 201),
    "identifier breaking its pattern": ("application_id", "has spaces"),
    "a string for a number": ("credit_amount", "lots"),
    "null where not nullable": ("housing", None),
    "an undeclared field": ("favourite_colour", "blue"),
    "a date that is no date": ("applied_at", "yesterday"),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_a_record_breaking_a_documented_constraint_is_refused_by_both(case: str) -> None:
    field, value = BREAKS[case]
    record = {**records(1)[0], field: value}
    assert not DOCUMENTED.is_valid(record)
    assert not accepted_by_ingest(record)


def test_a_missing_required_field_is_refused_by_both() -> None:
    record = records(1)[0]
    del record["age_in_years"]
    assert not DOCUMENTED.is_valid(record) and not accepted_by_ingest(record)


def test_the_live_document_carries_the_batch_limits_and_the_one_error_shape() -> None:
    entries = [{"name": "p", "role": "producer", "sha256": hash_key(generate_key())}]
    settings = IngestSettings(api_keys_json=json.dumps(entries), http_max_records=37)  # type: ignore[arg-type]
    app = create_app(settings, scrubber=MarkingScrubber(), publisher=FakePublisher())
    operation = app.openapi()["paths"]["/records"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert operation["requestBody"]["required"] is True
    assert body["minItems"] == 1 and body["maxItems"] == 37
    assert set(body["items"]["required"]) == set(SCHEMA.required)
    assert {"400", "401", "403", "413", "422", "503"} <= set(operation["responses"])
    error = operation["responses"]["422"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorBody"}
