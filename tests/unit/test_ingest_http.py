"""Issue 18, defect 4: POST /records is all or nothing per request and never answers 5xx for bad input.
Every record is validated (bytes against the broker-bounded limit included) before any is appended;
a Kafka failure part-way says per record which landed."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from servicekit.auth import generate_key, hash_key
from servicekit.broker import MAX_REQUEST_BYTES
from services.ingest.adapters.ledger import SqliteRecordLedger
from services.ingest.app import create_app
from services.ingest.domain.events import Source
from services.ingest.handlers import Appended, IngestHandler, RawInput
from services.ingest.settings import RECORD_HEADROOM_BYTES, IngestSettings
from tests.unit.test_ingest_handler import FakePublisher, MarkingScrubber, _no_lifespan, records


class Producer:
    def __init__(self, publisher: FakePublisher | None = None) -> None:
        key = generate_key()
        entries = [{"name": "p", "role": "producer", "sha256": hash_key(key)}]
        settings = IngestSettings(api_keys_json=json.dumps(entries))  # type: ignore[arg-type]
        self.publisher = publisher or FakePublisher()
        self.app = create_app(
            settings, scrubber=MarkingScrubber(), publisher=self.publisher, ledger=SqliteRecordLedger(None)
        )
        self.app.router.lifespan_context = _no_lifespan
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.headers = {"X-API-Key": key, "Content-Type": "application/json"}

    def post(self, body: bytes) -> Any:
        return self.client.post("/records", content=body, headers=self.headers)

    async def consume_appended(self) -> list[str]:
        """What the Kafka subscriber would make of the appended records: their outcome codes."""
        handler: IngestHandler = self.app.state.handler
        handler.offload = False
        batch = [
            RawInput(Source("records.raw", 0, i, 1_767_225_600_000), key, value)
            for i, (key, value) in enumerate(self.publisher.raw)
        ]
        return [m.code for m in await handler.handle(batch)]


def body_of(*items: bytes) -> bytes:
    return b"[" + b",".join(items) + b"]"


def good_bytes(n: int = 2) -> list[bytes]:
    return [msgspec.json.encode(r) for r in records(n)]


def refused_codes(response: Any) -> list[tuple[int, str]]:
    return [(r["index"], r["code"]) for r in response.json()["records"]]


HOSTILE_RECORDS: dict[str, tuple[bytes, str]] = {
    "invalid UTF-8 in a string": (b'{"notes": "\xff\xfe"}', "invalid_utf8"),
    "an overlong UTF-8 encoding": (b'{"application_id": "\xc0\xaf"}', "invalid_utf8"),
    "not an object": (b"[1, 2, 3]", "not_object"),
    "a string": (b'"hello"', "not_object"),
    "nested past max_depth": (b"[" * 40 + b"]" * 40, "too_deep"),
    "a number too large for a double": (b'{"credit_amount": 1e999}', "non_finite"),
    "an integer with 5000 digits": (b'{"credit_amount": ' + b"9" * 5000 + b"}", "non_finite"),
    "over the record limit, under the body limit": (
        b'{"notes": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        "too_large",
    ),
    "wrong types": (b'{"application_id": 7, "applied_at": 1780000000}', "schema_violation"),
    "year 9999": (
        msgspec.json.encode(records(1)[0] | {"applied_at": "9999-12-31T23:59:59Z"}),
        "schema_violation",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_RECORDS))
def test_one_hostile_record_refuses_the_request_with_its_reason(case: str) -> None:
    hostile, code = HOSTILE_RECORDS[case]
    producer = Producer()
    response = producer.post(body_of(*good_bytes(2), hostile))
    assert response.status_code == 422, response.text
    assert refused_codes(response) == [(2, code)]
    assert producer.publisher.raw == []  # nothing appended: the client can simply fix and resend


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 100_000 + b"]" * 100_000, 400),  # a depth bomb beyond the decoder
        (b"\xff\xfe[]", 400),  # invalid UTF-8 outside any string
        (b"[NaN]", 400),
        (b'{"records": []}', 400),
        (b"", 400),
        (b"[]", 400),
    ],
)
def test_bad_bodies_are_4xx(body: bytes, status: int) -> None:
    producer = Producer()
    response = producer.post(body)
    assert response.status_code == status and response.json()["detail"]
    assert producer.publisher.raw == []


def test_every_record_is_appended_byte_for_byte_as_sent() -> None:
    producer = Producer()
    values = [msgspec.json.format(v, indent=1) for v in good_bytes(2)]
    response = producer.post(body_of(*values))
    assert response.status_code == 202
    assert [value for _, value in producer.publisher.raw] == values


def test_the_record_limit_stays_under_the_broker_s_message_limit() -> None:
    assert IngestSettings().max_record_bytes <= MAX_REQUEST_BYTES - RECORD_HEADROOM_BYTES
    with pytest.raises(ValidationError, match="max_record_bytes"):
        IngestSettings(max_record_bytes=MAX_REQUEST_BYTES)


def test_hostile_mutations_never_get_a_5xx() -> None:
    """Seeded byte-level mutations of a valid body: every answer is a 2xx or a 4xx with a reason."""
    rng = random.Random(18)
    producer = Producer()
    base = bytearray(body_of(*good_bytes(2)))
    statuses: set[int] = set()
    for _ in range(300):
        body = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(body))
            body[at : at + rng.randint(0, 3)] = bytes(rng.choice(b'{}[]",:\\\x00\xff9e-') for _ in range(2))
        response = producer.post(bytes(body))
        statuses.add(response.status_code)
        assert response.status_code < 500, (bytes(body), response.text)
        assert response.status_code == 202 or response.json()["detail"]
    assert {400, 422} <= statuses


class FlakyPublisher(FakePublisher):
    """Kafka takes every other record of a batch."""

    async def append_raw(
        self, topic: str, records: Sequence[tuple[bytes | None, bytes]]
    ) -> list[Appended | Exception]:
        out: list[Appended | Exception] = []
        for i, record in enumerate(records):
            if i % 2:
                out.append(TimeoutError("no ack"))
            else:
                self.raw.append(record)
                out.append(Appended(0, len(self.raw) - 1, 1_767_225_600_000))
        return out


class DownPublisher(FakePublisher):
    async def append_raw(
        self, topic: str, records: Sequence[tuple[bytes | None, bytes]]
    ) -> list[Appended | Exception]:
        raise RuntimeError("publisher not started")


def test_a_kafka_failure_part_way_says_which_records_landed() -> None:
    producer = Producer(FlakyPublisher())
    response = producer.post(body_of(*good_bytes(3)))
    assert response.status_code == 503
    assert [r["landed"] for r in response.json()["records"]] == [True, False, True]
    assert len(producer.publisher.raw) == 2


def test_kafka_down_is_a_503_not_a_dropped_connection() -> None:
    response = Producer(DownPublisher()).post(body_of(*good_bytes(1)))
    assert response.status_code == 503
    assert response.json()["records"] == [{"landed": False, "error": "RuntimeError"}]


async def test_a_resent_request_is_predicted_and_then_rejected_as_duplicate() -> None:
    """Resending a whole batch after a failure is safe: what landed twice goes clean only once."""
    producer = Producer()
    body = body_of(*good_bytes(2))
    first = producer.post(body).json()["records"]
    assert [r["expected_outcome"] for r in first] == ["clean", "clean"]
    await producer.consume_appended()
    second = producer.post(body).json()["records"]
    assert [(r["expected_outcome"], r["code"]) for r in second] == [("rejected", "duplicate_record")] * 2
    assert await producer.consume_appended() == ["ok", "ok", "duplicate_record", "duplicate_record"]


def test_the_same_record_twice_in_one_request_is_predicted_a_duplicate() -> None:
    value = good_bytes(1)[0]
    receipts = Producer().post(body_of(value, value)).json()["records"]
    assert [r["code"] for r in receipts] == [None, "duplicate_record"]
