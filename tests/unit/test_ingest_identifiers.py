"""Identifiers checked at the door (issue 18, defect 3): an application_id shaped like an SSN, a phone or
card number, an e-mail or a name is rejected without being echoed, or pseudonymised with a keyed hash,
as the dataset schema declares."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.ingest.adapters.names import identifier_names
from services.ingest.domain.events import Source
from services.ingest.domain.identifiers import (
    LOOKS_LIKE_PII,
    GuardedValidator,
    Pseudonymiser,
    _full_check,
    pii_shape,
)
from services.ingest.domain.privacy import PassThroughScrubber, PiiPolicyApplier
from services.ingest.domain.schema import DatasetSchema, FieldSpec, IdentifierRule, load_schema
from services.ingest.handlers import IngestHandler, RawInput, Topics
from services.ingest.settings import DEV_ID_KEY, SCHEMAS_DIR, IngestSettings
from workbench.demo_data import ApplicationStream

SCHEMA = load_schema(SCHEMAS_DIR / "loan_applications.yaml")
NAMES = identifier_names()
PII_SHAPED = {
    "123-45-6789": "US_SSN",
    "316722962": "US_SSN",
    "app-123-45-6789": "US_SSN",
    "555-123-4567": "PHONE_NUMBER",
    "+15551234567": "PHONE_NUMBER",
    "id_(555)123-4567": "PHONE_NUMBER",
    "4111111111111111": "CREDIT_CARD",
    "c-4111-1111-1111-1111": "CREDIT_CARD",
    "x5551234567": "PHONE_OR_CARD_NUMBER",
    "jane@example.invalid": "EMAIL_ADDRESS",
    "john.smith": "PERSON",
    "MARIA_GONZALEZ": "PERSON",
    "Smith": "PERSON",
    "john-smith-42": "PERSON",
}
ID_SHAPED = ["app-0000123", "it-21-0000003", "a-1", "x", "pii-11-0001234", "app-12345678", "A1B2C3"]


@pytest.mark.parametrize(("value", "kind"), PII_SHAPED.items())
def test_pii_shaped_values_are_recognised(value: str, kind: str) -> None:
    assert pii_shape(value, NAMES) == kind


@pytest.mark.parametrize("value", ID_SHAPED)
def test_ordinary_ids_pass(value: str) -> None:
    assert pii_shape(value, NAMES) is None


def test_the_fast_path_for_plain_ids_changes_no_answer() -> None:
    rng = random.Random(5)
    words = ["app", "id", "smith", "john", "x", "loan", "Maria", "ssn", "tel"]
    for _ in range(3000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12)))
        value = rng.choice(words) + rng.choice(["", "-", "_", ".", ":"]) + digits
        assert pii_shape(value, NAMES) == _full_check(value, NAMES), value


def schema_with(rule: IdentifierRule) -> DatasetSchema:
    key = SCHEMA.fields["application_id"].model_copy(update={"identifier": rule})
    return SCHEMA.model_copy(update={"fields": SCHEMA.fields | {"application_id": key}})


def handler(schema: DatasetSchema, key: bytes = b"k" * 32) -> IngestHandler:
    return IngestHandler(
        schema=schema,
        validator=GuardedValidator(schema, 1024 * 1024, lambda: key, NAMES),
        policy=PiiPolicyApplier(schema, b"salt"),
        publisher=None,  # type: ignore[arg-type]  # process() never publishes
        topics=Topics("raw", "clean", "rejected"),
        scrubber=PassThroughScrubber(),
        offload=False,
    )


def outcome(h: IngestHandler, record: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    raw = msgspec.json.encode(record)
    (message,) = h.process([RawInput(Source("raw", 0, 0, 1_767_225_600_000), None, raw)])
    return msgspec.json.decode(message.value), message.value


def demo_record(**changes: Any) -> dict[str, Any]:
    return dict(ApplicationStream(seed=7).take(1)[0].record) | changes


def test_the_demo_schema_rejects_pii_shaped_ids() -> None:
    assert SCHEMA.fields["application_id"].identifier is IdentifierRule.REJECT


@pytest.mark.parametrize("value", ["123-45-6789", "5551234567", "john.smith", "Maria_Gonzalez"])
@pytest.mark.parametrize("valid", [True, False])
def test_reject_dead_letters_the_record_without_echoing_the_id(value: str, valid: bool) -> None:
    record = demo_record(application_id=value) | ({} if valid else {"housing": "boat"})
    event, raw = outcome(handler(SCHEMA), record)
    assert event["event_type"] == "RecordRejected"
    payload = event["payload"]
    assert payload["reason"]["code"] == "schema_violation" and payload["entity_id"] is None
    errors = {e["field"]: e["code"] for e in payload["reason"]["errors"]}
    assert errors["application_id"] == LOOKS_LIKE_PII
    assert value.encode() not in raw and value.lower().encode() not in raw.lower()


def test_reject_keeps_ordinary_ids() -> None:
    record = demo_record()
    event, _ = outcome(handler(SCHEMA), record)
    assert event["event_type"] == "RecordCleaned"
    assert event["payload"]["entity_id"] == record["application_id"]


def test_pseudonymise_replaces_every_id_with_a_stable_keyed_hash() -> None:
    h = handler(schema_with(IdentifierRule.PSEUDONYMISE))
    first, raw = outcome(h, demo_record(application_id="123-45-6789"))
    again, _ = outcome(h, demo_record(application_id="123-45-6789"))
    other_key, _ = outcome(
        handler(schema_with(IdentifierRule.PSEUDONYMISE), b"q" * 32),
        demo_record(application_id="123-45-6789"),
    )
    ordinary, _ = outcome(h, demo_record(application_id="app-0000001"))
    pid = first["payload"]["entity_id"]
    assert first["event_type"] == "RecordCleaned" and pid.startswith("pid-") and len(pid) == 36
    assert first["payload"]["record"]["application_id"] == pid
    assert again["payload"]["entity_id"] == pid != other_key["payload"]["entity_id"]
    assert ordinary["payload"]["entity_id"] == Pseudonymiser(b"k" * 32)("app-0000001")
    assert b"123-45-6789" not in raw


def test_pseudonymise_covers_rejected_records_too() -> None:
    event, raw = outcome(
        handler(schema_with(IdentifierRule.PSEUDONYMISE)),
        demo_record(application_id="john.smith", housing="boat"),
    )
    assert event["event_type"] == "RecordRejected" and event["payload"]["entity_id"].startswith("pid-")
    assert b"john.smith" not in raw


def test_the_key_comes_from_a_secrets_file(tmp_path: Path) -> None:
    secret = tmp_path / "ingest-id-key"
    secret.write_bytes(b"a-key-from-the-secrets-folder\n")
    settings = IngestSettings(id_key_file=secret)
    assert settings.identifier_key() == b"a-key-from-the-secrets-folder"


def test_production_refuses_the_development_identifier_key() -> None:
    production: dict[str, Any] = {
        "environment": "production",
        "pii_salt": "a-long-and-random-production-salt",
        "api_keys_json": '[{"name":"a","role":"ops","sha256":"' + "a" * 64 + '"}]',
    }
    with pytest.raises(ValueError, match="INGEST_ID_KEY"):
        IngestSettings(**production).identifier_key()
    assert IngestSettings(**production, id_key=DEV_ID_KEY + "-but-changed").identifier_key()
    assert IngestSettings(environment="development").identifier_key() == DEV_ID_KEY.encode()


def test_pseudonymising_without_a_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key"):
        GuardedValidator(schema_with(IdentifierRule.PSEUDONYMISE), 1024, lambda: b"")


def test_an_identifier_rule_is_for_plain_string_fields_only() -> None:
    with pytest.raises(ValueError, match="identifier"):
        FieldSpec(type="integer", identifier="reject")
    with pytest.raises(ValueError, match="identifier"):
        FieldSpec(type="string", pii="PERSON", policy="hash", identifier="reject")


def test_http_ingest_refuses_a_pii_shaped_id_without_echoing_it() -> None:
    from tests.unit.test_ingest_http import Producer

    producer = Producer()
    ok, ssn_id = demo_record(), demo_record(application_id="316722962")
    response = producer.post(b"[" + msgspec.json.encode(ok) + b"," + msgspec.json.encode(ssn_id) + b"]")
    assert 400 <= response.status_code < 500
    assert b"316722962" not in response.content
    assert LOOKS_LIKE_PII.encode() in response.content
    assert producer.publisher.raw == []  # all or nothing: the valid neighbour is not appended either
