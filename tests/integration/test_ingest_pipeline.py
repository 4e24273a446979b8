"""Ingest on the real broker: every bad input ends in records.rejected with its code and does not block
the partition; kcat-produced records are accepted like any other. Planted PII: test_ingest_privacy.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.events import RecordCleaned, RecordRejected
from contracts.registry import parse_event
from servicekit.broker import MAX_REQUEST_BYTES
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.support import create_topic, wait_until
from workbench.demo_data import ApplicationStream


class RunningIngest:
    def __init__(self, bootstrap: str) -> None:
        run = uuid.uuid4().hex[:10]
        self.bootstrap = bootstrap
        self.settings = IngestSettings(
            kafka_bootstrap_servers=bootstrap,
            group_id=f"ingest-test-{run}",
            raw_topic=f"test.raw.{run}",
            clean_topic=f"test.clean.{run}",
            rejected_topic=f"test.rejected.{run}",
            # A ledger of its own: ids repeat from run to run, and would be judged duplicates.
            ledger_path=Path(tempfile.mkdtemp(prefix="ingest-ledger-")) / "ledger.db",
        )
        self.app = create_app(self.settings)

    async def produce(self, items: list[tuple[bytes | None, bytes | None]]) -> list[int]:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, max_request_size=MAX_REQUEST_BYTES)
        await producer.start()
        try:
            offsets = []
            for key, value in items:  # one at a time: offsets in the order given
                offsets.append((await producer.send_and_wait(self.settings.raw_topic, value, key)).offset)
            return offsets
        finally:
            await producer.stop()

    async def outcomes(self, expected: int) -> dict[int, RecordCleaned | RecordRejected]:
        """Outcome events by raw offset (raw topic has one partition here)."""
        consumer = AIOKafkaConsumer(
            self.settings.clean_topic,
            self.settings.rejected_topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            enable_auto_commit=False,
        )
        await consumer.start()
        found: dict[int, Any] = {}
        self.raw_values: list[bytes] = []
        try:

            async def read() -> None:
                while len(found) < expected:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for record in records:
                            self.raw_values.append(record.value or b"")
                            event = parse_event(record.value or b"")
                            assert isinstance(event, RecordCleaned | RecordRejected)
                            assert event.payload.source.offset not in found, "an offset with two outcomes"
                            found[event.payload.source.offset] = event

            await asyncio.wait_for(read(), timeout=120)
        finally:
            await consumer.stop()
        return found


@pytest.fixture
async def ingest(kafka_bootstrap: str) -> AsyncIterator[RunningIngest]:
    service = RunningIngest(kafka_bootstrap)
    for topic in (service.settings.raw_topic, service.settings.clean_topic, service.settings.rejected_topic):
        await create_topic(kafka_bootstrap, topic, partitions=1)
    async with service.app.router.lifespan_context(service.app):
        subs = service.app.state.subscriptions
        await wait_until(lambda: bool(subs.assignments()), timeout_s=60, what="ingest's partitions")
        yield service


def good(n: int = 1, seed: int = 21) -> list[dict[str, Any]]:
    return [app.record for app in ApplicationStream(seed=seed, id_prefix=f"it-{seed}").take(n)]


def bad_inputs() -> list[tuple[str, bytes | None, str]]:
    record = good(1)[0]
    return [
        ("not json", b"{this is not json", "not_json"),
        ("not an object", b"[1, 2, 3]", "not_object"),
        ("wrong types", msgspec.json.encode(record | {"age_in_years": "old"}), "schema_violation"),
        ("missing fields", msgspec.json.encode({"application_id": "a-1"}), "schema_violation"),
        ("unknown fields", msgspec.json.encode(record | {"shoe_size": 44}), "schema_violation"),
        ("out of range", msgspec.json.encode(record | {"age_in_years": 7}), "schema_violation"),
        ("outside the domain", msgspec.json.encode(record | {"housing": "boat"}), "schema_violation"),
        ("NaN", b'{"credit_amount": NaN}', "non_finite"),
        ("Infinity", b'{"credit_amount": Infinity}', "non_finite"),
        ("invalid utf-8", b'{"notes": "\xc3\x28"}', "invalid_utf8"),
        ("5 MB", b'{"notes": "' + b"a" * (5 * 1024 * 1024) + b'"}', "too_large"),
        ("deeply nested", b"[" * 50_000 + b"]" * 50_000, "too_deep"),
        ("empty", b"", "empty"),
        ("key without value", None, "no_value"),
    ]


async def test_bad_inputs_end_in_records_rejected_and_do_not_block_the_partition(
    ingest: RunningIngest,
) -> None:
    cases = bad_inputs()
    after = good(1, seed=22)[0]
    offsets = await ingest.produce(
        [(b"key-" + str(i).encode(), value) for i, (_, value, _) in enumerate(cases)]
        + [(after["application_id"].encode(), msgspec.json.encode(after))]
    )
    outcomes = await ingest.outcomes(len(offsets))
    for offset, (name, value, code) in zip(offsets, cases, strict=False):
        event = outcomes[offset]
        assert isinstance(event, RecordRejected), name
        assert event.payload.reason.code == code, name
        assert event.payload.raw_size == len(value or b"")
        if code == "schema_violation":
            assert event.payload.reason.errors, name
    last = outcomes[offsets[-1]]
    assert isinstance(last, RecordCleaned) and last.payload.entity_id == after["application_id"]
    assert ingest.app.state.subscriptions.assignments()  # still consuming


async def test_kcat_produced_records_are_accepted(ingest: RunningIngest) -> None:
    records = good(3, seed=23)
    lines = "".join(f"{r['application_id']}|{json.dumps(r)}\n" for r in records)
    command = ["/usr/bin/kcat", "-P", "-b", ingest.bootstrap, "-t", ingest.settings.raw_topic, "-K", "|"]
    await asyncio.to_thread(subprocess.run, command, input=lines.encode(), check=True, timeout=60)
    outcomes = await ingest.outcomes(3)
    assert sorted(e.payload.entity_id or "" for e in outcomes.values()) == sorted(
        r["application_id"] for r in records
    )
    assert all(isinstance(e, RecordCleaned) for e in outcomes.values())
