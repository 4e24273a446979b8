"""A batch of hostile records among valid ones, through the real validator, the real Presidio scrubber
and the real ledger: every field of a demo application set to what careless and hostile producers
send (huge and negative numbers, NaN, NULs, lone surrogates, odd dates, the wrong types, long and
empty strings), in both JSON spellings. Every record gets exactly one outcome that parses as the
contract, every rejection says why, and not one valid neighbour is lost."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest

from contracts.events import RecordCleaned, RecordRejected
from contracts.registry import parse_event
from services.ingest.adapters.ledger import SqliteRecordLedger
from services.ingest.adapters.presidio import load_presidio_scrubber
from services.ingest.app import create_app
from services.ingest.domain.events import Source
from services.ingest.domain.schema import load_schema
from services.ingest.handlers import IngestHandler, RawInput
from services.ingest.settings import SCHEMAS_DIR, IngestSettings
from tests.unit.test_ingest_handler import FakePublisher, records

HOSTILE_VALUES: list[Any] = [
    2**31, -(2**31) - 1, 2**63, 2**64, 2**100, -(2**63) - 1, 1e308, -0.0, float("nan"), float("-inf"),
    "\x00", "a\x00b", "\ud800", "x\udfff", "", " ", "x" * 300, "x" * 20_000, "1", "1e400", "名前😀",
    "\u2028", "2024-02-30", "0000-01-01", "9999-12-31T23:59:59Z", "john smith\x00jane doe", 1, True,
    None, [], {}, {"a": [1, {"b": None}]},
]  # fmt: skip


def hostile_records(template: dict[str, Any], fresh: list[dict[str, Any]]) -> list[bytes]:
    """The template with one field set to one hostile value, for every field and value, each under an
    application id of its own (unless the id is the field under attack), in both JSON spellings."""
    values = []
    ids = iter(r["application_id"] for r in fresh)
    for field in template:
        for value in HOSTILE_VALUES:
            for ascii_only in (True, False):
                record = {**template, "application_id": next(ids), field: value}
                text = json.dumps(record, ensure_ascii=ascii_only, allow_nan=True)
                values.append(text.encode("utf-8", "surrogatepass"))
    return values


def arrived_now(offset: int, value: bytes) -> RawInput:
    """A raw record as Kafka hands it over, stamped now (the demo's dates are spaced a second apart)."""
    return RawInput(Source("records.raw", 0, offset, time.time_ns() // 1_000_000), None, value)


@pytest.fixture(scope="module")
def handler() -> IngestHandler:
    policy = load_schema(SCHEMAS_DIR / "loan_applications.yaml").free_text
    scrubber = load_presidio_scrubber(policy.entities, policy.score_threshold, policy.ner_gate)
    ledger = SqliteRecordLedger(None)
    app = create_app(IngestSettings(), scrubber=scrubber, publisher=FakePublisher(), ledger=ledger)
    h: IngestHandler = app.state.handler
    h.offload, h.retry_max_s = False, 0.01
    return h


async def test_hostile_records_get_a_reason_and_no_neighbour_is_lost(handler: IngestHandler) -> None:
    template = records(1)[0]
    count = len(template) * len(HOSTILE_VALUES) * 2
    others = records(1 + 2 * count)[1:]
    hostile = hostile_records(template, others[:count])
    neighbours = [msgspec.json.encode(r) for r in others[count:]]
    values = [v for pair in zip(hostile, neighbours, strict=True) for v in pair]  # interleaved
    out = await handler.handle([arrived_now(offset, value) for offset, value in enumerate(values)])

    assert len(out) == len(values)
    parsed = [parse_event(m.value) for m in out]  # every outcome is a contract event
    assert [m.code for m in out[1::2]] == ["ok"] * len(neighbours)  # no valid neighbour lost
    assert all(isinstance(e, RecordCleaned) for e in parsed[1::2])
    rejected = [e for e in parsed[0::2] if isinstance(e, RecordRejected)]
    assert rejected and all(e.payload.reason.code and e.payload.reason.message for e in rejected)
    codes = {m.code for m in out[0::2]}
    assert {"schema_violation", "non_finite", "invalid_utf8"} <= codes, codes
    for event in parsed:  # what went downstream holds no NUL the scrubber might have split a name on
        record = event.payload.record or {}  # type: ignore[union-attr]
        assert "john smith" not in json.dumps(record).lower()
