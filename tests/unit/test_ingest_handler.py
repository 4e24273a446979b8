"""The use case with fakes: one outcome per raw record, contract-exact events, deterministic ids,
PII policy, and the HTTP route (auth, limits, receipts). The ledger is the real SQLite one, in memory.
Repeated ids: tests/unit/test_ingest_duplicates.py; HTTP all-or-nothing: test_ingest_http.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from fastapi.testclient import TestClient

from contracts.events import RecordCleaned, RecordRejected
from contracts.registry import encode_event, parse_event
from servicekit.auth import Role, generate_key, hash_key
from services.ingest.adapters.ledger import SqliteRecordLedger
from services.ingest.app import create_app
from services.ingest.domain.events import OutMessage, Source
from services.ingest.domain.privacy import PassThroughScrubber, PiiPolicyApplier, ScrubbedText
from services.ingest.handlers import Appended, IngestHandler, RawInput
from services.ingest.settings import DEV_SALT, IngestSettings
from workbench.demo_data import ApplicationStream


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[OutMessage] = []
        self.raw: list[tuple[bytes | None, bytes]] = []
        self.failures = 0

    async def publish(self, messages: Sequence[OutMessage]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker down")
        self.published.extend(messages)

    async def append_raw(
        self, topic: str, records: Sequence[tuple[bytes | None, bytes]]
    ) -> list[Appended | Exception]:
        start = len(self.raw)
        self.raw.extend(records)
        return [Appended(0, start + i, 1_700_000_000_000) for i in range(len(records))]


class MarkingScrubber:
    """Replaces the whole text; enough to see that free text went through the port."""

    def scrub(self, texts: Sequence[str]) -> list[ScrubbedText]:
        return [ScrubbedText("<SCRUBBED>", ("PERSON",)) for _ in texts]


def handler(
    publisher: FakePublisher | None = None, ledger: SqliteRecordLedger | None = None
) -> IngestHandler:
    app = create_app(
        IngestSettings(),
        scrubber=MarkingScrubber(),
        publisher=publisher or FakePublisher(),
        ledger=ledger or SqliteRecordLedger(None),
    )
    h: IngestHandler = app.state.handler
    h.offload = False
    h.retry_max_s = 0.01
    return h


def raw(offset: int, value: bytes | None) -> RawInput:
    return RawInput(Source("records.raw", 1, offset, 1_767_225_600_000), b"k", value)


def records(n: int) -> list[dict[str, Any]]:
    return [app.record for app in ApplicationStream(seed=5).take(n)]


async def test_every_raw_record_gets_exactly_one_outcome_that_parses_as_the_contract() -> None:
    h, good = handler(), records(3)
    batch = [raw(i, msgspec.json.encode(r)) for i, r in enumerate(good)] + [raw(3, b"nope"), raw(4, None)]
    out = await h.handle(batch)
    assert [m.code for m in out] == ["ok", "ok", "ok", "not_json", "no_value"]
    events = [parse_event(m.value) for m in out]
    assert [type(e) for e in events] == [RecordCleaned] * 3 + [RecordRejected] * 2
    cleaned = events[0]
    assert isinstance(cleaned, RecordCleaned)
    assert cleaned.payload.entity_id == good[0]["application_id"] and out[0].key == cleaned.key()
    assert cleaned.payload.source.offset == 0 and cleaned.payload.record["notes"] == "<SCRUBBED>"
    assert set(cleaned.payload.scrubbed_fields) >= {"applicant_name", "email", "phone", "notes"}
    for message, event in zip(out, events, strict=True):
        assert message.value == encode_event(event)  # byte for byte what pydantic would write


async def test_redelivery_republishes_the_same_event_byte_for_byte() -> None:
    value = msgspec.json.encode(records(1)[0])
    first, again = await handler().handle([raw(7, value)]), await handler().handle([raw(7, value)])
    assert first == again
    assert (await handler().handle([raw(8, value)]))[0].event_id != first[0].event_id


async def test_structured_pii_by_policy() -> None:
    record = records(1)[0] | {"card_number": "4111111111111111", "ssn": "123-45-6789", "phone": "5551234567"}
    out = await handler().handle([raw(0, msgspec.json.encode(record))])
    clean = parse_event(out[0].value).payload.record  # type: ignore[attr-defined]
    assert "card_number" not in clean and "ssn" not in clean  # drop
    assert clean["phone"] == "********67"  # mask, keep_last 2
    assert clean["email"].startswith("hmac-sha256:") and record["email"] not in out[0].value.decode()
    other_salt = PiiPolicyApplier(handler().schema, b"another salt")
    assert other_salt._transform(handler().schema.fields["email"], record["email"]) != clean["email"]
    assert (await handler().handle([raw(1, msgspec.json.encode(record))]))[0].value.count(
        clean["email"].encode()
    ) == 1  # stable: the same e-mail hashes the same in another record


async def test_rejected_copy_is_scrubbed_too() -> None:
    record = records(1)[0] | {"housing": "castle"}
    out = await handler().handle([raw(0, msgspec.json.encode(record))])
    event = parse_event(out[0].value)
    assert isinstance(event, RecordRejected) and event.payload.reason.code == "schema_violation"
    assert event.payload.entity_id == record["application_id"]
    text = out[0].value.decode()
    for field in ("applicant_name", "email", "phone", "notes"):
        assert str(record[field]) not in text


async def test_scrubber_failure_rejects_instead_of_leaking() -> None:
    class Broken:
        def scrub(self, texts: Sequence[str]) -> list[ScrubbedText]:
            raise RuntimeError("model crashed")

    h = handler()
    h.scrubber = Broken()
    record = records(1)[0]
    out = await h.handle([raw(0, msgspec.json.encode(record))])
    assert out[0].code == "scrub_failed" and record["notes"] not in out[0].value.decode()


async def test_a_text_the_scrubber_cannot_take_fails_only_its_own_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class ChokesOnOne:
        def __init__(self) -> None:
            self.calls: list[int] = []

        def scrub(self, texts: Sequence[str]) -> list[ScrubbedText]:
            self.calls.append(len(texts))
            if any("Zbigniew" in text for text in texts):
                raise RuntimeError(f"model crashed on {texts}")
            return [ScrubbedText("<SCRUBBED>", ("PERSON",)) for _ in texts]

    h, scrubber, good = handler(), ChokesOnOne(), records(4)
    h.scrubber = scrubber
    good[2]["notes"] = "guarantor Zbigniew Kowalczyk, call 555 123 4567"
    out = await h.handle([raw(i, msgspec.json.encode(r)) for i, r in enumerate(good)])
    assert [m.code for m in out] == ["ok", "ok", "scrub_failed", "ok"]
    assert scrubber.calls == [4, 1, 1, 1, 1]  # the batch, then each text alone
    assert [parse_event(m.value).payload.record["notes"] for m in out if m.code == "ok"] == ["<SCRUBBED>"] * 3  # type: ignore[attr-defined]
    assert "Zbigniew" not in out[2].value.decode() and "Zbigniew" not in caplog.text


async def test_publish_is_retried_until_kafka_takes_it() -> None:
    publisher = FakePublisher()
    publisher.failures = 2
    h = handler(publisher)
    await h.handle([raw(0, b"[]")])
    assert len(publisher.published) == 1


def test_pass_through_scrubber_is_only_a_fake() -> None:
    assert PassThroughScrubber().scrub(["x"]) == [ScrubbedText("x", ())]


def test_production_refuses_the_development_salt() -> None:
    with pytest.raises(ValueError, match="INGEST_PII_SALT"):
        IngestSettings(
            environment="production", api_keys_json='[{"name":"a","role":"ops","sha256":"' + "a" * 64 + '"}]'
        )
    ok = IngestSettings(
        environment="production",
        pii_salt="a-long-and-random-production-salt",  # type: ignore[arg-type]
        api_keys_json='[{"name":"a","role":"ops","sha256":"' + "a" * 64 + '"}]',  # type: ignore[arg-type]
    )
    assert ok.pii_salt.get_secret_value() != DEV_SALT


@pytest.fixture
def client_and_keys() -> tuple[TestClient, dict[str, str], FakePublisher]:
    keys = {role: generate_key() for role in ("producer", "client")}
    entries = [{"name": r, "role": r, "sha256": hash_key(k)} for r, k in keys.items()]
    settings = IngestSettings(api_keys_json=json.dumps(entries), http_max_records=5)  # type: ignore[arg-type]
    publisher = FakePublisher()
    app = create_app(
        settings, scrubber=MarkingScrubber(), publisher=publisher, ledger=SqliteRecordLedger(None)
    )
    app.router.lifespan_context = _no_lifespan  # no broker in unit tests
    return TestClient(app), keys, publisher


async def _no_lifespan(app: Any) -> Any:
    yield


_no_lifespan = __import__("contextlib").asynccontextmanager(_no_lifespan)


def test_post_records_appends_to_raw_and_returns_receipts(client_and_keys: Any) -> None:
    client, keys, publisher = client_and_keys
    good = records(3)
    response = client.post("/records", json=good, headers={"X-API-Key": keys["producer"]})
    assert response.status_code == 202, response.text
    receipts = response.json()["records"]
    assert [r["expected_outcome"] for r in receipts] == ["clean", "clean", "clean"]
    assert all(r["landed"] and r["code"] is None for r in receipts)
    assert len(publisher.raw) == 3 and publisher.raw[0][0] == good[0]["application_id"].encode()
    assert len({r["event_id"] for r in receipts}) == 3


def test_one_invalid_record_refuses_the_request_and_appends_nothing(client_and_keys: Any) -> None:
    client, keys, publisher = client_and_keys
    body = [*records(2), {"application_id": "x"}]
    response = client.post("/records", json=body, headers={"X-API-Key": keys["producer"]})
    assert response.status_code == 422, response.text
    refused = response.json()["records"]
    assert [(r["index"], r["code"]) for r in refused] == [(2, "schema_violation")]
    assert {e["field"] for e in refused[0]["errors"]} >= {"applied_at", "credit_amount"}
    assert publisher.raw == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"a": 1}', 400),
        (b"[]", 400),
        (b"[" + b"{}," * 5 + b"{}]", 413),
        (b"[NaN]", 400),
    ],
)
def test_post_records_refuses_bad_batches(client_and_keys: Any, body: bytes, status: int) -> None:
    client, keys, _ = client_and_keys
    response = client.post("/records", content=body, headers={"X-API-Key": keys["producer"]})
    assert response.status_code == status and response.json()["detail"]


def test_post_records_needs_the_producer_role(client_and_keys: Any) -> None:
    client, keys, _ = client_and_keys
    assert client.post("/records", json=[{}]).status_code == 401
    assert client.post("/records", json=[{}], headers={"X-API-Key": keys["client"]}).status_code == 403
    assert Role.PRODUCER.value == "producer"
